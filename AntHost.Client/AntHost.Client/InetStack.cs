// An app's connection to the inet server of one AntHost instance.
//
// One kernel connection (one registered process) and one channel to `inet` carry every
// socket of the app. A call is one request: a control ICA whose single frame holds the
// SocketArgs, plus the data ICAs of a send; the reply brings the control ICA back with
// the SocketResult in its result area (and the data ICAs of a receive). Blocking happens
// in the inet server, which holds a call until it can be answered, so both ways of
// waiting cost the app nothing while they wait:
//
// - a synchronous call is KernelConnection.Call with no timeout: the calling thread
//   spins briefly and sleeps on the process's doorbell until its reply (or the death of
//   the server) comes, matched by request id, also when the reply comes by direct return
//   from the NIC driver on another channel;
// - an asynchronous call is a Post; one dispatcher thread, started with the first async
//   call, takes every completion off the process's rings and completes the waiting
//   operation by request id. Operations are pooled IValueTaskSource objects, so an async
//   send or receive allocates nothing once the pool is warm.
//
// The inet server's death (the broker's PeerDied notice on the channel, or a Call that
// fails with PeerDied) marks the stack gone: every pending operation fails at once with
// SocketError.NetworkDown naming the server's pid, and so does every later call. The
// broker notices a death when the process's control socket closes (also for kill -9),
// so an app learns of it within milliseconds, never by a timeout.
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using AntHost.Inet.Abi;
using AntHost.Kernel;
using AntHost.Kernel.Ipc;
using AntHost.Kernel.Pool;

namespace AntHost.Client;

/// <summary>
/// The app's connection to an AntHost instance's inet server (one per process is enough;
/// thread-safe). Sockets made with the parameterless-stack constructors use <see cref="Default"/>.
/// </summary>
public sealed partial class InetStack : IDisposable
{
    private static readonly object DefaultLock = new();
    private static InetStack? s_default;

    private readonly KernelConnection _kernel;
    private readonly Endpoint _inet;
    private int _gone;
    private int _disposed;

    private InetStack(KernelConnection kernel, Endpoint inet, string instance, bool inlineCompletions, bool postSmallSends, bool postLargeSends)
    {
        _inlineCompletions = inlineCompletions;
        PostsSmallSends = postSmallSends;
        PostsLargeSends = postSmallSends && postLargeSends;
        _kernel = kernel;
        _inet = inet;
        Instance = instance;
        ServerPid = ReadPid(kernel, inet.Peer);
        _brokerWatch = kernel.BrokerGone.UnsafeRegister(static s => ((InetStack)s!).MarkBrokerGone(), this);
    }

    private readonly CancellationTokenRegistration _brokerWatch;
    private readonly bool _inlineCompletions;
    private volatile bool _brokerGone;

    /// <summary>See <see cref="InetStackOptions.PostSmallSends"/>.</summary>
    internal bool PostsSmallSends { get; }

    /// <summary>See <see cref="InetStackOptions.PostLargeSends"/> (only with small sends posted too).</summary>
    internal bool PostsLargeSends { get; }

    /// <summary>The kernel instance this stack belongs to.</summary>
    public string Instance { get; }

    /// <summary>The inet server's OS process id (0 if it could not be read).</summary>
    public int ServerPid { get; }

    /// <summary>False once the inet server died or this stack was disposed.</summary>
    public bool IsAlive => Volatile.Read(ref _gone) == 0 && _disposed == 0 && _inet.IsOpen;

    /// <summary>Replies that did not parse (no control ICA, data outside its ICA), counted and dropped.</summary>
    public long MalformedReplies => Volatile.Read(ref _malformed);
    private long _malformed;

    internal KernelConnection Kernel => _kernel;

    /// <summary>
    /// The process-wide stack, connected on first use to the instance named by
    /// ANTHOST_INSTANCE (or "default"). Replaced by a new connection after the old one's
    /// inet server died.
    /// </summary>
    public static InetStack Default
    {
        get
        {
            lock (DefaultLock)
            {
                if (s_default is { IsAlive: true } d) return d;
                s_default?.Dispose();
                s_default = Connect();
                return s_default;
            }
        }
    }

    /// <summary>Connects to the inet server of <paramref name="instance"/> (null: ANTHOST_INSTANCE, then "default").</summary>
    public static InetStack Connect(string? instance = null) => Connect(new InetStackOptions { Instance = instance });

