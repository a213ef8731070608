// Asynchronous calls: Post, and one dispatcher thread that completes them.
//
// The kernel connection lets one thread at a time take messages off the process's
// rings. The dispatcher is that thread while the app has async work: it sleeps on the
// doorbell, and for each reply finds the waiting operation by request id (a dictionary
// under one lock; a reply that overtakes the registration of its own post waits in a
// small "early" table until the poster looks). Operations are pooled
// IValueTaskSource objects whose continuations run on the thread pool, not on the
// dispatcher, so an app's continuation can make further calls (sync or async) and block
// freely. InetStackOptions.InlineCompletions runs them on the dispatcher instead (one
// thread wake-up less per call; the app then must not block in a continuation).
//
// Cancellation sends a Cancel call naming the held request's id; its answer is
// discarded, and the held call then completes with status Canceled, which the caller
// sees as OperationCanceledException. A reply that raced the cancel and brought data is
// delivered as usual, so no received byte is lost to a cancellation.
using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using System.Threading.Tasks.Sources;
using AntHost.Inet.Abi;
using AntHost.Kernel;
using AntHost.Kernel.Ipc;

namespace AntHost.Client;

public sealed partial class InetStack
{
    private readonly object _opsLock = new();
    private readonly Dictionary<uint, PendingOp> _ops = new();
    private readonly Dictionary<uint, Message> _early = new();
    private readonly Stack<PendingOp> _opPool = new();
    private readonly CancellationTokenSource _stop = new();
    private Thread? _dispatcher;
    private int _starting;

    /// <summary>True while the dispatcher thread runs (tests).</summary>
    internal bool DispatcherRunning => Volatile.Read(ref _dispatcher) is not null;

    /// <summary>How long the dispatcher waits with nothing in flight before it ends (sync calls then take their replies themselves again).</summary>
    private static readonly TimeSpan DispatcherIdle = TimeSpan.FromMilliseconds(200);
    private long _unexpected;

    /// <summary>Messages the dispatcher did not expect (requests, notifications to an app), freed and counted.</summary>
    public long UnexpectedMessages => Volatile.Read(ref _unexpected);

    /// <summary>The app's async operations waiting for their reply (not counting the answers to Cancel the library waits for).</summary>
    public int PendingOperations
    {
        get
        {
            lock (_opsLock)
            {
                int n = 0;
                foreach (var op in _ops.Values) if (!op.Discard) n++;
                return n;
            }
        }
    }

    /// <summary>
    /// A posted call in flight: its pooled operation and its cancellation registration.
    /// <see cref="AwaitCall"/> waits for it (awaiting <see cref="Task"/>, or on the operation's
    /// event for a sync caller), ends it (<see cref="EndCall"/>) and turns the message into a
    /// reply (<see cref="FinishCall"/>); a pipelined send starts several before it waits.
    /// </summary>
    internal readonly struct AsyncCall
    {
        internal AsyncCall(PendingOp op, CancellationTokenRegistration registration)
        {
            Op = op;
            Registration = registration;
        }

        internal PendingOp Op { get; }
        internal CancellationTokenRegistration Registration { get; }

        public ValueTask<Message> Task => new(Op, Op.Version);
    }

    /// <summary>
    /// Posts a request; its reply completes the returned call. The ICAs pass to inet. When
    /// <paramref name="cancellationToken"/> fires, a Cancel for this request goes to inet,
    /// and a Canceled answer becomes <see cref="OperationCanceledException"/> in <see cref="FinishCall"/>.
    /// </summary>
    internal AsyncCall StartCall(IcaLease control, InetOp op, ReadOnlySpan<DataIca> data, ulong socket,
        CancellationToken cancellationToken, ushort traceStage = 0, bool syncWait = false)
    {
        var pending = Start(control, op, data, socket, cancellationToken, traceStage, syncWait);
        var registration = cancellationToken.CanBeCanceled
            ? cancellationToken.UnsafeRegister(static s => ((PendingOp)s!).RequestCancel(), pending)
            : default;
        return new AsyncCall(pending, registration);
    }

