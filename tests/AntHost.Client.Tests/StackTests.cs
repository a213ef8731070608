using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using AntHost.Sandbox;
using AntHost.Stack.Tests.Infrastructure;
using AntHost.TestSupport;
using Xunit.Abstractions;

namespace AntHost.Client.Tests;

/// <summary>
/// The library against the running stack (broker, inet server, NIC driver as processes on
/// a sandbox veth) with the Linux kernel in the peer namespace as the remote host and its
/// ordinary servers (echo, HTTP) or the test's own kernel sockets as the far end.
/// </summary>
public sealed class StackTests(ITestOutputHelper output)
{
    private static readonly IPAddress Peer = RunningStack.PeerIp;
    private static readonly IPAddress Host = RunningStack.HostIp;

    private static InetStack Connect(RunningStack stack) =>
        InetStack.Connect(new InetStackOptions { Instance = stack.Instance, ProcessName = "client-test" });

    private static byte[] Pattern(int length, int seed)
    {
        var b = new byte[length];
        new Random(seed).NextBytes(b);
        return b;
    }

    private static void ReceiveExactly(InetSocket s, Span<byte> into)
    {
        int got = 0;
        while (got < into.Length)
        {
            int n = s.Receive(into[got..]);
            Assert.True(n > 0, $"the stream ended after {got} of {into.Length} bytes");
            got += n;
        }
    }

