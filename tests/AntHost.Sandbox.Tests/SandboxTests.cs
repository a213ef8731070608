using System.Diagnostics;
using System.Text.Json;
using AntHost.TestSupport;

namespace AntHost.Sandbox.Tests;

/// <summary>The sandbox network made for real: its layout, the peer's servers, loss and rate limits, and teardown (also after a crash).</summary>
public sealed class SandboxTests
{
    private static string NewPrefix() => "aht-n" + Random.Shared.Next(10000, 100000);

    private static JsonElement IpJson(string ns, params string[] args)
    {
        var r = CommandRunner.Check("ip", new[] { "-n", ns, "-j" }.Concat(args));
        return JsonDocument.Parse(r.StandardOutput).RootElement.Clone();
    }

    [NetnsFact]
    public void Create_builds_the_layout_the_docs_describe()
    {
        using var sb = SandboxNetwork.Create(new SandboxOptions { Prefix = NewPrefix(), StartServers = false });
        Assert.Equal([sb.HostNamespace, sb.PeerNamespace], SandboxNetwork.Namespaces(sb.Options.Prefix).Order());

        var peer = IpJson(sb.PeerNamespace, "addr", "show", "dev", sb.PeerInterface)[0];
        Assert.Equal(1500, peer.GetProperty("mtu").GetInt32());
        Assert.Contains("UP", peer.GetProperty("flags").EnumerateArray().Select(f => f.GetString()));
        var peerAddrs = peer.GetProperty("addr_info").EnumerateArray().Select(a => (a.GetProperty("family").GetString(), a.GetProperty("local").GetString(), a.GetProperty("prefixlen").GetInt32())).ToList();
        Assert.Equal([("inet", "198.18.0.1", 24)], peerAddrs);

        var host = IpJson(sb.HostNamespace, "addr", "show", "dev", sb.HostInterface)[0];
        Assert.Equal(1500, host.GetProperty("mtu").GetInt32());
        Assert.Empty(host.GetProperty("addr_info").EnumerateArray()); // no kernel address at all, not even IPv6 link-local

        foreach (var (ns, dev) in new[] { (sb.HostNamespace, sb.HostInterface), (sb.PeerNamespace, sb.PeerInterface) })
        {
            var features = CommandRunner.CheckIn(ns, "ethtool", ["-k", dev]).StandardOutput;
            foreach (var f in new[] { "tcp-segmentation-offload", "generic-segmentation-offload", "generic-receive-offload", "tx-checksumming", "rx-checksumming", "scatter-gather" })
                Assert.Matches($"(?m)^{f}: off", features);
        }
        Assert.Matches("^[0-9a-f]{2}(:[0-9a-f]{2}){5}$", sb.PeerMac);
    }

    [NetnsFact]
    public void The_peer_servers_answer_on_the_peer_address()
    {
        using var sb = SandboxNetwork.Create(new SandboxOptions { Prefix = NewPrefix() });
        Assert.NotNull(sb.ServersPid);

        var get = sb.RunInPeer("curl", "-sS", "--max-time", "20", "http://198.18.0.1/");
        Assert.True(get.Succeeded, get.StandardError);
        Assert.Equal("hello from the AntHost peer\n", get.StandardOutput);
        var size = sb.RunInPeer("curl", "-sS", "--max-time", "20", "-o", "/dev/null", "-w", "%{size_download}", "http://198.18.0.1/bytes/300000");
        Assert.Equal("300000", size.StandardOutput);
        var post = sb.RunInPeer("curl", "-sS", "--max-time", "20", "--data-binary", "echo me", "http://198.18.0.1/echo");
        Assert.Equal("echo me", post.StandardOutput);

        var tcpEcho = CommandRunner.RunIn(sb.PeerNamespace, "socat", ["-T", "10", "-", "TCP:198.18.0.1:7"], "over tcp\n");
        Assert.Equal("over tcp\n", tcpEcho.StandardOutput);
        var udpEcho = CommandRunner.RunIn(sb.PeerNamespace, "socat", ["-T", "2", "-", "UDP:198.18.0.1:7"], "over udp\n");
        Assert.Equal("over udp\n", udpEcho.StandardOutput);
        var discard = CommandRunner.RunIn(sb.PeerNamespace, "sh", ["-c", "head -c 2000000 /dev/zero | socat -u - TCP:198.18.0.1:9"]);
        Assert.True(discard.Succeeded, discard.StandardError);
        var source = CommandRunner.RunIn(sb.PeerNamespace, "sh", ["-c", "socat -u TCP:198.18.0.1:19 - 2>/dev/null | head -c 2000000 | wc -c"]);
        Assert.Equal("2000000", source.StandardOutput.Trim());

        // The peer's DNS server (dnsmasq) listens on the peer's address only, UDP and TCP 53
        // (what it answers is NamesTests', asked over AntHost).
        Assert.NotNull(sb.DnsPid);
        var udp = sb.RunInPeer("ss", "-Hlnu", "sport = :53").StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var tcp = sb.RunInPeer("ss", "-Hlnt", "sport = :53").StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("198.18.0.1:53", Assert.Single(udp).Split(' ', StringSplitOptions.RemoveEmptyEntries)[3]);
        Assert.Equal("198.18.0.1:53", Assert.Single(tcp).Split(' ', StringSplitOptions.RemoveEmptyEntries)[3]);
    }

