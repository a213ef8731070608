using AntHost.Inet.Abi;
using AntHost.Inet.Core.Buffers;
using AntHost.Inet.Core.Iface;
using AntHost.Inet.Core.Randomness;
using AntHost.Inet.Core.Tcp;
using AntHost.Inet.Core.Time;
using AntHost.Inet.Core.Udp;
using AntHost.Inet.Core.Wire;
using AntHost.Kernel;
using AntHost.Kernel.Ipc;
using AntHost.Kernel.Pool;
using Microsoft.Extensions.Logging.Abstractions;

namespace AntHost.Inet.Tests;

/// <summary>
/// The inet server's core driven by a seed: apps that open UDP sockets, send to a peer stack
/// that echoes, receive (held until a datagram comes), close, cancel and die with calls held;
/// a NIC driver that attaches, carries frames both ways, completes transmits late and out of
/// order, and dies holding lent frames (a new one attaches); and spells of pool exhaustion.
/// After every step: the fake kernel saw no ICA used that inet did not own (nothing freed
/// twice, nothing replied or posted that was not inet's), the calls the apps wait for are
/// exactly the calls inet holds, and no dead app keeps a socket. At the end (the driver gone,
/// the core shut down) every call of a live app was answered and inet owns no page.
/// </summary>
internal sealed class ServerSimulation : IDisposable
{
    private sealed class App
    {
        public ProcessId Pid;
        public Endpoint Ep = null!;
        public bool Alive = true;
        public readonly List<ulong> Sockets = new();
        public readonly Dictionary<uint, InetOp> Waiting = new();
        public uint NextId;
    }

    private static readonly ProcessId Inet = ProcessId.Create(0, 1);
    private static readonly Ipv4Address InetIp = new(198, 18, 0, 2);
    private static readonly Ipv4Address PeerIp = new(198, 18, 0, 1);
    private static readonly MacAddress InetMac = MacAddress.Parse("02:00:00:00:00:02");
    private static readonly MacAddress PeerMac = MacAddress.Parse("02:00:00:00:00:01");
    private const uint ServiceId = 1;

    private readonly FakeKernel _k;
    private readonly InetCore _core;
    private readonly SeededRandom _r;
    private readonly Interface _peer;
    private readonly UdpSocket _echo;
    private readonly List<App> _apps = new();
    private readonly List<(IcaLease Control, DataIca[] Data, bool Forwarded, uint Id)> _driverHeld = new();
    private ProcessId _driver;
    private Endpoint? _driverEp;
    private ushort _driverIncarnation;
    private int _channels;
    private uint _driverIds;
    private Instant _now = Instant.FromMilliseconds(1000);

    public ServerSimulation(ulong seed, FakeKernel kernel)
    {
        Seed = seed;
        _k = kernel;
        _r = new SeededRandom(seed);
        // No segmentation offload: every frame the driver gets is one the peer can take as it is.
        _core = new InetCore(kernel, new InetOptions { Address = InetIp, PrefixLength = 24, Tcp = new TcpConfig() }, ServiceId, NullLogger.Instance);
        var peerPool = new HeapBufferPool(4096);
        _peer = new Interface(new InterfaceConfig
        {
            Tcp = ip => new TcpLayer(ip, peerPool, new SeededRandom(seed + 2), new TcpConfig()),
            Mac = PeerMac,
            Address = PeerIp,
            PrefixLength = 24,
            Pool = peerPool,
            Random = new SeededRandom(seed + 1),
        });
        _peer.Up(_now);
        _echo = _peer.Udp.Open();
        _echo.Bind(7);
        _peerTcp = (TcpLayer)_peer.Tcp!;
        _peerTcp.Open(out _listener);
        _peerTcp.Bind(_listener, new TcpEndPoint(PeerIp, 80));
        _peerTcp.Listen(_listener, 64);
    }

    private readonly TcpLayer _peerTcp;
    private readonly TcpSocket _listener;
    private readonly List<TcpSocket> _peerConnections = new();
    private readonly byte[] _echoBuffer = new byte[8192];

    public ulong Seed { get; }

    public string Where => $"seed {Seed} (replay: ANTHOST_SIM_SEED={Seed})";

    public long Replies { get; private set; }
    public long DataReplies { get; private set; }
    public long Forwarded { get; private set; }
    public long DirectReturns { get; private set; }
    public long HeldAtMost { get; private set; }
    public long DriverDeaths { get; private set; }

