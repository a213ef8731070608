using System.Buffers.Binary;
using AntHost.Inet.Core.Randomness;
using AntHost.Inet.Core.Tests.Support;
using AntHost.Inet.Core.Wire;

namespace AntHost.Inet.Core.Tests.Fuzz;

/// <summary>
/// Makes frames for fuzzing: valid ARP, IPv4, ICMP, UDP, TCP and fragment frames addressed
/// to the interface under test, then mutated (bit flips, byte overwrites, truncation,
/// extension, header fields set to boundary values), or plain random bytes.
/// </summary>
public sealed class FrameFuzzer(ulong seed, MacAddress ourMac, Ipv4Address ourIp, MacAddress peerMac, Ipv4Address peerIp, ushort boundPort)
{
    private readonly SeededRandom _r = new(seed);

    public byte[] Next()
    {
        int kind = _r.Next(100);
        if (kind < 5) return RandomBytes(_r.Next(1600));
        var frame = Template();
        if (kind < 15) return frame;                 // valid
        return Mutate(frame);
    }

    private byte[] RandomBytes(int n)
    {
        var b = new byte[n];
        _r.NextBytes(b);
        if (n >= 14 && _r.Next(2) == 0)
        {
            ourMac.WriteTo(b);
            BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(12), _r.Next(2) == 0 ? (ushort)0x0800 : (ushort)0x0806);
        }
        return b;
    }

    private Ipv4Address Source() => _r.Next(4) switch
    {
        0 => new Ipv4Address(_r.NextUInt32()),
        1 => new Ipv4Address(ourIp.Value & 0xFFFFFF00 | (uint)_r.Next(256)),
        _ => peerIp,
    };

    private byte[] Template()
    {
        var src = Source();
        var data = new byte[_r.Next(200)];
        _r.NextBytes(data);
        switch (_r.Next(12))
        {
            case 0:
                return Frames.Ethernet(MacAddress.Broadcast, peerMac, 0x0806, Frames.Arp(1, peerMac, src, MacAddress.Zero, ourIp));
            case 1:
                return Frames.Ethernet(ourMac, peerMac, 0x0806, Frames.Arp(2, peerMac, src, ourMac, ourIp));
            case 2:
                return Ip(src, ourIp, 1, Frames.Echo(8, (ushort)_r.NextUInt32(), (ushort)_r.NextUInt32(), data));
            case 3:
                return Ip(src, ourIp, 1, Frames.Echo(0, (ushort)_r.NextUInt32(), (ushort)_r.NextUInt32(), data));
            case 4:
                {
                    // An ICMP error quoting a datagram of ours.
                    byte proto = _r.Next(2) == 0 ? (byte)17 : (byte)6;
                    var quotedPayload = proto == 17 ? Frames.Udp(ourIp, src, boundPort, 53, data) : TcpSegment(src);
                    var quoted = Frames.Ipv4(ourIp, src, proto, quotedPayload, df: true);
                    byte type = _r.Next(3) switch { 0 => 3, 1 => 11, _ => 12 };
                    return Ip(peerIp, ourIp, 1, Frames.Icmp(type, (byte)_r.Next(16), (uint)_r.Next(1600), quoted[..Math.Min(quoted.Length, 28 + _r.Next(60))]));
                }
            case 5:
                return Ip(src, ourIp, 17, Frames.Udp(src, ourIp, (ushort)_r.NextUInt32(), boundPort, data));
            case 6:
                return Ip(src, ourIp, 17, Frames.Udp(src, ourIp, (ushort)_r.NextUInt32(), (ushort)_r.NextUInt32(), data));
            case 7:
                return Ip(src, Ipv4Address.Broadcast, 17, Frames.Udp(src, Ipv4Address.Broadcast, 1, boundPort, data), MacAddress.Broadcast);
            case 8:
                return Ip(src, ourIp, 6, TcpSegment(src));
            case 9:
                {
                    // A fragment of a small datagram: first, middle or last.
                    var udp = Frames.Udp(src, ourIp, 7, boundPort, new byte[64 + _r.Next(64)]);
                    int off = 8 * _r.Next(udp.Length / 8);
                    int len = Math.Min(udp.Length - off, 8 * (1 + _r.Next(8)));
                    bool more = off + len < udp.Length;
                    return Frames.IpFrame(ourMac, peerMac, Frames.Ipv4(src, ourIp, 17, udp.AsSpan(off, len), id: (ushort)_r.Next(4), mf: more, fragmentOffset: off));
                }
            case 10:
                return Frames.IpFrame(ourMac, peerMac, Frames.Ipv4(src, ourIp, 17, Frames.Udp(src, ourIp, 1, boundPort, data),
                    options: [0x94, 0x04, 0x00, 0x00, 0x01, 0x01, 0x01, 0x00]));
            default:
                return Ip(src, ourIp, (byte)_r.Next(256), data);
        }
    }

    private byte[] Ip(Ipv4Address src, Ipv4Address dst, byte proto, byte[] payload, MacAddress? mac = null) =>
        Frames.IpFrame(mac ?? ourMac, peerMac, Frames.Ipv4(src, dst, proto, payload, ttl: (byte)_r.Next(256), id: (ushort)_r.NextUInt32(), df: _r.Next(2) == 0));

    /// <summary>A TCP segment from <paramref name="src"/>, often to the listening port, often a SYN, with a correct checksum.</summary>
    private byte[] TcpSegment(Ipv4Address src)
    {
        int dataOffset = 5 + (_r.Next(4) == 0 ? _r.Next(11) : 0);
        var t = new byte[dataOffset * 4 + _r.Next(100)];
        _r.NextBytes(t);
        if (_r.Next(2) == 0) BinaryPrimitives.WriteUInt16BigEndian(t.AsSpan(2), boundPort);
        t[12] = (byte)(dataOffset << 4);
        t[13] = _r.Next(3) switch { 0 => 0x02, 1 => 0x10, _ => (byte)_r.NextUInt32() };   // SYN, ACK, anything
        t[16] = 0;
        t[17] = 0;
        if (_r.Next(8) != 0)
        {
            ushort c = NaiveChecksum.Transport(src, ourIp, 6, t);
            BinaryPrimitives.WriteUInt16BigEndian(t.AsSpan(16), c);
        }
        return t;
    }

    private byte[] Mutate(byte[] frame)
    {
        int ops = 1 + _r.Next(4);
        for (int k = 0; k < ops; k++)
        {
            switch (_r.Next(7))
            {
                case 0:
                    if (frame.Length > 0)
                    {
                        int bit = _r.Next(frame.Length * 8);
                        frame[bit / 8] ^= (byte)(1 << (bit % 8));
                    }
                    break;
                case 1:
                    if (frame.Length > 14) frame[14 + _r.Next(frame.Length - 14)] = (byte)_r.NextUInt32();
                    break;
                case 2:
                    frame = frame[..Math.Max(0, frame.Length - 1 - _r.Next(Math.Max(1, frame.Length)))];
                    break;
                case 3:
                    {
                        var extra = new byte[1 + _r.Next(64)];
                        _r.NextBytes(extra);
                        frame = [.. frame, .. extra];
                        break;
                    }
                case 4:
                    // IPv4 fields to boundary values: version/IHL, total length, flags/offset, protocol.
                    if (frame.Length >= 34)
                    {
                        int field = _r.Next(4);
                        ushort[] boundaries = [0, 1, 7, 8, 19, 20, 21, 0x3FFF, 0x1FFF, 0x2000, 0x4000, 0x8000, 0xFFFF];
                        ushort v = boundaries[_r.Next(boundaries.Length)];
                        switch (field)
                        {
                            case 0: frame[14] = (byte)(0x40 | (v & 0xF)); break;
                            case 1: BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(16), v); break;
                            case 2: BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(20), v); break;
                            default: frame[23] = (byte)v; break;
                        }
                        if (_r.Next(2) == 0) FixIpChecksum(frame);
                    }
                    break;
                case 5:
                    // Transport length fields (UDP length / ICMP type) to boundaries, checksum kept right.
                    if (frame.Length >= 42)
                    {
                        int ihl = (frame[14] & 0xF) * 4;
                        if (14 + ihl + 8 <= frame.Length)
                        {
                            ushort[] b = [0, 7, 8, 9, 0xFFFF, (ushort)(frame.Length - 14 - ihl), (ushort)(frame.Length - 14 - ihl + 1)];
                            BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(14 + ihl + 4), b[_r.Next(b.Length)]);
                        }
                    }
                    break;
                default:
                    if (frame.Length >= 34) FixIpChecksum(frame);
                    break;
            }
        }
        return frame;
    }

    private static void FixIpChecksum(byte[] frame)
    {
        int ihl = (frame[14] & 0xF) * 4;
        if (ihl < 20 || 14 + ihl > frame.Length) return;
        frame[24] = 0;
        frame[25] = 0;
        var c = NaiveChecksum.Compute(frame.AsSpan(14, ihl));
        frame[24] = (byte)(c >> 8);
        frame[25] = (byte)c;
    }
}