    [PcapFact]
    public async Task Tcp_echo_through_InetSocket_and_InetStream_comes_back_intact()
    {
        using var running = new RunningStack(output);
        running.Sandbox.StartServers();
        using var stack = Connect(running);

        using (var s = new InetSocket(stack, SocketType.Stream, ProtocolType.Tcp))
        {
            s.Connect(new IPEndPoint(Peer, 7));
            Assert.True(s.Connected);
            Assert.Equal(Host, s.LocalEndPoint!.Address);
            foreach (int size in new[] { 1, 100, 1460, 1461, 5000, 100_000 })
            {
                var data = Pattern(size, size);
                Assert.Equal(size, s.Send(data));
                var back = new byte[size];
                ReceiveExactly(s, back);
                Assert.Equal(data, back);
            }
            // Copy-less both ways.
            var trace = new SendTrace();
            var buffer = s.RentSendBuffer(512);
            Pattern(512, 7).CopyTo(buffer.Span);
            Assert.Equal(512, s.Send(buffer, 512, trace));
            output.WriteLine("timeline of a 512-byte copy-less send:\n" + trace);
            Assert.Contains(trace.Stamps.ToArray(), t => t.Stage == Inet.Abi.InetTraceStage.AppStart);
            Assert.Contains(trace.Stamps.ToArray(), t => t.Stage == Inet.Abi.InetTraceStage.AppReturned);
            var echoed = new MemoryStream();
            while (echoed.Length < 512)
            {
                using var lease = s.ReceiveLease();
                Assert.False(lease.IsEndOfStream);
                echoed.Write(lease.Span);
            }
            Assert.Equal(Pattern(512, 7), echoed.ToArray());
            MeasureEchoes(s, "continuations on the thread pool");
            s.Shutdown(SocketShutdown.Send);
            Assert.Equal(0, s.Receive(new byte[10])); // the echo server closes after our FIN
        }

        using (var inline = InetStack.Connect(new InetStackOptions { Instance = running.Instance, ProcessName = "client-inline", InlineCompletions = true }))
        using (var s = new InetSocket(inline, SocketType.Stream, ProtocolType.Tcp))
        {
            await s.ConnectAsync(new IPEndPoint(Peer, 7));
            await Task.Run(() => MeasureEchoes(s, "inline completions"));
        }

        var socket = new InetSocket(stack, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(new IPEndPoint(Peer, 7));
        await using (var stream = new InetStream(socket, ownsSocket: true))
        {
            var data = Pattern(256 * 1024, 3);
            var reader = Task.Run(async () =>
            {
                var back = new byte[data.Length];
                await stream.ReadExactlyAsync(back);
                return back;
            });
            await stream.WriteAsync(data);
            Assert.Equal(data, await reader.WaitAsync(TimeSpan.FromSeconds(120)));
        }
        Assert.Equal(0, stack.MalformedReplies);
    }

    /// <summary>
    /// Round trips of 256 bytes (sync and async) and what the library allocates for them: printed
    /// for the report, not asserted (figures belong to the benchmarks; each echo is still checked).
    /// </summary>
    private void MeasureEchoes(InetSocket s, string how)
    {
        var msg = Pattern(256, 11);
        var back = new byte[256];
        void Echo()
        {
            s.Send(msg);
            ReceiveExactly(s, back);
            Assert.Equal(msg, back);
        }
        async Task EchoAsync()
        {
            await s.SendAsync(msg);
            int got = 0;
            while (got < back.Length) got += await s.ReceiveAsync(back.AsMemory(got));
            Assert.Equal(msg, back);
        }
        for (int i = 0; i < 100; i++) Echo();
        for (int i = 0; i < 100; i++) EchoAsync().GetAwaiter().GetResult();
        const int N = 300;
        var rtt = new double[N];
        long before = GC.GetAllocatedBytesForCurrentThread();
        long beforeSyncAll = GC.GetTotalAllocatedBytes(precise: true);
        for (int i = 0; i < N; i++)
        {
            long t0 = Stopwatch.GetTimestamp();
            Echo();
            rtt[i] = Stopwatch.GetElapsedTime(t0).TotalMicroseconds;
        }
        long syncBytes = GC.GetAllocatedBytesForCurrentThread() - before;
        long syncAll = GC.GetTotalAllocatedBytes(precise: true) - beforeSyncAll;
        var rttAsync = new double[N];
        long beforeAll = GC.GetTotalAllocatedBytes(precise: true);
        for (int i = 0; i < N; i++)
        {
            long t0 = Stopwatch.GetTimestamp();
            EchoAsync().GetAwaiter().GetResult();
            rttAsync[i] = Stopwatch.GetElapsedTime(t0).TotalMicroseconds;
        }
        long asyncBytes = GC.GetTotalAllocatedBytes(precise: true) - beforeAll;
        Array.Sort(rtt);
        Array.Sort(rttAsync);
        output.WriteLine($"256 B echo through AntHost to the peer kernel ({how}), {N} each after warm-up: sync median {rtt[N / 2]:F0} us, p99 {rtt[N * 99 / 100]:F0} us, "
            + $"{syncBytes / (double)N:F0} B allocated per echo on the calling thread ({syncAll / (double)N:F0} B in the whole test process); async median {rttAsync[N / 2]:F0} us, p99 {rttAsync[N * 99 / 100]:F0} us, "
            + $"{asyncBytes / (double)N:F0} B per echo in the whole test process");
    }

    [PcapFact]
    public async Task HttpClient_gets_the_peers_page_through_ConnectCallback_and_InetStream()
    {
        using var running = new RunningStack(output);
        running.Sandbox.StartServers();
        using var stack = Connect(running);
        using var handler = new SocketsHttpHandler
        {
            ConnectCallback = async (context, ct) =>
            {
                var s = new InetSocket(stack, SocketType.Stream, ProtocolType.Tcp);
                await s.ConnectAsync(new IPEndPoint(IPAddress.Parse(context.DnsEndPoint.Host), context.DnsEndPoint.Port), ct);
                return new InetStream(s, ownsSocket: true);
            },
            UseProxy = false,
        };
        using var http = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(60) };
        var page = await http.GetStringAsync(new Uri($"http://{Peer}/"));
        Assert.False(string.IsNullOrWhiteSpace(page));
        var bytes = await http.GetByteArrayAsync(new Uri($"http://{Peer}/bytes/100000"));
        Assert.Equal(100_000, bytes.Length);
        using var post = await http.PostAsync(new Uri($"http://{Peer}/echo"), new ByteArrayContent(Pattern(20_000, 5)));
        Assert.Equal(Pattern(20_000, 5), await post.Content.ReadAsByteArrayAsync());
        output.WriteLine($"GET / gave {page.Length} characters; /bytes/100000 and POST /echo of 20,000 bytes intact");
    }

