// The broker: the only writer of the pool's META region (header, process,
// service and channel tables, ownership table), the only producer of every
// process's downlink ring, and the only consumer of every uplink. Everything it
// changes in shared memory it changes under one lock (_gate); the control
// socket's thread and the pump thread take it in turn. Rare operations (socket)
// and the pump's batches are both short, so one lock is enough and keeps the
// reasoning about the table simple.
using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using AntHost.Kernel;
using AntHost.Kernel.Interop;
using AntHost.Kernel.Ipc;
using AntHost.Kernel.Pool;
using AntHost.Kernel.Protocol;
using Microsoft.Extensions.Logging;

namespace AntHost.Broker;

/// <summary>A registered process as the broker sees it.</summary>
internal sealed class ProcState
{
    public required ProcessId Id { get; init; }
    public required int Pid { get; init; }
    public required uint Uid { get; init; }
    /// <summary>Registered as a server (root only): no per-app limits, may use the servers' reserve.</summary>
    public required bool IsServer { get; init; }
    public required string Name { get; init; }
    public required SpscRing Uplink { get; init; }
    public required SpscRing Downlink { get; init; }
    public required Doorbell Bell { get; init; }
    public Socket? Socket { get; set; }
    public bool CutOff { get; set; }
    public bool Dead { get; set; }
    /// <summary>Pass number at which the head of the uplink was first deferred (0: not deferred).</summary>
    public long BlockedSince { get; set; }
    public long BlockedSinceTicks { get; set; }
    /// <summary>Index of the next handle to apply in the uplink's head record.</summary>
    public int RecordProgress { get; set; }
    public Queue<RingMessage> PendingDown { get; } = new();
    /// <summary>Channels this process opened and has not closed (an app's limit counts them).</summary>
    public int OpenedChannels { get; set; }
    public int Services { get; set; }
}

internal sealed class ChanState
{
    public required uint Id { get; init; }
    public required ProcessId Client { get; init; }
    public required ProcessId Server { get; init; }
    public bool ClientGone { get; set; }
    public bool ServerGone { get; set; }
}

internal sealed unsafe partial class KernelBroker : IDisposable
{
    private readonly object _gate = new();
    private readonly BrokerOptions _options;
    private readonly ILogger _log;
    private readonly ProcState?[] _procs;
    private readonly ushort[] _procIncarnation;
    private readonly ChanState?[] _chans;
    private readonly ushort[] _chanIncarnation;
    private readonly string?[] _services;
    private readonly uint[] _reclaimedGeneration;
    private readonly IBrokerTransferRules _rules;
    private readonly Doorbell _bell;
    private PageAllocator _allocator;
    private long _pass = 1;
    // Per process slot: pages and ICAs the table gives it (kept as the table changes, under _gate).
    private readonly int[] _ownedPages;
    private readonly int[] _ownedIcas;
    private readonly Dictionary<uint, int> _registrationsByUid = new();

    public IcaPool Pool { get; }
    public PoolLayout Layout { get; }
    public string PoolPath { get; }
    public string TablesPath => IcaPool.TablesPathOf(PoolPath);
    public string SocketPath { get; }
    /// <summary>The group that may use the instance besides root.</summary>
    public uint Gid { get; }
    public string GroupName => _options.Group;
    public int ConnectionsPerUid => _options.ConnectionsPerUid;
    /// <summary>The tables file opened read-only: what every process is handed (SCM_RIGHTS).</summary>
    public Microsoft.Win32.SafeHandles.SafeFileHandle TablesReadOnly { get; }
    public int AppPages { get; }
    public int ServerReserve { get; }

