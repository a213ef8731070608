using AntHost.Inet;
using AntHost.Kernel;
using AntHost.Kernel.Pool;

namespace AntHost.Inet.Tests;

/// <summary>
/// The kernel as the inet server core sees it (<see cref="IInetKernel"/>), over a pool file of
/// its own and an ownership table it keeps: every ICA has one owner (inet, an app, the
/// driver), and every call the core makes is checked against it (freeing, posting or replying
/// with an ICA inet does not own is a violation, as is using a stale handle). Lent ICAs go
/// back to inet when their holder dies, as the broker gives them back.
/// </summary>
internal sealed class FakeKernel : IInetKernel, IDisposable
{
    public sealed class Ica
    {
        public uint Owner;
        public int Pages;
        public bool LentByInet;
        public IcaHandle Handle;
    }

    private readonly IcaPool _pool;
    private readonly KernelConnection _space;
    private readonly bool[] _used;
    private uint _generation;
    private readonly string _path;

    public FakeKernel(string path, int pages, ProcessId inet)
    {
        _path = path;
        Cleanup(path);
        _pool = IcaPool.Create(path, PoolLayout.ForDataBytes((long)pages * PoolLayout.PageSize), UnixFileMode.UserRead | UnixFileMode.UserWrite);
        _space = new KernelConnection(_pool, inet);
        _used = new bool[_pool.DataPages];
        Id = inet;
    }

    public IcaPool Pool => _pool;

    /// <summary>ICAs by first page.</summary>
    public Dictionary<uint, Ica> Icas { get; } = new();

    /// <summary>What the core did that the kernel would refuse or that breaks ownership.</summary>
    public List<string> Violations { get; } = new();

    /// <summary>Pages inet may hold at most (its allocations fail beyond: pool exhaustion).</summary>
    public int InetPageLimit { get; set; } = int.MaxValue;

    /// <summary>Calls to the driver (Post and Forward), in order, for the driver to take.</summary>
    public Queue<(IcaLease Control, DataIca[] Data, bool Forwarded, uint Id)> ToDriver { get; } = new();

    /// <summary>Replies to apps, in order: (app, request id, status, control, data).</summary>
    public Queue<(ProcessId App, uint RequestId, int Status, IcaLease Control, DataIca[] Data)> ToApps { get; } = new();

    public ProcessId Id { get; }
    public long Garbage => 0;
    public long RefusedHandles => 0;
    private uint _ids;

    public long PagesOwned() => Icas.Values.Where(i => i.Owner == Id.Value).Sum(i => (long)i.Pages);

    public int PoolPages => _pool.DataPages;
    public long FreePages => _used.AsSpan().Count(false);

    /// <summary>The fake keeps no cache: every ICA it gives is in use.</summary>
    public int CachedIcas => 0;

    public void TrimCache() { }

    public int PagesOwnedBy(ProcessId p) => Icas.Values.Where(i => i.Owner == p.Value).Sum(i => i.Pages);

    /// <summary>Forgets every ICA and call: the next seed starts with an empty pool.</summary>
    public void Reset()
    {
        Icas.Clear();
        Array.Clear(_used);
        Violations.Clear();
        ToDriver.Clear();
        ToApps.Clear();
        _pagesOwnedCached = 0;
        InetPageLimit = int.MaxValue;
        DriverAlive = false;
        var l = _pool.Layout;
        for (int i = 0; i < l.MaxChannels; i++) _pool.Channel(i) = default;
    }

    // ---- ICAs ------------------------------------------------------------------------------

    public IcaLease AllocateFor(ProcessId owner, int pages)
    {
        if (owner == Id && _pagesOwnedCached + pages > InetPageLimit) throw new KernelException(KernelError.OutOfPages, "fake pool: inet's limit");
        int first = -1;
        for (int p = 0; p + pages <= _used.Length && first < 0; p++)
        {
            int k = 0;
            while (k < pages && !_used[p + k]) k++;
            if (k == pages) first = p;
            else p += k;
        }
        if (first < 0) throw new KernelException(KernelError.OutOfPages, "fake pool: no pages");
        for (int k = 0; k < pages; k++) _used[first + k] = true;
        var h = IcaHandle.Create((uint)first, ++_generation & IcaHandle.GenerationMask, 0);
        Icas[(uint)first] = new Ica { Owner = owner.Value, Pages = pages, Handle = h };
        if (owner == Id) _pagesOwnedCached += pages;
        return new IcaLease(_space, h, pages);
    }

    private long _pagesOwnedCached;

    private void Release(Ica ica)
    {
        if (ica.Owner == Id.Value) _pagesOwnedCached -= ica.Pages;
        for (int k = 0; k < ica.Pages; k++) _used[ica.Handle.FirstPage + k] = false;
        Icas.Remove(ica.Handle.FirstPage);
    }

    /// <summary>The ICA a lease names, checked to be <paramref name="owner"/>'s at that handle; null (and a violation) otherwise.</summary>
    public Ica? Check(IcaLease lease, ProcessId owner, string what)
    {
        if (lease.IsNone)
        {
            Violations.Add($"{what}: no ICA");
            return null;
        }
        if (!Icas.TryGetValue(lease.Handle.FirstPage, out var ica) || ica.Handle != lease.Handle)
        {
            Violations.Add($"{what}: {lease.Handle} is not an ICA now (stale or freed)");
            return null;
        }
        if (ica.Owner != owner.Value)
        {
            Violations.Add($"{what}: {lease.Handle} is owned by {ica.Owner}, not {owner.Value}");
            return null;
        }
        return ica;
    }

