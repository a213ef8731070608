using System.Diagnostics;

namespace AntHost.Inet.Core.Buffers;

/// <summary>
/// The bytes of one packet, with headroom in front, as the protocol core sees them.
/// </summary>
/// <remarks>
/// The core never copies a payload it can avoid copying: a segment's payload stays
/// where the app (or the NIC driver) put it, and each layer writes its header into
/// the headroom in front of it with <see cref="Prepend"/>; on receive each layer
/// strips its header with <see cref="TrimFront"/>. The server backs buffers with
/// data ICAs in the shared pool, tests and simulations with plain arrays; the core
/// cannot tell them apart.
///
/// Ownership: a buffer has exactly one owner at a time. Whoever receives a buffer
/// from a call that says so owns it and must <see cref="Release"/> it or pass it on.
/// A buffer that the core keeps (TCP's unacknowledged data) but hands out for
/// transmission is <em>lent</em>: <see cref="Lend"/> marks it, the transmitter
/// calls <see cref="EndLend"/> when the frame has left, and while it is lent its
/// bytes must not change (a retransmission needs a copy) and a <see cref="Release"/>
/// is deferred until the lend ends.
///
/// Segmentation offload: a TCP segment larger than the MSS travels as a buffer holding
/// only the headers, with the payload attached as a <see cref="Fragment"/> (a region of
/// another buffer, lent for the transmission) and <see cref="SegmentSize"/> saying how
/// many payload bytes each frame on the wire carries. Whoever puts it on the wire cuts it
/// (<see cref="Wire.TcpSegmentation"/>), as a NIC's TSO does.
/// </remarks>
public abstract class PacketBuffer
{
    private int _start;
    private int _length;
    private bool _lent;
    private bool _releasePending;
    private bool _released;
    private PacketBuffer? _fragment;
    private int _fragmentOffset;
    private int _fragmentLength;
    private int _segmentSize;

    /// <summary>The whole backing store, headroom and tailroom included.</summary>
    protected abstract Span<byte> Backing { get; }

    /// <summary>Total bytes of the backing store.</summary>
    public abstract int Capacity { get; }

    /// <summary>Returns the backing store to its pool. Called once, when the buffer is released and not lent.</summary>
    protected abstract void OnRelease();

    /// <summary>Offset of the first data byte in the backing store (equal to the headroom).</summary>
    public int Start => _start;

    /// <summary>Number of data bytes.</summary>
    public int Length => _length;

    public int Headroom => _start;

    public int Tailroom => Capacity - _start - _length;

    /// <summary>The data bytes: [Start, Start + Length).</summary>
    public Span<byte> Data => Backing.Slice(_start, _length);

    /// <summary>True while a transmitter holds the buffer (see <see cref="Lend"/>).</summary>
    public bool IsLent => _lent;

    /// <summary>The payload that follows the data region on the wire (segmentation offload), lent from its owner; null for an ordinary frame.</summary>
    public PacketBuffer? Fragment => _fragment;

    /// <summary>Offset of the fragment's payload in the fragment's backing store.</summary>
    public int FragmentOffset => _fragmentOffset;

    /// <summary>Bytes of the fragment's payload.</summary>
    public int FragmentLength => _fragmentLength;

    /// <summary>With a fragment: the payload bytes of each frame it is cut into (the last may carry fewer).</summary>
    public int SegmentSize => _segmentSize;

    /// <summary>The bytes this buffer puts on the wire: its data region and the fragment behind it.</summary>
    public int WireLength => _length + _fragmentLength;

    /// <summary>The fragment's payload bytes.</summary>
    public ReadOnlySpan<byte> FragmentData => _fragment is null ? default : _fragment.Backing.Slice(_fragmentOffset, _fragmentLength);

    /// <summary>
    /// Attaches [<paramref name="offset"/>, + <paramref name="length"/>) of <paramref name="payload"/>'s
    /// backing store as this buffer's fragment, lending <paramref name="payload"/> until this
    /// buffer's transmission finishes (or it is released).
    /// </summary>
    public void AttachFragment(PacketBuffer payload, int offset, int length, int segmentSize)
    {
        if (_fragment is not null) ThrowHelper("the buffer already has a fragment");
        if ((uint)offset > (uint)payload.Capacity || (uint)length > (uint)(payload.Capacity - offset) || segmentSize <= 0) ThrowOutOfRoom(nameof(length));
        payload.Lend();
        _fragment = payload;
        _fragmentOffset = offset;
        _fragmentLength = length;
        _segmentSize = segmentSize;
    }

