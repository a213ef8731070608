using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using AntHost.Client.Dns;
using AntHost.Inet.Abi;
using AntHost.Sandbox;
using AntHost.Stack.Tests.Infrastructure;
using AntHost.TestSupport;
using Xunit.Abstractions;

namespace AntHost.Client.Tests;

/// <summary>
/// Names resolved over AntHost's own UDP (and TCP) against the real DNS server the sandbox
/// runs in the peer namespace (dnsmasq), and HttpClient in one line by name. The test process
/// lives in the root namespace, which has no route to 198.18.0.0/15: every answer it gets
/// came through AntHost's NIC driver and inet server.
/// </summary>
public sealed class NamesTests(ITestOutputHelper output)
{
    private static readonly IPAddress Peer = RunningStack.PeerIp;

    private static DnsOptions PeerDns(TimeSpan? timeout = null) => new()
    {
        Servers = [new IPEndPoint(Peer, 53)],
        Search = [SandboxNetwork.DnsDomain],
        Timeout = timeout ?? TimeSpan.FromSeconds(2),
        Attempts = 2,
    };

    private static InetStack Connect(RunningStack stack, DnsOptions dns) =>
        InetStack.Connect(new InetStackOptions { Instance = stack.Instance, ProcessName = "names-test", Dns = dns });

    [Fact]
    public void The_wire_format_reads_compressed_names_cname_chains_and_refuses_loops()
    {
        var q = DnsMessage.Query(0x1234, "www.anthost.test");
        // An answer: the question, a CNAME www -> peer (compressed), peer's A record.
        var a = new List<byte>(q);
        a[2] = 0x85; a[3] = 0x80; a[7] = 2; // QR AA RD RA, ANCOUNT 2
        a.AddRange([0xC0, 12, 0, 5, 0, 1, 0, 0, 0, 30, 0, 7, 4, (byte)'p', (byte)'e', (byte)'e', (byte)'r', 0xC0, 16]);
        a.AddRange([0xC0, (byte)(q.Length + 12), 0, 1, 0, 1, 0, 0, 0, 10, 0, 4, 198, 18, 0, 1]);
        var answer = DnsMessage.Parse(a.ToArray());
        Assert.NotNull(answer);
        Assert.Equal("www.anthost.test", answer.Question);
        Assert.Equal("peer.anthost.test", answer.Records[0].Target);
        Assert.Equal(Peer, answer.Records[1].Address);
        Assert.Equal(10u, answer.Records[1].Ttl);
        // A pointer to itself: malformed, not a hang.
        var loop = new List<byte>(q[..12]) { 0xC0, 12, 0, 1, 0, 1 };
        loop[2] = 0x81;
        Assert.Null(DnsMessage.Parse(loop.ToArray()));
        Assert.Null(DnsMessage.Parse(new byte[5]));
        Assert.NotNull(DnsMessage.Invalid(new string('a', 64) + ".test"));
        Assert.NotNull(DnsMessage.Invalid("a..b"));
        Assert.Null(DnsMessage.Invalid("peer.anthost.test."));
        var conf = DnsOptions.Parse("# comment\nnameserver 198.18.0.1\nnameserver ::1\nsearch a.test b.test\noptions ndots:2 timeout:3 attempts:4\n");
        Assert.Equal([new IPEndPoint(Peer, 53)], conf.Servers);
        Assert.Equal(["a.test", "b.test"], conf.Search);
        Assert.Equal((2, TimeSpan.FromSeconds(3), 4), (conf.Ndots, conf.Timeout, conf.Attempts));
        var again = DnsOptions.Parse(conf.ToResolvConf());
        Assert.Equal(conf.Servers, again.Servers);
        Assert.Equal(conf.Search, again.Search);
        Assert.Equal((conf.Ndots, conf.Timeout, conf.Attempts), (again.Ndots, again.Timeout, again.Attempts));
    }