    private KernelBroker(BrokerOptions options, ILogger log, IcaPool pool, string poolPath, string socketPath, uint gid)
    {
        _options = options;
        _log = log;
        Pool = pool;
        Layout = pool.Layout;
        PoolPath = poolPath;
        SocketPath = socketPath;
        _procs = new ProcState?[Layout.MaxProcesses];
        _procIncarnation = new ushort[Layout.MaxProcesses];
        _chans = new ChanState?[Layout.MaxChannels];
        _chanIncarnation = new ushort[Layout.MaxChannels];
        _services = new string?[Layout.MaxServices];
        _reclaimedGeneration = new uint[Layout.DataPages];
        _allocator = new PageAllocator(pool);
        _bell = new Doorbell(pool.BrokerDoorbell);
        _rules = options.Transfer == TransferMode.Mediated ? new MediatedRules() : new DirectRules();
        _ownedPages = new int[Layout.MaxProcesses];
        _ownedIcas = new int[Layout.MaxProcesses];
        Gid = gid;
        TablesReadOnly = File.OpenHandle(TablesPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        AppPages = options.AppPages > 0 ? options.AppPages : Math.Max(1, Layout.DataPages / 4);
        ServerReserve = options.ServerReserve >= 0 ? Math.Min(options.ServerReserve, Layout.DataPages) : Layout.DataPages / 8;
    }

    /// <summary>
    /// Creates the instance's pool, cleaning up what a dead broker of the same instance left,
    /// and refusing when a live one runs.
    /// </summary>
    public static KernelBroker Create(BrokerOptions options, ILogger log)
    {
        if (!ControlProtocol.IsValidInstance(options.Instance))
            throw new BrokerStartException($"'{options.Instance}' is not a valid instance name (letters, digits, '-', '_', '.')");
        var layout = PoolLayout.ForDataBytes(options.PoolBytes, options.MaxProcesses, 64, options.MaxChannels, options.RingCapacity);
        string poolPath = IcaPool.PathFor(options.Instance);
        string sockPath = ControlProtocol.SocketPathFor(options.Instance);
        if (!UnixAccess.TryResolveGroup(options.Group, out uint gid))
            throw new BrokerStartException($"--group: there is no group '{options.Group}' (see /etc/group)");
        Directory.CreateDirectory(ControlProtocol.SocketDirectory);
        CleanStale(options.Instance, poolPath, sockPath, log);

        // Root and the instance's group read and write the rings and pages; others nothing.
        var pool = IcaPool.Create(poolPath, layout, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite);
        try { UnixAccess.SetGroup(poolPath, gid); }
        catch (IOException e)
        {
            pool.Dispose();
            File.Delete(poolPath);
            File.Delete(IcaPool.TablesPathOf(poolPath));
            throw new BrokerStartException($"cannot give the pool to group '{options.Group}': {e.Message}");
        }
        ref var h = ref pool.Header;
        h.Magic = PoolHeader.MagicValue;
        h.Version = PoolHeader.CurrentVersion;
        h.PageSize = PoolLayout.PageSize;
        h.DataPages = layout.DataPages;
        h.MaxProcesses = layout.MaxProcesses;
        h.MaxServices = layout.MaxServices;
        h.MaxChannels = layout.MaxChannels;
        h.RingCapacity = layout.RingCapacity;
        h.TransferMode = (uint)options.Transfer;
        h.Strict = options.Strict ? 1u : 0u;
        h.BrokerPid = Environment.ProcessId;
        h.JournalCommitMicros = options.CommitIntervalMs * 1000;
        for (uint p = 0; p < (uint)layout.DataPages; p++) pool.Page(p).Generation = 0;
        pool.CounterRef(BrokerCounter.FreePages) = layout.DataPages;
        var broker = new KernelBroker(options, log, pool, poolPath, sockPath, gid);
        Volatile.Write(ref h.Ready, 1);
        return broker;
    }

    private static void CleanStale(string instance, string poolPath, string sockPath, ILogger log)
    {
        if (File.Exists(sockPath))
        {
            using var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            bool live;
            try { probe.Connect(new UnixDomainSocketEndPoint(sockPath)); live = true; }
            catch (SocketException) { live = false; }
            if (live)
                throw new BrokerStartException($"a broker for instance '{instance}' is already running (its socket {sockPath} answers); stop it first or use another --instance");
            log.LogWarning("removing stale socket {Path} left by a dead broker", sockPath);
            File.Delete(sockPath);
        }
        string tablesPath = IcaPool.TablesPathOf(poolPath);
        if (File.Exists(poolPath) || File.Exists(tablesPath))
        {
            int pid = 0;
            try
            {
                using var fs = new FileStream(tablesPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
                Span<byte> head = stackalloc byte[64];
                if (fs.Read(head) == 64) pid = BitConverter.ToInt32(head[44..]);
            }
            catch (IOException) { }
            if (pid > 0 && pid != Environment.ProcessId && Native.ProcessExists(pid) && IsBroker(pid))
                throw new BrokerStartException($"a broker for instance '{instance}' (pid {pid}) still holds {poolPath}; stop it first");
            log.LogWarning("removing stale pool {Path} left by a dead broker (pid {Pid})", poolPath, pid);
            File.Delete(poolPath);
            File.Delete(tablesPath);
        }
    }

    private static bool IsBroker(int pid)
    {
        try { return File.ReadAllText($"/proc/{pid}/cmdline").Contains("anthost-kernel", StringComparison.Ordinal); }
        catch (IOException) { return false; }
        catch (UnauthorizedAccessException) { return true; }
    }

    private void Count(BrokerCounter c, long by = 1) => Interlocked.Add(ref Pool.CounterRef(c), by);

    public long Counter(BrokerCounter c) => Pool.Counter(c);

    // ---- processes -------------------------------------------------------------

    public KernelError Register(Socket socket, PeerCredentials peer, string name, RegisterFlags flags, out ProcState? proc, out string? why)
    {
        proc = null;
        why = null;
        int pid = peer.Pid;
        bool strict = (flags & RegisterFlags.Strict) != 0, server = (flags & RegisterFlags.Server) != 0;
        if (server && peer.Uid != 0)
        {
            Count(BrokerCounter.PermissionDenied);
            why = $"only root may register as a server (this process runs as uid {peer.Uid})";
            return KernelError.PermissionDenied;
        }
        lock (_gate)
        {
            if (peer.Uid != 0 && _registrationsByUid.GetValueOrDefault(peer.Uid) >= _options.RegistrationsPerUid)
            {
                Count(BrokerCounter.QuotaRegistrations);
                why = $"uid {peer.Uid} has {_options.RegistrationsPerUid} processes registered, its limit (--registrations-per-uid {_options.RegistrationsPerUid})";
                return KernelError.QuotaExceeded;
            }
            int slot = -1;
            for (int i = 0; i < _procs.Length; i++)
                if (_procs[i] is null) { slot = i; break; }
            if (slot < 0) return KernelError.OutOfSlots;
            ushort inc = ++_procIncarnation[slot];
            if (inc == 0) inc = _procIncarnation[slot] = 1;
            var id = ProcessId.Create(slot, inc);
            var up = new SpscRing(Pool.Ring(Layout.UplinkRing(slot)), Layout.RingCapacity);
            var down = new SpscRing(Pool.Ring(Layout.DownlinkRing(slot)), Layout.RingCapacity);
            up.Reset();
            down.Reset();
            int* bell = Pool.Doorbell(slot);
            bell[0] = 0;
            bell[1] = 0;
            ref var e = ref Pool.Process(slot);
            e.Pid = pid;
            e.ProcessId = id.Value;
            e.Flags = (strict ? ProcessEntry.FlagStrict : 0u) | (server ? ProcessEntry.FlagServer : 0u);
            e.Uid = peer.Uid;
            _ownedPages[slot] = 0;
            _ownedIcas[slot] = 0;
            if (peer.Uid != 0) _registrationsByUid[peer.Uid] = _registrationsByUid.GetValueOrDefault(peer.Uid) + 1;
            var bytes = Encoding.UTF8.GetBytes(name);
            int n = Math.Min(bytes.Length, ProcessEntry.NameBytes - 1);
            fixed (byte* dst = e.Name) bytes.AsSpan(0, n).CopyTo(new Span<byte>(dst, ProcessEntry.NameBytes));
            e.NameLength = n;
            Volatile.Write(ref e.State, (uint)ProcessState.Alive);
            proc = new ProcState { Id = id, Pid = pid, Uid = peer.Uid, IsServer = server, Name = name, Uplink = up, Downlink = down, Bell = new Doorbell(bell, Pool.WakePath(slot)), Socket = socket };
            _procs[slot] = proc;
            _log.LogInformation("registered {Name} (pid {Pid}, uid {Uid}{Server}) as {Id}", name, pid, peer.Uid, server ? ", server" : "", id);
            return KernelError.None;
        }
    }

    /// <summary>The process is gone (socket closed, unregistered or cut off): reclaim all it had.</summary>
    public void ProcessGone(ProcState proc, string why)
    {
        lock (_gate)
        {
            if (proc.Dead) return;
            // Everything the process published was journaled first: apply it all before reclaiming.
            DrainAllLocked(finalFor: proc);
            proc.Dead = true;
            int slot = proc.Id.Slot;
            ref var e = ref Pool.Process(slot);
            Volatile.Write(ref e.State, (uint)ProcessState.Dead);
            int reclaimed = ReclaimOwnedBy(proc.Id);
            for (int c = 0; c < _chans.Length; c++)
            {
                var ch = _chans[c];
                if (ch is null) continue;
                bool isClient = ch.Client == proc.Id, isServer = ch.Server == proc.Id;
                if (!isClient && !isServer) continue;
                if (isClient) ch.ClientGone = true;
                if (isServer) ch.ServerGone = true;
                Volatile.Write(ref Pool.Channel(c).State, (uint)ChannelState.Closed);
                var other = isClient ? ch.Server : ch.Client;
                bool otherGone = isClient ? ch.ServerGone : ch.ClientGone;
                if (!otherGone && Live(other) is { } o)
                    SendDown(o, new RingMessage { Kind = MessageKind.PeerDied, Channel = ch.Id, Source = proc.Id.Value });
                else FreeChannel(c);
            }
            for (int s = 0; s < _services.Length; s++)
            {
                if (_services[s] is null || Pool.Service(s).OwnerProcessId != proc.Id.Value) continue;
                Volatile.Write(ref Pool.Service(s).State, 0u);
                _services[s] = null;
            }
            _procs[slot] = null;
            if (proc.Uid != 0 && _registrationsByUid.TryGetValue(proc.Uid, out int regs))
            {
                if (regs <= 1) _registrationsByUid.Remove(proc.Uid);
                else _registrationsByUid[proc.Uid] = regs - 1;
            }
            e.ProcessId = 0;
            e.Pid = 0;
            Volatile.Write(ref e.State, (uint)ProcessState.Free);
            // A process killed while it slept in poll leaves its wake socket behind.
            try { File.Delete(Pool.WakePath(slot)); }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
            Count(BrokerCounter.Deaths);
            _log.LogInformation("{Name} {Id} (pid {Pid}) gone ({Why}); reclaimed {Pages} pages", proc.Name, proc.Id, proc.Pid, why, reclaimed);
        }
    }

    private ProcState? Live(ProcessId id)
    {
        int s = id.Slot;
        if ((uint)s >= (uint)_procs.Length) return null;
        var p = _procs[s];
        return p is not null && p.Id == id && !p.Dead ? p : null;
    }

    private void CutOffLocked(ProcState proc, string why)
    {
        if (proc.CutOff || proc.Dead) return;
        proc.CutOff = true;
        Count(BrokerCounter.CutOffs);
        Volatile.Write(ref Pool.Process(proc.Id.Slot).State, (uint)ProcessState.CutOff);
        _log.LogWarning("cutting off {Name} {Id} (pid {Pid}): {Why}", proc.Name, proc.Id, proc.Pid, why);
        // Its pages are reclaimed when it is gone: with SIGKILL that is when the kernel closes
        // its socket, which happens after its memory is unmapped, so it can no longer write them.
        bool killed = _options.KillOnFault && proc.Pid > 1 && proc.Pid != Environment.ProcessId && Native.SendKill(proc.Pid);
        if (!killed)
        {
            try { proc.Socket?.Shutdown(SocketShutdown.Both); }
            catch (Exception e) when (e is SocketException or ObjectDisposedException) { }
        }
    }

    // ---- pages -----------------------------------------------------------------

    /// <summary>
    /// Allocates up to <paramref name="count"/> ICAs; an app gets as many as its limits and the
    /// servers' reserve allow, and when that is none a refusal naming the limit.
    /// </summary>
    public KernelError Allocate(ProcState proc, int count, int pages, Span<IcaHandle> into, out int got, out string? why)
    {
        got = 0;
        why = null;
        if (count <= 0 || count > into.Length || pages <= 0 || pages > Layout.DataPages) return KernelError.TooLarge;
        lock (_gate)
        {
            if (proc.Dead || proc.CutOff) return KernelError.CutOff;
            int slot = proc.Id.Slot;
            BrokerCounter limit = BrokerCounter.Count;
            bool committed = false;
            for (; got < count; got++)
            {
                if (!proc.IsServer && AppLimitReached(slot, pages) is var reached and not BrokerCounter.Count)
                {
                    if (!committed)
                    {
                        // What the app freed or handed on may wait in journals: count it first.
                        committed = true;
                        PassesLocked(out _);
                        got--;
                        continue;
                    }
                    limit = reached;
                    break;
                }
                long first = _allocator.Find(pages);
                if (first < 0 && !committed)
                {
                    // Pages freed by journal records the broker has not committed yet are free
                    // all the same: commit now rather than refuse.
                    committed = true;
                    PassesLocked(out _);
                    first = _allocator.Find(pages);
                }
                if (first < 0) break;
                into[got] = AllocateAt((uint)first, pages, proc.Id);
            }
            if (got > 0) return KernelError.None;
            if (limit == BrokerCounter.Count) return KernelError.OutOfPages;
            Count(limit);
            why = limit switch
            {
                BrokerCounter.QuotaPages => $"this app holds {_ownedPages[slot]} pages; one more {pages}-page ICA would pass its limit of {AppPages} pages (--app-pages)",
                BrokerCounter.QuotaIcas => $"this app holds {_ownedIcas[slot]} ICAs, its limit (--app-icas {_options.AppIcas})",
                _ => $"the last {ServerReserve} free pages are the servers' reserve (--server-reserve); {Pool.Counter(BrokerCounter.FreePages)} pages are free",
            };
            return KernelError.QuotaExceeded;
        }
    }

    /// <summary>The app limit one more ICA of <paramref name="pages"/> would pass (Count: none).</summary>
    private BrokerCounter AppLimitReached(int slot, int pages)
    {
        if (_ownedPages[slot] + pages > AppPages) return BrokerCounter.QuotaPages;
        if (_ownedIcas[slot] + 1 > _options.AppIcas) return BrokerCounter.QuotaIcas;
        if (Pool.Counter(BrokerCounter.FreePages) - pages < ServerReserve) return BrokerCounter.QuotaReserve;
        return BrokerCounter.Count;
    }

    /// <summary>Keeps the per-slot counts of pages and ICAs as the table changes hands.</summary>
    private void Account(ushort ownerTag, int pages, int icas)
    {
        int slot = ownerTag - 1;
        if ((uint)slot >= (uint)_ownedPages.Length) return;
        _ownedPages[slot] += pages;
        _ownedIcas[slot] += icas;
    }

    private IcaHandle AllocateAt(uint first, int pages, ProcessId owner)
    {
        ref var head = ref Pool.Page(first);
        uint gen = (head.Generation + 1) & IcaHandle.GenerationMask;
        if (gen == 0) gen = 1;
        for (uint p = first + 1; p < first + (uint)pages; p++)
        {
            ref var t = ref Pool.Page(p);
            t.Owner = owner.OwnerTag;
            t.PagesOrHead = first;
            t.TransferCount = 0;
            Volatile.Write(ref t.Flags, OwnershipEntry.FlagAllocated);
        }
        head.Generation = gen;
        head.OwnerAndCount = OwnershipEntry.Pack(owner.OwnerTag, 0);
        head.PagesOrHead = (uint)pages;
        head.Lender = 0;
        Volatile.Write(ref head.Flags, (ushort)(OwnershipEntry.FlagAllocated | OwnershipEntry.FlagHead));
        Count(BrokerCounter.FreePages, -pages);
        Count(BrokerCounter.Allocations);
        Account(owner.OwnerTag, pages, 1);
        return IcaHandle.Create(first, gen, 0);
    }

    private void FreeAt(uint first, bool reclaimedFromDead)
    {
        ref var head = ref Pool.Page(first);
        uint pages = head.PagesOrHead;
        Account(head.Owner, -(int)pages, -1);
        Volatile.Write(ref head.Flags, (ushort)0);
        head.Owner = 0;
        head.Lender = 0;
        for (uint p = first + 1; p < first + pages; p++)
        {
            ref var t = ref Pool.Page(p);
            Volatile.Write(ref t.Flags, (ushort)0);
            t.Owner = 0;
            t.PagesOrHead = 0;
        }
        _reclaimedGeneration[first] = reclaimedFromDead ? head.Generation : 0;
        Count(BrokerCounter.FreePages, pages);
        if (reclaimedFromDead) Count(BrokerCounter.PagesReclaimed, pages);
        else Count(BrokerCounter.Frees);
    }

    /// <summary>Gives the ICA to <paramref name="to"/>; <paramref name="lender"/> (0: none) gets it back if <paramref name="to"/> dies holding it.</summary>
    private void Reassign(uint first, ProcessId to, ushort lender)
    {
        ref var head = ref Pool.Page(first);
        head.Lender = lender;
        uint pages = head.PagesOrHead;
        Account(head.Owner, -(int)pages, -1);
        Account(to.OwnerTag, (int)pages, 1);
        for (uint p = first + 1; p < first + pages; p++) Pool.Page(p).Owner = to.OwnerTag;
        // One store: a receiver checking the handle sees the old holder or the new, never half.
        Volatile.Write(ref head.OwnerAndCount, OwnershipEntry.Pack(to.OwnerTag, (ushort)(head.TransferCount + 1)));
        Count(BrokerCounter.TransfersCommitted);
    }

    /// <summary>
    /// Frees every ICA the dead process owned, except those lent to it by a live process,
    /// which go back to their lender (it finds them its own again in the table, with the
    /// transfer count one up). Loans the dead process had made end: their borrowers keep them.
    /// </summary>
    private int ReclaimOwnedBy(ProcessId id)
    {
        int pages = 0;
        for (uint p = 0; p < (uint)Layout.DataPages; p++)
        {
            ref var e = ref Pool.Page(p);
            if ((e.Flags & OwnershipEntry.FlagHead) == 0) continue;
            if (e.Owner == id.OwnerTag)
            {
                if (e.Lender != 0 && LiveByTag(e.Lender) is { CutOff: false } lender)
                {
                    Count(BrokerCounter.LoansReturned, e.PagesOrHead);
                    Reassign(p, lender.Id, lender: 0);
                    continue;
                }
                pages += (int)e.PagesOrHead;
                FreeAt(p, reclaimedFromDead: true);
            }
            else if (e.Lender == id.OwnerTag) e.Lender = 0;
        }
        return pages;
    }

    private ProcState? LiveByTag(ushort ownerTag)
    {
        int slot = ownerTag - 1;
        if ((uint)slot >= (uint)_procs.Length) return null;
        return _procs[slot] is { Dead: false } p ? p : null;
    }

    /// <summary>What the table says of a handle a process hands over.</summary>
    internal enum Verdict { Owned, Future, Invalid, ReclaimedFromDead }

    internal Verdict Judge(ProcessId holder, IcaHandle h)
    {
        uint page = h.FirstPage;
        if (h.IsNone || page >= (uint)Layout.DataPages) return Verdict.Invalid;
        ref var e = ref Pool.Page(page);
        bool head = (e.Flags & (OwnershipEntry.FlagHead | OwnershipEntry.FlagAllocated)) == (OwnershipEntry.FlagHead | OwnershipEntry.FlagAllocated);
        if (!head || (e.Generation & IcaHandle.GenerationMask) != h.Generation)
            return _reclaimedGeneration[page] != 0 && (_reclaimedGeneration[page] & IcaHandle.GenerationMask) == h.Generation
                ? Verdict.ReclaimedFromDead : Verdict.Invalid;
        if (e.Owner == holder.OwnerTag && e.TransferCount == h.TransferCount) return Verdict.Owned;
        // Handed to the holder by a transfer still waiting in another journal.
        if (e.Owner != holder.OwnerTag && (short)(h.TransferCount - e.TransferCount) > 0) return Verdict.Future;
        return Verdict.Invalid;
    }

    // ---- services and channels ------------------------------------------------

    public KernelError RegisterService(ProcState proc, string name, out uint serviceId, out string? why)
    {
        serviceId = 0;
        why = null;
        lock (_gate)
        {
            if (proc.Dead || proc.CutOff) return KernelError.CutOff;
            if (!proc.IsServer && proc.Services >= _options.AppServices)
            {
                Count(BrokerCounter.QuotaServices);
                why = $"this app has registered {proc.Services} services, its limit (--app-services {_options.AppServices})";
                return KernelError.QuotaExceeded;
            }
            int free = -1;
            for (int s = 0; s < _services.Length; s++)
            {
                if (_services[s] == name) return KernelError.ServiceNameTaken;
                if (_services[s] is null && free < 0) free = s;
            }
            if (free < 0) return KernelError.OutOfSlots;
            _services[free] = name;
            ref var e = ref Pool.Service(free);
            e.OwnerProcessId = proc.Id.Value;
            var bytes = Encoding.UTF8.GetBytes(name);
            fixed (byte* dst = e.Name) bytes.AsSpan().CopyTo(new Span<byte>(dst, ServiceEntry.NameBytes));
            e.NameLength = bytes.Length;
            Volatile.Write(ref e.State, 1u);
            serviceId = (uint)free + 1;
            proc.Services++;
            _log.LogInformation("{Name} {Id} registered service '{Service}'", proc.Name, proc.Id, name);
            return KernelError.None;
        }
    }

    public KernelError LookupService(string name, out uint serviceId, out ProcessId owner)
    {
        lock (_gate)
        {
            for (int s = 0; s < _services.Length; s++)
            {
                if (_services[s] != name) continue;
                serviceId = (uint)s + 1;
                owner = new ProcessId(Pool.Service(s).OwnerProcessId);
                return KernelError.None;
            }
        }
        serviceId = 0;
        owner = default;
        Count(BrokerCounter.UnknownServices);
        return KernelError.UnknownService;
    }

    public KernelError OpenChannel(ProcState proc, ProcessId server, uint serviceId, out uint channelId, out string? why)
    {
        channelId = 0;
        why = null;
        lock (_gate)
        {
            if (proc.Dead || proc.CutOff) return KernelError.CutOff;
            if (!proc.IsServer && proc.OpenedChannels >= _options.AppChannels)
            {
                Count(BrokerCounter.QuotaChannels);
                why = $"this app has {proc.OpenedChannels} channels open, its limit (--app-channels {_options.AppChannels}); close one first";
                return KernelError.QuotaExceeded;
            }
            var target = Live(server);
            if (target is null || target.CutOff) return KernelError.NotRegistered;
            if (target == proc) return KernelError.Malformed;
            int index = -1;
            for (int c = 0; c < _chans.Length; c++)
                if (_chans[c] is null) { index = c; break; }
            if (index < 0) return KernelError.OutOfSlots;
            ushort inc = ++_chanIncarnation[index];
            if (inc == 0) inc = _chanIncarnation[index] = 1;
            channelId = ((uint)inc << 16) | (uint)(index + 1);
            new SpscRing(Pool.Ring(Layout.ChannelRingToServer(index)), Layout.RingCapacity).Reset();
            new SpscRing(Pool.Ring(Layout.ChannelRingToClient(index)), Layout.RingCapacity).Reset();
            ref var e = ref Pool.Channel(index);
            e.ChannelId = channelId;
            e.ClientProcessId = proc.Id.Value;
            e.ServerProcessId = server.Value;
            e.ServiceId = serviceId;
            Volatile.Write(ref e.State, (uint)ChannelState.Open);
            _chans[index] = new ChanState { Id = channelId, Client = proc.Id, Server = server };
            proc.OpenedChannels++;
            SendDown(target, new RingMessage { Kind = MessageKind.ChannelOpened, Channel = channelId, Source = proc.Id.Value });
            return KernelError.None;
        }
    }

    public KernelError CloseChannel(ProcState proc, uint channelId)
    {
        lock (_gate)
        {
            int index = (int)(channelId & 0xFFFF) - 1;
            if ((uint)index >= (uint)_chans.Length || _chans[index] is not { } ch || ch.Id != channelId) return KernelError.UnknownChannel;
            bool isClient = ch.Client == proc.Id, isServer = ch.Server == proc.Id;
            if (!isClient && !isServer) return KernelError.UnknownChannel;
            if (isClient && !ch.ClientGone) proc.OpenedChannels--;
            if (isClient) ch.ClientGone = true; else ch.ServerGone = true;
            bool wasOpen = Pool.Channel(index).State == (uint)ChannelState.Open;
            Volatile.Write(ref Pool.Channel(index).State, (uint)ChannelState.Closed);
            var other = isClient ? ch.Server : ch.Client;
            if ((isClient ? ch.ServerGone : ch.ClientGone) || Live(other) is null) FreeChannel(index);
            else if (wasOpen && Live(other) is { } o)
                SendDown(o, new RingMessage { Kind = MessageKind.PeerDied, Channel = ch.Id, Source = proc.Id.Value, Word = 1 });
            return KernelError.None;
        }
    }

    private void FreeChannel(int index)
    {
        _chans[index] = null;
        ref var e = ref Pool.Channel(index);
        Volatile.Write(ref e.State, (uint)ChannelState.Free);
        e.ChannelId = 0;
        e.ClientProcessId = 0;
        e.ServerProcessId = 0;
    }

    /// <summary>Channel lookup for a message on <paramref name="from"/>'s uplink; returns the other end.</summary>
    internal ProcState? ChannelPeer(ProcState from, uint channelId)
    {
        int index = (int)(channelId & 0xFFFF) - 1;
        if ((uint)index >= (uint)_chans.Length || _chans[index] is not { } ch || ch.Id != channelId) return null;
        if (Pool.Channel(index).State != (uint)ChannelState.Open) return null;
        if (ch.Client == from.Id) return Live(ch.Server);
        if (ch.Server == from.Id) return Live(ch.Client);
        return null;
    }

    // ---- downlinks ------------------------------------------------------------

    /// <summary>Writes a notice on a process's downlink, queueing it in the broker while the ring is full.</summary>
    private void SendDown(ProcState to, in RingMessage m)
    {
        if (to.PendingDown.Count == 0 && to.Downlink.TryWrite(m) == RingStatus.Ok)
        {
            to.Bell.Ring();
            return;
        }
        if (to.PendingDown.Count < 4096) to.PendingDown.Enqueue(m);
    }

    private bool FlushPendingDown()
    {
        bool any = false;
        foreach (var p in _procs)
        {
            if (p is null || p.PendingDown.Count == 0) continue;
            bool wrote = false;
            while (p.PendingDown.TryPeek(out var m) && p.Downlink.TryWrite(m) == RingStatus.Ok)
            {
                p.PendingDown.Dequeue();
                wrote = true;
            }
            if (wrote) p.Bell.Ring();
            any |= p.PendingDown.Count > 0;
        }
        return any;
    }

    /// <summary>Forward of a mediated message: only when nothing is queued ahead of it.</summary>
    internal bool TryForward(ProcState to, in RingMessage m)
    {
        if (to.PendingDown.Count > 0 || to.Downlink.TryWrite(m) != RingStatus.Ok) return false;
        to.Bell.Ring();
        return true;
    }

    internal static bool HasRoomDown(ProcState to) => to.PendingDown.Count == 0 && to.Downlink.Count is >= 0 and var c && c < to.Downlink.Capacity;

    internal void Refuse(ProcState sender, in RingMessage m, KernelError why)
    {
        Count(BrokerCounter.Refused);
        SendDown(sender, new RingMessage { Kind = MessageKind.Refused, RequestId = m.RequestId, Word = (int)why, Channel = m.Channel, Source = sender.Id.Value });
    }

    /// <summary>What the table says of a handle's first page, for messages.</summary>
    internal string Describe(IcaHandle h)
    {
        if (h.FirstPage >= (uint)Layout.DataPages) return "page out of range";
        ref var e = ref Pool.Page(h.FirstPage);
        return $"table: owner slot {e.Owner - 1}, generation {e.Generation}, transfer count {e.TransferCount}, flags {e.Flags}";
    }

    internal void CountBad() => Count(BrokerCounter.BadMessages);
    internal void CountForwarded() => Count(BrokerCounter.MediatedForwarded);
    internal ProcState? LiveProcess(ProcessId id) => Live(id);
    internal void ApplyTransfer(IcaHandle h, ProcessId from, ProcessId to, bool lend) => Reassign(h.FirstPage, to, lend ? from.OwnerTag : (ushort)0);
    internal void ApplyFree(IcaHandle h, bool reclaimed) => FreeAt(h.FirstPage, reclaimed);
    internal void CutOff(ProcState p, string why) => CutOffLocked(p, why);

    public void Dispose()
    {
        TablesReadOnly.Dispose();
        Pool.Dispose();
    }
}

/// <summary>A broker that cannot start, with a message for the user.</summary>
public sealed class BrokerStartException : Exception
{
    public BrokerStartException(string message) : base(message) { }
    public BrokerStartException() { }
    public BrokerStartException(string message, Exception inner) : base(message, inner) { }
}