    /// <summary>Releases a call's operation (after its task completed or failed).</summary>
    internal void EndCall(in AsyncCall call)
    {
        // Waits for a cancel callback that is running, so it never names a reused operation.
        call.Registration.Dispose();
        ReturnOp(call.Op);
    }

    internal InetReply FinishCall(in Message m, InetOp op, CancellationToken cancellationToken)
    {
        var reply = Accept(m, op);
        if (reply.Status == SocketStatus.Canceled && cancellationToken.IsCancellationRequested)
        {
            reply.Dispose();
            throw new OperationCanceledException(cancellationToken);
        }
        return reply;
    }

    /// <summary>
    /// A call and its answer: the one place a call of the client waits (InetSocket's engine
    /// and the stack's own calls). Sync without a token: a plain <see cref="Call(IcaLease, InetOp, ReadOnlySpan{DataIca}, ushort)"/>,
    /// finished when this returns. Otherwise posted, then waited for on the call's event (sync)
    /// or awaited. The control ICA and the data ICAs pass to inet.
    /// </summary>
    internal ValueTask<InetReply> Call(IcaLease control, InetOp op, ReadOnlySpan<DataIca> data, CancellationToken cancellationToken, bool sync,
        ushort traceStage = 0)
    {
        if (sync && !cancellationToken.CanBeCanceled) return new(Call(control, op, data, traceStage));
        return AwaitCall(StartCall(control, op, data, 0, cancellationToken, traceStage, syncWait: sync), op, cancellationToken, sync);
    }

    /// <summary>
    /// The answer of a started call; ends the call whatever happens. <paramref name="owner"/>,
    /// when given, is the socket whose call it is: it counts the call in flight until here and
    /// sees the answer's status.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    internal async ValueTask<InetReply> AwaitCall(AsyncCall call, InetOp op, CancellationToken cancellationToken, bool sync, InetSocket? owner = null)
    {
        Message m;
        try
        {
            m = sync ? call.Op.WaitSync() : await call.Task.ConfigureAwait(false);
        }
        finally
        {
            EndCall(call);
            owner?.CallEnded();
        }
        var reply = FinishCall(m, op, cancellationToken);
        owner?.Observe(reply.Status);
        return reply;
    }

    private PendingOp Start(IcaLease control, InetOp op, ReadOnlySpan<DataIca> data, ulong socket, CancellationToken ct, ushort traceStage,
        bool syncWait = false)
    {
        if (ct.IsCancellationRequested || !_inet.IsOpen || Volatile.Read(ref _gone) != 0)
        {
            FreeUnsent(control, data);
            ct.ThrowIfCancellationRequested();
            MarkGone();
            throw Gone();
        }
        EnsureDispatcher();
        var pending = RentOp();
        pending.Socket = socket;
        if (syncWait) pending.PrepareSyncWait();
        uint id;
        try
        {
            id = _kernel.Post(_inet, control, (ushort)op, data, traceStage);
        }
        catch (KernelException e)
        {
            ReturnOp(pending);
            lock (_opsLock) _starting--;
            throw Translate(e, $"{op} could not be sent to the inet server");
        }
        Register(id, pending);
        return pending;
    }

    private void Register(uint id, PendingOp pending)
    {
        pending.RequestId = id;
        Message early;
        lock (_opsLock)
        {
            _starting--;
            if (_early.Remove(id, out early))
            {
                // Answered before we looked: complete below, outside the lock.
            }
            else if (Volatile.Read(ref _gone) != 0 || _disposed != 0)
            {
                early = default;
                pending.Fail(_disposed != 0
                    ? InetErrors.Local(System.Net.Sockets.SocketError.OperationAborted, "the AntHost connection was disposed")
                    : Gone());
                return;
            }
            else
            {
                _ops[id] = pending;
                return;
            }
        }
        if (pending.Discard)
        {
            _kernel.FreeMessage(early);
            ReturnOp(pending);
        }
        else pending.Complete(early);
    }