    [PcapFact]
    public void A_server_on_AntHost_is_reached_by_curl_in_the_peer_namespace()
    {
        using var running = new RunningStack(output);
        using var stack = Connect(running);
        using var listener = new InetSocket(stack, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(Host, 8080));
        listener.Listen(8);
        var serve = Task.Run(() =>
        {
            using var conn = listener.Accept();
            var head = new StringBuilder();
            var buf = new byte[2048];
            while (!head.ToString().Contains("\r\n\r\n", StringComparison.Ordinal))
            {
                int n = conn.Receive(buf);
                if (n == 0) break;
                head.Append(Encoding.ASCII.GetString(buf, 0, n));
            }
            string body = $"hello from AntHost to {conn.RemoteEndPoint}";
            conn.Send(Encoding.ASCII.GetBytes($"HTTP/1.1 200 OK\r\nContent-Length: {body.Length}\r\nConnection: close\r\n\r\n{body}"));
            conn.Shutdown(SocketShutdown.Send);
            while (conn.Receive(buf) > 0) { }
            return head.ToString();
        });
        var curl = running.Sandbox.RunInPeer("curl", "-sS", "--max-time", "60", $"http://{Host}:8080/hello");
        output.WriteLine($"curl: exit {curl.ExitCode}, out '{curl.StandardOutput}', err '{curl.StandardError}'");
        Assert.Equal(0, curl.ExitCode);
        Assert.StartsWith($"hello from AntHost to {Peer}:", curl.StandardOutput, StringComparison.Ordinal);
        Assert.True(serve.Wait(TimeSpan.FromSeconds(60)));
        Assert.StartsWith("GET /hello HTTP/1.1", serve.Result, StringComparison.Ordinal);
    }

    [PcapFact]
    public async Task Udp_echo_and_ping_reach_the_peer()
    {
        using var running = new RunningStack(output);
        running.Sandbox.StartServers();
        using var stack = Connect(running);
        using var u = new InetSocket(stack, SocketType.Dgram, ProtocolType.Udp);
        for (int i = 0; i < 5; i++)
        {
            var data = Pattern(100 + i, i);
            u.SendTo(data, new IPEndPoint(Peer, 7));
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            var r = await u.ReceiveFromAsync(new byte[2000], new IPEndPoint(IPAddress.Any, 0), cts.Token);
            Assert.Equal(data.Length, r.ReceivedBytes);
            Assert.Equal(new IPEndPoint(Peer, 7), r.RemoteEndPoint);
        }
        for (int i = 0; i < 5; i++)
        {
            var rtt = await stack.PingAsync(Peer, TimeSpan.FromSeconds(30));
            Assert.True(rtt > TimeSpan.Zero);
            output.WriteLine($"ping {Peer}: {rtt.TotalMicroseconds:F0} us");
        }
    }

