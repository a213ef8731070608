// Receive coalescing (GRO): consecutive in-order TCP segments of one flow, as they come off
// libpcap's ring in one drain, become one large segment in one data ICA, so the inet server
// takes one frame (one wake-up, one trip through IP and TCP, one ACK decision) where it would
// have taken ten, and the app receives the payload in one ICA.
//
// A segment joins the open one only when it could have been part of it all along, as Linux's
// tcp_gro_receive decides: the same flow (addresses and ports), an IPv4 header without options
// or fragmentation and with the same TOS and TTL, flags ACK (and PSH on the last one) only, its
// sequence number exactly where the open segment's data ends, the same acknowledgment number,
// window and TCP options (timestamps included), and valid IP and TCP checksums. A segment with
// PSH closes the merge after it (the sender wants it delivered now). The merged segment takes
// the first one's headers with the total length and both checksums rewritten; its checksum
// covers exactly the bytes the peer sent, and a corrupted segment is never merged (it goes to
// inet alone, which counts and drops it).
//
// Pure: no kernel, no clock. The caller owns the buffer the merged frame is built in.
using System.Buffers.Binary;
using AntHost.Inet.Core.Wire;

namespace AntHost.Nic8139.Driver;

/// <summary>Merges consecutive in-order TCP segments of one flow into one (see the file comment).</summary>
public sealed class ReceiveCoalescer
{
    private const int Ethernet = 14;
    private const int IpHeader = 20;
    private const ushort EtherTypeIpv4 = 0x0800;
    private const TcpFlags Allowed = TcpFlags.Ack | TcpFlags.Psh;

    private int _length;          // bytes of the open frame written so far (headers + payloads)
    private int _tcpHeader;       // its TCP header length
    private uint _nextSequence;   // where its data ends
    private bool _pushed;

    /// <summary>True while a merged frame is open.</summary>
    public bool IsOpen { get; private set; }

    /// <summary>Segments in the open frame.</summary>
    public int Segments { get; private set; }

    /// <summary>True when the open frame must be delivered before anything joins it (its last segment had PSH).</summary>
    public bool Pushed => _pushed;

    /// <summary>
    /// True when <paramref name="frame"/> is a segment that may start (or join) a merge: an
    /// Ethernet/IPv4/TCP frame with data, no IP options, not a fragment, ACK set and no flag
    /// but ACK and PSH, and both checksums valid.
    /// </summary>
    public static bool IsCandidate(ReadOnlySpan<byte> frame)
    {
        if (frame.Length < Ethernet + IpHeader + TcpHeader.MinLength) return false;
        if (BinaryPrimitives.ReadUInt16BigEndian(frame[12..]) != EtherTypeIpv4) return false;
        var ip = frame[Ethernet..];
        if (ip[0] != 0x45 || ip[9] != 6) return false; // IPv4, no options, TCP
        int total = BinaryPrimitives.ReadUInt16BigEndian(ip[2..]);
        if (total > ip.Length || total < IpHeader + TcpHeader.MinLength) return false;
        if ((BinaryPrimitives.ReadUInt16BigEndian(ip[6..]) & 0x3FFF) != 0) return false; // MF or an offset
        var tcp = ip[IpHeader..total];
        int thl = (tcp[12] >> 4) * 4;
        if (thl < TcpHeader.MinLength || thl >= tcp.Length) return false; // no data
        var flags = (TcpFlags)tcp[13];
        if ((flags & ~Allowed) != 0 || (flags & TcpFlags.Ack) == 0) return false;
        if (!Checksum.IsValid(ip[..IpHeader])) return false;
        var src = new Ipv4Address(BinaryPrimitives.ReadUInt32BigEndian(ip[12..]));
        var dst = new Ipv4Address(BinaryPrimitives.ReadUInt32BigEndian(ip[16..]));
        return Checksum.IsValid(tcp, Checksum.PseudoHeader(src, dst, 6, (ushort)tcp.Length));
    }

