using System.Diagnostics;
using AntHost.Inet.Core.Buffers;

namespace AntHost.Inet.Core.Tcp;

/// <summary>
/// A connection's send buffer: the app's bytes from SND.UNA on, kept in the buffers they
/// arrived in (zero copy), in order, until they are acknowledged.
/// </summary>
/// <remarks>
/// Each chunk remembers its own payload region (offset and length in its buffer) because
/// a buffer that is lent to the IP layer for transmission has its data region moved by
/// the layers below (they prepend headers); the region is set back before each use, never
/// while the buffer is lent. A chunk is released when every byte of it is acknowledged;
/// <see cref="PacketBuffer.Release"/> defers that until a lend ends.
///
/// The limit counts the capacity of the buffers held, not only their payload: a small
/// payload in a page-sized buffer costs the page, and that is the memory the limit is
/// meant to bound.
/// </remarks>
internal sealed class SendBuffer
{
    internal struct Chunk
    {
        public PacketBuffer Buffer;
        public int Offset;
        public int Length;
    }

    private Chunk[] _ring = new Chunk[16];
    private int _head;
    private int _count;

    // A lookup hint: the chunk at ring position _hintIndex starts at sequence number _hintSeq.
    private int _hintIndex;
    private SeqNumber _hintSeq;

    /// <summary>Sequence number of the first byte held (SND.UNA once the SYN is acknowledged).</summary>
    public SeqNumber Start { get; private set; }

    /// <summary>Payload bytes held.</summary>
    public int Bytes { get; private set; }

    private readonly MemoryAccount? _account;
    private int _capacity;

    /// <param name="account">Where the buffers' capacity is counted (the layer's <see cref="TcpMemory"/>).</param>
    public SendBuffer(MemoryAccount? account = null) => _account = account;

    /// <summary>Capacity of the buffers held.</summary>
    public int Capacity
    {
        get => _capacity;
        private set
        {
            _account?.Add(value - _capacity);
            _capacity = value;
        }
    }

    public int ChunkCount => _count;

    /// <summary>One past the last byte held.</summary>
    public SeqNumber End => Start + Bytes;

    public void Reset(SeqNumber start)
    {
        Debug.Assert(_count == 0, "reset of a non-empty send buffer");
        Start = start;
        _hintIndex = 0;
        _hintSeq = start;
    }

    public ref Chunk this[int i] => ref _ring[(_head + i) & (_ring.Length - 1)];

    /// <summary>Takes ownership of <paramref name="buffer"/>; its data region is the payload.</summary>
    public void Append(PacketBuffer buffer)
    {
        if (_count == _ring.Length) Grow();
        _ring[(_head + _count) & (_ring.Length - 1)] = new Chunk { Buffer = buffer, Offset = buffer.Start, Length = buffer.Length };
        _count++;
        Bytes += buffer.Length;
        Capacity += buffer.Capacity;
    }

    /// <summary>Copies as much of <paramref name="data"/> as fits into the last chunk's tailroom (not when it is lent, or sealed by <paramref name="maxChunk"/>).</summary>
    public int AppendToTail(ReadOnlySpan<byte> data, int maxChunk)
    {
        if (_count == 0 || data.IsEmpty) return 0;
        ref var tail = ref this[_count - 1];
        if (tail.Buffer.IsLent) return 0;
        int room = Math.Min(tail.Buffer.Capacity - tail.Offset - tail.Length, maxChunk - tail.Length);
        if (room <= 0) return 0;
        int n = Math.Min(room, data.Length);
        tail.Buffer.SetData(tail.Offset, tail.Length);
        data[..n].CopyTo(tail.Buffer.Append(n));
        tail.Length += n;
        Bytes += n;
        return n;
    }

    /// <summary>Drops the bytes before <paramref name="ack"/>; returns the payload bytes freed.</summary>
    public int AckTo(SeqNumber ack)
    {
        int n = ack - Start;
        if (n <= 0) return 0;
        n = Math.Min(n, Bytes);
        int left = n;
        while (left > 0)
        {
            ref var c = ref _ring[_head];
            if (c.Length <= left)
            {
                left -= c.Length;
                Capacity -= c.Buffer.Capacity;
                c.Buffer.Release();
                c = default;
                _head = (_head + 1) & (_ring.Length - 1);
                _count--;
                if (_hintIndex > 0) _hintIndex--;
                else _hintSeq = Start + (n - left);
            }
            else
            {
                c.Offset += left;
                c.Length -= left;
                left = 0;
            }
        }
        Bytes -= n;
        Start += n;
        if (_count == 0 || SeqNumber.Max(_hintSeq, Start) != _hintSeq)
        {
            _hintIndex = 0;
            _hintSeq = Start;
        }
        return n;
    }

    /// <summary>Finds the chunk holding <paramref name="seq"/>: its index and the byte offset within it.</summary>
    public bool Locate(SeqNumber seq, out int index, out int offset)
    {
        int i;
        SeqNumber s;
        if (_hintIndex < _count && seq.IsAfterOrEqual(_hintSeq))
        {
            i = _hintIndex;
            s = _hintSeq;
        }
        else
        {
            i = 0;
            s = Start;
        }
        if (seq.IsBefore(s)) { index = offset = 0; return false; }
        while (i < _count)
        {
            int len = this[i].Length;
            if ((seq - s) < len)
            {
                _hintIndex = i;
                _hintSeq = s;
                index = i;
                offset = seq - s;
                return true;
            }
            s += len;
            i++;
        }
        index = offset = 0;
        return false;
    }

    /// <summary>Copies <paramref name="destination"/>.Length bytes starting at <paramref name="seq"/>.</summary>
    public void CopyOut(SeqNumber seq, Span<byte> destination)
    {
        if (destination.IsEmpty) return;
        bool found = Locate(seq, out int i, out int off);
        Debug.Assert(found, "copy from outside the send buffer");
        while (!destination.IsEmpty)
        {
            ref var c = ref this[i];
            int n = Math.Min(c.Length - off, destination.Length);
            ReadChunk(c.Buffer, c.Offset + off, n).CopyTo(destination);
            destination = destination[n..];
            off = 0;
            i++;
        }
    }

    /// <summary>
    /// The bytes [start, start + length) of a chunk's backing store, whether or not the chunk
    /// is lent: the layers below write headers only in front of a payload (into the headroom,
    /// or into a buffer of their own when the chunk goes as an offload fragment), never over it.
    /// </summary>
    internal static ReadOnlySpan<byte> ReadChunk(PacketBuffer b, int start, int length) => b.Peek(start, length);

    /// <summary>Releases everything (abort, reset).</summary>
    public void Clear()
    {
        while (_count > 0)
        {
            ref var c = ref _ring[_head];
            c.Buffer.Release();
            c = default;
            _head = (_head + 1) & (_ring.Length - 1);
            _count--;
        }
        Start += Bytes;
        Bytes = 0;
        Capacity = 0;
        _hintIndex = 0;
        _hintSeq = Start;
    }

    private void Grow()
    {
        var bigger = new Chunk[_ring.Length * 2];
        for (int i = 0; i < _count; i++) bigger[i] = this[i];
        _ring = bigger;
        _head = 0;
    }
}
