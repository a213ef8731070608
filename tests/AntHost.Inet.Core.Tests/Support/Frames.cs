using System.Buffers.Binary;
using AntHost.Inet.Core.Wire;

namespace AntHost.Inet.Core.Tests.Support;

/// <summary>
/// Builds frames byte by byte, independently of the stack's own writers, so that tests
/// feed what a real peer would send and do not just mirror the code under test.
/// </summary>
public static class Frames
{
    public static byte[] Ethernet(MacAddress dst, MacAddress src, ushort etherType, ReadOnlySpan<byte> payload, bool pad = true)
    {
        int len = 14 + payload.Length;
        if (pad && len < 60) len = 60;
        var f = new byte[len];
        PutMac(f, 0, dst);
        PutMac(f, 6, src);
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(12), etherType);
        payload.CopyTo(f.AsSpan(14));
        return f;
    }

    public static byte[] Arp(ushort op, MacAddress senderMac, Ipv4Address senderIp, MacAddress targetMac, Ipv4Address targetIp)
    {
        var a = new byte[28];
        a[1] = 1;          // Ethernet
        a[2] = 0x08;       // IPv4
        a[4] = 6;
        a[5] = 4;
        BinaryPrimitives.WriteUInt16BigEndian(a.AsSpan(6), op);
        PutMac(a, 8, senderMac);
        BinaryPrimitives.WriteUInt32BigEndian(a.AsSpan(14), senderIp.Value);
        PutMac(a, 18, targetMac);
        BinaryPrimitives.WriteUInt32BigEndian(a.AsSpan(24), targetIp.Value);
        return a;
    }

    public static byte[] Ipv4(Ipv4Address src, Ipv4Address dst, byte protocol, ReadOnlySpan<byte> payload,
        byte ttl = 64, ushort id = 0x1234, bool df = false, bool mf = false, int fragmentOffset = 0, byte[]? options = null, byte tos = 0)
    {
        int ihl = 20 + (options?.Length ?? 0);
        var p = new byte[ihl + payload.Length];
        p[0] = (byte)(0x40 | ihl / 4);
        p[1] = tos;
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(2), (ushort)p.Length);
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(4), id);
        ushort ff = (ushort)(fragmentOffset / 8);
        if (df) ff |= 0x4000;
        if (mf) ff |= 0x2000;
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(6), ff);
        p[8] = ttl;
        p[9] = protocol;
        BinaryPrimitives.WriteUInt32BigEndian(p.AsSpan(12), src.Value);
        BinaryPrimitives.WriteUInt32BigEndian(p.AsSpan(16), dst.Value);
        options?.CopyTo(p, 20);
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(10), NaiveChecksum.Compute(p.AsSpan(0, ihl)));
        payload.CopyTo(p.AsSpan(ihl));
        return p;
    }

    public static byte[] Udp(Ipv4Address src, Ipv4Address dst, ushort srcPort, ushort dstPort, ReadOnlySpan<byte> payload, bool checksum = true)
    {
        var u = new byte[8 + payload.Length];
        BinaryPrimitives.WriteUInt16BigEndian(u, srcPort);
        BinaryPrimitives.WriteUInt16BigEndian(u.AsSpan(2), dstPort);
        BinaryPrimitives.WriteUInt16BigEndian(u.AsSpan(4), (ushort)u.Length);
        payload.CopyTo(u.AsSpan(8));
        if (checksum)
        {
            ushort c = NaiveChecksum.Transport(src, dst, 17, u);
            BinaryPrimitives.WriteUInt16BigEndian(u.AsSpan(6), c == 0 ? (ushort)0xFFFF : c);
        }
        return u;
    }

    public static byte[] Icmp(byte type, byte code, uint rest, ReadOnlySpan<byte> body)
    {
        var m = new byte[8 + body.Length];
        m[0] = type;
        m[1] = code;
        BinaryPrimitives.WriteUInt32BigEndian(m.AsSpan(4), rest);
        body.CopyTo(m.AsSpan(8));
        BinaryPrimitives.WriteUInt16BigEndian(m.AsSpan(2), NaiveChecksum.Compute(m));
        return m;
    }

    public static byte[] Echo(byte type, ushort id, ushort seq, ReadOnlySpan<byte> data) => Icmp(type, 0, (uint)id << 16 | seq, data);

    /// <summary>A whole Ethernet frame carrying an IPv4 datagram.</summary>
    public static byte[] IpFrame(MacAddress dstMac, MacAddress srcMac, byte[] datagram) => Ethernet(dstMac, srcMac, 0x0800, datagram);

    private static void PutMac(byte[] b, int at, MacAddress m) => m.WriteTo(b.AsSpan(at));
}

/// <summary>A deliberately plain RFC 1071 checksum, the reference the fast one is held to.</summary>
public static class NaiveChecksum
{
    public static uint Sum(ReadOnlySpan<byte> data, uint acc = 0)
    {
        for (int i = 0; i + 1 < data.Length; i += 2) acc += (uint)(data[i] << 8 | data[i + 1]);
        if ((data.Length & 1) != 0) acc += (uint)data[^1] << 8;
        return acc;
    }

    public static ushort Fold(uint acc)
    {
        while (acc >> 16 != 0) acc = (acc & 0xFFFF) + (acc >> 16);
        return (ushort)acc;
    }

    public static ushort Compute(ReadOnlySpan<byte> data) => (ushort)~Fold(Sum(data));

    public static ushort Transport(Ipv4Address src, Ipv4Address dst, byte protocol, ReadOnlySpan<byte> segment)
    {
        uint acc = (src.Value >> 16) + (src.Value & 0xFFFF) + (dst.Value >> 16) + (dst.Value & 0xFFFF) + protocol + (uint)segment.Length;
        return (ushort)~Fold(Sum(segment, acc));
    }
}