    [PcapFact]
    public async Task Names_resolve_over_AntHost_through_the_peers_dnsmasq()
    {
        using var running = new RunningStack(output);
        running.Sandbox.StartServers();
        running.Sandbox.StartDns();
        using var stack = Connect(running, PeerDns());
        long socketsBefore = running.Stat(InetStat.SocketsOpen);
        var dns = stack.Resolver;

        Assert.Equal([Peer], await stack.ResolveAsync(SandboxNetwork.PeerName));
        Assert.Equal(1, dns.QueriesSent);
        // From the cache (TTL 30 s): no query.
        Assert.Equal([Peer], stack.Resolve("PEER.anthost.test"));
        Assert.Equal(1, dns.CacheHits);
        Assert.Equal(1, dns.QueriesSent);
        // The search list: "peer" is peer.anthost.test.
        Assert.Equal([Peer], await stack.ResolveAsync("peer"));
        // A CNAME chain, and AntHost's own name.
        Assert.Equal([Peer], await stack.ResolveAsync(SandboxNetwork.AliasName));
        Assert.Equal([RunningStack.HostIp], await stack.ResolveAsync(SandboxNetwork.HostName));
        // Too big for 512 bytes of UDP: truncated, asked again over TCP, every address there.
        var many = await stack.ResolveAsync(SandboxNetwork.ManyName);
        Assert.Equal(SandboxNetwork.ManyCount, many.Length);
        Assert.Equal(1, dns.TcpQueries);
        Assert.Equal(Enumerable.Range(1, SandboxNetwork.ManyCount).Select(i => IPAddress.Parse($"198.18.1.{i}")).Order(new AddressOrder()), many.Order(new AddressOrder()));
        // No such name: HostNotFound, as .NET's Dns says it.
        var nx = await Assert.ThrowsAnyAsync<SocketException>(() => stack.ResolveAsync("nope." + SandboxNetwork.DnsDomain));
        Assert.Equal(SocketError.HostNotFound, nx.SocketErrorCode);
        output.WriteLine(nx.Message);
        // A name the server refuses (it has no upstream): TryAgain.
        var refused = await Assert.ThrowsAnyAsync<SocketException>(() => stack.ResolveAsync("example.com"));
        Assert.Equal(SocketError.TryAgain, refused.SocketErrorCode);
        output.WriteLine(refused.Message);
        var bad = Assert.ThrowsAny<SocketException>(() => stack.Resolve("a..b"));
        Assert.Equal(SocketError.HostNotFound, bad.SocketErrorCode);

        // Connecting by name: a host string and a DnsEndPoint.
        using (var s = new InetSocket(stack, SocketType.Stream, ProtocolType.Tcp))
        {
            await s.ConnectAsync("peer", 7);
            Assert.Equal(new IPEndPoint(Peer, 7), s.RemoteEndPoint);
            s.Send("hi"u8);
            var b = new byte[2];
            Assert.Equal(2, s.Receive(b));
        }
        using (var s = new InetSocket(stack, SocketType.Stream, ProtocolType.Tcp))
        {
            s.Connect(new DnsEndPoint(SandboxNetwork.AliasName, 7));
            Assert.Equal(new IPEndPoint(Peer, 7), s.RemoteEndPoint);
        }
        output.WriteLine($"queries {dns.QueriesSent} (TCP {dns.TcpQueries}), cache hits {dns.CacheHits}, bad answers {dns.BadAnswers}, timeouts {dns.Timeouts}");
        running.WaitStats(st => st[(int)InetStat.SocketsOpen] == socketsBefore, "every query's socket closed");
    }

