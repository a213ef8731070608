// The seam between the inet server's logic and the kernel: everything the protocol manager,
// the socket manager and the buffer pool ask of the kernel (ICAs allocated, freed, taken
// back from a dead peer; frames posted and forwarded to the driver; replies to apps; the
// counters the stats report). The request manager alone holds the kernel connection itself
// (it receives, and reads the clock); the logic sees only this interface, so a test can
// stand in for the kernel.
using AntHost.Kernel;
using AntHost.Kernel.Pool;

namespace AntHost.Inet;

/// <summary>What the inet server's logic asks of the kernel (see the file comment).</summary>
public interface IInetKernel
{
    /// <summary>This process.</summary>
    ProcessId Id { get; }

    /// <summary>An ICA of <paramref name="pages"/> pages (throws <see cref="KernelException"/> when the pool has none).</summary>
    IcaLease Allocate(int pages);

    /// <summary>A control ICA formatted for a new request.</summary>
    IcaLease AllocateControl();

    void Free(IcaLease lease);

    /// <summary>Frees a message's control and data ICAs.</summary>
    void FreeMessage(in Message m);

    /// <summary>Takes back an ICA lent to a peer that died holding it (see <see cref="KernelConnection.TryTakeBack"/>).</summary>
    bool TryTakeBack(IcaHandle lent, out IcaLease lease);

    /// <summary>A new request to <paramref name="endpoint"/>; returns its request id.</summary>
    uint Post(Endpoint endpoint, IcaLease control, ushort opcode, ReadOnlySpan<DataIca> data, ushort traceStage, bool lend);

    /// <summary>Hands an app's request on to <paramref name="next"/>, which answers the app itself.</summary>
    uint Forward(Endpoint next, IcaLease control, ushort opcode, ReadOnlySpan<DataIca> data, ushort traceStage, bool lend);

    /// <summary>
    /// Answers <paramref name="request"/> without waiting for room: false when the app's ring is
    /// full now (nothing moved; see <see cref="KernelConnection.TryReply"/>).
    /// </summary>
    bool TryReply(in Message request, IcaLease control, int status, ReadOnlySpan<DataIca> data, bool quiet = false);

    /// <summary>Garbage and refused handles the kernel connection counted (for Stats).</summary>
    long Garbage { get; }

    long RefusedHandles { get; }

    /// <summary>Pages the ownership table gives this process now (for Stats and the meter).</summary>
    long PagesOwned();

    /// <summary>The pool's data pages, and how many are free now (the broker's counter).</summary>
    int PoolPages { get; }

    long FreePages { get; }

    /// <summary>ICAs in this process's cache (owned, not in use), and giving them back to the pool.</summary>
    int CachedIcas { get; }

    void TrimCache();
}

/// <summary>The kernel seam over the process's real <see cref="KernelConnection"/>.</summary>
public sealed class KernelSeam(KernelConnection kernel) : IInetKernel
{
    public ProcessId Id => kernel.Id;
    public IcaLease Allocate(int pages) => kernel.Allocate(pages);
    public IcaLease AllocateControl() => kernel.AllocateControl();
    public void Free(IcaLease lease) => kernel.Free(lease);
    public void FreeMessage(in Message m) => kernel.FreeMessage(m);
    public bool TryTakeBack(IcaHandle lent, out IcaLease lease) => kernel.TryTakeBack(lent, out lease);

    public uint Post(Endpoint endpoint, IcaLease control, ushort opcode, ReadOnlySpan<DataIca> data, ushort traceStage, bool lend) =>
        kernel.Post(endpoint, control, opcode, data, traceStage, lend);

    public uint Forward(Endpoint next, IcaLease control, ushort opcode, ReadOnlySpan<DataIca> data, ushort traceStage, bool lend) =>
        kernel.Forward(next, control, opcode, data, traceStage, lend);

    public bool TryReply(in Message request, IcaLease control, int status, ReadOnlySpan<DataIca> data, bool quiet = false) =>
        kernel.TryReply(request, control, status, data, quiet);

    public long Garbage => kernel.Counters.Garbage;
    public long RefusedHandles => kernel.Counters.RefusedHandles;
    public long PagesOwned() => new OwnershipTable(kernel.Pool).PagesOwnedBy(kernel.Id);
    public int PoolPages => kernel.Pool.DataPages;
    public long FreePages => kernel.Pool.Counter(BrokerCounter.FreePages);
    public int CachedIcas => kernel.CachedIcas;
    public void TrimCache() => kernel.TrimCache();
}