    [NetnsFact]
    public void Destroy_removes_everything_and_is_idempotent()
    {
        var sb = SandboxNetwork.Create(new SandboxOptions { Prefix = NewPrefix() });
        int pid = sb.ServersPid ?? throw new InvalidOperationException("servers did not start");
        int dns = sb.DnsPid ?? throw new InvalidOperationException("dnsmasq did not start");
        sb.Destroy();
        Assert.Empty(SandboxNetwork.Namespaces(sb.Options.Prefix));
        Assert.False(ProcessAlive(pid), "the peer's servers outlived the sandbox");
        Assert.False(ProcessAlive(dns), "the peer's dnsmasq outlived the sandbox");
        sb.Destroy();
        sb.Dispose();
    }

    [NetnsFact]
    public void A_second_create_after_a_crash_sweeps_the_leftovers()
    {
        string prefix = NewPrefix();
        var crashed = SandboxNetwork.Create(new SandboxOptions { Prefix = prefix, StartServers = false });
        // What a crash leaves: both namespaces, the veth, and a process running inside.
        var stray = Process.Start(new ProcessStartInfo("ip", ["netns", "exec", crashed.PeerNamespace, "sleep", "600"]))!;
        try
        {
            using var again = SandboxNetwork.Create(new SandboxOptions { Prefix = prefix });
            Assert.True(stray.WaitForExit(20_000), "the process left in the old namespace was not ended");
            var get = again.RunInPeer("curl", "-sS", "--max-time", "20", "http://198.18.0.1/health");
            Assert.Equal("ok\n", get.StandardOutput);
        }
        finally
        {
            if (!stray.HasExited) stray.Kill();
            stray.Dispose();
            SandboxNetwork.Sweep(prefix);
        }
        Assert.Empty(SandboxNetwork.Namespaces(prefix));
    }

    [NetnsFact]
    public void Loss_rules_drop_ip_at_the_peer_and_clear_again()
    {
        using var sb = SandboxNetwork.Create(new SandboxOptions { Prefix = NewPrefix(), StartServers = false, LossOutPercent = 100 });
        // A neighbour entry so the peer sends to AntHost's address without asking.
        CommandRunner.CheckIn(sb.PeerNamespace, "ip", ["neigh", "replace", "198.18.0.2", "lladdr", "02:00:5e:00:00:02", "dev", sb.PeerInterface]);
        for (int i = 0; i < 5; i++)
            CommandRunner.RunIn(sb.PeerNamespace, "socat", ["-u", "-", "UDP:198.18.0.2:9"], "x");
        Assert.Equal((0L, 5L), sb.LossDropped());

        sb.SetLoss(0, 0);
        Assert.Equal((0L, 0L), sb.LossDropped());
        Assert.False(CommandRunner.RunIn(sb.PeerNamespace, "nft", ["list", "table", "inet", "anthost_loss"]).Succeeded);
    }

    [NetnsFact]
    public void Rate_limits_are_a_tbf_on_both_ends_and_clear_again()
    {
        using var sb = SandboxNetwork.Create(new SandboxOptions { Prefix = NewPrefix(), StartServers = false, RateLimit = "100mbit" });
        Assert.Contains("tbf", sb.RunInHost("tc", "qdisc", "show", "dev", sb.HostInterface).StandardOutput, StringComparison.Ordinal);
        Assert.Contains("rate 100Mbit", sb.RunInPeer("tc", "qdisc", "show", "dev", sb.PeerInterface).StandardOutput, StringComparison.Ordinal);
        sb.ClearRateLimit();
        Assert.DoesNotContain("tbf", sb.RunInPeer("tc", "qdisc", "show", "dev", sb.PeerInterface).StandardOutput, StringComparison.Ordinal);
        sb.ClearRateLimit();
    }