    /// <summary>Posts Cancel for a held request; its answer is dropped.</summary>
    internal void PostCancel(ulong socket, uint requestId)
    {
        if (Volatile.Read(ref _gone) != 0 || _disposed != 0 || !_inet.IsOpen) return;
        try
        {
            var control = NewRequest(InetOp.Cancel, socket, InetSocketFlags.None);
            Args(control).Value = requestId;
            var pending = RentOp();
            pending.Discard = true;
            EnsureDispatcher();
            uint id;
            try
            {
                id = _kernel.Post(_inet, control, (ushort)InetOp.Cancel, default);
            }
            catch
            {
                lock (_opsLock) _starting--;
                ReturnOp(pending);
                throw;
            }
            Register(id, pending);
        }
        catch (Exception e) when (e is KernelException or System.Net.Sockets.SocketException or ObjectDisposedException)
        {
            // The server is gone or the stack disposed: the held call fails on its own.
        }
    }

    /// <summary>
    /// Counts an async call about to be posted (until <see cref="Register"/>) and starts the
    /// dispatcher if it is not running. The dispatcher ends only when nothing is in flight
    /// and nothing is about to be, both read under the same lock, so no reply is ever left
    /// without a thread to take it.
    /// </summary>
    private void EnsureDispatcher()
    {
        lock (_opsLock)
        {
            _starting++;
            if (_dispatcher is not null) return;
            var t = new Thread(DispatchLoop) { IsBackground = true, Name = "anthost-client dispatcher" };
            t.Start();
            Volatile.Write(ref _dispatcher, t);
        }
    }

    private void DispatchLoop()
    {
        var ct = _stop.Token;
        while (!ct.IsCancellationRequested)
        {
            Message m;
            try
            {
                if (!_kernel.Receive(out m, DispatcherIdle, ct))
                {
                    // Idle: with nothing in flight, hand the receiving back to the sync callers
                    // (their replies then wake them directly, one thread switch less).
                    lock (_opsLock)
                    {
                        if (_ops.Count == 0 && _starting == 0 && _early.Count == 0)
                        {
                            _dispatcher = null;
                            return;
                        }
                    }
                    continue;
                }
            }
            catch (OperationCanceledException) { return; }
            catch (ObjectDisposedException) { return; }
            catch (KernelException)
            {
                MarkGone();
                return;
            }
            Dispatch(m);
        }
    }

    /// <summary>Handles one message taken off the process's rings.</summary>
    private void Dispatch(in Message m)
    {
        switch (m.Kind)
        {
            case MessageKind.Reply:
                Complete(m);
                return;
            case MessageKind.PeerDied:
                if (m.Endpoint == _inet || !_inet.IsOpen) MarkGone();
                // Otherwise a return channel closed (a NIC driver restarted): nothing was waiting on it.
                return;
            case MessageKind.Refused:
                {
                    PendingOp? op;
                    lock (_opsLock) _ops.Remove(m.RequestId, out op);
                    if (op is null) return;
                    if (op.Discard) ReturnOp(op);
                    else op.Fail(InetErrors.Local(System.Net.Sockets.SocketError.SocketError,
                        $"the kernel refused the request ({(KernelError)m.Word}); this is a bug of the client library or the inet server"));
                    return;
                }
            default:
                Interlocked.Increment(ref _unexpected);
                _kernel.FreeMessage(m);
                return;
        }
    }

    private void Complete(in Message m)
    {
        PendingOp? op = null;
        bool posted;
        lock (_opsLock)
        {
            // A posted send's answer (its id registered under this lock, see PostSend).
            posted = IsPosted(m.RequestId);
            if (!posted && !_ops.Remove(m.RequestId, out op))
            {
                if (Volatile.Read(ref _gone) != 0 || _disposed != 0) op = null;
                else
                {
                    _early[m.RequestId] = m;
                    return;
                }
            }
        }
        if (posted)
        {
            TrySettlePosted(m);
            return;
        }
        if (op is null || op.Discard)
        {
            _kernel.FreeMessage(m);
            if (op is not null) ReturnOp(op);
            return;
        }
        op.Complete(m);
    }

    /// <summary>The inet server is gone: every waiting operation and every later call fails.</summary>
    private void MarkGone()
    {
        if (Interlocked.Exchange(ref _gone, 1) != 0) return;
        FailAll(Gone());
    }

