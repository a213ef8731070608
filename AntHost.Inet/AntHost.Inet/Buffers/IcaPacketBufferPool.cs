// The protocol core's buffers, backed by data ICAs of the kernel's pool. A received
// frame is wrapped where the NIC driver put it (no copy), the core's own packets
// (ARP, echo replies, ICMP errors, later TCP) are written straight into ICAs, and a
// frame to send is lent to the driver as the very ICA the core wrote it in. The
// wrapper objects are kept on a free list, so after warm-up no packet allocates.
//
// Ownership: a buffer's ICA is owned by the inet server while the buffer is with
// the core; while the driver transmits it, the ICA belongs to the driver
// (InFlight) and comes back with the TX completion as a new lease (Rebind). It is
// lent, so if the driver dies with it the broker gives it back to inet, and the
// protocol manager rebinds it the same way; only an ICA that did not come back
// marks its buffer lost, whose release then frees nothing.
using AntHost.Inet.Core.Buffers;
using AntHost.Kernel;

namespace AntHost.Inet.Buffers;

/// <summary>A <see cref="PacketBuffer"/> over one data ICA.</summary>
public sealed class IcaPacketBuffer : PacketBuffer
{
    private readonly IcaPacketBufferPool _pool;
    private IcaLease _lease;
    private SharedIca? _shared;
    private int _sliceStart, _sliceLength;

    internal IcaPacketBuffer(IcaPacketBufferPool pool) => _pool = pool;

    /// <summary>The ICA under the buffer, as this process holds it now.</summary>
    public IcaLease Lease => _lease;

    /// <summary>True while the ICA is with the driver.</summary>
    public bool InFlight { get; private set; }

    /// <summary>True when the ICA went with a dead driver (the broker reclaimed it).</summary>
    public bool Lost { get; private set; }

    /// <summary>The app's send waiting to learn whether this buffer (its own data ICA) goes to the driver in place (see Transmits).</summary>
    internal Transmit? Transmit { get; set; }

    /// <summary>The frame list this buffer is one frame of (its ICA is freed with the list's last frame), or null.</summary>
    internal SharedIca? Shared => _shared;

    protected override Span<byte> Backing => Lost ? Span<byte>.Empty : _shared is null ? _lease.Span : _lease.Span.Slice(_sliceStart, _sliceLength);

    public override int Capacity => _shared is null ? _lease.Length : _sliceLength;

    internal void Activate(IcaLease lease, int headroom)
    {
        _lease = lease;
        _shared = null;
        InFlight = false;
        Lost = false;
        Transmit = null;
        Revive();
        Reset(headroom);
    }

    /// <summary>The ICA was handed to the driver.</summary>
    internal void MarkInFlight() => InFlight = true;

    /// <summary>The ICA came back from the driver (a later transfer count of the same pages).</summary>
    internal void Rebind(IcaLease lease)
    {
        _lease = lease;
        InFlight = false;
    }

    /// <summary>The driver died holding the ICA.</summary>
    internal void MarkLost()
    {
        Lost = true;
        InFlight = false;
    }

    /// <summary>Makes the buffer one frame of a list: it sees [start, +length) of the list's ICA, which it does not own alone.</summary>
    internal void ActivateShared(SharedIca shared, int start, int length)
    {
        Activate(shared.Lease, 0);
        _shared = shared;
        _sliceStart = start;
        _sliceLength = length;
        SetData(0, length);
    }

    internal IcaLease TakeLease()
    {
        var l = _lease;
        _lease = default;
        return l;
    }

    internal SharedIca? TakeShared()
    {
        var s = _shared;
        _shared = null;
        return s;
    }

    protected override void OnRelease() => _pool.Return(this);
}

/// <summary>The inet server's <see cref="IPacketBufferPool"/>: ICAs from the process's kernel connection.</summary>
public sealed class IcaPacketBufferPool : IPacketBufferPool
{
    /// <summary>The largest ICA a buffer may have (the kernel connection caches up to this size).</summary>
    public const int MaxPages = KernelConnection.MaxCachedPages;

    private readonly IInetKernel _kernel;
    private readonly Stack<IcaPacketBuffer> _free;
    private readonly Stack<SharedIca> _freeShared = new();

    public IcaPacketBufferPool(IInetKernel kernel, int prewarm = 256)
    {
        _kernel = kernel;
        _free = new Stack<IcaPacketBuffer>(prewarm);
        for (int i = 0; i < prewarm; i++) _free.Push(new IcaPacketBuffer(this));
    }

    /// <summary>Buffers handed out and not yet released (leak accounting).</summary>
    public int Outstanding { get; private set; }