    [PcapFact]
    public async Task Refused_nonblocking_reset_and_canceled_calls_behave_as_dotnet_sockets_do()
    {
        using var running = new RunningStack(output);
        using var stack = Connect(running);

        using (var refused = new InetSocket(stack, SocketType.Stream, ProtocolType.Tcp))
        {
            var e = Assert.Throws<InetSocketException>(() => refused.Connect(new IPEndPoint(Peer, 5999)));
            Assert.Equal(SocketError.ConnectionRefused, e.SocketErrorCode);
            output.WriteLine("refused: " + e.Message);
        }

        using var peerListener = NamespaceThread.Run(running.Sandbox.PeerNamespace, () =>
        {
            var l = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            l.Bind(new IPEndPoint(Peer, 6001));
            l.Listen(8);
            return l;
        });
        // A non-blocking connect says WouldBlock; the socket turns writable and connected.
        using (var nb = new InetSocket(stack, SocketType.Stream, ProtocolType.Tcp) { Blocking = false })
        {
            var first = peerListener.AcceptAsync();
            var wb = Assert.Throws<InetSocketException>(() => nb.Connect(new IPEndPoint(Peer, 6001)));
            Assert.Equal(SocketError.WouldBlock, wb.SocketErrorCode);
            Assert.True(nb.Poll(60_000_000, SelectMode.SelectWrite));
            Assert.True(nb.Connected);
            Assert.Equal(new IPEndPoint(Peer, 6001), nb.RemoteEndPoint);
            Assert.Equal(Host, nb.LocalEndPoint!.Address);
            using var peerFirst = await first.WaitAsync(TimeSpan.FromSeconds(60));
            Assert.Equal(nb.LocalEndPoint, peerFirst.RemoteEndPoint);
            Assert.False(nb.Poll(0, SelectMode.SelectRead));
            var wouldBlock = Assert.Throws<InetSocketException>(() => nb.Receive(new byte[10]));
            Assert.Equal(SocketError.WouldBlock, wouldBlock.SocketErrorCode);
        }

        using var s = new InetSocket(stack, SocketType.Stream, ProtocolType.Tcp);
        var accepted = peerListener.AcceptAsync();
        await s.ConnectAsync(new IPEndPoint(Peer, 6001));
        using var peerSide = await accepted.WaitAsync(TimeSpan.FromSeconds(60));

        // A held receive ends on cancellation, and the connection still works afterwards.
        using (var cts = new CancellationTokenSource())
        {
            var pending = s.ReceiveAsync(new byte[100], cts.Token).AsTask();
            await Task.Delay(50);
            Assert.False(pending.IsCompleted);
            cts.Cancel();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => pending.WaitAsync(TimeSpan.FromSeconds(60)));
        }
        peerSide.Send(Pattern(10, 1));
        var got = new byte[10];
        ReceiveExactly(s, got);
        Assert.Equal(Pattern(10, 1), got);

        // The peer resets the connection (linger 0): the app's receive says so.
        peerSide.LingerState = new LingerOption(true, 0);
        peerSide.Close();
        var reset = await Assert.ThrowsAsync<InetSocketException>(async () => await s.ReceiveAsync(new byte[100]).AsTask().WaitAsync(TimeSpan.FromSeconds(60)));
        Assert.Equal(SocketError.ConnectionReset, reset.SocketErrorCode);
        Assert.False(s.Connected);
        output.WriteLine("reset: " + reset.Message);
    }

    [PcapFact]
    public async Task A_killed_inet_server_fails_waiting_calls_at_once_with_a_clear_error()
    {
        using var running = new RunningStack(output);
        running.Sandbox.StartServers();
        using var stack = Connect(running);
        using var a = new InetSocket(stack, SocketType.Stream, ProtocolType.Tcp);
        using var b = new InetSocket(stack, SocketType.Stream, ProtocolType.Tcp);
        a.Connect(new IPEndPoint(Peer, 7));
        b.Connect(new IPEndPoint(Peer, 7));
        var asyncReceive = a.ReceiveAsync(new byte[10]).AsTask();
        Exception? syncError = null;
        var t = new Thread(() =>
        {
            try { b.Receive(new byte[10]); }
            catch (Exception e) { syncError = e; }
        });
        t.Start();
        await Task.Delay(100); // both receives are held in inet (nothing to echo)
        int pid = running.Inet.Pid;
        var sw = Stopwatch.StartNew();
        running.Inet.Kill9();
        var asyncError = await Assert.ThrowsAsync<InetSocketException>(() => asyncReceive.WaitAsync(TimeSpan.FromSeconds(60)));
        var asyncTook = sw.Elapsed;
        Assert.True(t.Join(TimeSpan.FromSeconds(60)), "the sync receive never ended");
        var syncTook = sw.Elapsed;
        var se = Assert.IsType<InetSocketException>(syncError);
        foreach (var e in new[] { asyncError, se })
        {
            Assert.Equal(SocketError.NetworkDown, e.SocketErrorCode);
            Assert.Contains($"the inet server (pid {pid})", e.Message, StringComparison.Ordinal);
        }
        Assert.Throws<InetSocketException>(() => a.Send(new byte[1]));
        output.WriteLine($"after kill -9 of inet (pid {pid}): async call failed in {asyncTook.TotalMilliseconds:F1} ms, "
            + $"sync call in {syncTook.TotalMilliseconds:F1} ms: {se.Message}");
    }
}
