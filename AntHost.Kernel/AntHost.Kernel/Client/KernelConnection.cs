// A process's connection to its kernel instance: the mapped pool, the control
// socket to the broker, the rings, and the ICA cache.
//
// Thread safety. Sending (Call, Post, Reply, ReplyDirect, Forward, Notify),
// allocating and freeing may be done from any thread: each channel's producer
// side has its own lock (one uncontended Monitor, ~20-40 ns), the uplink to the
// broker one more, the ICA cache one more. Receiving is done by one thread at a
// time: a thread that calls Receive or waits in Call takes the "receiver role"
// and hands replies meant for other threads' calls to them; a Call made while
// another thread holds the role waits on a monitor until its reply is handed
// over (a context switch, ~10 us here, off the single-threaded hot path). The
// control socket is serialized by its own lock; it is used only for rare
// operations.
using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using AntHost.Kernel.Interop;
using AntHost.Kernel.Ipc;
using AntHost.Kernel.Pool;
using AntHost.Kernel.Protocol;

namespace AntHost.Kernel;

/// <summary>
/// A registered process of an AntHost kernel instance. Create with <see cref="Connect"/>;
/// dispose to unregister (the broker then reclaims every ICA this process still owns).
/// </summary>
public sealed unsafe partial class KernelConnection : IDisposable
{
    private readonly Socket _socket;
    private readonly object _socketLock = new();
    private readonly FrameWriter _writer = new();
    private readonly byte[] _readBuf = new byte[ControlProtocol.MaxFrame];
    private readonly Uplink _uplink;
    private readonly ITransferPath _path;
    private readonly StrictGuard _strict;
    private readonly SpscRing _downlink;
    private readonly Doorbell _bell;
    private readonly long _spinTicks;
    private readonly long _sendTimeoutTicks;
    private readonly KernelOptions _options;
    private readonly CancellationTokenSource _brokerGone = new();
    private readonly BrokerWatch _brokerWatch;
    private int _disposed;

    public IcaPool Pool { get; }
    public ProcessId Id { get; }
    public TransferMode Mode => _path.Mode;
    public bool Strict => _strict.Enabled;
    public string ProcessName => _options.ProcessName;
    public KernelOptions Options => _options;

    private KernelConnection(KernelOptions options, IcaPool pool, Socket socket, ProcessId id, bool strict)
    {
        _options = options;
        Pool = pool;
        _socket = socket;
        Id = id;
        var l = pool.Layout;
        _downlink = new SpscRing(pool.Ring(l.DownlinkRing(id.Slot)), l.RingCapacity);
        _bell = new Doorbell(pool.Doorbell(id.Slot), pool.WakePath(id.Slot));
        _uplink = new Uplink(new SpscRing(pool.Ring(l.UplinkRing(id.Slot)), l.RingCapacity), new Doorbell(pool.BrokerDoorbell),
            () => Native.ProcessExists(pool.BrokerPid), _brokerGone.Token);
        _strict = new StrictGuard(pool, strict);
        _path = pool.Mode switch
        {
            TransferMode.Mediated => new MediatedTransferPath(_uplink, _strict),
            _ => new DirectTransferPath(_uplink, _strict),
        };
        _spinTicks = (long)(options.SpinBudget.TotalSeconds * Stopwatch.Frequency);
        _sendTimeoutTicks = (long)(options.SendTimeout.TotalSeconds * Stopwatch.Frequency);
        _endpoints = new Endpoint?[l.MaxChannels];
        _cache = new Stack<IcaHandle>[MaxCachedPages + 1];
        for (int i = 1; i <= MaxCachedPages; i++) _cache[i] = new Stack<IcaHandle>(options.CachePerSize);
        InitPending();
        // A cancelled token wakes whoever sleeps on the doorbell (no waiter sleeps in slices).
        _brokerGone.Token.UnsafeRegister(static s => ((KernelConnection)s!).Kick(), this);
        _brokerWatch = BrokerWatch.Start(socket, pool.BrokerPid, _brokerGone);
    }

    /// <summary>
    /// A connection that only maps <paramref name="pool"/>: leases made on it read and write
    /// the pool's pages, and nothing else works (no broker, no rings). For tests that drive code
    /// handling ICAs with a kernel of their own (the inet server core's simulation).
    /// </summary>
    internal KernelConnection(IcaPool pool, ProcessId id)
    {
        _options = new KernelOptions { ProcessName = "test" };
        Pool = pool;
        Id = id;
        _socket = null!;
        _uplink = null!;
        _path = null!;
        _strict = null!;
        _endpoints = [];
        _cache = [];
        _brokerWatch = null!;
    }

