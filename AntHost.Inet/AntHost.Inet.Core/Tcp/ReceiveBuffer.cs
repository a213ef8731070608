using AntHost.Inet.Core.Buffers;
using AntHost.Inet.Core.Wire;

namespace AntHost.Inet.Core.Tcp;

/// <summary>
/// A connection's receive side: the in-order payload buffers waiting for the app, and the
/// out-of-order segments waiting for a hole to fill (reassembly).
/// </summary>
/// <remarks>
/// Both queues hold the buffers the segments arrived in (zero copy): a received buffer's
/// data region is trimmed to the new bytes and queued as is. The only copy is a
/// coalescing one that bounds memory: a small in-order payload (under a quarter of its
/// buffer's capacity) is copied into the tailroom of the previous buffer when it fits,
/// and its own buffer is released, so a stream of tiny segments does not pin a page each.
///
/// The out-of-order queue is a list sorted by sequence number with no overlaps (a new
/// segment is trimmed against its neighbours, and neighbours it covers are dropped),
/// bounded in segments; the connection bounds it in memory together with the in-order
/// queue. It also yields the SACK blocks of RFC 2018: the runs of contiguous queued
/// data, the one holding the most recently received segment first (RFC 2018 4).
/// </remarks>
internal sealed class ReceiveBuffer
{
    private readonly Queue<PacketBuffer> _ready = new();
    private readonly List<OutOfOrder> _ooo = new();
    private SeqNumber _lastOooSeq;
    private bool _hasLastOoo;

    private readonly record struct OutOfOrder(SeqNumber Seq, PacketBuffer Buffer, bool Fin)
    {
        public SeqNumber End => Seq + Buffer.Length;
    }

    /// <summary>In-order payload bytes waiting for the app.</summary>
    public int ReadyBytes { get; private set; }

    private readonly MemoryAccount? _account;
    private int _capacity;

    /// <param name="account">Where the buffers' capacity is counted (the layer's <see cref="TcpMemory"/>).</param>
    public ReceiveBuffer(MemoryAccount? account = null) => _account = account;

    /// <summary>Capacity of the buffers in both queues.</summary>
    public int Capacity
    {
        get => _capacity;
        private set
        {
            _account?.Add(value - _capacity);
            _capacity = value;
        }
    }

    public int OutOfOrderCount => _ooo.Count;

    public bool HasOutOfOrder => _ooo.Count > 0;

    public bool IsEmpty => _ready.Count == 0;

    /// <summary>Queues an in-order payload (ownership passes in).</summary>
    public void AppendReady(PacketBuffer payload)
    {
        int n = payload.Length;
        if (n == 0)
        {
            payload.Release();
            return;
        }
        if (n * 4 < payload.Capacity && _ready.Count > 0)
        {
            var tail = PeekTail();
            if (tail is not null && tail.Tailroom >= n)
            {
                payload.Data.CopyTo(tail.Append(n));
                payload.Release();
                ReadyBytes += n;
                return;
            }
        }
        _ready.Enqueue(payload);
        _tail = payload;
        ReadyBytes += n;
        Capacity += payload.Capacity;
    }

    private PacketBuffer? _tail;

    private PacketBuffer? PeekTail() => _tail;

    /// <summary>Bytes of the next in-order buffer <see cref="TakeReady"/> would hand out (0: none).</summary>
    public int NextReadyLength => _ready.TryPeek(out var b) ? b.Length : 0;

    /// <summary>Takes the next in-order buffer (ownership passes out).</summary>
    public PacketBuffer? TakeReady()
    {
        if (!_ready.TryDequeue(out var b)) return null;
        if (_ready.Count == 0) _tail = null;
        ReadyBytes -= b.Length;
        Capacity -= b.Capacity;
        return b;
    }

    /// <summary>Copies in-order bytes out; returns the count.</summary>
    public int CopyReady(Span<byte> destination)
    {
        int total = 0;
        while (!destination.IsEmpty && _ready.TryPeek(out var b))
        {
            int n = Math.Min(b.Length, destination.Length);
            b.Data[..n].CopyTo(destination);
            destination = destination[n..];
            total += n;
            ReadyBytes -= n;
            if (n == b.Length)
            {
                _ready.Dequeue();
                if (_ready.Count == 0) _tail = null;
                Capacity -= b.Capacity;
                b.Release();
            }
            else
            {
                b.TrimFront(n);
            }
        }
        return total;
    }