    private void FailAll(Exception error)
    {
        List<PendingOp> failed;
        lock (_opsLock)
        {
            failed = [.. _ops.Values];
            _ops.Clear();
            foreach (var m in _early.Values) _kernel.FreeMessage(m);
            _early.Clear();
        }
        foreach (var op in failed)
        {
            if (op.Discard) ReturnOp(op);
            else op.Fail(error);
        }
    }

    private void StopDispatcher()
    {
        _stop.Cancel();
        var t = Volatile.Read(ref _dispatcher);
        if (t is not null && t != Thread.CurrentThread) t.Join(TimeSpan.FromSeconds(5));
    }

    private PendingOp RentOp()
    {
        lock (_opPool)
        {
            if (_opPool.TryPop(out var op)) return op;
        }
        return new PendingOp(this);
    }

    private void ReturnOp(PendingOp op)
    {
        op.Reset();
        lock (_opPool)
        {
            if (_opPool.Count < 256) _opPool.Push(op);
        }
    }

    /// <summary>One async call waiting for its reply (pooled).</summary>
    internal sealed class PendingOp : IValueTaskSource<Message>
    {
        private readonly InetStack _stack;
        private ManualResetValueTaskSourceCore<Message> _core;

        public PendingOp(InetStack stack)
        {
            _stack = stack;
            _core = new() { RunContinuationsAsynchronously = !stack._inlineCompletions };
        }

        public uint RequestId;
        public ulong Socket;
        public bool Discard;

        public short Version => _core.Version;

        private ManualResetEventSlim? _done;
        private bool _syncWaiter;

        // The waiter kind is read before the result is set: an awaiter's continuation may run
        // inline, end the call and put this operation back in the pool, where another thread may
        // rent it as a sync wait before this thread would read the flag.
        public void Complete(in Message m)
        {
            bool sync = _syncWaiter;
            _core.SetResult(m);
            if (sync) _done!.Set();
        }

        public void Fail(Exception e)
        {
            bool sync = _syncWaiter;
            _core.SetException(e);
            if (sync) _done!.Set();
        }

        /// <summary>Before the post: a thread will wait for this operation with <see cref="WaitSync"/> instead of awaiting it.</summary>
        public void PrepareSyncWait()
        {
            _done ??= new ManualResetEventSlim(false);
            _syncWaiter = true;
        }

        /// <summary>Blocks until the answer (or the failure) is there.</summary>
        public Message WaitSync()
        {
            _done!.Wait();
            return _core.GetResult(_core.Version);
        }

        public void RequestCancel() => _stack.PostCancel(Socket, RequestId);

        public void Reset()
        {
            _core.Reset();
            _done?.Reset();
            _syncWaiter = false;
            RequestId = 0;
            Socket = 0;
            Discard = false;
        }

        public Message GetResult(short token) => _core.GetResult(token);

        public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

        public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
            _core.OnCompleted(continuation, state, token, flags);
    }
}

/// <summary>
/// Up to three data ICAs held by value, so an async method (which cannot take a span) can
/// carry them to the Post without an array.
/// </summary>
internal struct ReadOnlySpanHolder
{
    private DataIcas3 _items;
    private int _count;

    public ReadOnlySpanHolder(ReadOnlySpan<DataIca> data)
    {
        if (data.Length > InetService.MaxFramesPerMessage) throw new ArgumentException("at most three data ICAs", nameof(data));
        _count = data.Length;
        for (int i = 0; i < data.Length; i++) _items[i] = data[i];
    }

    public readonly int Count => _count;

    public void Add(DataIca d)
    {
        if (_count >= InetService.MaxFramesPerMessage) throw new InvalidOperationException("at most three data ICAs");
        _items[_count++] = d;
    }

    [UnscopedRef]
    public ReadOnlySpan<DataIca> AsSpan() => ((ReadOnlySpan<DataIca>)_items)[.._count];

    [InlineArray(InetService.MaxFramesPerMessage)]
    private struct DataIcas3
    {
        private DataIca _e;
    }
}