    /// <summary>Moves an ICA to <paramref name="to"/>: a new transfer count, so the old handle is stale.</summary>
    public static readonly List<string> Trace = new();
    public static uint TraceGeneration = uint.TryParse(Environment.GetEnvironmentVariable("ANTHOST_SIM_TRACE"), out var g) ? g : 0;

    public IcaLease Transfer(IcaLease lease, ProcessId from, ProcessId to, string what, bool lent = false)
    {
        if (lease.Handle.Generation == TraceGeneration && TraceGeneration != 0) Trace.Add($"{what}: {from} -> {to} lent={lent}\n{Environment.StackTrace}");
        var ica = Check(lease, from, what);
        if (ica is null) return default;
        if (ica.Owner == Id.Value) _pagesOwnedCached -= ica.Pages;
        ica.Owner = to.Value;
        if (to == Id) _pagesOwnedCached += ica.Pages;
        ica.LentByInet = lent;
        ica.Handle = ica.Handle.NextTransfer();
        return new IcaLease(_space, ica.Handle, ica.Pages);
    }

    public void FreeOf(IcaLease lease, ProcessId owner, string what)
    {
        var ica = Check(lease, owner, what);
        if (ica is not null) Release(ica);
    }

    /// <summary>A process died: what was lent to it by inet goes back to inet, everything else it owned is freed.</summary>
    public void Reclaim(ProcessId dead)
    {
        foreach (var ica in Icas.Values.Where(i => i.Owner == dead.Value).ToList())
        {
            if (ica.LentByInet)
            {
                ica.Owner = Id.Value;
                _pagesOwnedCached += ica.Pages;
                ica.LentByInet = false;
                ica.Handle = ica.Handle.NextTransfer();
            }
            else Release(ica);
        }
    }

    // ---- IInetKernel -----------------------------------------------------------------------

    public IcaLease Allocate(int pages) => AllocateFor(Id, pages);

    public IcaLease AllocateControl()
    {
        var c = Allocate(1);
        AntHost.Kernel.Ipc.ControlIca.Initialize(c.Span, 0, Id.Value);
        return c;
    }

    public void Free(IcaLease lease)
    {
        if (lease.Handle.Generation == TraceGeneration && TraceGeneration != 0) Trace.Add($"inet frees\n{Environment.StackTrace}");
        if (lease.IsNone) return;
        FreeOf(lease, Id, "free");
    }

    public void FreeMessage(in Message m)
    {
        if (!m.Control.IsNone) Free(m.Control);
        for (int i = 0; i < m.DataCount; i++) Free(m.GetData(i).Ica);
    }

    public bool TryTakeBack(IcaHandle lent, out IcaLease lease)
    {
        lease = default;
        if (!Icas.TryGetValue(lent.FirstPage, out var ica) || ica.Owner != Id.Value || ica.Handle.Generation != lent.Generation) return false;
        lease = new IcaLease(_space, ica.Handle, ica.Pages);
        return true;
    }

    public ProcessId Driver { get; set; }

    public bool DriverAlive { get; set; }

    public uint Post(Endpoint endpoint, IcaLease control, ushort opcode, ReadOnlySpan<DataIca> data, ushort traceStage, bool lend) =>
        ToDriverCall(endpoint, control, data, lend, forwarded: false);

    public uint Forward(Endpoint next, IcaLease control, ushort opcode, ReadOnlySpan<DataIca> data, ushort traceStage, bool lend) =>
        ToDriverCall(next, control, data, lend, forwarded: true);

    private uint ToDriverCall(Endpoint ep, IcaLease control, ReadOnlySpan<DataIca> data, bool lend, bool forwarded)
    {
        if (ep.Peer != Driver || !DriverAlive) throw new KernelException(KernelError.PeerDied, "fake: the driver is gone") { HandlesKept = true };
        var c = Transfer(control, Id, Driver, "post control", lend);
        var d = new DataIca[data.Length];
        for (int i = 0; i < data.Length; i++) d[i] = new DataIca(Transfer(data[i].Ica, Id, Driver, "post data", lend), data[i].Length);
        uint id = ++_ids;
        ToDriver.Enqueue((c, d, forwarded, id));
        return id;
    }

    /// <summary>Apps whose ring is full now: a reply to them does not go (inet must park it).</summary>
    public HashSet<ProcessId> FullRings { get; } = new();

    public bool TryReply(in Message request, IcaLease control, int status, ReadOnlySpan<DataIca> data, bool quiet = false)
    {
        if (request.Endpoint is not { IsOpen: true }) throw new KernelException(KernelError.PeerDied, "fake: the app is gone") { HandlesKept = true };
        if (FullRings.Contains(request.Source)) return false;
        var c = control.IsNone ? default : Transfer(control, Id, request.Source, "reply control");
        var d = new DataIca[data.Length];
        for (int i = 0; i < data.Length; i++) d[i] = new DataIca(Transfer(data[i].Ica, Id, request.Source, "reply data"), data[i].Length);
        ToApps.Enqueue((request.Source, request.RequestId, status, c, d));
        return true;
    }

    public void Dispose()
    {
        _pool.Dispose();
        Cleanup(_path);
    }

    private static void Cleanup(string path)
    {
        File.Delete(path);
        File.Delete(IcaPool.TablesPathOf(path));
    }
}