    /// <summary>
    /// Queues a segment beyond RCV.NXT (ownership passes in; released if it brings nothing new).
    /// Returns false when the queue is full and the segment was dropped.
    /// </summary>
    public bool InsertOutOfOrder(SeqNumber seq, PacketBuffer payload, bool fin, int maxSegments)
    {
        SeqNumber end = seq + payload.Length;
        _lastOooSeq = seq;
        _hasLastOoo = true;
        // Position: the first entry that starts after seq.
        int i = 0;
        while (i < _ooo.Count && _ooo[i].Seq.IsBeforeOrEqual(seq)) i++;
        // Trim against the previous entry.
        if (i > 0)
        {
            var prev = _ooo[i - 1];
            if (prev.End.IsAfterOrEqual(end) && !(fin && !prev.Fin && prev.End == end))
            {
                payload.Release(); // all already held
                return true;
            }
            if (prev.End.IsAfter(seq))
            {
                int overlap = prev.End - seq;
                payload.TrimFront(Math.Min(overlap, payload.Length));
                seq = prev.End;
            }
        }
        // Drop the following entries this one covers; trim against the first it does not.
        while (i < _ooo.Count && _ooo[i].End.IsBeforeOrEqual(end) && !(_ooo[i].End == end && _ooo[i].Fin && !fin))
        {
            Capacity -= _ooo[i].Buffer.Capacity;
            _ooo[i].Buffer.Release();
            _ooo.RemoveAt(i);
        }
        if (i < _ooo.Count && _ooo[i].Seq.IsBefore(end))
        {
            payload.Truncate(_ooo[i].Seq - seq);
            fin = false;
        }
        if (payload.Length == 0 && !fin)
        {
            payload.Release();
            return true;
        }
        if (_ooo.Count >= maxSegments)
        {
            payload.Release();
            return false;
        }
        _ooo.Insert(i, new OutOfOrder(seq, payload, fin));
        Capacity += payload.Capacity;
        return true;
    }

    /// <summary>
    /// Moves the entries that RCV.NXT has reached into the in-order queue, advancing
    /// <paramref name="rcvNxt"/>; true in <paramref name="fin"/> when a queued FIN was reached.
    /// </summary>
    public void Drain(ref SeqNumber rcvNxt, out bool fin)
    {
        fin = false;
        while (_ooo.Count > 0 && _ooo[0].Seq.IsBeforeOrEqual(rcvNxt))
        {
            var e = _ooo[0];
            _ooo.RemoveAt(0);
            Capacity -= e.Buffer.Capacity;
            if (e.End.IsBeforeOrEqual(rcvNxt) && !(e.Fin && e.End == rcvNxt))
            {
                e.Buffer.Release();
                continue;
            }
            int skip = rcvNxt - e.Seq;
            e.Buffer.TrimFront(skip);
            rcvNxt += e.Buffer.Length;
            AppendReady(e.Buffer);
            if (e.Fin)
            {
                fin = true;
                ClearOutOfOrder();
                return;
            }
        }
    }

    /// <summary>
    /// Writes the SACK blocks (RFC 2018 4): the first holds the most recently received
    /// segment, then the others from the lowest.
    /// </summary>
    public void FillSack(ref TcpOptions options, int maxBlocks)
    {
        if (_ooo.Count == 0 || maxBlocks <= 0) return;
        int recentRun = -1;
        // First pass: find the run that holds the latest segment.
        int runIndex = 0;
        SeqNumber left = _ooo[0].Seq, right = _ooo[0].End;
        for (int i = 1; i <= _ooo.Count; i++)
        {
            bool last = i == _ooo.Count;
            if (!last && _ooo[i].Seq == right)
            {
                right = _ooo[i].End;
                continue;
            }
            if (_hasLastOoo && _lastOooSeq.IsAfterOrEqual(left) && _lastOooSeq.IsBefore(right) && recentRun < 0)
            {
                recentRun = runIndex;
                options.AddSack(new SackBlock(left, right));
            }
            runIndex++;
            if (!last)
            {
                left = _ooo[i].Seq;
                right = _ooo[i].End;
            }
        }
        // Second pass: the other runs, lowest first.
        runIndex = 0;
        left = _ooo[0].Seq;
        right = _ooo[0].End;
        for (int i = 1; i <= _ooo.Count && options.SackCount < maxBlocks; i++)
        {
            bool last = i == _ooo.Count;
            if (!last && _ooo[i].Seq == right)
            {
                right = _ooo[i].End;
                continue;
            }
            if (runIndex != recentRun && left != right) options.AddSack(new SackBlock(left, right));
            runIndex++;
            if (!last)
            {
                left = _ooo[i].Seq;
                right = _ooo[i].End;
            }
        }
    }

    /// <summary>Drops the highest out-of-order segment (memory pressure). RFC 2018 8 allows the receiver to renege on what it SACKed.</summary>
    public void DropHighestOutOfOrder()
    {
        int last = _ooo.Count - 1;
        if (last < 0) return;
        var e = _ooo[last];
        _ooo.RemoveAt(last);
        Capacity -= e.Buffer.Capacity;
        e.Buffer.Release();
    }

    public void ClearOutOfOrder()
    {
        foreach (var e in _ooo)
        {
            Capacity -= e.Buffer.Capacity;
            e.Buffer.Release();
        }
        _ooo.Clear();
        _hasLastOoo = false;
    }

    /// <summary>Releases everything.</summary>
    public void Clear()
    {
        ClearOutOfOrder();
        while (_ready.TryDequeue(out var b)) b.Release();
        _tail = null;
        ReadyBytes = 0;
        Capacity = 0;
    }
}