    public static InetStack Connect(InetStackOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        string instance = options.ResolveInstance();
        string name = options.ProcessName ?? ProgramName();
        KernelConnection kernel;
        try
        {
            kernel = KernelConnection.Connect(new KernelOptions
            {
                Instance = instance,
                ProcessName = name,
                SpinBudget = options.SpinBudget,
                ConnectTimeout = TimeSpan.FromSeconds(2),
                // An app allocates every ICA it sends and inet frees them once acknowledged, so
                // the app's cache only ever refills: in batches of 64 (one broker round trip
                // per ~90 KB sent) rather than 16.
                CachePerSize = 128,
                AllocationBatch = 64,
            });
        }
        catch (KernelException e)
        {
            throw InetErrors.Local(SocketError.NetworkDown, $"cannot reach AntHost instance '{instance}': {e.Message} (is it up? `anthost up`)");
        }
        try
        {
            var inet = kernel.Open(options.Service);
            return new InetStack(kernel, inet, instance, options.InlineCompletions, options.PostSmallSends, options.PostLargeSends) { DnsChoice = options.Dns, PoolWait = options.PoolWait };
        }
        catch (KernelException e)
        {
            kernel.Dispose();
            throw InetErrors.Local(SocketError.NetworkDown, e.Error == KernelError.UnknownService
                ? $"AntHost instance '{instance}' has no inet server ('{options.Service}' is not registered); start it (anthost up)"
                : $"cannot open the inet server of instance '{instance}': {e.Message}");
        }
    }

    private static string ProgramName()
    {
        string n = Path.GetFileNameWithoutExtension(Environment.GetCommandLineArgs().FirstOrDefault() ?? "app");
        if (n.Length == 0) n = "app";
        return n.Length > 48 ? n[..48] : n;
    }

    /// <summary>
    /// The OS pid of a registered process, from the process table the kernel library maps; it is
    /// only for the message that says the server is gone, so one read at connect is enough.
    /// </summary>
    private static int ReadPid(KernelConnection kernel, ProcessId process) => kernel.Pool.ProcessPid(process);

    // ---- Requests ----------------------------------------------------------------

    /// <summary>A fresh control ICA with one frame for <paramref name="op"/>; its args cleared, socket and flags set.</summary>
    internal IcaLease NewRequest(InetOp op, ulong socket, InetSocketFlags flags, RequestFrameFlags frameFlags = RequestFrameFlags.None)
    {
        ThrowIfUnusable();
        var control = AllocateControl(op);
        if (!ControlIca.TryOpen(control.Span, out var c)
            || !c.TryPushFrame(new RequestFrame(_inet.ServiceId, (ushort)op, frameFlags, 0, 0), out var argBytes))
        {
            _kernel.Free(control);
            throw new InvalidOperationException("a fresh control ICA did not take a frame");
        }
        var args = SocketArgs.Begin(argBytes);
        args.Socket = socket;
        args.Flags = flags;
        return control;
    }

    /// <summary>The argument view of a request made by <see cref="NewRequest"/>.</summary>
    internal static SocketArgs Args(IcaLease control)
    {
        ControlIca.TryOpen(control.Span, out var c);
        SocketArgs.TryOpen(c.FrameArguments(0), out var a);
        return a;
    }

    /// <summary>
    /// Sends a request and waits for its answer (held calls wait as long as inet holds them).
    /// The control ICA and the data ICAs pass to inet whatever happens.
    /// </summary>
    internal InetReply Call(IcaLease control, InetOp op, ReadOnlySpan<DataIca> data, ushort traceStage = 0)
    {
        if (!_inet.IsOpen || Volatile.Read(ref _gone) != 0)
        {
            FreeUnsent(control, data);
            MarkGone();
            throw Gone();
        }
        Message m;
        try
        {
            m = _kernel.Call(_inet, control, (ushort)op, data, Timeout.InfiniteTimeSpan, traceStage);
        }
        catch (KernelException e)
        {
            throw Translate(e, $"{op} could not be sent to the inet server");
        }
        // The wait may have taken answers of posted sends (quiet: they did not wake it).
        if (Volatile.Read(ref _postedCount) > 0) SettleQueued();
        return Accept(m, op);
    }

    /// <summary>Checks a reply's shape; a malformed one is counted, freed and reported.</summary>
    internal InetReply Accept(in Message m, InetOp op)
    {
        if (m.Control.IsNone || !ControlIca.TryOpen(m.Control.Span, out _))
        {
            Interlocked.Increment(ref _malformed);
            _kernel.FreeMessage(m);
            throw InetErrors.Local(SocketError.SocketError, $"the inet server's answer to {op} had no control ICA");
        }
        return new InetReply(this, m);
    }

