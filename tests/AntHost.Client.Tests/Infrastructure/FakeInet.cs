using System.Collections.Concurrent;
using AntHost.Inet.Abi;
using AntHost.Kernel;
using AntHost.Kernel.Ipc;

namespace AntHost.Client.Tests.Infrastructure;

/// <summary>
/// A stand-in for the inet server, in the test process: it registers the service "inet"
/// on a broker of its own and answers the client library's requests as the ABI says
/// (SocketAbi.cs), holding Receive calls until the test delivers data, answering Cancel
/// with Canceled, and optionally passing sends to a fake NIC driver that returns the
/// result directly to the app (the real driver's direct return). It records what it was
/// asked, so a test checks the library's marshalling byte by byte. <see cref="Die"/>
/// ends its registration as a crash would (the broker tells the app).
/// </summary>
public sealed class FakeInet : IDisposable
{
    public sealed class Sock
    {
        public ulong Handle;
        public AbiSocketType Type;
        public readonly MemoryStream Sent = new();
        public readonly List<(int Offset, int Length, int IcaBytes)> SendLayout = [];
        public readonly List<uint> SendFirstPages = [];
        public readonly Queue<byte[]> ToDeliver = new();
        public bool Eof;
        public readonly List<Message> Held = [];
        public PollEvents Ready;
        public readonly Dictionary<AbiSocketOption, long> Options = [];
        public uint LastAddress;
        public ushort LastPort;
    }

    private readonly KernelConnection _k;
    private readonly KernelConnection? _nicConnection;
    private readonly Thread _loop;
    private readonly Thread? _nicLoop;
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentQueue<Action> _actions = new();
    private readonly object _gate = new();
    private readonly Dictionary<ulong, Sock> _sockets = [];
    private Endpoint? _nic;
    private ulong _next = 0x1_0000_0001;
    private int _dead;

    public FakeInet(BrokerOnly broker, bool directReturnSends = false)
    {
        _k = broker.Connect("fake-inet");
        _k.RegisterService(InetService.Name);
        if (directReturnSends)
        {
            _nicConnection = broker.Connect("fake-nic");
            _nicConnection.RegisterService("fakenic");
            _nicLoop = new Thread(NicLoop) { IsBackground = true, Name = "fake nic" };
            _nicLoop.Start();
        }
        _loop = new Thread(Loop) { IsBackground = true, Name = "fake inet" };
        _loop.Start();
    }

    /// <summary>Calls seen, in order, with their frame-0 flags.</summary>
    public List<(InetOp Op, RequestFrameFlags Flags, InetSocketFlags CallFlags)> Calls { get; } = [];

    /// <summary>The Value of every Cancel call.</summary>
    public List<long> CancelValues { get; } = [];

    /// <summary>Request ids of the Receive calls held (as the fake saw them).</summary>
    public List<uint> HeldIds { get; } = [];

    /// <summary>Where delivered payload sits in its data ICA.</summary>
    public int ReceiveOffset { get; set; } = 60;

    /// <summary>The MSS GetInfo reports.</summary>
    public int Mss { get; set; } = 1000;

    /// <summary>The segments one send ICA may hold (segmentation offload) that GetInfo reports.</summary>
    public int OffloadSegments { get; set; } = 1;

    /// <summary>Statuses to answer instead of doing the call.</summary>
    public ConcurrentDictionary<InetOp, InetStatus> FailWith { get; } = new();

    /// <summary>The next Receive answer names a payload outside its ICA.</summary>
    public bool CorruptNextReceive { get; set; }

    public Sock Socket(ulong handle) { lock (_gate) return _sockets[handle]; }

    public Sock LastSocket { get { lock (_gate) return _sockets.Values.OrderBy(s => s.Handle).Last(); } }

    public int CallCount(InetOp op) { lock (_gate) return Calls.Count(c => c.Op == op); }

    /// <summary>Queues payload for a socket (each chunk one data ICA) and answers held receives.</summary>
    public void Deliver(ulong socket, params byte[][] chunks) => _actions.Enqueue(() =>
    {
        var s = Socket(socket);
        foreach (var c in chunks) s.ToDeliver.Enqueue(c);
        Answer(s);
    });

    public void EndStream(ulong socket) => _actions.Enqueue(() =>
    {
        var s = Socket(socket);
        s.Eof = true;
        Answer(s);
    });

    public void SetReady(ulong socket, PollEvents ready) => _actions.Enqueue(() => Socket(socket).Ready = ready);

