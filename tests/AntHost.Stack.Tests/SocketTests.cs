using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using AntHost.Inet.Abi;
using AntHost.Sandbox;
using AntHost.Stack.Tests.Infrastructure;
using AntHost.TestSupport;
using Xunit.Abstractions;
using static AntHost.Stack.Tests.Infrastructure.PeerSockets;

namespace AntHost.Stack.Tests;

/// <summary>
/// Apps talk TCP and UDP through the inet server's socket manager, the Linux kernel in the
/// peer namespace at the other end: connect and accept both ways, data both ways with
/// checksums, refusal, resets both ways, half-close, UDP, ping, poll, apps that leave, and
/// requests that make no sense. The app side is driven over the ABI directly (TestApp).
/// </summary>
public sealed class SocketTests(ITestOutputHelper output)
{
    private const string Peer = "198.18.0.1";
    private const string Host = "198.18.0.2";

    [PcapFact]
    public void One_app_cannot_take_every_socket_from_the_others()
    {
        using var stack = new RunningStack(output, "16M", ["--max-sockets-per-process", "8"], []);
        using var greedy = new TestApp(stack.Instance);
        using var other = new TestApp(stack.Instance);
        var mine = new List<ulong>();
        for (int i = 0; i < 8; i++) mine.Add(greedy.NewSocket(AbiSocketType.Datagram));
        var refused = greedy.Socket(AbiSocketType.Stream);
        Assert.Equal(SocketStatus.TooManySockets, refused.Status);
        // Another app still gets its own.
        ulong theirs = other.NewSocket(AbiSocketType.Stream);
        Assert.Equal(1, stack.Stat(InetStat.SocketLimitRefusals));
        // A socket closed is one the app may open again.
        Assert.True(greedy.Close(mine[0]).Ok);
        mine[0] = greedy.NewSocket(AbiSocketType.Datagram);
        Assert.Equal(1, stack.Stat(InetStat.SocketLimitRefusals));
        foreach (var s in mine) Assert.True(greedy.Close(s).Ok);
        Assert.True(other.Close(theirs).Ok);
    }

    [PcapFact]
    public void An_app_connects_to_the_peer_kernel_sends_receives_and_closes()
    {
        using var stack = new RunningStack(output);
        using var listener = PeerListener(stack, 5001);
        using var app = new TestApp(stack.Instance);
        ulong s = app.NewSocket(AbiSocketType.Stream);
        var c = app.Connect(s, Peer, 5001);
        Assert.True(c.Ok, $"connect: {c}");
        Assert.Equal(TestApp.Ip(Host), c.LocalAddress);
        Assert.Equal(TestApp.Ip(Peer), c.RemoteAddress);
        Assert.Equal(5001, c.RemotePort);
        using var peer = AcceptWithin(listener);
        Assert.Equal(c.LocalPort, ((IPEndPoint)peer.RemoteEndPoint!).Port);

        // One-segment sends go out from the app's own ICA; their results come from the driver.
        var small = Pattern(1000, 1);
        int direct = 0;
        for (int i = 0; i < 20; i++)
        {
            var r = app.Send(s, small);
            Assert.True(r.Ok, $"send {i}: {r}");
            Assert.Equal(small.Length, r.Value);
            if (app.LastWasDirect)
            {
                direct++;
                Assert.Contains(app.LastTrace, t => t.Stage == InetTraceStage.InetReceived);
                Assert.Contains(app.LastTrace, t => t.Stage == InetTraceStage.InetTransmit);
                Assert.Contains(app.LastTrace, t => t.Stage == InetTraceStage.NicTransmitted);
            }
            Assert.Equal(small, PeerReceiveExactly(peer, small.Length));
        }
        output.WriteLine($"{direct} of 20 sends answered by direct return");
        Assert.True(direct > 0, "no send was answered by the driver directly");

        // The peer answers; the app's receive is held until the data arrives.
        var back = Pattern(3000, 2);
        peer.Send(back);
        Assert.Equal(back, app.ReceiveExactly(s, back.Length));

        var info = app.GetInfo(s);
        Assert.True(info.Ok, $"getinfo: {info}");
        Assert.Equal(4, info.State); // ESTABLISHED
        Assert.True(info.Mss >= 1400, $"MSS {info.Mss}");

        Assert.True(app.Close(s).Ok);
        Assert.Equal(0, peer.Receive(new byte[16])); // our FIN: the peer's stream ends
        var st = stack.WaitStats(x => x[(int)InetStat.SocketsOpen] == 0 && x[(int)InetStat.HeldRequests] == 0, "the socket gone, nothing held");
        Assert.Equal(0, st[(int)InetStat.InvalidSocketHandles]);
        Assert.Equal(0, st[(int)InetStat.BadSocketRequests]);
        Assert.Equal(direct, st[(int)InetStat.DirectReturns]);
        Assert.True(st[(int)InetStat.ReceiveIcasToApps] >= 1);
        // The closed handle names nothing now.
        Assert.Equal(SocketStatus.InvalidSocket, app.Send(s, small).Status);
    }