    /// <summary>One of inet's counters now.</summary>
    public long Stat(InetStat s) => _core.Protocol.Stats()[(int)s];
    public long AppDeaths { get; private set; }
    public long ParkedAtMost { get; private set; }

    // ---- the run ---------------------------------------------------------------------------

    public void Run(int steps)
    {
        NewDriver();
        for (int i = 0; i < 3; i++) NewApp();
        for (int step = 0; step < steps; step++)
        {
            Step();
            Check($"step {step}");
        }
        // The end: every app leaves (its sockets are aborted or, closed before, finish on their
        // own), the network runs until TCP has nothing left to send (Interface.Down does not
        // take TCP's orphans: a connection closed with data queued keeps it until acknowledged),
        // then the driver dies (its frames come back) and the core stops: every call of a live
        // app was answered and inet owns nothing.
        _k.FullRings.Clear();
        var left = _apps.Where(a => a.Alive).ToList();
        for (int i = 0; i < left.Count; i += 2) Quiesce(left[i]);
        if (_driverEp is null) NewDriver();
        _k.InetPageLimit = int.MaxValue;
        for (int i = 0; i < 400; i++)
        {
            var at = _core.PollAt ?? _now + TimeSpan.FromMilliseconds(100);
            _now = at > _now ? (at - _now > TimeSpan.FromSeconds(1) ? _now + TimeSpan.FromSeconds(1) : at) : _now + TimeSpan.FromMilliseconds(1);
            _core.Round(_now);
            Deliver();
            while (_driverHeld.Count > 0) DriverWork();
            PeerWork();
            DriverWork();
        }
        if (_driverEp is not null) DriverDies();
        _core.Shutdown(_now);
        Deliver();
        Check("shutdown");
        foreach (var a in _apps.Where(a => a.Alive))
            Assert.True(a.Waiting.Count == 0, $"{Where}: app {a.Pid} still waits for {string.Join(", ", a.Waiting.Values)} after shutdown");
        // ANTHOST_SIM_TRACE=G (an ICA's generation, from this message) replays with that ICA's path.
        if (_k.PagesOwned() != 0) foreach (var t in FakeKernel.Trace) Console.WriteLine(t);
        Assert.True(_k.PagesOwned() == 0, $"{Where}: inet owns {_k.PagesOwned()} pages after shutdown ({_core.Protocol.Pool.Outstanding} buffers outstanding, "
            + $"the interface holds {_core.Protocol.Interface?.HeldBuffers}, {_core.Protocol.Transmits.InFlight} with the driver, {_core.Protocol.Transmits.Deferred} deferred; "
            + $"ICAs: {string.Join(", ", _k.Icas.Values.Where(i => i.Owner == Inet.Value).Select(i => $"{i.Handle} x{i.Pages}"))})");
    }

    private void Step()
    {
        _now += TimeSpan.FromMicroseconds(_r.Next(2000));
        // Spells of pool exhaustion: inet may hold little more than it holds now.
        if (_r.Next(40) == 0) _k.InetPageLimit = _r.Next(3) == 0 ? int.MaxValue : (int)_k.PagesOwned() + _r.Next(4);
        int what = _r.Next(200);
        var live = _apps.Where(a => a.Alive).ToList();
        if (what < 120 && live.Count > 0) AppCall(live[_r.Next(live.Count)]);
        else if (what < 122 && live.Count > 0) AppDies(live[_r.Next(live.Count)]);
        else if (what < 130 && live.Count < 6 && _channels < 100) NewApp();
        else if (what < 131 && _driverEp is not null) DriverDies();
        else if (what < 140 && _driverEp is null && _channels < 100) NewDriver();
        else if (what < 150) _now += TimeSpan.FromMilliseconds(_r.Next(50));
        // Spells of an app that does not read its ring (inet parks its answers), a few steps long.
        if (live.Count > 0 && _r.Next(25) == 0) _k.FullRings.Add(live[_r.Next(live.Count)].Pid);
        else if (_k.FullRings.Count > 0 && _r.Next(8) == 0) _k.FullRings.Clear();
        // The driver and the peer run most steps, in either order.
        bool driverFirst = _r.Next(2) == 0;
        if (driverFirst && _r.Next(10) < 7) DriverWork();
        if (_r.Next(10) < 7) PeerWork();
        if (!driverFirst && _r.Next(10) < 7) DriverWork();
        _core.Round(_now);
        Deliver();
    }