    /// <summary>
    /// Cancelled once the broker is gone: its control socket hung up or its process ended,
    /// seen at once by a thread that sleeps in poll(2) on both (no periodic check). Nothing is
    /// committed or reclaimed without a broker, so a server passes this to its waits and
    /// stops; the process's own Dispose does not cancel it.
    /// </summary>
    public CancellationToken BrokerGone => _brokerGone.Token;

    /// <summary>Maps the instance's pool and registers this process with its broker.</summary>
    public static KernelConnection Connect(KernelOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (!ControlProtocol.IsValidInstance(options.Instance))
            throw new KernelException(KernelError.PoolUnavailable, $"'{options.Instance}' is not a valid instance name (letters, digits, '-', '_', '.')");
        var nameBytes = Encoding.UTF8.GetByteCount(options.ProcessName);
        if (nameBytes is 0 or > ProcessEntry.NameBytes - 1)
            throw new ArgumentException($"a process name has 1..{ProcessEntry.NameBytes - 1} UTF-8 bytes", nameof(options));

        string sockPath = ControlProtocol.SocketPathFor(options.Instance);
        string poolPath = IcaPool.PathFor(options.Instance);
        var sw = Stopwatch.StartNew();
        Socket? socket = null;
        while (true)
        {
            try
            {
                socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                socket.Connect(new UnixDomainSocketEndPoint(sockPath));
                break;
            }
            catch (SocketException e)
            {
                socket?.Dispose();
                if (e.SocketErrorCode == SocketError.AccessDenied)
                    throw new KernelException(KernelError.PermissionDenied,
                        $"may not use AntHost instance '{options.Instance}' ({sockPath}: permission denied): only root and members of the instance's group may");
                if (sw.Elapsed > options.ConnectTimeout)
                    throw new KernelException(KernelError.BrokerUnavailable,
                        $"no AntHost kernel (broker) for instance '{options.Instance}' at {sockPath}: {e.SocketErrorCode}. Start it with `anthost-kernel --instance {options.Instance}`.");
                Thread.Sleep(20);
            }
        }

        IcaPool pool;
        try { pool = AttachPool(socket, options.Instance, poolPath); }
        catch (SocketException e)
        {
            socket.Dispose();
            throw new KernelException(KernelError.BrokerUnavailable, $"the broker of instance '{options.Instance}' closed the connection: {e.SocketErrorCode}");
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        bool strict = options.Strict ?? pool.StrictByDefault;
        try
        {
            var w = new FrameWriter();
            w.Begin((int)ControlOp.Register, request: true);
            w.U32((uint)((strict ? RegisterFlags.Strict : 0) | (options.Server ? RegisterFlags.Server : 0))).Str(options.ProcessName);
            socket.Send(w.Finish());
            var buf = new byte[ControlProtocol.MaxFrame];
            int status = ReadResponse(socket, buf, out int len);
            if (status != 0)
                throw new KernelException((KernelError)status, Refusal((KernelError)status, buf, len, $"the broker refused to register '{options.ProcessName}'"));
            var r = new FrameReader(buf.AsSpan(0, len));
            var id = new ProcessId(r.U32());
            return new KernelConnection(options, pool, socket, id, strict);
        }
        catch
        {
            socket.Dispose();
            pool.Dispose();
            throw;
        }
    }

    private static int ReadResponse(Socket s, byte[] buf, out int length)
    {
        Span<byte> head = stackalloc byte[8];
        ControlProtocol.ReadExactly(s, head);
        int total = (int)System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(head);
        int status = System.Buffers.Binary.BinaryPrimitives.ReadInt32LittleEndian(head[4..]);
        length = total - 4;
        if (length < 0 || length > buf.Length) throw new KernelException(KernelError.Malformed, "malformed response from the broker");
        ControlProtocol.ReadExactly(s, buf.AsSpan(0, length));
        return status;
    }

    /// <summary>One request/response on the control socket (rare operations only).</summary>
    private KernelError Control(ControlOp op, Action<FrameWriter> write, out byte[] response, out int length) =>
        Control(op, write, static (w, write) => write(w), out response, out length);

    /// <summary>
    /// As above, with the request's arguments passed as state to a static writer, so a caller
    /// on a hot path (the allocation cache's refill) allocates no closure.
    /// </summary>
    private KernelError Control<TState>(ControlOp op, TState state, Action<FrameWriter, TState> write, out byte[] response, out int length)
    {
        lock (_socketLock)
        {
            ThrowIfUnusable();
            try
            {
                _writer.Begin((int)op, request: true);
                write(_writer, state);
                _socket.Send(_writer.Finish());
                int status = ReadResponse(_socket, _readBuf, out length);
                response = _readBuf;
                return (KernelError)status;
            }
            catch (SocketException e)
            {
                throw new KernelException(IsCutOff ? KernelError.CutOff : KernelError.BrokerUnavailable,
                    IsCutOff ? "this process was cut off by the broker" : $"the broker closed the control socket ({e.SocketErrorCode})");
            }
        }
    }

    /// <summary>True when the broker cut this process off (it handed over an ICA it did not own).</summary>
    public bool IsCutOff
    {
        get
        {
            ref var p = ref Pool.Process(Id.Slot);
            return Volatile.Read(ref p.ProcessId) != Id.Value || Volatile.Read(ref p.State) != (uint)ProcessState.Alive;
        }
    }

    private void ThrowIfUnusable()
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        if (IsCutOff) throw new KernelException(KernelError.CutOff, "this process was cut off by the broker and can no longer use the kernel");
    }