    [PcapFact]
    public void The_peer_kernel_connects_inet_accepts_and_both_half_close()
    {
        using var stack = new RunningStack(output);
        using var app = new TestApp(stack.Instance);
        ulong l = app.NewSocket(AbiSocketType.Stream);
        Assert.True(app.Bind(l, "0.0.0.0", 6000).Ok);
        Assert.True(app.Listen(l).Ok);
        Assert.Equal(SocketStatus.WouldBlock, app.Accept(l, InetSocketFlags.NonBlocking).Status);

        using var peer = PeerTcp(stack);
        var connecting = peer.ConnectAsync(new IPEndPoint(RunningStack.HostIp, 6000));
        var a = app.Accept(l); // held until the handshake completes
        Assert.True(a.Ok, $"accept: {a}");
        Assert.True(connecting.Wait(PeerTimeout));
        Assert.Equal(TestApp.Ip(Peer), a.RemoteAddress);
        Assert.Equal(((IPEndPoint)peer.LocalEndPoint!).Port, a.RemotePort);
        ulong s = a.Socket;

        var up = Pattern(50_000, 3);
        peer.Send(up);
        // A byte limit below what is queued: at most that many bytes, copied into one ICA.
        stack.WaitStats(_ => app.GetOption(s, AbiSocketOption.Available).Value == up.Length, "all 50000 bytes queued");
        var first = app.Receive(s, limit: 1000);
        Assert.True(first.Ok && first.Data.Length == 1000 && first.DataIcas == 1, $"limited receive: {first}");
        Assert.Equal(up.AsSpan(0, 1000).ToArray(), first.Data);
        // A limit of several frames: the frames' own ICAs, never more than the limit.
        var second = app.Receive(s, limit: 20_000);
        Assert.True(second.Ok && second.Data.Length is > 0 and <= 20_000, $"limited receive: {second}");
        Assert.Equal(up.AsSpan(1000, second.Data.Length).ToArray(), second.Data);
        int taken = 1000 + second.Data.Length;
        Assert.Equal(up.AsSpan(taken).ToArray(), app.ReceiveExactly(s, up.Length - taken));

        // Half-close from the app: the peer reads the end, and can still send.
        Assert.True(app.Shutdown(s, AbiShutdown.Send).Ok);
        Assert.Equal(0, peer.Receive(new byte[16]));
        Assert.Equal(SocketStatus.Shutdown, app.Send(s, "late"u8).Status);
        var down = Pattern(20_000, 4);
        peer.Send(down);
        Assert.Equal(down, app.ReceiveExactly(s, down.Length));
        // Then the peer closes its side: the app's receive says end of stream.
        peer.Shutdown(SocketShutdown.Send);
        var eos = app.Receive(s);
        Assert.True(eos.Ok && eos.Data.Length == 0, $"end of stream expected: {eos}");
        Assert.True(app.Close(s).Ok);
        Assert.True(app.Close(l).Ok);
        stack.WaitStats(x => x[(int)InetStat.SocketsOpen] == 0, "every socket closed");
    }

