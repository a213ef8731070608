// A single-producer single-consumer ring of 64-byte slots in the pool.
//
//   +0    tail  (u64, written by the producer only)  own cache line
//   +64   head  (u64, written by the consumer only)  own cache line
//   +128  slot[0] ... slot[capacity-1]
//
// Indices grow without wrapping (64 bits); slot = index & (capacity-1). The
// producer writes the slot, then publishes tail with a release store; the
// consumer reads tail with an acquire load, copies the slot out, then publishes
// head. Both indices live in memory that any process mapping the pool can
// write, so neither side trusts the other's index: an impossible distance
// (tail - head outside 0..capacity) makes the ring report Corrupt, never an
// out-of-range access.
using System.Runtime.CompilerServices;

namespace AntHost.Kernel.Ipc;

internal enum RingStatus
{
    Ok,
    Empty,
    Full,
    Corrupt,
}

internal readonly unsafe struct SpscRing
{
    private readonly byte* _base;
    private readonly int _mask;

    public SpscRing(byte* baseAddress, int capacity)
    {
        _base = baseAddress;
        _mask = capacity - 1;
    }

    public bool IsNull => _base == null;
    public int Capacity => _mask + 1;
    private ref long Tail => ref *(long*)_base;
    private ref long Head => ref *(long*)(_base + 64);
    private RingMessage* Slot(long index) => (RingMessage*)(_base + 128 + ((index & _mask) << 6));

    /// <summary>Resets both indices (broker only, while nobody uses the ring).</summary>
    public void Reset()
    {
        Volatile.Write(ref Tail, 0);
        Volatile.Write(ref Head, 0);
    }

    /// <summary>Messages waiting (as the consumer sees it); negative when corrupt.</summary>
    public long Count
    {
        get
        {
            long d = Volatile.Read(ref Tail) - Volatile.Read(ref Head);
            return d < 0 || d > Capacity ? -1 : d;
        }
    }

    public bool HasData => Volatile.Read(ref Tail) != Volatile.Read(ref Head);

    public RingStatus TryWrite(in RingMessage message)
    {
        long tail = Tail; // only this producer writes it
        long d = tail - Volatile.Read(ref Head);
        if ((ulong)d > (ulong)Capacity) return RingStatus.Corrupt;
        if (d == Capacity) return RingStatus.Full;
        *Slot(tail) = message;
        Volatile.Write(ref Tail, tail + 1);
        return RingStatus.Ok;
    }

    /// <summary>Copies the oldest message out without consuming it.</summary>
    public RingStatus TryPeek(out RingMessage message)
    {
        long head = Head;
        long d = Volatile.Read(ref Tail) - head;
        if (d == 0) { message = default; return RingStatus.Empty; }
        if ((ulong)d > (ulong)Capacity) { message = default; return RingStatus.Corrupt; }
        message = *Slot(head);
        return RingStatus.Ok;
    }

    /// <summary>Consumes the message last peeked.</summary>
    public void Advance() => Volatile.Write(ref Head, Head + 1);

    public RingStatus TryRead(out RingMessage message)
    {
        var s = TryPeek(out message);
        if (s == RingStatus.Ok) Advance();
        return s;
    }

    /// <summary>Fraction of the ring in use, from the producer's side (0..1; 1 when corrupt).</summary>
    public bool IsAtLeastHalfFull
    {
        get
        {
            long d = Tail - Volatile.Read(ref Head);
            return (ulong)d >= (ulong)(Capacity / 2);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Size(int capacity) => 128 + capacity * 64;
}