    private void FreeUnsent(IcaLease control, ReadOnlySpan<DataIca> data)
    {
        Free(control);
        foreach (var d in data) Free(d.Ica);
    }

    /// <summary>
    /// A data ICA of at least <paramref name="bytes"/> bytes (0: a control ICA) from the pool.
    /// What the kernel refuses becomes the SocketException an app expects: an empty pool or a
    /// spent limit NoBufferSpaceAvailable (as ENOBUFS), a dead broker NetworkDown.
    /// </summary>
    internal IcaLease Allocate(int bytes, string what)
    {
        ThrowIfUnusable();
        try
        {
            return bytes == 0 ? _kernel.AllocateControl() : _kernel.AllocateBytes(bytes);
        }
        catch (KernelException e) when (IsShortOfPages(e))
        {
            return AllocateWaiting(bytes, what);
        }
        catch (KernelException e)
        {
            throw Translate(e, what);
        }
    }

    /// <summary>See <see cref="InetStackOptions.PoolWait"/>.</summary>
    internal TimeSpan PoolWait { get; init; }

    /// <summary>Allocations that found the pool short and were tried again (<see cref="PoolWait"/>).</summary>
    public long PoolWaits => Interlocked.Read(ref _poolWaits);
    private long _poolWaits;

    private static bool IsShortOfPages(KernelException e) => e.Error is KernelError.OutOfPages or KernelError.QuotaExceeded;

    /// <summary>
    /// The pool refused: give this process's cached ICAs back (other sizes may be what the pool
    /// lacks), then try again with a growing pause until <see cref="PoolWait"/> has passed.
    /// </summary>
    private IcaLease AllocateWaiting(int bytes, string what)
    {
        Interlocked.Increment(ref _poolWaits);
        _kernel.TrimCache();
        var deadline = Environment.TickCount64 + (long)PoolWait.TotalMilliseconds;
        int pause = 1;
        while (true)
        {
            try
            {
                return bytes == 0 ? _kernel.AllocateControl() : _kernel.AllocateBytes(bytes);
            }
            catch (KernelException e) when (IsShortOfPages(e) && Environment.TickCount64 < deadline)
            {
                Thread.Sleep(pause);
                pause = Math.Min(pause * 2, 32);
            }
            catch (KernelException e)
            {
                throw Translate(e, what);
            }
        }
    }

    /// <summary>A control ICA for a request of <paramref name="op"/> (as <see cref="Allocate"/>; the message is made only on failure).</summary>
    private IcaLease AllocateControl(InetOp op)
    {
        try
        {
            return _kernel.AllocateControl();
        }
        catch (KernelException e) when (IsShortOfPages(e))
        {
            return AllocateWaiting(0, op.ToString());
        }
        catch (KernelException e)
        {
            throw Translate(e, op.ToString());
        }
    }

    /// <summary>The SocketException for a kernel refusal met on the way to inet.</summary>
    internal InetSocketException Translate(KernelException e, string what)
    {
        switch (e.Error)
        {
            case KernelError.BrokerUnavailable or KernelError.PoolUnavailable:
                MarkBrokerGone();
                return Gone();
            case KernelError.PeerDied or KernelError.CutOff:
                MarkGone();
                return Gone();
            case KernelError.OutOfPages or KernelError.QuotaExceeded or KernelError.RingFull or KernelError.OutOfSlots:
                return InetErrors.Local(SocketError.NoBufferSpaceAvailable, $"{what}: no buffer space in AntHost instance '{Instance}': {e.Message}");
            case KernelError.PermissionDenied:
                return InetErrors.Local(SocketError.AccessDenied, $"{what}: {e.Message}");
            default:
                return InetErrors.Local(SocketError.SocketError, $"{what}: the AntHost kernel refused it: {e.Message}");
        }
    }

    /// <summary>
    /// Gives an ICA back. When the broker is gone (or cut this process off) the free cannot be
    /// journaled, and need not be: the pool goes with the broker; nothing is thrown from a
    /// release path.
    /// </summary>
    internal void Free(IcaLease ica)
    {
        try { _kernel.Free(ica); }
        catch (KernelException e) when (e.Error is KernelError.BrokerUnavailable or KernelError.CutOff or KernelError.PoolUnavailable)
        {
            if (e.Error != KernelError.CutOff) MarkBrokerGone();
            else MarkGone();
        }
    }