    private void Check(string when)
    {
        Assert.True(_k.Violations.Count == 0, $"{Where} {when}: {string.Join("; ", _k.Violations)}");
        long waiting = _apps.Where(a => a.Alive).Sum(a => a.Waiting.Count);
        // A send forwarded to the driver (direct return) is waited for but held by the driver.
        long forwarded = _core.Protocol.Transmits.WithDriver.Count(t => t.Stage == TransmitStage.Forwarded && t.HasApp);
        Forwarded = Math.Max(Forwarded, forwarded);
        // An answer parked behind a full ring is waited for too (a dead app's are dropped at the round).
        long parked = _core.Protocol.Replies.ParkedNow;
        ParkedAtMost = Math.Max(ParkedAtMost, parked);
        long held = _core.Sockets.HeldRequests + forwarded + parked;
        HeldAtMost = Math.Max(HeldAtMost, held);
        Assert.True(waiting == held, $"{Where} {when}: live apps wait for {waiting} calls, inet holds {held}");
        foreach (var a in _apps.Where(a => !a.Alive))
        {
            Assert.True(_core.Sockets.SocketsOwnedBy(a.Pid) == 0, $"{Where} {when}: dead app {a.Pid} still owns {_core.Sockets.SocketsOwnedBy(a.Pid)} sockets");
            Assert.True(_k.PagesOwnedBy(a.Pid) == 0, $"{Where} {when}: dead app {a.Pid} still owns pages");
        }
    }

    // ---- endpoints and messages ------------------------------------------------------------

    private Endpoint NewEndpoint(ProcessId peer)
    {
        int index = _channels++;
        uint id = (uint)(1000 + index);
        ref var ch = ref _k.Pool.Channel(index);
        ch.State = 1; // open
        ch.ChannelId = id;
        return new Endpoint(_k.Pool, id, index, peer, ServiceId, "inet", isOpener: false);
    }

    private void CloseEndpoint(Endpoint ep) => _k.Pool.Channel(ep.Index).State = 2;

    private static Message Msg(MessageKind kind, MessageFlags flags, uint id, int word, ProcessId source, Endpoint? ep, IcaLease control, DataIca[]? data = null)
    {
        data ??= [];
        return new Message(kind, flags, id, word, source, ep, control, data.Length,
            data.Length > 0 ? data[0] : default, data.Length > 1 ? data[1] : default, data.Length > 2 ? data[2] : default);
    }

    /// <summary>Hands the core what the kernel delivers, then every reply and driver call it made to their receivers.</summary>
    private void Handle(in Message m)
    {
        _core.Handle(m, _now);
        Deliver();
    }

    private void Deliver()
    {
        while (_k.ToApps.TryDequeue(out var reply))
        {
            Replies++;
            if (reply.App == _driver)
            {
                // The driver's IfAttach answered.
                _k.FreeOf(reply.Control, _driver, "driver frees its control ICA");
                Assert.Equal((int)InetStatus.Ok, reply.Status);
                continue;
            }
            var app = _apps.Single(a => a.Pid == reply.App);
            Assert.True(app.Alive, $"{Where}: a reply reached dead app {app.Pid}");
            Assert.True(app.Waiting.Remove(reply.RequestId, out var op), $"{Where}: app {app.Pid} got a reply to {reply.RequestId}, which it does not wait for (answered twice?)");
            if (op == InetOp.Socket && reply.Status == (int)InetStatus.Ok && ControlIca.TryOpen(reply.Control.Span, out var c)
                && SocketResult.TryOpen(c.ResultArea, out var r))
                app.Sockets.Add(r.Socket);
            if (reply.Data.Length > 0) DataReplies++;
            if (!reply.Control.IsNone) _k.FreeOf(reply.Control, app.Pid, "app frees its control ICA");
            foreach (var d in reply.Data) _k.FreeOf(d.Ica, app.Pid, "app frees a data ICA");
        }
        while (_k.ToDriver.TryDequeue(out var call)) _driverHeld.Add(call);
    }

    // ---- apps ------------------------------------------------------------------------------

    private void NewApp()
    {
        var pid = ProcessId.Create(2 + _apps.Count % 50, (ushort)(1 + _apps.Count / 50));
        _apps.Add(new App { Pid = pid, Ep = NewEndpoint(pid) });
    }