    /// <summary>Waits until <paramref name="condition"/> holds (a guard against a hang, not a timing check).</summary>
    public void WaitUntil(Func<FakeInet, bool> condition, string what)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (true)
        {
            lock (_gate) if (condition(this)) return;
            if (DateTime.UtcNow > deadline) throw new TimeoutException("the fake inet never saw: " + what);
            Thread.Sleep(2);
        }
    }

    /// <summary>The server's death: its registration ends as a crash's would.</summary>
    public void Die()
    {
        if (Interlocked.Exchange(ref _dead, 1) != 0) return;
        _stop.Cancel();
        _loop.Join();
        _k.Dispose();
    }

    private void Loop()
    {
        while (!_stop.IsCancellationRequested)
        {
            while (_actions.TryDequeue(out var a)) lock (_gate) a();
            Message m;
            try
            {
                if (!_k.Receive(out m, TimeSpan.FromMilliseconds(2), _stop.Token)) continue;
            }
            catch (OperationCanceledException) { return; }
            lock (_gate)
            {
                switch (m.Kind)
                {
                    case MessageKind.Request:
                        Handle(m);
                        break;
                    case MessageKind.Reply or MessageKind.Notify:
                        _k.FreeMessage(m);
                        break;
                }
            }
        }
    }

    private void NicLoop()
    {
        var k = _nicConnection!;
        while (!_stop.IsCancellationRequested)
        {
            Message m;
            try
            {
                if (!k.Receive(out m, TimeSpan.FromMilliseconds(20), _stop.Token)) continue;
            }
            catch (OperationCanceledException) { return; }
            if (m.Kind != MessageKind.Request) { k.FreeMessage(m); continue; }
            // As the real driver: the result straight to the original requester, the data back to inet.
            k.ReplyDirect(m.Control, 0, default, InetTraceStage.NicReturn);
            if (m.DataCount > 0) k.Notify(m.Endpoint!, (ushort)NicNotify.TxDataBack, m.RequestId, m.Data);
        }
    }

    private void Handle(in Message m)
    {
        if (m.Control.IsNone || !ControlIca.TryOpen(m.Control.Span, out var c) || c.FrameCount == 0
            || !SocketArgs.TryOpen(c.FrameArguments(c.FrameCount - 1), out var a))
        {
            _k.FreeMessage(m);
            return;
        }
        c.Stamp(InetTraceStage.InetReceived, _k.Id.Value);
        var op = (InetOp)m.Opcode;
        c.TryGetFrame(0, out var frame);
        Calls.Add((op, frame.Flags, a.Flags));
        if (FailWith.TryGetValue(op, out var fail))
        {
            Answer(m, fail, default);
            return;
        }
        var r = SocketResult.Begin(c.ResultArea);
        c.SetResultLength(SocketResult.Length);
        _sockets.TryGetValue(a.Socket, out var s);
        switch (op)
        {
            case InetOp.Socket:
                s = new Sock { Handle = _next++, Type = (AbiSocketType)a.Small };
                _sockets[s.Handle] = s;
                r.Socket = s.Handle;
                Answer(m, InetStatus.Ok, default);
                return;
            case InetOp.Ping:
                {
                    var d = m.GetData(0);
                    bool ok = a.DataOffset(0) >= InetService.SendHeadroom && a.DataOffset(0) + a.DataLength(0) <= d.Ica.Length;
                    r.Value = a.Value; // the "RTT" is the timeout it was given, so each caller can tell its own answer
                    Answer(m, ok ? InetStatus.Ok : InetStatus.BadArguments, default);
                    return;
                }
            case InetOp.Poll:
                {
                    if (!PollSet.TryOpen(c.Inline, out var set)) { Answer(m, InetStatus.BadArguments, default); return; }
                    int ready = 0;
                    for (int i = 0; i < set.Count; i++)
                    {
                        var ev = _sockets.TryGetValue(set.Socket(i), out var ps) ? ps.Ready & (set.Wanted(i) | PollEvents.Error | PollEvents.Hangup) : PollEvents.Error;
                        set.SetReady(i, ev);
                        if (ev != 0) ready++;
                    }
                    r.Value = ready;
                    Answer(m, InetStatus.Ok, default);
                    return;
                }
        }
        if (s is null)
        {
            Answer(m, SocketStatus.InvalidSocket, default);
            return;
        }
        switch (op)
        {
            case InetOp.Connect:
                if (a.Port == 1) { Answer(m, SocketStatus.ConnectionRefused, default); return; }
                r.LocalAddress = 0xC6120002; r.LocalPort = 40000;
                r.RemoteAddress = a.Address; r.RemotePort = a.Port;
                s.LastAddress = a.Address; s.LastPort = a.Port;
                Answer(m, InetStatus.Ok, default);
                return;
            case InetOp.Bind:
                r.LocalAddress = a.Address; r.LocalPort = a.Port == 0 ? (ushort)49152 : a.Port;
                Answer(m, InetStatus.Ok, default);
                return;
            case InetOp.Listen or InetOp.Shutdown:
                Answer(m, InetStatus.Ok, default);
                return;
            case InetOp.Accept:
                {
                    var child = new Sock { Handle = _next++, Type = AbiSocketType.Stream };
                    _sockets[child.Handle] = child;
                    r.Socket = child.Handle;
                    r.LocalAddress = 0xC6120002; r.LocalPort = 8080;
                    r.RemoteAddress = 0xC6120001; r.RemotePort = 5555;
                    Answer(m, InetStatus.Ok, default);
                    return;
                }
            case InetOp.Send or InetOp.SendTo:
                {
                    long total = 0;
                    for (int i = 0; i < m.DataCount; i++)
                    {
                        var d = m.GetData(i);
                        int off = (int)a.DataOffset(i), len = (int)a.DataLength(i);
                        if (off + len > d.Ica.Length) { Answer(m, InetStatus.BadArguments, default); return; }
                        s.SendLayout.Add((off, len, d.Ica.Length));
                        s.SendFirstPages.Add(d.Ica.Handle.FirstPage);
                        s.Sent.Write(d.Ica.Span.Slice(off, len));
                        total += len;
                    }
                    if (op == InetOp.SendTo) { s.LastAddress = a.Address; s.LastPort = a.Port; }
                    r.Value = total;
                    c.Stamp(InetTraceStage.InetTransport, _k.Id.Value);
                    if ((frame.Flags & RequestFrameFlags.DirectReturn) != 0 && _nicConnection is not null)
                    {
                        _nic ??= _k.Open("fakenic");
                        c.TryPushFrame(new RequestFrame(_nic.ServiceId, (ushort)NicOp.Transmit, RequestFrameFlags.None, 0, 0), out _);
                        _k.Forward(_nic, m.Control, (ushort)NicOp.Transmit, m.Data, InetTraceStage.InetTransmit);
                        return;
                    }
                    for (int i = 0; i < m.DataCount; i++) _k.Free(m.GetData(i).Ica);
                    _k.Reply(m, m.Control, (int)InetStatus.Ok, default);
                    return;
                }
            case InetOp.Receive or InetOp.ReceiveFrom:
                s.Held.Add(m);
                HeldIds.Add(m.RequestId);
                Answer(s);
                return;
            case InetOp.Cancel:
                {
                    CancelValues.Add(a.Value);
                    for (int i = s.Held.Count - 1; i >= 0; i--)
                    {
                        var h = s.Held[i];
                        if (a.Value != 0 && h.RequestId != (uint)a.Value) continue;
                        s.Held.RemoveAt(i);
                        Answer(h, SocketStatus.Canceled, default);
                    }
                    Answer(m, InetStatus.Ok, default);
                    return;
                }
            case InetOp.Close:
                _sockets.Remove(s.Handle);
                Answer(m, InetStatus.Ok, default);
                return;
            case InetOp.SetOption:
                s.Options[a.Option] = a.Value;
                Answer(m, InetStatus.Ok, default);
                return;
            case InetOp.GetOption:
                r.Value = a.Option == AbiSocketOption.Available ? s.ToDeliver.Sum(b => b.Length)
                    : s.Options.TryGetValue(a.Option, out long v) ? v : a.Option == AbiSocketOption.Linger ? -1 : 0;
                Answer(m, InetStatus.Ok, default);
                return;
            case InetOp.GetInfo:
                r.Mss = (uint)Mss;
                r.OffloadSegments = (uint)OffloadSegments;
                Answer(m, InetStatus.Ok, default);
                return;
            default:
                Answer(m, InetStatus.UnknownOpcode, default);
                return;
        }
    }

    private void Answer(in Message m, InetStatus status, ReadOnlySpan<DataIca> data)
    {
        if (ControlIca.TryOpen(m.Control.Span, out var c)) c.SetResultLength(SocketResult.Length);
        for (int i = 0; i < m.DataCount; i++) _k.Free(m.GetData(i).Ica);
        _k.Reply(m, m.Control, (int)status, data);
    }

    /// <summary>Answers held receives from what is queued for the socket.</summary>
    private void Answer(Sock s)
    {
        while (s.Held.Count > 0 && (s.ToDeliver.Count > 0 || s.Eof))
        {
            var h = s.Held[0];
            s.Held.RemoveAt(0);
            ControlIca.TryOpen(h.Control.Span, out var c);
            var r = SocketResult.Begin(c.ResultArea);
            c.SetResultLength(SocketResult.Length);
            int n = s.Type == AbiSocketType.Datagram ? Math.Min(1, s.ToDeliver.Count) : Math.Min(InetService.MaxFramesPerMessage, s.ToDeliver.Count);
            var data = new DataIca[n];
            for (int i = 0; i < n; i++)
            {
                var chunk = s.ToDeliver.Dequeue();
                var ica = _k.AllocateBytes(ReceiveOffset + Math.Max(1, chunk.Length));
                chunk.CopyTo(ica.Span[ReceiveOffset..]);
                int offset = ReceiveOffset;
                if (CorruptNextReceive && i == 0)
                {
                    offset = ica.Length - 1; // the payload would run past the ICA
                    CorruptNextReceive = false;
                }
                r.SetData(i, offset, chunk.Length);
                data[i] = new DataIca(ica, ReceiveOffset + chunk.Length);
            }
            r.DataCount = n;
            if (s.Type == AbiSocketType.Datagram) { r.RemoteAddress = 0xC6120001; r.RemotePort = 7; }
            _k.Reply(h, h.Control, (int)InetStatus.Ok, data);
        }
    }

    public void Dispose()
    {
        Die();
        _stop.Cancel();
        _nicLoop?.Join();
        _nicConnection?.Dispose();
    }
}
