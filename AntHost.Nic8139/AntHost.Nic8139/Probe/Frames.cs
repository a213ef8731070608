using System.Buffers.Binary;
using System.Net;
using AntHost.Nic8139.Pcap;

namespace AntHost.Nic8139.Probe;

/// <summary>
/// The handful of frames the probe needs to talk to a kernel on its own (an ARP request, an
/// ICMP echo request) and the checks of their answers. The driver itself never parses
/// protocols; the inet server does. Offsets follow RFC 826 (ARP), RFC 791 (IPv4), RFC 792 (ICMP).
/// </summary>
internal static class Frames
{
    public const ushort EtherTypeIPv4 = 0x0800;
    public const ushort EtherTypeArp = 0x0806;

    private static void Ethernet(Span<byte> f, MacAddress dst, MacAddress src, ushort type)
    {
        dst.WriteTo(f);
        src.WriteTo(f[6..]);
        BinaryPrimitives.WriteUInt16BigEndian(f[12..], type);
    }

    private static uint ToUInt32(IPAddress ip)
    {
        Span<byte> b = stackalloc byte[4];
        ip.TryWriteBytes(b, out _);
        return BinaryPrimitives.ReadUInt32BigEndian(b);
    }

    /// <summary>Writes an ARP request "who has <paramref name="target"/>" and returns its length (42).</summary>
    public static int ArpRequest(Span<byte> f, MacAddress ourMac, IPAddress ourIp, IPAddress target)
    {
        Ethernet(f, MacAddress.Broadcast, ourMac, EtherTypeArp);
        var a = f[14..];
        BinaryPrimitives.WriteUInt16BigEndian(a, 1);            // htype: Ethernet
        BinaryPrimitives.WriteUInt16BigEndian(a[2..], 0x0800);  // ptype: IPv4
        a[4] = 6; a[5] = 4;                                     // hlen, plen
        BinaryPrimitives.WriteUInt16BigEndian(a[6..], 1);       // oper: request
        ourMac.WriteTo(a[8..]);
        BinaryPrimitives.WriteUInt32BigEndian(a[14..], ToUInt32(ourIp));
        a.Slice(18, 6).Clear();
        BinaryPrimitives.WriteUInt32BigEndian(a[24..], ToUInt32(target));
        return 42;
    }

    /// <summary>If <paramref name="f"/> is an ARP reply from <paramref name="from"/>, its sender MAC.</summary>
    public static MacAddress? ArpReplySender(ReadOnlySpan<byte> f, IPAddress from)
    {
        if (f.Length < 42 || BinaryPrimitives.ReadUInt16BigEndian(f[12..]) != EtherTypeArp) return null;
        var a = f[14..];
        if (BinaryPrimitives.ReadUInt16BigEndian(a[6..]) != 2 || BinaryPrimitives.ReadUInt32BigEndian(a[14..]) != ToUInt32(from)) return null;
        return MacAddress.Read(a[8..]);
    }

    /// <summary>Writes an ICMP echo request of <paramref name="payload"/> bytes; returns the frame length.</summary>
    public static int EchoRequest(Span<byte> f, MacAddress dst, MacAddress src, IPAddress from, IPAddress to, ushort id, ushort seq, int payload)
    {
        Ethernet(f, dst, src, EtherTypeIPv4);
        int ipLength = 20 + 8 + payload;
        var ip = f.Slice(14, ipLength);
        ip[0] = 0x45; ip[1] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)ipLength);
        BinaryPrimitives.WriteUInt16BigEndian(ip[4..], seq);
        BinaryPrimitives.WriteUInt16BigEndian(ip[6..], 0x4000); // DF
        ip[8] = 64; ip[9] = 1;                                   // TTL, ICMP
        BinaryPrimitives.WriteUInt16BigEndian(ip[10..], 0);
        BinaryPrimitives.WriteUInt32BigEndian(ip[12..], ToUInt32(from));
        BinaryPrimitives.WriteUInt32BigEndian(ip[16..], ToUInt32(to));
        BinaryPrimitives.WriteUInt16BigEndian(ip[10..], Checksum(ip[..20]));
        var icmp = ip[20..];
        icmp[0] = 8; icmp[1] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(icmp[2..], 0);
        BinaryPrimitives.WriteUInt16BigEndian(icmp[4..], id);
        BinaryPrimitives.WriteUInt16BigEndian(icmp[6..], seq);
        for (int i = 0; i < payload; i++) icmp[8 + i] = (byte)i;
        BinaryPrimitives.WriteUInt16BigEndian(icmp[2..], Checksum(icmp));
        return 14 + ipLength;
    }

    /// <summary>If <paramref name="f"/> is an ICMP echo reply with this id, its sequence number.</summary>
    public static int EchoReplySequence(ReadOnlySpan<byte> f, ushort id)
    {
        if (f.Length < 14 + 28 || BinaryPrimitives.ReadUInt16BigEndian(f[12..]) != EtherTypeIPv4) return -1;
        var ip = f[14..];
        int ihl = (ip[0] & 0xF) * 4;
        if (ip[9] != 1 || ip.Length < ihl + 8) return -1;
        var icmp = ip[ihl..];
        if (icmp[0] != 0 || BinaryPrimitives.ReadUInt16BigEndian(icmp[4..]) != id) return -1;
        return BinaryPrimitives.ReadUInt16BigEndian(icmp[6..]);
    }

    /// <summary>The Internet checksum (RFC 1071).</summary>
    public static ushort Checksum(ReadOnlySpan<byte> data)
    {
        uint sum = 0;
        int i = 0;
        for (; i + 1 < data.Length; i += 2) sum += BinaryPrimitives.ReadUInt16BigEndian(data[i..]);
        if (i < data.Length) sum += (uint)data[i] << 8;
        while (sum > 0xFFFF) sum = (sum & 0xFFFF) + (sum >> 16);
        return (ushort)~sum;
    }
}