    private void AppCall(App app)
    {
        int what = _r.Next(100);
        ulong socket = app.Sockets.Count > 0 ? app.Sockets[_r.Next(app.Sockets.Count)] : 0;
        if (what < 3) socket = (ulong)_r.Next(1 << 20) << 32 | (uint)_r.Next(8); // a guessed handle
        if (what < 15 || app.Sockets.Count == 0)
            Call(app, InetOp.Socket, a => a.Small = (byte)(_r.Next(2) == 0 ? AbiSocketType.Datagram : AbiSocketType.Stream));
        else if (what < 20) Call(app, InetOp.Bind, a => { a.Socket = socket; a.Port = (ushort)(1000 + _r.Next(50)); });
        else if (what < 28) Call(app, InetOp.Connect, a => { a.Socket = socket; a.Address = PeerIp.Value; a.Port = 80; });
        else if (what < 55) SendTo(app, socket, _r.Next(2) == 0 ? InetOp.Send : InetOp.SendTo);
        else if (what < 80) Call(app, InetOp.Receive, a => { a.Socket = socket; a.Flags = _r.Next(5) == 0 ? InetSocketFlags.NonBlocking : InetSocketFlags.None; });
        else if (what < 88)
        {
            Call(app, InetOp.Close, a => a.Socket = socket);
            app.Sockets.Remove(socket);
        }
        else if (what < 94) Call(app, InetOp.Cancel, a => { a.Socket = _r.Next(2) == 0 ? 0 : socket; a.Value = 0; });
        else Call(app, InetOp.GetInfo, a => a.Socket = socket);
    }

    private void SendTo(App app, ulong socket, InetOp op)
    {
        int length = 1 + _r.Next(1200);
        int offset = _r.Next(4) == 0 ? 0 : InetService.SendHeadroom; // no room for headers: the copy path
        var d = _k.AllocateFor(app.Pid, 1);
        d.Span.Slice(offset, length).Fill((byte)length);
        Call(app, op, a =>
        {
            a.Socket = socket;
            a.Address = PeerIp.Value;
            a.Port = 7;
            a.Small = 1;
            a.SetData(0, offset, length);
        }, [new DataIca(d, offset + length)]);
    }

    private void Call(App app, InetOp op, Action<SocketArgsSetter> fill, DataIca[]? data = null)
    {
        uint id = ++app.NextId;
        var control = _k.AllocateFor(app.Pid, 1);
        var c = ControlIca.Initialize(control.Span, id, app.Pid.Value);
        c.TryPushFrame(new RequestFrame(ServiceId, (ushort)op, RequestFrameFlags.None, app.Pid.Value, id), out var args);
        fill(new SocketArgsSetter(args.ToArray(), out var bytes));
        bytes.CopyTo(args);
        app.Waiting[id] = op;
        if (data is not null && data.Any(x => x.Ica.Handle.Generation == FakeKernel.TraceGeneration)) FakeKernel.Trace.Add($"app {app.Pid} call {id}: {op}");
        var given = (data ?? []).Select(x => new DataIca(_k.Transfer(x.Ica, app.Pid, Inet, "app sends"), x.Length)).ToArray();
        var m = Msg(MessageKind.Request, MessageFlags.Sync, id, (int)op, app.Pid, app.Ep, _k.Transfer(control, app.Pid, Inet, "app sends"), given);
        Handle(m);
    }

    /// <summary>An app at the end: it cancels what it waits for, then leaves.</summary>
    private void Quiesce(App app)
    {
        Call(app, InetOp.Cancel, a => { a.Socket = 0; a.Value = 0; });
        // Answers parked behind a ring that was full go at the next round (in order, Cancel's last).
        _core.Round(_now);
        Deliver();
        // What Cancel does not end: a send with the driver (direct return) and a lingering close.
        Assert.True(app.Waiting.Values.All(op => op is InetOp.Send or InetOp.Close),
            $"{Where}: after Cancel app {app.Pid} still waits for {string.Join(", ", app.Waiting.Values)}");
        AppDies(app);
    }

    private void AppDies(App app)
    {
        app.Alive = false;
        AppDeaths++;
        CloseEndpoint(app.Ep);
        _k.Reclaim(app.Pid);
        app.Waiting.Clear();
        Handle(Msg(MessageKind.PeerDied, MessageFlags.None, 0, 0, app.Pid, app.Ep, default));
    }