    [NetnsFact]
    public void A_host_kernel_address_serves_the_baseline_and_leaves_anthosts_address_and_mac_alone()
    {
        using var sb = SandboxNetwork.Create(new SandboxOptions { Prefix = "aht-e" + Random.Shared.Next(10000, 100000), HostKernelAddress = "198.18.0.3/24" });
        Assert.Equal(System.Net.IPAddress.Parse("198.18.0.3"), sb.HostKernelAddress);
        var host = IpJson(sb.HostNamespace, "addr", "show", "dev", sb.HostInterface)[0];
        Assert.Equal([("inet", "198.18.0.3")], host.GetProperty("addr_info").EnumerateArray().Select(a => (a.GetProperty("family").GetString(), a.GetProperty("local").GetString())).ToList());

        // The host kernel's TCP reaches the peer's RTT responder: N bytes out, one byte back.
        using (var s = NamespaceThread.Run(sb.HostNamespace, () =>
        {
            var k = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.InterNetwork, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
            k.Bind(new System.Net.IPEndPoint(sb.HostKernelAddress!, 0));
            k.Connect(new System.Net.IPEndPoint(sb.PeerAddress, sb.Options.Ports.Rtt));
            return k;
        }))
        {
            s.ReceiveTimeout = 20_000;
            s.Send([0, 0, 1, 0]); // N = 256
            for (int round = 0; round < 3; round++)
            {
                s.Send(new byte[256]);
                var one = new byte[1];
                Assert.Equal(1, s.Receive(one));
                Assert.Equal(1, one[0]);
            }
        }

        // The kernel still never answers ARP for AntHost's address...
        CommandRunner.RunIn(sb.PeerNamespace, "socat", ["-u", "-", "UDP:198.18.0.2:9"], "x");
        Thread.Sleep(1500);
        string neigh = sb.RunInPeer("ip", "neigh", "show", "198.18.0.2").StandardOutput;
        Assert.DoesNotContain("lladdr", neigh, StringComparison.Ordinal);

        // ...and, with the veth promiscuous (as the NIC driver holds it), a frame addressed to
        // another MAC is not the kernel's, even when its IP address is the kernel's own: a SYN
        // to 198.18.0.3 sent to a foreign MAC gets no answer, the same SYN to the veth's MAC does.
        sb.RunInHost("ip", "link", "set", sb.HostInterface, "promisc", "on");
        using var listener = NamespaceThread.Run(sb.HostNamespace, () =>
        {
            var l = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.InterNetwork, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
            l.Bind(new System.Net.IPEndPoint(sb.HostKernelAddress!, 6000));
            l.Listen(4);
            return l;
        });
        bool Connects()
        {
            using var c = NamespaceThread.Run(sb.PeerNamespace, () => new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.InterNetwork, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp));
            var t = c.ConnectAsync(new System.Net.IPEndPoint(sb.HostKernelAddress!, 6000));
            return t.Wait(TimeSpan.FromSeconds(3)) && c.Connected;
        }
        CommandRunner.CheckIn(sb.PeerNamespace, "ip", ["neigh", "replace", "198.18.0.3", "lladdr", "02:00:5e:00:00:03", "dev", sb.PeerInterface]);
        Assert.False(Connects(), "the host kernel took a frame sent to another MAC");
        CommandRunner.CheckIn(sb.PeerNamespace, "ip", ["neigh", "replace", "198.18.0.3", "lladdr", sb.HostInterfaceMac, "dev", sb.PeerInterface]);
        Assert.True(Connects(), "the host kernel did not answer at its own MAC");
    }

    [Fact]
    public void A_host_kernel_address_must_be_in_range_and_not_taken()
    {
        Assert.Contains("outside", Assert.Throws<ArgumentException>(() => new SandboxOptions { HostKernelAddress = "10.1.1.1/24" }.Validate()).Message, StringComparison.Ordinal);
        Assert.Contains("already", Assert.Throws<ArgumentException>(() => new SandboxOptions { HostKernelAddress = "198.18.0.2/24" }.Validate()).Message, StringComparison.Ordinal);
    }

    [NetnsFact]
    public void A_failing_command_names_itself_and_its_stderr()
    {
        var e = Assert.Throws<SandboxCommandException>(() => CommandRunner.Check("ip", ["link", "show", "dev", "nosuch-if0"]));
        Assert.Contains("`ip link show dev nosuch-if0`", e.Message, StringComparison.Ordinal);
        Assert.Contains("does not exist", e.Message, StringComparison.Ordinal);
        Assert.NotEqual(0, e.Result!.ExitCode);

        var missing = Assert.Throws<SandboxCommandException>(() => CommandRunner.Run("no-such-tool-anthost", []));
        Assert.Contains("no-such-tool-anthost", missing.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("Upper", "198.18.0.1/24", "198.18.0.2/24", "prefix")]
    [InlineData("ok", "10.0.0.1/24", "198.18.0.2/24", "outside 198.18.0.0/15")]
    [InlineData("ok", "198.18.0.1/24", "198.19.255.2", "prefix length")]
    [InlineData("ok", "198.18.0.1/24", "198.18.0.1/24", "both")]
    public void Bad_options_are_refused_before_anything_is_made(string prefix, string peer, string host, string says)
    {
        var e = Assert.Throws<ArgumentException>(() => SandboxNetwork.Create(new SandboxOptions { Prefix = prefix, PeerAddress = peer, HostAddress = host }));
        Assert.Contains(says, e.Message, StringComparison.Ordinal);
    }

    private static bool ProcessAlive(int pid)
    {
        try
        {
            using var p = Process.GetProcessById(pid);
            return !p.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }
}
