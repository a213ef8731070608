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

    internal IcaPacketBuffer(IcaPacketBufferPool pool) => _pool = pool;

    /// <summary>The ICA under the buffer, as this process holds it now.</summary>
    public IcaLease Lease => _lease;

    /// <summary>True while the ICA is with the driver.</summary>
    public bool InFlight { get; private set; }

    /// <summary>True when the ICA went with a dead driver (the broker reclaimed it).</summary>
    public bool Lost { get; private set; }

    /// <summary>The app's send waiting to learn whether this buffer (its own data ICA) goes to the driver in place (see Transmits).</summary>
    internal Transmit? Transmit { get; set; }

    protected override Span<byte> Backing => Lost ? Span<byte>.Empty : _lease.Span;

    public override int Capacity => _lease.Length;

    internal void Activate(IcaLease lease, int headroom)
    {
        _lease = lease;
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

    internal IcaLease TakeLease()
    {
        var l = _lease;
        _lease = default;
        return l;
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
        var lease = b.TakeLease();
        Detached++;
        b.Release();
        return lease;
    }

    /// <summary>ICAs that left through <see cref="Detach"/>.</summary>
    public long Detached { get; private set; }

    private IcaPacketBuffer Take()
    {
        Outstanding++;
        return _free.TryPop(out var b) ? b : new IcaPacketBuffer(this);
    }

    internal void Return(IcaPacketBuffer b)
    {
        Outstanding--;
        var lease = b.TakeLease();
        if (b.Lost) LostReleased++;
        else if (!lease.IsNone) _kernel.Free(lease);
        _free.Push(b);
    }
}
