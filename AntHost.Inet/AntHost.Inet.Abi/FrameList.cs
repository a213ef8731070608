// A frame list: one data ICA that carries many small received frames back to back, so that
// the peer's ACKs of a bulk send (66-byte frames, dozens per drain) go to inet as one
// EthInputList message instead of one data ICA each (three per message). Only header-only
// TCP segments travel in a list: a frame with payload, or anything inet might keep or hand
// to an app, goes alone in an ICA of its own, because the list's ICA is shared by its frames
// and freed when the last of them is done.
//
// Layout (little-endian): records from offset 0, each `u16 frame length | frame`, the next
// record at the following multiple of 4 (a frame starts 2 bytes into its record, so its IP
// header is 4-aligned). The data ICA's length is where the records end; a length of 0 ends
// the list early.
using System.Buffers.Binary;

namespace AntHost.Inet.Abi;

/// <summary>Reads and writes frame lists (see the file comment).</summary>
public static class FrameList
{
    /// <summary>Bytes in front of each frame.</summary>
    public const int RecordHeader = 2;

    /// <summary>The longest frame a list carries: Ethernet, IPv4 and TCP headers with options, padding allowed.</summary>
    public const int MaxFrameLength = 14 + 60 + 60;

    private const int EthernetHeader = 14;

    /// <summary>What a record takes in the list, header and alignment included.</summary>
    public static int RecordSize(int frameLength) => (RecordHeader + frameLength + 3) & ~3;

    /// <summary>Appends <paramref name="frame"/> at <paramref name="used"/>; false when the list has no room for it (nothing written).</summary>
    public static bool TryAppend(Span<byte> list, ref int used, ReadOnlySpan<byte> frame)
    {
        int size = RecordSize(frame.Length);
        if (frame.Length == 0 || frame.Length > MaxFrameLength || used < 0 || size > list.Length - used) return false;
        BinaryPrimitives.WriteUInt16LittleEndian(list[used..], (ushort)frame.Length);
        frame.CopyTo(list[(used + RecordHeader)..]);
        used += size;
        return true;
    }

    /// <summary>The outcome of reading one record.</summary>
    public enum Read
    {
        /// <summary>A frame at the start and length given.</summary>
        Frame,
        /// <summary>No more records.</summary>
        End,
        /// <summary>A record whose length is too short, too long or runs past the list: the rest cannot be trusted.</summary>
        Malformed,
    }

    /// <summary>Reads the record at <paramref name="offset"/> of a list of <paramref name="length"/> bytes and moves past it.</summary>
    public static Read Next(ReadOnlySpan<byte> list, int length, ref int offset, out int frameStart, out int frameLength)
    {
        frameStart = frameLength = 0;
        length = Math.Min(length, list.Length);
        if (offset < 0 || offset + RecordHeader > length) return Read.End;
        int n = BinaryPrimitives.ReadUInt16LittleEndian(list[offset..]);
        if (n == 0) return Read.End;
        if (n < EthernetHeader || n > MaxFrameLength || offset + RecordHeader + n > length) return Read.Malformed;
        frameStart = offset + RecordHeader;
        frameLength = n;
        offset += RecordSize(n);
        return Read.Frame;
    }

    /// <summary>
    /// True for a frame a list may carry: Ethernet II, IPv4 unfragmented, TCP with ACK and
    /// neither SYN, FIN, RST nor URG, and no payload (the IP total length is exactly the IP and
    /// TCP headers; Ethernet padding after it is allowed). Checksums are left to inet's TCP.
    /// </summary>
    public static bool IsHeaderOnlyTcp(ReadOnlySpan<byte> frame)
    {
        if (frame.Length < EthernetHeader + 40 || frame.Length > MaxFrameLength) return false;
        if (frame[12] != 0x08 || frame[13] != 0x00) return false;
        var ip = frame[EthernetHeader..];
        if (ip[0] >> 4 != 4) return false;
        int ihl = (ip[0] & 0xF) * 4;
        if (ihl < 20 || ip[9] != 6) return false;
        if ((BinaryPrimitives.ReadUInt16BigEndian(ip[6..]) & 0x3FFF) != 0) return false; // MF or an offset: a fragment
        int total = BinaryPrimitives.ReadUInt16BigEndian(ip[2..]);
        if (total > ip.Length || ihl + 20 > total) return false;
        var tcp = ip[ihl..];
        int dataOffset = (tcp[12] >> 4) * 4;
        if (dataOffset < 20 || ihl + dataOffset != total) return false;
        byte flags = tcp[13];
        const byte Fin = 0x01, Syn = 0x02, Rst = 0x04, Ack = 0x10, Urg = 0x20;
        return (flags & Ack) != 0 && (flags & (Fin | Syn | Rst | Urg)) == 0;
    }
}
