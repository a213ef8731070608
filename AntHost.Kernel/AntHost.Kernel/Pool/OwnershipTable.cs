// The read side of the ownership table, used by every process: a receiver
// checks each handle it is given before it touches the pages (a freed or
// reallocated ICA is refused at once, whatever the transfer path). The broker
// writes the table (OwnershipTableWriter in the broker) and nobody else can: the
// META view is read-only outside the broker.
namespace AntHost.Kernel.Pool;

/// <summary>Checks handles against the shared ownership table.</summary>
public readonly unsafe struct OwnershipTable
{
    private readonly IcaPool _pool;

    public OwnershipTable(IcaPool pool) => _pool = pool;

    /// <summary>
    /// Checks that <paramref name="handle"/> names a live ICA of the current generation and
    /// returns its page count. Does not check the owner.
    /// </summary>
    public KernelError Check(IcaHandle handle, out int pages)
    {
        pages = 0;
        uint page = handle.FirstPage;
        if (handle.IsNone || page >= (uint)_pool.DataPages) return KernelError.InvalidHandle;
        ref var e = ref _pool.Page(page);
        ushort flags = Volatile.Read(ref e.Flags);
        uint gen = Volatile.Read(ref e.Generation);
        if ((flags & OwnershipEntry.FlagAllocated) == 0 || (flags & OwnershipEntry.FlagHead) == 0)
            return gen == handle.Generation ? KernelError.StaleHandle : KernelError.InvalidHandle;
        if ((gen & IcaHandle.GenerationMask) != handle.Generation) return KernelError.StaleHandle;
        uint n = Volatile.Read(ref e.PagesOrHead);
        if (n == 0 || page + n > (uint)_pool.DataPages) return KernelError.InvalidHandle;
        pages = (int)n;
        return KernelError.None;
    }

    /// <summary>The table's owner of the ICA's head page (none when free).</summary>
    public ProcessId OwnerSlotOf(IcaHandle handle, out ushort ownerTag)
    {
        ownerTag = 0;
        if (handle.FirstPage >= (uint)_pool.DataPages) return default;
        ownerTag = Volatile.Read(ref _pool.Page(handle.FirstPage).Owner);
        if (ownerTag == 0) return default;
        int slot = ownerTag - 1;
        if (slot >= _pool.Layout.MaxProcesses) return default;
        return new ProcessId(Volatile.Read(ref _pool.Process(slot).ProcessId));
    }

    /// <summary>The table's transfer count of the ICA.</summary>
    public ushort TransferCountOf(IcaHandle handle) =>
        handle.FirstPage < (uint)_pool.DataPages ? Volatile.Read(ref _pool.Page(handle.FirstPage).TransferCount) : (ushort)0;

    /// <summary>True when the table says <paramref name="owner"/> holds the ICA now, at this transfer count.</summary>
    public bool IsOwnedBy(IcaHandle handle, ProcessId owner)
    {
        if (Check(handle, out _) != KernelError.None) return false;
        return Volatile.Read(ref _pool.Page(handle.FirstPage).OwnerAndCount) == OwnershipEntry.Pack(owner.OwnerTag, handle.TransferCount);
    }

    /// <summary>Pages currently allocated (a scan; tests and diagnostics only).</summary>
    public int AllocatedPages()
    {
        int n = 0;
        for (uint p = 0; p < (uint)_pool.DataPages; p++)
            if ((Volatile.Read(ref _pool.Page(p).Flags) & OwnershipEntry.FlagAllocated) != 0) n++;
        return n;
    }

    /// <summary>Pages the table assigns to the process with this slot+1 tag (a scan).</summary>
    public int PagesOwnedBy(ProcessId owner)
    {
        int n = 0;
        for (uint p = 0; p < (uint)_pool.DataPages; p++)
        {
            ref var e = ref _pool.Page(p);
            if ((Volatile.Read(ref e.Flags) & OwnershipEntry.FlagAllocated) != 0 && Volatile.Read(ref e.Owner) == owner.OwnerTag) n++;
        }
        return n;
    }
}
