using System.Buffers.Binary;

using AntHost.Inet.Core.Ip;

namespace AntHost.Inet.Core.Wire;

/// <summary>
/// Cuts a TCP segment larger than the MSS into the frames that go on the wire, as a NIC's
/// TCP segmentation offload does: the stack hands one header template (Ethernet, IPv4, TCP)
/// and the whole payload; each frame gets a copy of the template with the IP total length,
/// identification and checksum, the TCP sequence number, flags and checksum of its slice.
/// </summary>
/// <remarks>
/// What changes from slice to slice follows Linux's <c>tcp_gso_segment</c>: the sequence
/// number advances by the slice size, the IP identification by one, FIN and PSH stay on the
/// last slice only and CWR on the first only; every other field (window, acknowledgment,
/// options, timestamps included) is the template's. The frames are byte for byte the ones
/// the stack would have built one segment at a time, PSH aside. Pure and allocation-free:
/// the NIC driver cuts with it, and so do the simulations.
/// </remarks>
public static class TcpSegmentation
{
    /// <summary>The largest header template: Ethernet, IPv4 with options, TCP with options.</summary>
    public const int MaxHeaderLength = EthernetFrame.HeaderLength + 60 + 60;

    /// <summary>Frames a payload of <paramref name="payloadLength"/> bytes is cut into at <paramref name="segmentSize"/> each.</summary>
    public static int FrameCount(int payloadLength, int segmentSize) =>
        segmentSize <= 0 ? 0 : Math.Max(1, (payloadLength + segmentSize - 1) / segmentSize);

    /// <summary>
    /// Checks a template: Ethernet carrying IPv4 without fragmentation carrying TCP, its
    /// headers whole within <paramref name="template"/>, which holds nothing else. Returns the
    /// header length (the template's length), or -1 when it is not such a template.
    /// </summary>
    public static int Validate(ReadOnlySpan<byte> template)
    {
        if (template.Length < EthernetFrame.HeaderLength + Ipv4Packet.MinHeaderLength + TcpHeader.MinLength || template.Length > MaxHeaderLength) return -1;
        if (BinaryPrimitives.ReadUInt16BigEndian(template[12..]) != (ushort)EtherType.Ipv4) return -1;
        var ip = template[EthernetFrame.HeaderLength..];
        if (ip[0] >> 4 != 4) return -1;
        int ihl = (ip[0] & 0x0F) * 4;
        if (ihl < Ipv4Packet.MinHeaderLength || ip[9] != (byte)IpProtocol.Tcp) return -1;
        if ((BinaryPrimitives.ReadUInt16BigEndian(ip[6..]) & (Ipv4Packet.MoreFragmentsFlag | Ipv4Packet.FragmentOffsetMask)) != 0) return -1;
        if (ip.Length < ihl + TcpHeader.MinLength) return -1;
        int doff = (ip[ihl + TcpHeader.Field.DataOffset] >> 4) * 4;
        if (doff < TcpHeader.MinLength || EthernetFrame.HeaderLength + ihl + doff != template.Length) return -1;
        return template.Length;
    }

    /// <summary>
    /// Writes the headers of slice <paramref name="index"/> into <paramref name="destination"/>
    /// (at least the template's length): the template with the fields of a frame carrying
    /// <paramref name="slice"/>, the payload at byte <paramref name="index"/> x
    /// <paramref name="segmentSize"/>; <paramref name="last"/> marks the final slice. The
    /// template must have passed <see cref="Validate"/>.
    /// </summary>
    public static void WriteSliceHeader(ReadOnlySpan<byte> template, int index, int segmentSize, bool last, ReadOnlySpan<byte> slice, Span<byte> destination)
    {
        // The send header of one slice holds the pseudo-header sum in its checksum field: the
        // sum over the TCP header then starts from it, and the payload completes it.
        WriteSendHeader(template, index, segmentSize, last, slice.Length, destination);
        var ip = destination[EthernetFrame.HeaderLength..template.Length];
        var tcp = ip[((ip[0] & 0x0F) * 4)..];
        BinaryPrimitives.WriteUInt16BigEndian(tcp[TcpHeader.Field.Checksum..], (ushort)~Checksum.Sum(slice, Checksum.Sum(tcp)));
    }