    // ---- the driver ------------------------------------------------------------------------

    private void NewDriver()
    {
        _driver = ProcessId.Create(1, ++_driverIncarnation);
        _driverEp = NewEndpoint(_driver);
        _k.Driver = _driver;
        _k.DriverAlive = true;
        var control = _k.AllocateFor(_driver, 1);
        var c = ControlIca.Initialize(control.Span, ++_driverIds, _driver.Value);
        c.TryPushFrame(new RequestFrame(ServiceId, (ushort)InetOp.IfAttach, RequestFrameFlags.None, _driver.Value, 0), out var args);
        new IfAttachArgs(InetMac.Value, 1500, AbiLinkState.Up, 1000 + _driverIncarnation, "sim").WriteTo(args);
        Handle(Msg(MessageKind.Request, MessageFlags.Sync, _driverIds, (int)InetOp.IfAttach, _driver, _driverEp, _k.Transfer(control, _driver, Inet, "ifattach")));
    }

    private void DriverDies()
    {
        DriverDeaths++;
        _k.DriverAlive = false;
        CloseEndpoint(_driverEp!);
        _k.Reclaim(_driver);
        _driverHeld.Clear();
        var ep = _driverEp;
        _driverEp = null;
        Handle(Msg(MessageKind.PeerDied, MessageFlags.None, 0, 0, _driver, ep, default));
    }

    /// <summary>The driver completes some of the transmits it holds, in any order, the frames going to the peer.</summary>
    private void DriverWork()
    {
        if (_driverEp is null) return;
        // Half the time the completions of this turn share TxCompletions messages, as the driver packs them.
        var batch = _r.Next(2) == 0 ? new List<(IcaLease Control, DataIca[] Back)>() : null;
        int n = _r.Next(_driverHeld.Count + 1);
        for (int i = 0; i < n && _driverHeld.Count > 0; i++)
        {
            int at = _r.Next(4) == 0 ? _r.Next(_driverHeld.Count) : 0;
            var call = _driverHeld[at];
            _driverHeld.RemoveAt(at);
            ControlIca.TryOpen(call.Control.Span, out var c);
            var args = c.FrameArguments(c.FrameCount - 1);
            for (int f = 0; f < call.Data.Length; f++)
            {
                Assert.True(TransmitArgs.TryGetFrame(args, f, out int offset, out int length), $"{Where}: a transmit without frame {f}");
                Assert.False(TransmitArgs.TryGetOffload(args, f, out _, out _), $"{Where}: an offload frame over UDP");
                if (_r.Next(20) != 0) ToPeer(call.Data[f].Ica.Span.Slice(offset, length));
                TransmitArgs.SetResult(args, f, TransmitResult.Sent);
            }
            var back = call.Data.Select(d => new DataIca(_k.Transfer(d.Ica, _driver, Inet, "driver gives back"), d.Length)).ToArray();
            if (call.Forwarded)
            {
                // Direct return: the result to the app, the data back to inet.
                uint requester = c.OriginalRequester;
                uint requestId = c.RequestId;
                var app = _apps.Single(a => a.Pid.Value == requester);
                if (!app.Alive)
                {
                    // The app died meanwhile: the kernel drops the answer with its control ICA.
                    _k.FreeOf(call.Control, _driver, "the answer to a dead app is dropped");
                    Complete(batch, default, back, () => Handle(Msg(MessageKind.Notify, MessageFlags.None, call.Id, (int)NicNotify.TxDataBack, _driver, _driverEp, default, back)));
                    continue;
                }
                var control = _k.Transfer(call.Control, _driver, app.Pid, "driver answers the app");
                DirectReturns++;
                Assert.True(app.Waiting.Remove(requestId), $"{Where}: a direct return to call {requestId} of app {app.Pid} (alive: {app.Alive}), which waits for {string.Join(", ", app.Waiting.Select(w => $"{w.Key}:{w.Value}"))}");
                _k.FreeOf(control, app.Pid, "app frees its control ICA");
                Complete(batch, default, back, () => Handle(Msg(MessageKind.Notify, MessageFlags.None, call.Id, (int)NicNotify.TxDataBack, _driver, _driverEp, default, back)));
            }
            else if (batch is not null) Complete(batch, _k.Transfer(call.Control, _driver, Inet, "driver completes"), back, null);
            else
            {
                CompletionMessages++;
                Handle(Msg(MessageKind.Reply, MessageFlags.None, call.Id, 0, _driver, _driverEp, _k.Transfer(call.Control, _driver, Inet, "driver completes"), back));
            }
        }
        if (batch is { Count: > 0 }) SendCompletions(batch);
        if (_r.Next(400) == 0) ForgeCompletions();
    }

