// Strict mode: the pages of ICAs this process does not own are PROT_NONE in
// this process, so a use after transfer (or after free) faults at once instead
// of silently reading the next owner's bytes. mprotect costs 15-70 us per call
// here, so it is a debug mode and never the default.
//
// .NET cannot run managed code in a SIGSEGV handler (the runtime turns a fault
// in managed code into a crash of the process), so the "message naming the
// ICA" is written before the pages are revoked: with ANTHOST_STRICT_TRACE=1 the
// process logs each revoke to stderr (the ICA, its pool offset and page range),
// and the crash report's faulting address falls inside one of those ranges.
using AntHost.Kernel.Interop;

namespace AntHost.Kernel.Pool;

internal sealed unsafe class StrictGuard
{
    private readonly IcaPool _pool;
    private readonly bool _trace;

    public StrictGuard(IcaPool pool, bool enabled)
    {
        _pool = pool;
        Enabled = enabled;
        _trace = enabled && Environment.GetEnvironmentVariable("ANTHOST_STRICT_TRACE") == "1";
        if (enabled)
            Native.Protect(pool.DataBase, (long)pool.DataPages * PoolLayout.PageSize, Native.ProtNone);
    }

    public bool Enabled { get; }

    public void Grant(IcaHandle handle, int pages)
    {
        if (!Enabled || pages <= 0) return;
        Native.Protect(_pool.PageAddress(handle.FirstPage), (long)pages * PoolLayout.PageSize, Native.ProtRead | Native.ProtWrite);
    }

    public void Revoke(ReadOnlySpan<IcaHandle> handles)
    {
        if (!Enabled) return;
        foreach (var h in handles)
        {
            if (new OwnershipTable(_pool).Check(h, out int pages) != KernelError.None) continue;
            if (_trace)
            {
                long addr = (long)_pool.PageAddress(h.FirstPage);
                Console.Error.WriteLine($"strict: {h} revoked in pid {Environment.ProcessId}: pages {h.FirstPage}..{h.FirstPage + pages - 1}, " +
                    $"address 0x{addr:x}..0x{addr + pages * PoolLayout.PageSize - 1:x}; a touch now faults (SIGSEGV)");
            }
            Native.Protect(_pool.PageAddress(h.FirstPage), (long)pages * PoolLayout.PageSize, Native.ProtNone);
        }
    }
}