    /// <summary>Registers a service name (e.g. "inet", "nic0") owned by this process.</summary>
    public uint RegisterService(string name)
    {
        CheckName(name);
        var e = Control(ControlOp.RegisterService, w => w.Str(name), out var resp, out int len);
        if (e != KernelError.None) throw new KernelException(e, Refusal(e, resp, len, $"cannot register service '{name}'"));
        return new FrameReader(resp.AsSpan(0, len)).U32();
    }

    /// <summary>Opens a channel to the process that registered <paramref name="service"/>.</summary>
    public Endpoint Open(string service)
    {
        CheckName(service);
        var e = Control(ControlOp.OpenChannel, w => w.Str(service), out var resp, out int len);
        if (e != KernelError.None)
            throw new KernelException(e, e == KernelError.UnknownService ? $"no service named '{service}' is registered" : Refusal(e, resp, len, $"cannot open '{service}'"));
        var r = new FrameReader(resp.AsSpan(0, len));
        uint channel = r.U32(); uint server = r.U32(); uint serviceId = r.U32();
        return AddEndpoint(channel, new ProcessId(server), serviceId, service, isOpener: true);
    }

    /// <summary>
    /// Closes this process's end of a channel: calls still waiting on it fail with
    /// <see cref="KernelError.PeerDied"/>, later sends throw, and the peer gets a
    /// <see cref="MessageKind.PeerDied"/> notice (word 1: closed, not dead) after everything
    /// sent before the close. The broker frees the channel's slot once both ends closed it.
    /// </summary>
    public void Close(Endpoint endpoint)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        if (endpoint.ClosedLocally) return;
        endpoint.ClosedLocally = true;
        // What already arrived on the channel is ours (the peer journaled it): take it off the
        // ring while the ring still belongs to this channel, so its ICAs are freed or delivered.
        // Only the receiver role may consume; a thread that holds it is pumping and skips
        // closed endpoints, so an ICA it did not take stays owned here until this process ends.
        if (Monitor.TryEnter(_receiveRole))
        {
            try
            {
                while (endpoint.ReceiveRing.TryRead(out var late) == RingStatus.Ok) HandleFromPeer(endpoint, late);
            }
            finally
            {
                ReleaseRole();
            }
        }
        RemoveEndpoint(endpoint);
        FailPendingOn(endpoint);
        try { Control(ControlOp.CloseChannel, endpoint.ChannelId, static (w, id) => w.U32(id), out _, out _); }
        catch (KernelException) { }
    }

    /// <summary>True when some process registered <paramref name="service"/>.</summary>
    public bool TryLookup(string service, out ProcessId owner)
    {
        CheckName(service);
        var e = Control(ControlOp.LookupService, w => w.Str(service), out var resp, out int len);
        owner = default;
        if (e != KernelError.None) return false;
        var r = new FrameReader(resp.AsSpan(0, len));
        r.U32();
        owner = new ProcessId(r.U32());
        return true;
    }

    /// <summary>
    /// Makes the broker apply every journal now (direct path) and waits for it: afterwards
    /// the ownership table is exact. Tests and tools use it; the data path never needs it.
    /// </summary>
    public void Commit()
    {
        var e = Control(ControlOp.Commit, _ => { }, out _, out _);
        if (e != KernelError.None) throw new KernelException(e, $"commit refused: {e}");
    }

    private static void CheckName(string name)
    {
        int n = Encoding.UTF8.GetByteCount(name);
        if (n is 0 or > ControlProtocol.MaxName)
            throw new ArgumentException($"a service name has 1..{ControlProtocol.MaxName} UTF-8 bytes", nameof(name));
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _brokerWatch.Dispose();
        _waitRegistration.Dispose();
        if (_wakeFd >= 0)
        {
            Native.Close(_wakeFd);
            try { File.Delete(Pool.WakePath(Id.Slot)); }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        }
        lock (_socketLock)
        {
            try
            {
                if (!IsCutOff)
                {
                    _writer.Begin((int)ControlOp.Unregister, request: true);
                    _socket.Send(_writer.Finish());
                    ReadResponse(_socket, _readBuf, out _);
                }
            }
            catch (Exception e) when (e is SocketException or KernelException or ObjectDisposedException) { }
            _socket.Dispose();
        }
        Pool.Dispose();
    }
}