    /// <summary>Reads [<paramref name="start"/>, + <paramref name="length"/>) of the backing store whatever the data region is (the owner's view of a buffer it lent).</summary>
    public ReadOnlySpan<byte> Peek(int start, int length) => Backing.Slice(start, length);

    /// <summary>Empties the buffer, leaving <paramref name="headroom"/> bytes in front.</summary>
    public void Reset(int headroom)
    {
        if ((uint)headroom > (uint)Capacity) ThrowOutOfRoom(nameof(headroom));
        _start = headroom;
        _length = 0;
    }

    /// <summary>Sets the data region directly.</summary>
    public void SetData(int start, int length)
    {
        if ((uint)start > (uint)Capacity || (uint)length > (uint)(Capacity - start)) ThrowOutOfRoom(nameof(length));
        _start = start;
        _length = length;
    }

    /// <summary>Grows the data region by <paramref name="count"/> bytes at the front and returns them (for a header).</summary>
    public Span<byte> Prepend(int count)
    {
        if ((uint)count > (uint)_start) ThrowOutOfRoom(nameof(count));
        _start -= count;
        _length += count;
        return Backing.Slice(_start, count);
    }

    /// <summary>Grows the data region by <paramref name="count"/> bytes at the end and returns them.</summary>
    public Span<byte> Append(int count)
    {
        if ((uint)count > (uint)Tailroom) ThrowOutOfRoom(nameof(count));
        var s = Backing.Slice(_start + _length, count);
        _length += count;
        return s;
    }

    /// <summary>Drops <paramref name="count"/> bytes from the front (a parsed header).</summary>
    public void TrimFront(int count)
    {
        if ((uint)count > (uint)_length) ThrowOutOfRoom(nameof(count));
        _start += count;
        _length -= count;
    }

    /// <summary>Keeps only the first <paramref name="length"/> data bytes (e.g. drops Ethernet padding).</summary>
    public void Truncate(int length)
    {
        if ((uint)length > (uint)_length) ThrowOutOfRoom(nameof(length));
        _length = length;
    }

    /// <summary>Marks the buffer as held by a transmitter; its owner keeps it.</summary>
    public void Lend()
    {
        Debug.Assert(!_released, "lending a released buffer");
        if (_lent) ThrowHelper("buffer is already lent");
        _lent = true;
    }

    /// <summary>The transmitter is done with the buffer; a release asked for meanwhile happens now.</summary>
    public void EndLend()
    {
        if (!_lent) ThrowHelper("buffer is not lent");
        _lent = false;
        if (_releasePending)
        {
            _releasePending = false;
            ReleaseNow();
        }
    }

    /// <summary>
    /// What a transmitter calls once a frame has left (or was dropped): ends the lend
    /// of a buffer its owner keeps, or releases one that was handed over outright.
    /// </summary>
    public void FinishTransmit()
    {
        DetachFragment();
        if (_lent) EndLend();
        else Release();
    }

    private void DetachFragment()
    {
        var f = _fragment;
        if (f is null) return;
        _fragment = null;
        _fragmentOffset = _fragmentLength = _segmentSize = 0;
        f.EndLend();
    }

    /// <summary>Gives the buffer back to its pool, at once or, if it is lent, when the lend ends.</summary>
    public void Release()
    {
        if (_lent)
        {
            _releasePending = true;
            return;
        }
        ReleaseNow();
    }

    /// <summary>Makes a released buffer usable again; called by its pool when it hands it out.</summary>
    protected void Revive()
    {
        _released = false;
        _releasePending = false;
        _lent = false;
        _start = 0;
        _length = 0;
        _fragment = null;
        _fragmentOffset = _fragmentLength = _segmentSize = 0;
    }

    private void ReleaseNow()
    {
        if (_released) ThrowHelper("buffer released twice");
        _released = true;
        DetachFragment();
        OnRelease();
    }

    private static void ThrowOutOfRoom(string what) =>
        throw new ArgumentOutOfRangeException(what, "the packet buffer has no room for that");

    private static void ThrowHelper(string message) => throw new InvalidOperationException(message);
}

/// <summary>Where the core gets new buffers (ACKs, SYNs, ARP, ICMP replies, copies for retransmission).</summary>
public interface IPacketBufferPool
{
    /// <summary>
    /// A buffer of at least <paramref name="headroom"/> + <paramref name="dataCapacity"/> bytes,
    /// reset to leave <paramref name="headroom"/> in front; null when the pool is exhausted
    /// (the caller drops what it meant to send and counts it).
    /// </summary>
    PacketBuffer? Rent(int headroom, int dataCapacity);
}
