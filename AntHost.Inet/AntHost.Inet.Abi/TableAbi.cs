// The socket table and the ARP cache, as any process may ask inet for them (`anthost ss`):
//
//   SocketTable, ArpTable  sync, control ICA; frame args: cursor (i32; 0 to start). The
//   reply's inline area: count u32 | next cursor i32 (-1: the end) | row size u32 |
//   reserved u32 | count rows. inet fills at most what the inline area holds and goes on
//   from the cursor at the next request, so one request is bounded work for its loop; a
//   table taken in several requests is not one instant's.
//
// Addresses are host-order u32 here (a display, not a header), ports host order.
using System.Buffers.Binary;

namespace AntHost.Inet.Abi;

/// <summary>One row of the socket table (<see cref="Size"/> bytes).</summary>
public struct SocketRow
{
    public const int Size = 96;

    /// <summary>6 (TCP) or 17 (UDP).</summary>
    public byte Protocol;
    /// <summary>TCP: the RFC 9293 state (0 Closed .. 10 TimeWait); UDP: 0 unbound, 1 bound, 2 connected.</summary>
    public byte State;
    public SocketRowFlags Flags;
    public byte SendWindowScale, ReceiveWindowScale;
    public uint LocalAddress, RemoteAddress;
    public ushort LocalPort, RemotePort;
    /// <summary>The owning process's kernel id (ProcessId value; 0: no app holds it).</summary>
    public uint Owner;
    public int SendQueued, ReceiveQueued;
    public int SmoothedRttMicros, RttVarianceMicros, RtoMicros, Cwnd, Ssthresh, Mss;
    public uint PeerWindow;
    public int Retransmits, RetransmitsTimeout, RetransmitsFast, RetransmitsRack, RetransmitsTlp, OutOfOrderSegments;
    /// <summary>The app's handle of the socket (0 when none).</summary>
    public ulong Handle;

    public readonly void WriteTo(Span<byte> b)
    {
        b[..Size].Clear();
        b[0] = Protocol;
        b[1] = State;
        b[2] = (byte)Flags;
        b[3] = SendWindowScale;
        b[4] = ReceiveWindowScale;
        BinaryPrimitives.WriteUInt32LittleEndian(b[8..], LocalAddress);
        BinaryPrimitives.WriteUInt16LittleEndian(b[12..], LocalPort);
        BinaryPrimitives.WriteUInt16LittleEndian(b[14..], RemotePort);
        BinaryPrimitives.WriteUInt32LittleEndian(b[16..], RemoteAddress);
        BinaryPrimitives.WriteUInt32LittleEndian(b[20..], Owner);
        ReadOnlySpan<int> ints = [SendQueued, ReceiveQueued, SmoothedRttMicros, RttVarianceMicros, RtoMicros, Cwnd, Ssthresh, Mss, (int)PeerWindow,
            Retransmits, RetransmitsTimeout, RetransmitsFast, RetransmitsRack, RetransmitsTlp];
        for (int i = 0; i < ints.Length; i++) BinaryPrimitives.WriteInt32LittleEndian(b[(24 + 4 * i)..], ints[i]);
        BinaryPrimitives.WriteUInt64LittleEndian(b[80..], Handle);
        BinaryPrimitives.WriteInt32LittleEndian(b[88..], OutOfOrderSegments);
    }

    public static SocketRow Read(ReadOnlySpan<byte> b)
    {
        var v = new int[14];
        for (int i = 0; i < v.Length; i++) v[i] = BinaryPrimitives.ReadInt32LittleEndian(b[(24 + 4 * i)..]);
        int I(int i) => v[i];
        return new SocketRow
        {
            Protocol = b[0], State = b[1], Flags = (SocketRowFlags)b[2], SendWindowScale = b[3], ReceiveWindowScale = b[4],
            LocalAddress = BinaryPrimitives.ReadUInt32LittleEndian(b[8..]), LocalPort = BinaryPrimitives.ReadUInt16LittleEndian(b[12..]),
            RemotePort = BinaryPrimitives.ReadUInt16LittleEndian(b[14..]), RemoteAddress = BinaryPrimitives.ReadUInt32LittleEndian(b[16..]),
            Owner = BinaryPrimitives.ReadUInt32LittleEndian(b[20..]),
            SendQueued = I(0), ReceiveQueued = I(1), SmoothedRttMicros = I(2), RttVarianceMicros = I(3), RtoMicros = I(4), Cwnd = I(5), Ssthresh = I(6),
            Mss = I(7), PeerWindow = (uint)I(8), Retransmits = I(9), RetransmitsTimeout = I(10), RetransmitsFast = I(11), RetransmitsRack = I(12), RetransmitsTlp = I(13),
            Handle = BinaryPrimitives.ReadUInt64LittleEndian(b[80..]), OutOfOrderSegments = BinaryPrimitives.ReadInt32LittleEndian(b[88..]),
        };
    }
}

[Flags]
public enum SocketRowFlags : byte
{
    None = 0,
    Sack = 1,
    WindowScale = 2,
    Timestamps = 4,
    InRecovery = 8,
}

/// <summary>One row of the ARP table (<see cref="Size"/> bytes): address (host order), MAC (48 bits), state (NeighborState: 1 incomplete, 2 reachable, 3 stale, 4 probe, ...).</summary>
public readonly record struct ArpRow(uint Address, ulong Mac, byte State)
{
    public const int Size = 16;

    public void WriteTo(Span<byte> b)
    {
        b[..Size].Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(b, Address);
        BinaryPrimitives.WriteUInt64LittleEndian(b[4..], Mac);
        b[12] = State;
    }

    public static ArpRow Read(ReadOnlySpan<byte> b) =>
        new(BinaryPrimitives.ReadUInt32LittleEndian(b), BinaryPrimitives.ReadUInt64LittleEndian(b[4..]) & 0xFFFF_FFFF_FFFFUL, b[12]);
}

/// <summary>The inline area of a SocketTable or ArpTable reply (see the file comment).</summary>
public static class TableReply
{
    public const int HeaderSize = 16;

    public static int Capacity(int inlineLength, int rowSize) => (inlineLength - HeaderSize) / rowSize;

    public static void WriteHeader(Span<byte> inline, int count, int next, int rowSize)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(inline, (uint)count);
        BinaryPrimitives.WriteInt32LittleEndian(inline[4..], next);
        BinaryPrimitives.WriteUInt32LittleEndian(inline[8..], (uint)rowSize);
        BinaryPrimitives.WriteUInt32LittleEndian(inline[12..], 0);
    }

    /// <summary>The rows of a reply; false when the header does not fit what it says.</summary>
    public static bool TryRead(ReadOnlySpan<byte> inline, int rowSize, out int count, out int next)
    {
        count = 0;
        next = -1;
        if (inline.Length < HeaderSize) return false;
        count = (int)BinaryPrimitives.ReadUInt32LittleEndian(inline);
        next = BinaryPrimitives.ReadInt32LittleEndian(inline[4..]);
        int size = (int)BinaryPrimitives.ReadUInt32LittleEndian(inline[8..]);
        return size == rowSize && count >= 0 && HeaderSize + (long)count * rowSize <= inline.Length;
    }

    public static ReadOnlySpan<byte> Row(ReadOnlySpan<byte> inline, int i, int rowSize) => inline.Slice(HeaderSize + i * rowSize, rowSize);
}