    /// <summary>
    /// Writes the headers of a frame that carries <paramref name="length"/> payload bytes from
    /// slice <paramref name="index"/> on, for a segmenter further down (the kernel's GSO, told by
    /// a virtio_net_hdr) to cut at <paramref name="segmentSize"/>: the IP total length of the
    /// whole frame, the identification and sequence number of its first slice, FIN and PSH only
    /// when it holds the <paramref name="last"/> slice, CWR only when it holds the first; the IP
    /// checksum complete, and in the TCP checksum field the folded pseudo-header sum of the
    /// whole frame, not complemented (what a partial checksum starts from: the segmenter adds
    /// the TCP header and payload of each frame it cuts, as Linux's CHECKSUM_PARTIAL expects).
    /// </summary>
    public static void WriteSendHeader(ReadOnlySpan<byte> template, int index, int segmentSize, bool last, int length, Span<byte> destination)
    {
        template.CopyTo(destination);
        var h = destination[..template.Length];
        var ip = h[EthernetFrame.HeaderLength..];
        int ihl = (ip[0] & 0x0F) * 4;
        var tcp = ip[ihl..];
        int tcpLength = tcp.Length + length;
        BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)(ihl + tcpLength));
        BinaryPrimitives.WriteUInt16BigEndian(ip[4..], (ushort)(BinaryPrimitives.ReadUInt16BigEndian(ip[4..]) + index));
        ip[10] = 0;
        ip[11] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(ip[10..], Checksum.Compute(ip[..ihl]));
        uint seq = BinaryPrimitives.ReadUInt32BigEndian(tcp[TcpHeader.Field.Sequence..]);
        BinaryPrimitives.WriteUInt32BigEndian(tcp[TcpHeader.Field.Sequence..], seq + (uint)(index * segmentSize));
        var flags = (TcpFlags)tcp[TcpHeader.Field.Flags];
        if (!last) flags &= ~(TcpFlags.Fin | TcpFlags.Psh);
        if (index > 0) flags &= ~TcpFlags.Cwr;
        tcp[TcpHeader.Field.Flags] = (byte)flags;
        var source = new Ipv4Address(BinaryPrimitives.ReadUInt32BigEndian(ip[12..]));
        var destinationAddress = new Ipv4Address(BinaryPrimitives.ReadUInt32BigEndian(ip[16..]));
        BinaryPrimitives.WriteUInt16BigEndian(tcp[TcpHeader.Field.Checksum..], Checksum.PseudoHeader(source, destinationAddress, (byte)IpProtocol.Tcp, (ushort)tcpLength));
    }

    /// <summary>The payload of slice <paramref name="index"/>.</summary>
    public static ReadOnlySpan<byte> Slice(ReadOnlySpan<byte> payload, int index, int segmentSize)
    {
        int start = index * segmentSize;
        return payload.Slice(start, Math.Min(segmentSize, payload.Length - start));
    }

    /// <summary>
    /// Writes slice <paramref name="index"/> as one contiguous frame (headers and payload) into
    /// <paramref name="frame"/>; returns its length. For transmitters that cannot gather.
    /// </summary>
    public static int WriteFrame(ReadOnlySpan<byte> template, ReadOnlySpan<byte> payload, int index, int segmentSize, Span<byte> frame)
    {
        var slice = Slice(payload, index, segmentSize);
        bool last = (index + 1) * segmentSize >= payload.Length;
        WriteSliceHeader(template, index, segmentSize, last, slice, frame);
        slice.CopyTo(frame[template.Length..]);
        return template.Length + slice.Length;
    }
}
