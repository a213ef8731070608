// Allocation without a broker round trip per packet. The broker hands out ICAs
// in batches over the control socket; they are owned by this process in the
// table from that moment, and wait in a small cache per size (1..16 pages).
// Freeing puts an ICA back in the cache while there is room (nothing to tell
// anyone: the table already says this process owns it); beyond that, frees are
// journaled on the uplink and the broker applies them at its next commit.
//
// Exactness across a death: every cached ICA is owned by this process in the
// table, so the broker's reclaim (everything the dead process owns, after its
// journal is drained) takes the cache back with everything else. Nothing is
// ever "owned by a cache" that the table does not know of.
using AntHost.Kernel.Ipc;
using AntHost.Kernel.Pool;
using AntHost.Kernel.Protocol;

namespace AntHost.Kernel;

public sealed unsafe partial class KernelConnection
{
    /// <summary>The largest ICA (in pages) that the per-process cache keeps.</summary>
    public const int MaxCachedPages = 16;

    private readonly Stack<IcaHandle>[] _cache;
    private readonly object _cacheLock = new();

    /// <summary>Allocates an ICA of at least <paramref name="bytes"/> bytes (whole pages).</summary>
    public IcaLease AllocateBytes(int bytes)
    {
        if (bytes <= 0) throw new ArgumentOutOfRangeException(nameof(bytes));
        return Allocate((bytes + PoolLayout.PageSize - 1) / PoolLayout.PageSize);
    }

    /// <summary>Allocates one ICA of <paramref name="pages"/> contiguous pages, owned by this process.</summary>
    public IcaLease Allocate(int pages)
    {
        if (pages <= 0 || pages > Pool.DataPages)
            throw new KernelException(KernelError.TooLarge, $"an ICA has 1..{Pool.DataPages} pages, not {pages}");
        if (pages <= MaxCachedPages)
        {
            lock (_cacheLock)
            {
                var stack = _cache[pages];
                if (stack.Count == 0) RefillLocked(pages, stack);
                var h = stack.Pop();
                _strict.Grant(h, pages);
                return new IcaLease(this, h, pages);
            }
        }
        Span<IcaHandle> one = stackalloc IcaHandle[1];
        AllocateBatch(pages, one);
        _strict.Grant(one[0], pages);
        return new IcaLease(this, one[0], pages);
    }

    /// <summary>Allocates a control ICA (one page) formatted for a new request.</summary>
    public IcaLease AllocateControl()
    {
        var c = Allocate(1);
        ControlIca.Initialize(c.Span, 0, Id.Value);
        return c;
    }

    /// <summary>
    /// ICAs of <paramref name="pages"/> pages the cache keeps: CachePerSize pages' worth, at
    /// least one. Bounded in pages, not ICAs: an app that receives merged frames (several
    /// pages each) frees them here, and 128 of them would hold a quarter of a small pool.
    /// </summary>
    private int CacheLimit(int pages) => Math.Max(1, _options.CachePerSize / pages);

    private void RefillLocked(int pages, Stack<IcaHandle> stack)
    {
        int refill = Math.Max(CacheLimit(pages), _options.RefillPages / pages);
        int want = Math.Clamp(_options.AllocationBatch, 1, Math.Min(refill, ControlProtocol.MaxBatch));
        Span<IcaHandle> got = stackalloc IcaHandle[want];
        int n = AllocateBatch(pages, got);
        for (int i = n - 1; i >= 0; i--) stack.Push(got[i]);
    }

    /// <summary>Asks the broker for up to into.Length ICAs of a size; at least one or throws.</summary>
    private int AllocateBatch(int pages, Span<IcaHandle> into)
    {
        int want = into.Length;
        var e = Control(ControlOp.Allocate, ((uint)want, (uint)pages), static (w, a) => w.U32(a.Item1).U32(a.Item2), out var resp, out int len);
        if (e != KernelError.None)
            throw new KernelException(e, e == KernelError.OutOfPages
                ? $"the pool has no {pages} contiguous free pages (pool of {Pool.DataPages} pages, {Pool.Counter(BrokerCounter.FreePages)} free)"
                : Refusal(e, resp, len, $"allocation of {pages}-page ICAs refused"));
        var r = new FrameReader(resp.AsSpan(0, len));
        int n = (int)r.U32();
        if (n <= 0 || n > want) throw new KernelException(KernelError.Malformed, "malformed allocation reply");
        for (int i = 0; i < n; i++) into[i] = new IcaHandle(r.U64());
        return n;
    }

    /// <summary>
    /// Gives the ICA back. It goes to this process's cache (still owned here) or, when the
    /// cache is full, back to the pool through the journal. The lease must not be used again.
    /// </summary>
    public void Free(IcaLease lease)
    {
        if (lease.IsNone) return;
        var h = lease.Handle;
        if (lease.Pages <= MaxCachedPages && !_strict.Enabled)
        {
            lock (_cacheLock)
            {
                var stack = _cache[lease.Pages];
                if (stack.Count < CacheLimit(lease.Pages))
                {
                    stack.Push(h);
                    return;
                }
            }
        }
        ThrowIfUnusable();
        Span<IcaHandle> one = [h];
        _path.Free(one);
    }

    /// <summary>
    /// Takes back an ICA this process lent (<see cref="Post"/> or <see cref="Forward"/> with
    /// lend) to a peer that died holding it: the broker gave it back rather than free it. Ask
    /// after the peer's PeerDied notice (the broker settles the dead process's ICAs before it
    /// sends that). <paramref name="lent"/> is the handle as this process held it when it lent
    /// it. Returns a lease on the ICA as it stands now; false when it is not this process's
    /// (the peer had passed it on, or given it back and it was freed since) or when it is
    /// this process's again by another way: a loan given back by the broker is exactly two
    /// transfers on (to the borrower, back to the lender), while one the borrower passed on
    /// that came back in a message (a control ICA returned directly to an app that sent it
    /// here again with its next call) is at least three on and belongs to that message.
    /// </summary>
    public bool TryTakeBack(IcaHandle lent, out IcaLease lease)
    {
        lease = default;
        var table = new OwnershipTable(Pool);
        if (table.Check(lent, out int pages) != KernelError.None) return false;
        uint oc = Volatile.Read(ref Pool.Page(lent.FirstPage).OwnerAndCount);
        if ((ushort)oc != Id.OwnerTag) return false;
        if ((ushort)(oc >> 16) != (ushort)(lent.TransferCount + 2)) return false;
        var now = lent.WithTransferCount((ushort)(oc >> 16));
        _strict.Grant(now, pages);
        lease = new IcaLease(this, now, pages);
        return true;
    }

    /// <summary>Returns every cached ICA to the pool (journaled); the table shows them free after the next commit.</summary>
    public void TrimCache()
    {
        Span<IcaHandle> batch = stackalloc IcaHandle[RingMessage.MaxJournalHandles];
        lock (_cacheLock)
        {
            for (int p = 1; p <= MaxCachedPages; p++)
            {
                var stack = _cache[p];
                while (stack.Count > 0)
                {
                    int n = 0;
                    while (n < batch.Length && stack.Count > 0) batch[n++] = stack.Pop();
                    _path.Free(batch[..n]);
                }
            }
        }
    }

    /// <summary>ICAs waiting in this process's cache (all owned by it in the table).</summary>
    public int CachedIcas
    {
        get
        {
            lock (_cacheLock)
            {
                int n = 0;
                for (int p = 1; p <= MaxCachedPages; p++) n += _cache[p].Count;
                return n;
            }
        }
    }
}