    /// <summary>Allocations refused by the kernel (pool exhausted).</summary>
    public long Exhausted { get; private set; }

    /// <summary>Releases whose ICA had gone with a dead driver.</summary>
    public long LostReleased { get; private set; }

    public PacketBuffer? Rent(int headroom, int dataCapacity)
    {
        int bytes = headroom + dataCapacity;
        if (headroom < 0 || dataCapacity < 0 || bytes <= 0) return null;
        int pages = (bytes + 4095) / 4096;
        if (pages > MaxPages) return null;
        IcaLease lease;
        try
        {
            lease = _kernel.Allocate(pages);
        }
        catch (KernelException)
        {
            Exhausted++;
            return null;
        }
        var b = Take();
        b.Activate(lease, headroom);
        return b;
    }

    /// <summary>Wraps a received data ICA holding a frame at offset 0 (ownership passes to the buffer).</summary>
    public IcaPacketBuffer Wrap(IcaLease lease, int length)
    {
        var b = Take();
        b.Activate(lease, 0);
        b.SetData(0, Math.Clamp(length, 0, lease.Length));
        return b;
    }

    /// <summary>
    /// Wraps an app's data ICA for sending: the payload is [<paramref name="start"/>, +<paramref name="length"/>),
    /// everything in front of it is headroom. Ownership passes to the buffer (TCP frees it on ACK).
    /// </summary>
    public IcaPacketBuffer WrapPayload(IcaLease lease, int start, int length)
    {
        var b = Take();
        b.Activate(lease, 0);
        b.SetData(start, length);
        return b;
    }

    /// <summary>
    /// Takes the ICA out of a buffer that leaves the process (a received payload handed to an
    /// app): the wrapper goes back to the free list, the ICA to the caller, who passes it on.
    /// </summary>
    public IcaLease Detach(IcaPacketBuffer b)
    {
        // A frame of a list shares its ICA with the others: only header-only TCP travels in
        // lists (checked on arrival), and nothing without payload is handed to an app.
        if (b.Shared is not null) throw new InvalidOperationException("a frame of a frame list cannot leave the process");
        var lease = b.TakeLease();
        Detached++;
        b.Release();
        return lease;
    }

    /// <summary>ICAs that left through <see cref="Detach"/>.</summary>
    public long Detached { get; private set; }

    /// <summary>
    /// Takes ownership of a frame-list ICA: its frames are wrapped with <see cref="WrapShared"/>,
    /// and the ICA is freed when <see cref="Unshare"/> has been called and every frame is released.
    /// </summary>
    public SharedIca Share(IcaLease lease)
    {
        var s = _freeShared.TryPop(out var f) ? f : new SharedIca();
        s.Lease = lease;
        s.References = 1;
        SharedOutstanding++;
        return s;
    }

    /// <summary>Wraps frame [start, +length) of a shared frame-list ICA.</summary>
    public IcaPacketBuffer WrapShared(SharedIca shared, int start, int length)
    {
        if (shared.References <= 0 || (uint)start > (uint)shared.Lease.Length || (uint)length > (uint)(shared.Lease.Length - start))
            throw new ArgumentOutOfRangeException(nameof(length), "the frame is not inside the list's ICA");
        var b = Take();
        shared.References++;
        b.ActivateShared(shared, start, length);
        return b;
    }

    /// <summary>Drops the list's own hold (after its frames were wrapped): frees the ICA if no frame holds it.</summary>
    public void Unshare(SharedIca shared) => Drop(shared);

    /// <summary>Frame-list ICAs held now (leak accounting).</summary>
    public int SharedOutstanding { get; private set; }

    private void Drop(SharedIca s)
    {
        if (--s.References > 0) return;
        var lease = s.Lease;
        s.Lease = default;
        SharedOutstanding--;
        _freeShared.Push(s);
        _kernel.Free(lease);
    }

    private IcaPacketBuffer Take()
    {
        Outstanding++;
        return _free.TryPop(out var b) ? b : new IcaPacketBuffer(this);
    }

    internal void Return(IcaPacketBuffer b)
    {
        Outstanding--;
        var lease = b.TakeLease();
        if (b.TakeShared() is { } shared) Drop(shared);
        else if (b.Lost) LostReleased++;
        else if (!lease.IsNone) _kernel.Free(lease);
        _free.Push(b);
    }
}

/// <summary>A frame-list ICA whose frames are buffers of their own: freed when the last lets go.</summary>
public sealed class SharedIca
{
    internal IcaLease Lease;
    internal int References;
}