    /// <summary>Messages that gave inet completions back, those that carried two or more, and the malformed TxCompletions forged.</summary>
    public long CompletionMessages { get; private set; }
    public long SharedCompletionMessages { get; private set; }
    public long BadCompletions { get; private set; }

    /// <summary>One completion: alone in its own form, or added to the batch (which goes first when this one does not fit it).</summary>
    private void Complete(List<(IcaLease Control, DataIca[] Back)>? batch, IcaLease control, DataIca[] back, Action? alone)
    {
        if (batch is null)
        {
            CompletionMessages++;
            alone!();
            return;
        }
        // Three data slots for the frames and the control ICAs past the first (one goes in the control slot).
        int frames = batch.Sum(b => b.Back.Length) + back.Length, controls = batch.Count(b => !b.Control.IsNone) + (control.IsNone ? 0 : 1);
        if (batch.Count > 0 && frames + Math.Max(0, controls - 1) > InetService.MaxFramesPerMessage) SendCompletions(batch);
        batch.Add((control, back));
    }

    /// <summary>The batch as one TxCompletions: whole completions, the first control ICA in the control slot, the others marked among the data ICAs.</summary>
    private void SendCompletions(List<(IcaLease Control, DataIca[] Back)> batch)
    {
        IcaLease control = default;
        var data = new List<DataIca>();
        uint results = 0;
        foreach (var (c, back) in batch)
        {
            if (!c.IsNone && control.IsNone) control = c;
            else if (!c.IsNone)
            {
                results = TxCompletions.WithControl(results, data.Count);
                data.Add(new DataIca(c, c.Length));
            }
            foreach (var d in back) data.Add(d);
        }
        Assert.True(data.Count <= InetService.MaxFramesPerMessage, $"{Where}: {data.Count} data ICAs in one message");
        CompletionMessages++;
        if (batch.Count > 1) SharedCompletionMessages++;
        batch.Clear();
        Handle(Msg(MessageKind.Notify, MessageFlags.None, results, (int)NicNotify.TxCompletions, _driver, _driverEp, control, [.. data]));
    }

    /// <summary>
    /// Malformed TxCompletions: one with no ICA; one over a page of the driver's whose result no
    /// driver writes; one marking a control ICA past its data ICAs. Each refused and counted,
    /// the pages freed by inet.
    /// </summary>
    private void ForgeCompletions()
    {
        CompletionMessages += 3;
        BadCompletions += 3;
        Handle(Msg(MessageKind.Notify, MessageFlags.None, 0, (int)NicNotify.TxCompletions, _driver, _driverEp, default));
        var stranger = _k.Transfer(_k.AllocateFor(_driver, 1), _driver, Inet, "a forged completion");
        Handle(Msg(MessageKind.Notify, MessageFlags.None, 0x7F, (int)NicNotify.TxCompletions, _driver, _driverEp, default, [new DataIca(stranger, 64)]));
        stranger = _k.Transfer(_k.AllocateFor(_driver, 1), _driver, Inet, "a forged completion");
        Handle(Msg(MessageKind.Notify, MessageFlags.None, TxCompletions.WithControl(0, 2), (int)NicNotify.TxCompletions, _driver, _driverEp, default, [new DataIca(stranger, 64)]));
    }

    private void ToPeer(ReadOnlySpan<byte> frame)
    {
        var pool = (HeapBufferPool)_peer.Config.Pool;
        var b = pool.Rent(0, frame.Length);
        if (b is null) return;
        frame.CopyTo(b.Append(frame.Length));
        _peer.Receive(b, _now);
    }