    [PcapFact]
    public void Refused_connections_and_resets_both_ways_are_reported()
    {
        using var stack = new RunningStack(output);
        using var app = new TestApp(stack.Instance);

        // Nothing listens on 5999: the peer kernel answers the SYN with a RST.
        ulong r0 = app.NewSocket(AbiSocketType.Stream);
        Assert.Equal(SocketStatus.ConnectionRefused, app.Connect(r0, Peer, 5999).Status);
        Assert.True(app.Close(r0).Ok);

        // The peer resets (close with linger 0): the app's held receive ends with ConnectionReset.
        using var listener = PeerListener(stack, 5002);
        ulong s1 = app.NewSocket(AbiSocketType.Stream);
        Assert.True(app.Connect(s1, Peer, 5002).Ok);
        var p1 = AcceptWithin(listener);
        p1.LingerState = new LingerOption(true, 0);
        var held = Task.Run(() => app.Receive(s1));
        Thread.Sleep(100);
        p1.Close();
        Assert.True(held.Wait(PeerTimeout), "the held receive never ended");
        Assert.Equal(SocketStatus.ConnectionReset, held.Result.Status);
        Assert.True(app.Close(s1).Ok);

        // The app aborts: the peer's kernel sees a reset.
        ulong s2 = app.NewSocket(AbiSocketType.Stream);
        Assert.True(app.Connect(s2, Peer, 5002).Ok);
        using var p2 = AcceptWithin(listener);
        Assert.True(app.Close(s2, InetSocketFlags.Abort).Ok);
        var e = Assert.Throws<SocketException>(() => p2.Receive(new byte[16]));
        Assert.Equal(SocketError.ConnectionReset, e.SocketErrorCode);
        var st = stack.WaitStats(x => x[(int)InetStat.TcpResetsIn] >= 2 && x[(int)InetStat.TcpResetsOut] >= 1, "resets counted both ways");
        Assert.Equal(0, st[(int)InetStat.SocketsOpen]);
    }

    [PcapFact]
    public void Udp_datagrams_echo_and_ping_works_both_ways()
    {
        using var stack = new RunningStack(output);
        using var app = new TestApp(stack.Instance);
        using var echo = NamespaceThread.Run(stack.Sandbox.PeerNamespace, () => new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp));
        echo.Bind(new IPEndPoint(RunningStack.PeerIp, 7007));
        echo.ReceiveTimeout = (int)PeerTimeout.TotalMilliseconds;
        var echoing = Task.Run(() =>
        {
            var b = new byte[2000];
            for (int i = 0; i < 10; i++)
            {
                EndPoint from = new IPEndPoint(IPAddress.Any, 0);
                int n = echo.ReceiveFrom(b, ref from);
                echo.SendTo(b.AsSpan(0, n), System.Net.Sockets.SocketFlags.None, from);
            }
        });
        ulong u = app.NewSocket(AbiSocketType.Datagram);
        Assert.True(app.Bind(u, "0.0.0.0", 4000).Ok);
        for (int i = 0; i < 10; i++)
        {
            var d = Pattern(100 + i * 100, 10 + i);
            var sent = app.SendTo(u, d, Peer, 7007);
            Assert.True(sent.Ok, $"sendto: {sent}");
            var r = app.ReceiveFrom(u);
            Assert.True(r.Ok, $"receivefrom: {r}");
            Assert.Equal(d, r.Data);
            Assert.Equal(TestApp.Ip(Peer), r.RemoteAddress);
            Assert.Equal(7007, r.RemotePort);
        }
        Assert.True(echoing.Wait(PeerTimeout));
        var info = app.GetInfo(u);
        Assert.True(info.Ok && info.LocalPort == 4000, $"getinfo: {info}");
        // A datagram from the peer wakes a poll for readable, and Available names its length.
        var waiting = Task.Run(() => app.Poll([(u, PollEvents.Readable)], -1));
        stack.WaitStats(x => x[(int)InetStat.HeldRequests] == 1, "the poll held");
        echo.SendTo(new byte[321], new IPEndPoint(RunningStack.HostIp, 4000));
        Assert.True(waiting.Wait(PeerTimeout));
        Assert.True((waiting.Result.Ready[0] & PollEvents.Readable) != 0);
        Assert.Equal(321, app.GetOption(u, AbiSocketOption.Available).Value);
        Assert.Equal(321, app.ReceiveFrom(u).Data.Length);
        Assert.Equal(SocketStatus.WouldBlock, app.ReceiveFrom(u, InetSocketFlags.NonBlocking).Status);
        // A datagram to a closed port: the connected socket learns of the port unreachable.
        ulong c = app.NewSocket(AbiSocketType.Datagram);
        Assert.True(app.Connect(c, Peer, 7999).Ok);
        Assert.True(app.Send(c, "anyone?"u8).Ok);
        Assert.Equal(SocketStatus.PortUnreachable, app.Receive(c, timeout: PeerTimeout).Status);
        Assert.True(app.Close(c).Ok);
        Assert.True(app.Close(u).Ok);