    /// <summary>True when a candidate carries PSH (best delivered at once rather than merged).</summary>
    public static bool HasPush(ReadOnlySpan<byte> frame) => ((TcpFlags)frame[Ethernet + IpHeader + 13] & TcpFlags.Psh) != 0;

    /// <summary>Opens a merge with a candidate (<see cref="IsCandidate"/>), copying it into <paramref name="into"/>.</summary>
    public void Start(ReadOnlySpan<byte> frame, Span<byte> into)
    {
        var ip = frame[Ethernet..];
        int total = BinaryPrimitives.ReadUInt16BigEndian(ip[2..]);
        frame[..(Ethernet + total)].CopyTo(into);
        var tcp = ip[IpHeader..total];
        _tcpHeader = (tcp[12] >> 4) * 4;
        _length = Ethernet + total;
        _nextSequence = BinaryPrimitives.ReadUInt32BigEndian(tcp[4..]) + (uint)(tcp.Length - _tcpHeader);
        _pushed = ((TcpFlags)tcp[13] & TcpFlags.Psh) != 0;
        Segments = 1;
        IsOpen = true;
    }

    /// <summary>
    /// Appends a candidate's payload to the open frame in <paramref name="into"/> when it
    /// belongs there (see the file comment) and fits; false leaves the open frame unchanged.
    /// </summary>
    public bool TryAppend(ReadOnlySpan<byte> frame, Span<byte> into)
    {
        if (!IsOpen || _pushed) return false;
        var ip = frame[Ethernet..];
        var open = into[Ethernet..];
        int total = BinaryPrimitives.ReadUInt16BigEndian(ip[2..]);
        var tcp = ip[IpHeader..total];
        int thl = (tcp[12] >> 4) * 4;
        int payload = tcp.Length - thl;
        if (thl != _tcpHeader || _length + payload > into.Length || _length - Ethernet + payload > Ipv4Packet.MaxTotalLength) return false;
        // Same TOS and TTL, same addresses, same ports.
        if (ip[1] != open[1] || ip[8] != open[8] || !ip.Slice(12, 8).SequenceEqual(open.Slice(12, 8))) return false;
        var otcp = open[IpHeader..];
        if (!tcp[..4].SequenceEqual(otcp[..4])) return false;
        if (BinaryPrimitives.ReadUInt32BigEndian(tcp[4..]) != _nextSequence) return false;
        // Acknowledgment, window and options identical; flags ACK or ACK+PSH only (checked as a candidate).
        if (!tcp.Slice(8, 4).SequenceEqual(otcp.Slice(8, 4)) || !tcp.Slice(14, 2).SequenceEqual(otcp.Slice(14, 2))) return false;
        if (!tcp[TcpHeader.MinLength..thl].SequenceEqual(otcp[TcpHeader.MinLength..thl])) return false;
        tcp[thl..].CopyTo(into[_length..]);
        _length += payload;
        _nextSequence += (uint)payload;
        if (((TcpFlags)tcp[13] & TcpFlags.Psh) != 0)
        {
            _pushed = true;
            otcp[13] |= (byte)TcpFlags.Psh;
        }
        Segments++;
        return true;
    }

    /// <summary>Closes the open frame: writes its IP total length and both checksums; returns its length in bytes.</summary>
    public int Finish(Span<byte> into)
    {
        if (!IsOpen) throw new InvalidOperationException("no merge is open");
        IsOpen = false;
        if (Segments == 1) return _length; // untouched: its own headers and checksums stand
        var ip = into[Ethernet.._length];
        BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)ip.Length);
        BinaryPrimitives.WriteUInt16BigEndian(ip[10..], 0);
        BinaryPrimitives.WriteUInt16BigEndian(ip[10..], Checksum.Compute(ip[..IpHeader]));
        var src = new Ipv4Address(BinaryPrimitives.ReadUInt32BigEndian(ip[12..]));
        var dst = new Ipv4Address(BinaryPrimitives.ReadUInt32BigEndian(ip[16..]));
        TcpHeaderFields.FillChecksum(ip[IpHeader..], src, dst);
        return _length;
    }
}