    [PcapFact]
    public async Task A_server_that_does_not_answer_fails_with_TryAgain_within_the_configured_time()
    {
        using var running = new RunningStack(output);
        // 198.18.0.9 is nobody: the queries go out and nothing ever comes back.
        var dns = new DnsOptions { Servers = [new IPEndPoint(IPAddress.Parse("198.18.0.9"), 53)], Timeout = TimeSpan.FromMilliseconds(700), Attempts = 2 };
        using var stack = Connect(running, dns);
        long socketsBefore = running.Stat(InetStat.SocketsOpen);
        var sw = Stopwatch.StartNew();
        var e = await Assert.ThrowsAnyAsync<SocketException>(() => stack.ResolveAsync("peer.anthost.test"));
        sw.Stop();
        output.WriteLine($"{e.SocketErrorCode} after {sw.ElapsedMilliseconds} ms: {e.Message}");
        Assert.Equal(SocketError.TryAgain, e.SocketErrorCode);
        Assert.Equal(2, stack.Resolver.Timeouts);
        Assert.InRange(sw.Elapsed, TimeSpan.FromMilliseconds(1300), TimeSpan.FromSeconds(5));
        // The caller's own token ends a lookup at once with OperationCanceledException.
        using var cts = new CancellationTokenSource(100);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => stack.ResolveAsync("other.anthost.test", cts.Token));
        running.WaitStats(st => st[(int)InetStat.SocketsOpen] == socketsBefore, "every query's socket closed");
        // Nothing configured: a clear TryAgain, nothing sent.
        using var none = Connect(running, new DnsOptions());
        var empty = await Assert.ThrowsAnyAsync<SocketException>(() => none.ResolveAsync("peer.anthost.test"));
        Assert.Equal(SocketError.TryAgain, empty.SocketErrorCode);
        Assert.Contains("no IPv4 name server", empty.Message, StringComparison.Ordinal);
    }

    [PcapFact]
    public async Task HttpClient_in_one_line_gets_pages_by_name_and_fails_as_dotnet_does()
    {
        using var running = new RunningStack(output);
        running.Sandbox.StartServers();
        running.Sandbox.StartDns();
        using var stack = Connect(running, PeerDns());
        long socketsBefore = running.Stat(InetStat.SocketsOpen);
        using (var http = new HttpClient(stack.CreateHttpHandler()))
        {
            for (int i = 0; i < 5; i++)
                Assert.Equal("hello from the AntHost peer\n", await http.GetStringAsync($"http://{SandboxNetwork.PeerName}/"));
            // Five GETs on one pooled, kept-alive connection: one socket open in inet.
            Assert.Equal(socketsBefore + 1, running.Stat(InetStat.SocketsOpen));
            var body = await http.GetByteArrayAsync($"http://{SandboxNetwork.AliasName}/bytes/200000");
            Assert.Equal(200_000, body.Length);
            Assert.All(Enumerable.Range(0, body.Length).Where(i => i % 4999 == 0), i => Assert.Equal((byte)(i % (64 * 1024) % 251), body[i]));
            // Another host name (the alias): a pool and a connection of its own.
            Assert.Equal(socketsBefore + 2, running.Stat(InetStat.SocketsOpen));

            var nx = await Assert.ThrowsAsync<HttpRequestException>(() => http.GetStringAsync("http://nope.anthost.test/"));
            Assert.Equal(SocketError.HostNotFound, Assert.IsAssignableFrom<SocketException>(nx.InnerException).SocketErrorCode);
            var refused = await Assert.ThrowsAsync<HttpRequestException>(() => http.GetStringAsync($"http://{SandboxNetwork.PeerName}:81/"));
            Assert.Equal(SocketError.ConnectionRefused, Assert.IsAssignableFrom<SocketException>(refused.InnerException).SocketErrorCode);
            output.WriteLine($"{nx.Message} / {refused.Message}");
        }
        // The failed connect's socket was closed, and disposing the client closed the pooled one.
        running.WaitStats(st => st[(int)InetStat.SocketsOpen] == socketsBefore, "every socket closed");
    }

    private sealed class AddressOrder : IComparer<IPAddress>
    {
        public int Compare(IPAddress? x, IPAddress? y) => string.CompareOrdinal(x?.ToString(), y?.ToString());
    }
}