    /// <summary>The peer runs: it echoes datagrams, and its frames go to inet through the driver (ethinput, up to three per message).</summary>
    private void PeerWork()
    {
        _peer.Poll(_now);
        while (_echo.TryReceiveFrom(out var d))
        {
            _echo.SendTo(d.Payload.Data, d.RemoteAddress, d.RemotePort, _now);
            d.Payload.Release();
        }
        while (_peerTcp.Accept(_listener, out var conn) == TcpError.None) _peerConnections.Add(conn);
        foreach (var conn in _peerConnections)
        {
            if (_peerTcp.Receive(conn, _echoBuffer, out int read, _now) != TcpError.None || read == 0) continue;
            _peerTcp.Send(conn, _echoBuffer.AsSpan(0, read), out _, _now);
        }
        // As the driver does, on some rounds: header-only TCP frames (ACKs) go packed in frame
        // lists (EthInputList), the others one per ICA, and frames keep their order across the kinds.
        bool lists = _r.Next(4) != 0;
        var batch = new List<DataIca>();
        bool batchIsLists = false;
        IcaLease list = default;
        int listUsed = 0;
        while (_peer.TryDequeueTransmit(out var f))
        {
            if (_driverEp is not null && _r.Next(30) != 0)
            {
                if (lists && FrameList.IsHeaderOnlyTcp(f.Data))
                {
                    if (batch.Count > 0 && !batchIsLists) EthInput(batch, false);
                    batchIsLists = true;
                    if (!list.IsNone && !FrameList.TryAppend(list.Span, ref listUsed, f.Data)) CloseList();
                    if (list.IsNone)
                    {
                        list = _k.AllocateFor(_driver, 1);
                        listUsed = 0;
                        Assert.True(FrameList.TryAppend(list.Span, ref listUsed, f.Data));
                    }
                    ListFrames++;
                }
                else
                {
                    if (!list.IsNone) CloseList();
                    if (batch.Count > 0 && batchIsLists) EthInput(batch, true);
                    batchIsLists = false;
                    var ica = _k.AllocateFor(_driver, 1);
                    f.Data.CopyTo(ica.Span);
                    batch.Add(new DataIca(ica, f.Length));
                }
            }
            f.FinishTransmit();
            if (batch.Count == InetService.MaxFramesPerMessage) EthInput(batch, batchIsLists);
        }
        if (!list.IsNone) CloseList();
        if (batch.Count > 0) EthInput(batch, batchIsLists);
        // Now and then a driver's bad list: a length that runs past the end, after a good frame
        // or none. inet refuses it, counts it and frees the ICA.
        if (_driverEp is not null && _r.Next(400) == 0)
        {
            var bad = _k.AllocateFor(_driver, 1);
            bad.Span[..8].Clear();
            System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(bad.Span, (ushort)(_r.Next(2) == 0 ? 9 : 4000));
            batch.Add(new DataIca(bad, 64));
            EthInput(batch, true);
            BadLists++;
        }

        void CloseList()
        {
            if (batch.Count == InetService.MaxFramesPerMessage) EthInput(batch, true);
            batch.Add(new DataIca(list, listUsed));
            list = default;
        }
    }

    /// <summary>Header-only frames the peer's side sent in frame lists, and malformed lists it forged.</summary>
    public long ListFrames { get; private set; }
    public long BadLists { get; private set; }

    private void EthInput(List<DataIca> batch, bool lists)
    {
        var given = batch.Select(d => new DataIca(_k.Transfer(d.Ica, _driver, Inet, "ethinput"), d.Length)).ToArray();
        batch.Clear();
        Handle(Msg(MessageKind.Request, MessageFlags.None, ++_driverIds, (int)(lists ? InetOp.EthInputList : InetOp.EthInput), _driver, _driverEp, default, given));
    }

    public void Dispose() { }
}

/// <summary>Writes a call's arguments (SocketArgs is a ref struct: a lambda cannot hold it).</summary>
internal sealed class SocketArgsSetter
{
    private readonly byte[] _b;

    public SocketArgsSetter(byte[] b, out byte[] bytes)
    {
        _b = b;
        bytes = b;
        Array.Clear(_b);
        SocketArgs.Begin(_b);
    }

    private SocketArgs A => SocketArgs.TryOpen(_b, out var a) ? a : SocketArgs.Begin(_b);

    public ulong Socket { set { var a = A; a.Socket = value; } }
    public InetSocketFlags Flags { set { var a = A; a.Flags = value; } }
    public byte Small { set { var a = A; a.Small = value; } }
    public uint Address { set { var a = A; a.Address = value; } }
    public ushort Port { set { var a = A; a.Port = value; } }
    public long Value { set { var a = A; a.Value = value; } }
    public void SetData(int i, int offset, int length) => A.SetData(i, offset, length);
}
