// First-fit over the ownership table itself (the table's Allocated flag is the
// free map, so the two can never disagree), with a roving start so that
// consecutive allocations do not rescan the same busy prefix. Contiguity is the
// point: an ICA is n consecutive pages of the pool file.
using AntHost.Kernel.Pool;

namespace AntHost.Broker;

internal sealed class PageAllocator
{
    private readonly IcaPool _pool;
    private uint _rover;

    public PageAllocator(IcaPool pool) => _pool = pool;

    /// <summary>Finds n free consecutive pages; returns the first or -1.</summary>
    public long Find(int n)
    {
        uint total = (uint)_pool.DataPages;
        if (n <= 0 || (uint)n > total) return -1;
        long r = TryRange(_rover, total, n);
        if (r < 0) r = TryRange(0, Math.Min(total, _rover + (uint)n), n);
        if (r >= 0) _rover = (uint)(r + n) % total;
        return r;
    }

    private long TryRange(uint from, uint to, int n)
    {
        uint run = 0;
        for (uint p = from; p < to; p++)
        {
            if ((_pool.Page(p).Flags & 1) != 0) { run = 0; continue; }
            if (++run == n) return p - n + 1;
        }
        return -1;
    }
}