        // Ping from the app, answered by the peer kernel, with the payload echoed.
        var payload = Pattern(56, 99);
        for (int i = 0; i < 5; i++)
        {
            var p = app.Ping(Peer, payload, 5000);
            Assert.True(p.Ok, $"ping {i}: {p}");
            Assert.Equal(payload, p.Data);
            Assert.True(p.Value > 0, "an RTT in microseconds");
        }
        // Nobody at .77: ARP fails and the ping reports the host unreachable (or times out).
        var none = app.Ping("198.18.0.77", payload, 5000);
        Assert.Contains(none.Status, new[] { SocketStatus.HostUnreachable, SocketStatus.TimedOut });
        // And the other way: the peer kernel's pings are answered.
        using var pinger = new PeerPinger(stack.Sandbox.PeerNamespace, RunningStack.HostIp);
        Assert.True(pinger.Answers(1, PeerTimeout));
    }

    [PcapFact]
    public void Poll_nonblocking_calls_and_cancel()
    {
        using var stack = new RunningStack(output);
        using var listener = PeerListener(stack, 5003);
        using var app = new TestApp(stack.Instance);
        ulong s = app.NewSocket(AbiSocketType.Stream);
        Assert.Equal(SocketStatus.InProgress, app.Connect(s, Peer, 5003, InetSocketFlags.NonBlocking).Status);
        var (w, ready) = app.Poll([(s, PollEvents.Writable)], 10_000);
        Assert.True(w.Ok && w.Value == 1 && (ready[0] & PollEvents.Writable) != 0, $"poll for the connection: {w} {ready[0]}");
        using var peer = AcceptWithin(listener);

        Assert.Equal(SocketStatus.WouldBlock, app.Receive(s, flags: InetSocketFlags.NonBlocking).Status);
        var (idle, _) = app.Poll([(s, PollEvents.Readable)], 0);
        Assert.Equal(0, idle.Value);
        var (timedOut, _) = app.Poll([(s, PollEvents.Readable)], 100);
        Assert.True(timedOut.Ok && timedOut.Value == 0, $"a poll with nothing ready ends at its timeout: {timedOut}");
        var waiting = Task.Run(() => app.Poll([(s, PollEvents.Readable)], -1));
        Thread.Sleep(100);
        peer.Send("ready"u8.ToArray());
        Assert.True(waiting.Wait(PeerTimeout));
        Assert.True((waiting.Result.Ready[0] & PollEvents.Readable) != 0);
        Assert.Equal("ready"u8.ToArray(), app.Receive(s).Data);

        // A held receive ended by Cancel.
        var held = Task.Run(() => app.Receive(s));
        stack.WaitStats(x => x[(int)InetStat.HeldRequests] == 1, "the receive held");
        var cancel = app.Cancel(s);
        Assert.True(cancel.Ok && cancel.Value == 1, $"cancel: {cancel}");
        Assert.True(held.Wait(PeerTimeout));
        Assert.Equal(SocketStatus.Canceled, held.Result.Status);

        // Options.
        Assert.True(app.SetOption(s, AbiSocketOption.NoDelay, 1).Ok);
        Assert.Equal(1, app.GetOption(s, AbiSocketOption.NoDelay).Value);
        Assert.True(app.SetOption(s, AbiSocketOption.ReceiveBuffer, 128 * 1024).Ok);
        Assert.Equal(128 * 1024, app.GetOption(s, AbiSocketOption.ReceiveBuffer).Value);
        peer.Send(new byte[777]);
        stack.WaitStats(_ => app.GetOption(s, AbiSocketOption.Available).Value == 777, "777 bytes available");
        // Linger > 0: close is held until the FIN is acknowledged.
        Assert.True(app.SetOption(s, AbiSocketOption.Linger, 5).Ok);
        var closed = app.Close(s);
        Assert.True(closed.Ok && closed.Value == 1, $"lingering close: {closed}");
    }

    [PcapFact]
    public void Sixteen_MiB_each_way_arrive_intact()
    {
        const int size = 16 << 20;
        using var stack = new RunningStack(output);
        using var listener = PeerListener(stack, 5004);
        using var app = new TestApp(stack.Instance);
        ulong s = app.NewSocket(AbiSocketType.Stream);
        Assert.True(app.Connect(s, Peer, 5004).Ok);
        using var peer = AcceptWithin(listener);
        var data = Pattern(size, 5);
        var expected = SHA256.HashData(data);

        // App -> peer: ICAs of 60 KiB (TCP copies them into segments) and of one segment (in place).
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var peerHash = Task.Run(() =>
        {
            using var h = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            var b = new byte[256 * 1024];
            long got = 0;
            while (got < size)
            {
                int n = peer.Receive(b);
                if (n == 0) break;
                h.AppendData(b, 0, n);
                got += n;
            }
            return (got, h.GetHashAndReset());
        });
        app.SendAll(s, data.AsSpan(0, size / 2), 60 * 1024);
        app.SendAll(s, data.AsSpan(size / 2), 1448);
        Assert.True(peerHash.Wait(TimeSpan.FromMinutes(2)), "the peer did not get everything");
        Assert.Equal(size, peerHash.Result.got);
        Assert.Equal(expected, peerHash.Result.Item2);
        output.WriteLine($"app -> peer: {size >> 20} MiB in {sw.Elapsed.TotalSeconds:F2} s ({size * 8 / sw.Elapsed.TotalSeconds / 1e6:F0} Mbit/s)");

        // Peer -> app.
        sw.Restart();
        var sending = Task.Run(() => peer.Send(data));
        using (var h = IncrementalHash.CreateHash(HashAlgorithmName.SHA256))
        {
            long got = 0;
            while (got < size)
            {
                var r = app.Receive(s);
                Assert.True(r.Ok && r.Data.Length > 0, $"receive after {got} bytes: {r}");
                h.AppendData(r.Data);
                got += r.Data.Length;
            }
            Assert.Equal(size, got);
            Assert.Equal(expected, h.GetHashAndReset());
        }
        Assert.True(sending.Wait(PeerTimeout));
        output.WriteLine($"peer -> app: {size >> 20} MiB in {sw.Elapsed.TotalSeconds:F2} s ({size * 8 / sw.Elapsed.TotalSeconds / 1e6:F0} Mbit/s)");
        Assert.True(app.Close(s).Ok);
        var st = stack.WaitStats(x => x[(int)InetStat.SocketsOpen] == 0 && x[(int)InetStat.TxInFlight] == 0, "closed, nothing in flight");
        output.WriteLine(RunningStack.Format(st));
    }

    [PcapFact]
    public void An_app_that_leaves_has_its_connections_reset_and_its_pages_come_back()
    {
        using var stack = new RunningStack(output);
        using var listener = PeerListener(stack, 5005);
        var app = new TestApp(stack.Instance, "leaving-app");
        ulong s = app.NewSocket(AbiSocketType.Stream);
        Assert.True(app.Connect(s, Peer, 5005).Ok);
        using var peer = AcceptWithin(listener);
        app.SendAll(s, Pattern(100_000, 6), 1448);
        PeerReceiveExactly(peer, 100_000);
        // A held receive and a second socket, then the app goes without closing anything.
        ulong u = app.NewSocket(AbiSocketType.Datagram);
        Assert.True(app.Bind(u, "0.0.0.0", 4100).Ok);
        // (A call blocked in Call is not woken when its own process closes the channel: it ends
        // at its timeout, kept short here. What is checked is inet's side.)
        var held = Task.Run(() => app.Receive(s, timeout: TimeSpan.FromSeconds(3)));
        stack.WaitStats(x => x[(int)InetStat.HeldRequests] == 1, "the receive held");
        app.CloseChannel();
        // The app's own call fails (PeerDied or its timeout): its channel is gone.
        var ended = Assert.Throws<AggregateException>(() => held.Wait(PeerTimeout));
        Assert.IsType<AntHost.Kernel.KernelException>(ended.InnerException);
        var e = Assert.Throws<SocketException>(() => peer.Receive(new byte[16]));
        Assert.Equal(SocketError.ConnectionReset, e.SocketErrorCode);
        var st = stack.WaitStats(x => x[(int)InetStat.AppDeaths] == 1, "the app's departure noticed");
        Assert.Equal(1, st[(int)InetStat.SocketsAbortedForDeadApps]);
        Assert.Equal(0, st[(int)InetStat.SocketsOpen]);
        Assert.Equal(0, st[(int)InetStat.HeldRequests]);
        app.Dispose();

        // Every page the app had comes back, and inet holds nothing beyond its interface's buffers.
        stack.WaitStats(x => x[(int)InetStat.TxInFlight] == 0 && x[(int)InetStat.BuffersOutstanding] == x[(int)InetStat.InterfaceHeldBuffers],
            "no buffer outside the interface");
        stack.DisconnectObserver();
        Assert.Equal(0, stack.Driver.Stop());
        Assert.Equal(0, stack.Inet.Stop());
        stack.Inet.WaitFor("buffers outstanding at stop: 0");
        stack.Inet.WaitFor("pages owned at stop: 0");
        stack.AssertEveryPageFree();
    }

    [PcapFact]
    public void Bad_requests_get_a_clear_status_are_counted_and_the_server_goes_on()
    {
        using var stack = new RunningStack(output);
        using var app = new TestApp(stack.Instance);
        using var other = new TestApp(stack.Instance, "other-app");
        ulong s = app.NewSocket(AbiSocketType.Stream);

        // Unknown and stale handles, another process's socket.
        Assert.Equal(SocketStatus.InvalidSocket, app.Listen(0x1234_0000_0042UL).Status);
        Assert.Equal(SocketStatus.InvalidSocket, other.Listen(s).Status);
        Assert.Equal(SocketStatus.InvalidSocket, other.Close(s).Status);
        // A type that does not exist; a call the socket type does not have.
        Assert.Equal(InetStatus.BadArguments, app.Call(InetOp.Socket, a => a.Small = 9).Status);
        ulong u = app.NewSocket(AbiSocketType.Datagram);
        Assert.Equal(SocketStatus.OperationNotSupported, app.Listen(u).Status);
        // No control ICA.
        var bare = app.Kernel.Call(app.Inet, default, (ushort)InetOp.Socket, default, TestApp.CallTimeout);
        Assert.Equal((int)InetStatus.NoControl, bare.Status);
        app.Kernel.FreeMessage(bare);
        // A data ICA whose descriptor runs past its end; data with a call that takes none.
        var ica = app.Kernel.AllocateBytes(4096);
        var r = app.Call(InetOp.Send, a => { a.Socket = s; a.Small = 1; a.SetData(0, 4000, 200); }, [new AntHost.Kernel.DataIca(ica, 4096)]);
        Assert.Equal(InetStatus.BadArguments, r.Status);
        var ica2 = app.Kernel.AllocateBytes(4096);
        Assert.Equal(InetStatus.BadArguments, app.Call(InetOp.Listen, a => a.Socket = s, [new AntHost.Kernel.DataIca(ica2, 100)]).Status);
        // A send on a socket that is not connected.
        Assert.Equal(SocketStatus.NotConnected, app.Send(s, "x"u8).Status);
        // A closed port for a datagram socket used as a stream.
        Assert.Equal(SocketStatus.OperationNotSupported, app.Accept(u).Status);

        var st = stack.InetStats();
        Assert.True(st[(int)InetStat.InvalidSocketHandles] >= 3, RunningStack.Format(st));
        Assert.True(st[(int)InetStat.BadSocketRequests] >= 5, RunningStack.Format(st));
        Assert.Equal(2, st[(int)InetStat.SocketsOpen]);

        // The server goes on: a connection works.
        using var listener = PeerListener(stack, 5006);
        Assert.True(app.Connect(s, Peer, 5006).Ok);
        using var peer = AcceptWithin(listener);
        Assert.True(app.Send(s, "still here"u8).Ok);
        Assert.Equal("still here"u8.ToArray(), PeerReceiveExactly(peer, 10));

        // A hostile app scribbles over the control ICA of its held receive (it still maps the
        // page): inet answers the call all the same when data comes, and goes on.
        var held = Task.Run(() => app.Receive(s));
        stack.WaitStats(x => x[(int)InetStat.HeldRequests] == 1, "the receive held");
        app.LastControl.Span.Fill(0xA5);
        peer.Send("after"u8.ToArray());
        Assert.True(held.Wait(PeerTimeout), "the scribbled call was never answered");
        Assert.True(held.Result.Ok, $"scribbled receive: {held.Result}");
        Assert.True(app.Send(s, "and on"u8).Ok);
        Assert.Equal("and on"u8.ToArray(), PeerReceiveExactly(peer, 6));
        Assert.True(app.Close(s).Ok);
        Assert.True(app.Close(u).Ok);
        // The refused data ICAs were freed by inet: it holds no buffer outside the interface.
        stack.WaitStats(x => x[(int)InetStat.SocketsOpen] == 0 && x[(int)InetStat.BuffersOutstanding] == x[(int)InetStat.InterfaceHeldBuffers] + x[(int)InetStat.TxInFlight],
            "no buffer outside the interface and in-flight frames");
    }

    [PcapFact]
    public void The_request_manager_allocates_nothing_per_send_and_receive_after_warm_up()
    {
        using var stack = new RunningStack(output);
        using var listener = PeerListener(stack, 5007);
        using var app = new TestApp(stack.Instance);
        ulong s = app.NewSocket(AbiSocketType.Stream);
        Assert.True(app.Connect(s, Peer, 5007).Ok);
        using var peer = AcceptWithin(listener);
        var payload = Pattern(1000, 7);
        var buffer = new byte[1000];
        void RoundTrips(int n)
        {
            for (int i = 0; i < n; i++)
            {
                Assert.True(app.Send(s, payload).Ok);
                int got = 0;
                while (got < payload.Length) got += peer.Receive(buffer, got, payload.Length - got, System.Net.Sockets.SocketFlags.None);
                peer.Send(buffer);
                Assert.Equal(payload.Length, app.ReceiveExactly(s, payload.Length).Length);
            }
        }
        RoundTrips(300);
        // As the echo test does: what a Stats request costs alone, and with 100 round trips
        // (a send answered by direct return or by inet, a held or immediate receive); the least
        // of three rounds leaves out one-off growth.
        long perStats = long.MaxValue, withCalls = long.MaxValue;
        for (int round = 0; round < 3; round++)
        {
            long a = stack.Stat(InetStat.RequestThreadAllocatedBytes);
            long b = stack.Stat(InetStat.RequestThreadAllocatedBytes);
            RoundTrips(100);
            long c = stack.Stat(InetStat.RequestThreadAllocatedBytes);
            perStats = Math.Min(perStats, b - a);
            withCalls = Math.Min(withCalls, c - b);
        }
        output.WriteLine($"request manager: {perStats} bytes per Stats request, {withCalls} bytes across Stats and 100 send/receive round trips");
        Assert.True(withCalls - perStats < 100, $"100 sends and receives allocated {withCalls - perStats} bytes on the request manager's thread");
        Assert.True(app.Close(s).Ok);
    }

    [PcapFact]
    public void Two_thousand_connections_are_open_at_once_and_each_carries_its_own_data()
    {
        const int count = 2000;
        using var stack = new RunningStack(output);
        using var listener = PeerTcp(stack);
        listener.Bind(new IPEndPoint(RunningStack.PeerIp, 5008));
        listener.Listen(count);
        var accepted = new System.Collections.Concurrent.ConcurrentBag<Socket>();
        var accepting = Task.Run(() =>
        {
            for (int i = 0; i < count; i++) accepted.Add(listener.Accept());
        });
        using var app = new TestApp(stack.Instance);
        var sockets = new ulong[count];
        var portOf = new Dictionary<int, long>();
        for (int i = 0; i < count; i++)
        {
            sockets[i] = app.NewSocket(AbiSocketType.Stream);
            var c = app.Connect(sockets[i], Peer, 5008);
            Assert.True(c.Ok, $"connect {i}: {c}");
            portOf[c.LocalPort] = i;
        }
        Assert.True(accepting.Wait(PeerTimeout), $"the peer accepted {accepted.Count} of {count}");
        Assert.Equal(count, stack.Stat(InetStat.SocketsOpen));
        for (int i = 0; i < count; i++) Assert.True(app.Send(sockets[i], BitConverter.GetBytes((long)i)).Ok, $"send {i}");
        foreach (var p in accepted)
        {
            p.ReceiveTimeout = (int)PeerTimeout.TotalMilliseconds;
            long value = BitConverter.ToInt64(PeerReceiveExactly(p, 8));
            Assert.Equal(portOf[((IPEndPoint)p.RemoteEndPoint!).Port], value);
        }
        // One poll over 128 of them: every one is writable.
        var set = sockets.Take(PollSet.MaxEntries).Select(x => (x, PollEvents.Writable)).ToArray();
        var (r, ready) = app.Poll(set, 1000);
        Assert.Equal(PollSet.MaxEntries, r.Value);
        Assert.All(ready, e => Assert.True((e & PollEvents.Writable) != 0));
        foreach (var x in sockets) Assert.True(app.Close(x).Ok);
        foreach (var p in accepted) p.Dispose();
        var st = stack.WaitStats(x => x[(int)InetStat.SocketsOpen] == 0, "every socket closed");
        output.WriteLine(RunningStack.Format(st));
    }
}
