// The DNS wire format the stub resolver needs (RFC 1035): a query for one name's A records,
// and the parts of an answer it reads: the header (id, flags, rcode, TC), the question it
// must echo, and the answer section's A and CNAME records with their TTLs. Names in an
// answer may be compressed (pointers); a pointer loop, a label past the end or a record
// longer than the message makes the answer malformed, never a crash.
using System.Buffers.Binary;
using System.Net;
using System.Text;

namespace AntHost.Client.Dns;

/// <summary>What a DNS answer said (RFC 1035 §4.1.1).</summary>
internal enum DnsRcode : byte
{
    NoError = 0,
    FormatError = 1,
    ServerFailure = 2,
    NameError = 3,
    NotImplemented = 4,
    Refused = 5,
}

/// <summary>One record of the answer section the resolver uses: an A record's address or a CNAME's target.</summary>
internal readonly record struct DnsRecord(string Owner, ushort Type, uint Ttl, IPAddress? Address, string? Target);

/// <summary>A parsed answer.</summary>
internal sealed record DnsAnswer(ushort Id, DnsRcode Rcode, bool Truncated, string Question, IReadOnlyList<DnsRecord> Records);

internal static class DnsMessage
{
    public const ushort TypeA = 1;
    public const ushort TypeCname = 5;
    public const ushort ClassIn = 1;

    /// <summary>The largest answer over UDP without EDNS (RFC 1035 §4.2.1); a bigger one comes truncated.</summary>
    public const int MaxUdpAnswer = 512;

    /// <summary>A standard query, recursion desired, for <paramref name="name"/>'s A records.</summary>
    public static byte[] Query(ushort id, string name)
    {
        var b = new byte[12 + EncodedLength(name) + 4];
        BinaryPrimitives.WriteUInt16BigEndian(b, id);
        BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(2), 0x0100); // RD
        BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(4), 1);      // QDCOUNT
        int o = 12;
        foreach (var label in name.Split('.', StringSplitOptions.RemoveEmptyEntries))
        {
            b[o++] = (byte)label.Length;
            o += Encoding.ASCII.GetBytes(label, b.AsSpan(o));
        }
        b[o++] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(o), TypeA);
        BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(o + 2), ClassIn);
        return b;
    }

    private static int EncodedLength(string name)
    {
        int n = 1;
        foreach (var label in name.Split('.', StringSplitOptions.RemoveEmptyEntries)) n += 1 + label.Length;
        return n;
    }

    /// <summary>
    /// Checks a host name as a resolver sends it: ASCII labels of 1..63 characters, at most
    /// 253 characters without the final dot. Returns null when it is fine, else why not.
    /// </summary>
    public static string? Invalid(string name)
    {
        string n = name.EndsWith('.') ? name[..^1] : name;
        if (n.Length == 0) return "the name is empty";
        if (n.Length > 253) return $"the name has {n.Length} characters (at most 253)";
        foreach (var label in n.Split('.'))
        {
            if (label.Length == 0) return "the name has an empty label";
            if (label.Length > 63) return $"the label '{label[..16]}...' has {label.Length} characters (at most 63)";
            foreach (char c in label)
                if (c > 0x7e || c <= 0x20) return $"the name holds '{c}' (a host name is ASCII)";
        }
        return null;
    }

    /// <summary>Parses an answer; null when it is malformed (too short, a bad name or record).</summary>
    public static DnsAnswer? Parse(ReadOnlySpan<byte> m)
    {
        if (m.Length < 12) return null;
        ushort id = BinaryPrimitives.ReadUInt16BigEndian(m);
        ushort flags = BinaryPrimitives.ReadUInt16BigEndian(m[2..]);
        if ((flags & 0x8000) == 0) return null; // not a response
        int qd = BinaryPrimitives.ReadUInt16BigEndian(m[4..]);
        int an = BinaryPrimitives.ReadUInt16BigEndian(m[6..]);
        int o = 12;
        string question = "";
        for (int i = 0; i < qd; i++)
        {
            if (!TryReadName(m, ref o, out var q) || o + 4 > m.Length) return null;
            if (i == 0) question = q;
            o += 4;
        }
        var records = new List<DnsRecord>(an);
        for (int i = 0; i < an; i++)
        {
            if (!TryReadName(m, ref o, out var owner) || o + 10 > m.Length) return null;
            ushort type = BinaryPrimitives.ReadUInt16BigEndian(m[o..]);
            ushort cls = BinaryPrimitives.ReadUInt16BigEndian(m[(o + 2)..]);
            uint ttl = BinaryPrimitives.ReadUInt32BigEndian(m[(o + 4)..]);
            int rdlen = BinaryPrimitives.ReadUInt16BigEndian(m[(o + 8)..]);
            o += 10;
            if (o + rdlen > m.Length) return null;
            // RFC 2181 §8: a TTL with the top bit set is read as 0.
            if (ttl > int.MaxValue) ttl = 0;
            if (cls == ClassIn && type == TypeA)
            {
                if (rdlen != 4) return null;
                records.Add(new DnsRecord(owner, type, ttl, new IPAddress(m.Slice(o, 4)), null));
            }
            else if (cls == ClassIn && type == TypeCname)
            {
                int t = o;
                if (!TryReadName(m, ref t, out var target)) return null;
                records.Add(new DnsRecord(owner, type, ttl, null, target));
            }
            o += rdlen;
        }
        return new DnsAnswer(id, (DnsRcode)(flags & 0xF), (flags & 0x0200) != 0, question, records);
    }

    /// <summary>Reads a (possibly compressed) name at <paramref name="o"/>, moving past it; lower case, no final dot.</summary>
    private static bool TryReadName(ReadOnlySpan<byte> m, ref int o, out string name)
    {
        var sb = new StringBuilder();
        int at = o, jumps = 0;
        int end = -1;
        name = "";
        while (true)
        {
            if (at >= m.Length) return false;
            byte len = m[at];
            if (len == 0)
            {
                at++;
                break;
            }
            if ((len & 0xC0) == 0xC0)
            {
                if (at + 1 >= m.Length || ++jumps > 32) return false;
                if (end < 0) end = at + 2;
                at = ((len & 0x3F) << 8) | m[at + 1];
                continue;
            }
            if ((len & 0xC0) != 0 || at + 1 + len > m.Length) return false;
            if (sb.Length > 0) sb.Append('.');
            foreach (byte c in m.Slice(at + 1, len)) sb.Append((char)(c is >= (byte)'A' and <= (byte)'Z' ? c + 32 : c));
            if (sb.Length > 255) return false;
            at += 1 + len;
        }
        o = end >= 0 ? end : at;
        name = sb.ToString();
        return true;
    }
}