    /// <summary>Frees a message's ICAs, quietly when the broker is gone (see <see cref="Free"/>).</summary>
    internal void FreeMessage(in Message m)
    {
        try { _kernel.FreeMessage(m); }
        catch (KernelException e) when (e.Error is KernelError.BrokerUnavailable or KernelError.CutOff or KernelError.PoolUnavailable)
        {
            if (e.Error != KernelError.CutOff) MarkBrokerGone();
            else MarkGone();
        }
    }

    internal void CountMalformed() => Interlocked.Increment(ref _malformed);

    private void ThrowIfUnusable()
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        if (Volatile.Read(ref _gone) != 0 || !_inet.IsOpen)
        {
            MarkGone();
            throw Gone();
        }
    }

    internal InetSocketException Gone() => _brokerGone ? InetErrors.BrokerGone(Instance) : InetErrors.ServerGone(Instance, ServerPid);

    /// <summary>The broker is gone: nothing can be allocated, committed or answered any more.</summary>
    private void MarkBrokerGone()
    {
        _brokerGone = true;
        MarkGone();
    }

    // ---- Ping and poll --------------------------------------------------------------

    /// <summary>Sends an ICMP echo request to <paramref name="address"/> and waits for the reply; returns the round-trip time.</summary>
    public TimeSpan Ping(IPAddress address, TimeSpan timeout, int payloadBytes = 56) =>
        PingCore(address, timeout, payloadBytes, default, sync: true).Sync();

    /// <summary>As <see cref="Ping"/>, asynchronously (cancellation sends Cancel and throws OperationCanceledException).</summary>
    public Task<TimeSpan> PingAsync(IPAddress address, TimeSpan timeout, CancellationToken cancellationToken = default, int payloadBytes = 56) =>
        PingCore(address, timeout, payloadBytes, cancellationToken, sync: false).AsTask();

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<TimeSpan> PingCore(IPAddress address, TimeSpan timeout, int payloadBytes, CancellationToken ct, bool sync)
    {
        var (control, data) = BuildPing(address, timeout, payloadBytes);
        using var reply = await Call(control, InetOp.Ping, [data], ct, sync).ConfigureAwait(false);
        reply.ThrowIfFailed($"ping {address}");
        return TimeSpan.FromMicroseconds(reply.Result.Value);
    }

    private (IcaLease, DataIca) BuildPing(IPAddress address, TimeSpan timeout, int payloadBytes)
    {
        uint ip = InetSocket.ToAbiAddress(address);
        if (payloadBytes is < 0 or > 1472) throw new ArgumentOutOfRangeException(nameof(payloadBytes), "an echo payload has 0..1472 bytes");
        var control = NewRequest(InetOp.Ping, 0, InetSocketFlags.None);
        var data = Allocate(InetService.SendHeadroom + Math.Max(payloadBytes, 1), "ping");
        var payload = data.Span.Slice(InetService.SendHeadroom, payloadBytes);
        for (int i = 0; i < payload.Length; i++) payload[i] = (byte)('a' + i % 26);
        var args = Args(control);
        args.Address = ip;
        args.Value = (long)Math.Clamp(timeout.TotalMilliseconds, 1, int.MaxValue);
        args.SetData(0, InetService.SendHeadroom, payloadBytes);
        return (control, new DataIca(data, InetService.SendHeadroom + payloadBytes));
    }

    /// <summary>
    /// Waits until one of the sockets is ready for what its entry wants, or the timeout
    /// (<see cref="Timeout.InfiniteTimeSpan"/>: none) passes; fills each entry's Ready and
    /// returns how many are ready. At most <see cref="PollSet.MaxEntries"/> sockets.
    /// </summary>
    public int Poll(Span<PollEntry> entries, TimeSpan timeout)
    {
        var control = BuildPoll(entries, timeout);
        using var reply = Call(control, InetOp.Poll, default);
        return PollResult(reply, entries);
    }

    /// <summary>As <see cref="Poll"/>, asynchronously.</summary>
    public async Task<int> PollAsync(PollEntry[] entries, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(entries);
        var control = BuildPoll(entries, timeout);
        using var reply = await Call(control, InetOp.Poll, default, cancellationToken, sync: false).ConfigureAwait(false);
        return PollResult(reply, entries);
    }

    private IcaLease BuildPoll(ReadOnlySpan<PollEntry> entries, TimeSpan timeout)
    {
        if (entries.Length > PollSet.MaxEntries) throw new ArgumentException($"at most {PollSet.MaxEntries} sockets per poll", nameof(entries));
        foreach (var e in entries)
        {
            ArgumentNullException.ThrowIfNull(e.Socket, nameof(entries));
            if (e.Socket.Stack != this) throw new ArgumentException("every socket of a poll belongs to this stack", nameof(entries));
        }
        var control = NewRequest(InetOp.Poll, 0, InetSocketFlags.None);
        ControlIca.TryOpen(control.Span, out var c);
        var set = PollSet.Begin(c.Inline, entries.Length);
        for (int i = 0; i < entries.Length; i++) set.Set(i, entries[i].Socket.Handle, entries[i].Wanted);
        Args(control).Value = timeout == Timeout.InfiniteTimeSpan ? -1 : (long)Math.Ceiling(Math.Max(0, timeout.TotalMilliseconds));
        return control;
    }

    private static int PollResult(in InetReply reply, Span<PollEntry> entries)
    {
        reply.ThrowIfFailed("poll");
        if (!ControlIca.TryOpen(reply.Message.Control.Span, out var c) || !PollSet.TryOpen(c.Inline, out var set) || set.Count != entries.Length)
            throw InetErrors.Local(SocketError.SocketError, "the inet server's poll answer does not match the socket set");
        int ready = 0;
        for (int i = 0; i < entries.Length; i++)
        {
            entries[i].Ready = set.Ready(i);
            if (entries[i].Ready != PollEvents.None) ready++;
        }
        return ready;
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _brokerWatch.Dispose();
        StopDispatcher();
        FailAll(InetErrors.Local(SocketError.OperationAborted, "the AntHost connection was disposed"));
        try { _kernel.Close(_inet); }
        catch (KernelException) { }
        catch (ObjectDisposedException) { }
        _kernel.Dispose();
    }
}

/// <summary>One socket of a <see cref="InetStack.Poll"/>: what is wanted, and what was ready.</summary>
public struct PollEntry
{
    public PollEntry(InetSocket socket, PollEvents wanted)
    {
        Socket = socket;
        Wanted = wanted;
    }

    public InetSocket Socket { get; }
    public PollEvents Wanted { get; }
    public PollEvents Ready { get; internal set; }
}

/// <summary>
/// A reply from inet: its status, its result area and its ICAs (owned by this process until
/// disposed or taken over).
/// </summary>
internal readonly struct InetReply : IDisposable
{
    private readonly InetStack _stack;

    public InetReply(InetStack stack, Message message)
    {
        _stack = stack;
        Message = message;
    }

    public Message Message { get; }

    public InetStatus Status => (InetStatus)Message.Word;

    public SocketResult Result
    {
        get
        {
            ControlIca.TryOpen(Message.Control.Span, out var c);
            SocketResult.TryOpen(c.ResultArea, out var r);
            return r;
        }
    }

    /// <summary>Throws the SocketException for a failed reply; <paramref name="what"/> names the call in its message.</summary>
    public void ThrowIfFailed(string what)
    {
        if (Status != InetStatus.Ok) throw InetErrors.For(Status, what);
    }

    /// <summary>
    /// As <see cref="ThrowIfFailed(string)"/>, with an interpolated <paramref name="what"/> that is
    /// formatted only when the reply failed: a call that succeeds builds no string.
    /// </summary>
    public void ThrowIfFailed([InterpolatedStringHandlerArgument("")] ref FailureMessage what)
    {
        if (Status != InetStatus.Ok) throw InetErrors.For(Status, what.ToStringAndClear());
    }

    /// <summary>Frees the control ICA and every data ICA.</summary>
    public void Dispose() => _stack.FreeMessage(Message);

    /// <summary>Frees the control ICA only: the caller took the data ICAs over.</summary>
    public void FreeControl() => _stack.Free(Message.Control);
}

/// <summary>
/// The "what" of <see cref="InetReply.ThrowIfFailed(ref FailureMessage)"/>: formats its interpolated string only
/// when the reply failed (the handler pattern of Debug.Assert), so success allocates nothing.
/// </summary>
[InterpolatedStringHandler]
internal ref struct FailureMessage
{
    private DefaultInterpolatedStringHandler _text;
    private readonly bool _failed;

    public FailureMessage(int literalLength, int formattedCount, InetReply reply, out bool failed)
    {
        _failed = failed = reply.Status != InetStatus.Ok;
        _text = failed ? new DefaultInterpolatedStringHandler(literalLength, formattedCount) : default;
    }

    public void AppendLiteral(string value) => _text.AppendLiteral(value);

    public void AppendFormatted<T>(T value) => _text.AppendFormatted(value);

    public string ToStringAndClear() => _failed ? _text.ToStringAndClear() : "";
}
