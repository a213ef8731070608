using System.Net;
using System.Net.Sockets;
using AntHost.Inet.Abi;
using AntHost.Kernel;
using AntHost.Kernel.Ipc;
using AntHost.Nic8139.Pcap;
using AntHost.Sandbox;
using AntHost.Stack.Tests.Infrastructure;
using AntHost.TestSupport;
using Xunit.Abstractions;

namespace AntHost.Stack.Tests;

/// <summary>
/// The first running stack: broker, inet server and NIC driver as real processes, the
/// peer's Linux kernel on the other end of a veth. ARP, ping, a driver restart, and an
/// ICMP error, each checked where the Linux kernel sees it.
/// </summary>
public sealed class PingTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Patience = StackProcess.Patience;

    /// <summary>The MAC the driver derives for the sandbox's adapter (instance 0).</summary>
    private static ulong DriverMac => NicDevice.DeriveMac(SandboxOptions.HostInterface, 0).Value;

    private static string FormatMac(ulong m) => string.Join(':', Enumerable.Range(0, 6).Select(i => ((m >> (40 - 8 * i)) & 0xFF).ToString("x2")));

    [PcapFact]
    public void The_driver_attaches_and_inet_answers_ARP_for_its_address()
    {
        using var stack = new RunningStack(output);
        var s = stack.InetStats();
        Assert.Equal(1, s[(int)InetStat.Attaches]);
        Assert.Equal(1, s[(int)InetStat.Attached]);
        Assert.Equal((long)DriverMac, s[(int)InetStat.Mac]);
        Assert.Equal((long)AntHost.Inet.Core.Wire.Ipv4Address.Parse("198.18.0.2").Value, s[(int)InetStat.Address]);

        // The peer's kernel must resolve 198.18.0.2 to send a datagram there: only inet answers.
        using var udp = NamespaceThread.Run(stack.Sandbox.PeerNamespace, () => new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp));
        udp.SendTo("hello"u8.ToArray(), new IPEndPoint(RunningStack.HostIp, 9));
        string mac = FormatMac(DriverMac);
        var deadline = DateTime.UtcNow + Patience;
        string neigh;
        while (true)
        {
            neigh = stack.Sandbox.RunInPeer("ip", "neigh", "show", "198.18.0.2").StandardOutput;
            if (neigh.Contains($"lladdr {mac}", StringComparison.Ordinal) && !neigh.Contains("INCOMPLETE", StringComparison.Ordinal)) break;
            Assert.True(DateTime.UtcNow < deadline, $"the peer never learned 198.18.0.2 is at {mac}: '{neigh}'");
            Thread.Sleep(50);
        }
        // The driver's TX completions and our Stats request travel on different channels: wait for both.
        s = stack.WaitStats(x => x[(int)InetStat.ArpRepliesOut] >= 1 && x[(int)InetStat.FramesSent] >= 1, "an ARP reply sent and completed");
        Assert.Equal(0, s[(int)InetStat.BadRequests]);
    }

    [PcapFact]
    public void Pings_from_the_peer_kernel_are_all_answered_and_no_page_leaks()
    {
        const int count = 200;
        using var stack = new RunningStack(output);
        var rtt = new double[count];
        using (var pinger = new PeerPinger(stack.Sandbox.PeerNamespace, RunningStack.HostIp))
        {
            for (int i = 0; i < count; i++)
            {
                long t0 = System.Diagnostics.Stopwatch.GetTimestamp();
                Assert.True(pinger.Answers((ushort)i, Patience), $"echo request {i} got no reply");
                rtt[i] = System.Diagnostics.Stopwatch.GetElapsedTime(t0).TotalMicroseconds;
            }
        }
        // For the reader of the log, not a check: the round trip through both processes.
        var sorted = rtt.Skip(count / 4).Order().ToArray();
        output.WriteLine($"ping RTT over {sorted.Length} echoes after warm-up: median {sorted[sorted.Length / 2]:F0} us, p99 {sorted[sorted.Length * 99 / 100]:F0} us");
        var s = stack.WaitStats(x => x[(int)InetStat.TxInFlight] == 0 && x[(int)InetStat.BuffersOutstanding] == x[(int)InetStat.InterfaceHeldBuffers],
            "every lent frame back and no buffer outside the interface");
        Assert.True(s[(int)InetStat.IcmpEchoRepliesOut] >= count, RunningStack.Format(s));
        Assert.True(s[(int)InetStat.FramesSent] >= count, RunningStack.Format(s));
        Assert.Equal(0, s[(int)InetStat.FramesNotSent]);
        Assert.Equal(0, s[(int)InetStat.BadRequests]);
        Assert.Equal(0, s[(int)InetStat.TxNoDriver]);

        // A clean stop gives every page back: each process says so, and the broker's table agrees.
        stack.DisconnectObserver();
        Assert.Equal(0, stack.Driver.Stop());
        Assert.Equal(0, stack.Inet.Stop());
        stack.Driver.WaitFor("pages owned at stop: 0");
        stack.Inet.WaitFor("buffers outstanding at stop: 0");
        stack.Inet.WaitFor("pages owned at stop: 0");
        // The driver's two packet threads allocate nothing per frame either: any object per frame
        // would be at least 24 bytes; what remains is the kernel connection refilling its ICA cache.
        foreach (var thread in new[] { "receive thread allocated (\\d+) bytes over frames 100..(\\d+)", "transmit thread allocated (\\d+) bytes over requests 100..(\\d+)" })
        {
            var match = System.Text.RegularExpressions.Regex.Match(stack.Driver.Log, thread);
            Assert.True(match.Success, $"the driver did not report '{thread}'");
            long bytes = long.Parse(match.Groups[1].Value), frames = long.Parse(match.Groups[2].Value) - 100;
            Assert.True(frames > 0 && bytes < frames * 16, $"{match.Value}: more than 16 bytes per frame");
        }
        // The broker reclaims a leaving process's pages (the test's own connection's cache among
        // them) as it notices the process go: wait for that, then every page must be free.
        stack.AssertEveryPageFree();
    }

    [PcapFact]
    public void A_killed_driver_is_replaced_and_pings_work_again()
    {
        using var stack = new RunningStack(output);
        using var pinger = new PeerPinger(stack.Sandbox.PeerNamespace, RunningStack.HostIp);
        for (int i = 0; i < 5; i++) Assert.True(pinger.Answers((ushort)i, Patience), $"echo request {i} got no reply");

        stack.Driver.Kill9();
        var s = stack.WaitStats(x => x[(int)InetStat.DriverDeaths] == 1 && x[(int)InetStat.Attached] == 0, "the driver's death noticed");
        Assert.Equal(0, s[(int)InetStat.TxInFlight]);

        stack.StartDriver();
        s = stack.WaitStats(x => x[(int)InetStat.Attaches] == 2 && x[(int)InetStat.Attached] == 1, "the new driver attached");
        Assert.Equal((long)DriverMac, s[(int)InetStat.Mac]);
        for (int i = 100; i < 120; i++) Assert.True(pinger.Answers((ushort)i, Patience), $"echo request {i} after the restart got no reply");
        s = stack.InetStats();
        Assert.Equal(1, s[(int)InetStat.DriverDeaths]);
        stack.Inet.WaitFor("is gone"); // inet logged the driver's death
    }

    [PcapFact]
    public void A_datagram_to_a_closed_port_gets_port_unreachable()
    {
        using var stack = new RunningStack(output);
        using var udp = NamespaceThread.Run(stack.Sandbox.PeerNamespace, () =>
        {
            var u = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            u.Connect(new IPEndPoint(RunningStack.HostIp, 4242));
            return u;
        });
        udp.Send("anyone there?"u8.ToArray());
        // A connected UDP socket on Linux reports the ICMP port unreachable it received on the next call.
        udp.ReceiveTimeout = (int)Patience.TotalMilliseconds;
        var e = Assert.Throws<SocketException>(() => udp.Receive(new byte[64]));
        Assert.Equal(SocketError.ConnectionRefused, e.SocketErrorCode);
        var s = stack.InetStats();
        Assert.True(s[(int)InetStat.UdpNoPort] >= 1, RunningStack.Format(s));
        Assert.True(s[(int)InetStat.IcmpUnreachableOut] >= 1, RunningStack.Format(s));
    }

    [PcapFact]
    public void A_killed_inet_server_is_replaced_and_the_driver_attaches_to_the_new_one()
    {
        using var stack = new RunningStack(output);
        using var pinger = new PeerPinger(stack.Sandbox.PeerNamespace, RunningStack.HostIp);
        Assert.True(pinger.Answers(1, Patience), "echo request before the restart got no reply");

        stack.Inet.Kill9();
        stack.Driver.WaitFor("the inet server");
        stack.RestartInet();
        // The driver kept the adapter open and attaches again on its own.
        var s = stack.WaitStats(x => x[(int)InetStat.Attached] == 1, "the driver attached to the new inet server");
        Assert.Equal(1, s[(int)InetStat.Attaches]);
        for (int i = 2; i < 12; i++) Assert.True(pinger.Answers((ushort)i, Patience), $"echo request {i} after the restart got no reply");
        stack.Driver.WaitFor("attached to inet", times: 2);
        Assert.Equal(2, stack.Driver.Occurrences("attached to inet"));
    }

    [PcapFact]
    public void The_request_manager_allocates_nothing_per_echo_after_warm_up()
    {
        using var stack = new RunningStack(output);
        using var pinger = new PeerPinger(stack.Sandbox.PeerNamespace, RunningStack.HostIp);
        ushort seq = 0;
        for (int i = 0; i < 300; i++) Assert.True(pinger.Answers(seq++, Patience), "warm-up echo got no reply");
        // What one Stats request itself allocates after it read the counter is the same each time:
        // measure it with no echo in between, then with 100 echoes, three times; the least of each
        // leaves out one-off allocations (a cache growing, a timer's first run), while an
        // allocation per echo shows in every round.
        long perStats = long.MaxValue, withEchoes = long.MaxValue;
        for (int round = 0; round < 3; round++)
        {
            long a = stack.Stat(InetStat.RequestThreadAllocatedBytes);
            long b = stack.Stat(InetStat.RequestThreadAllocatedBytes);
            for (int i = 0; i < 100; i++) Assert.True(pinger.Answers(seq++, Patience), "echo got no reply");
            long c = stack.Stat(InetStat.RequestThreadAllocatedBytes);
            perStats = Math.Min(perStats, b - a);
            withEchoes = Math.Min(withEchoes, c - b);
        }
        output.WriteLine($"request manager: {perStats} bytes per Stats request, {withEchoes} bytes across Stats and 100 echoes");
        Assert.True(withEchoes - perStats < 100, $"100 echoes allocated {withEchoes - perStats} bytes on the request manager's thread");
    }

    [PcapFact]
    public void Bad_requests_are_refused_and_counted_and_the_server_goes_on()
    {
        using var stack = new RunningStack(output);
        using var k = KernelConnection.Connect(new KernelOptions { Instance = stack.Instance, ProcessName = "intruder" });
        var inet = k.Open(InetService.Name);

        int Attach(ulong mac, int mtu)
        {
            var control = k.AllocateControl();
            ControlIca.TryOpen(control.Span, out var c);
            c.TryPushFrame(new RequestFrame(0, (ushort)InetOp.IfAttach, RequestFrameFlags.None, k.Id.Value, 0), out var args);
            new IfAttachArgs(mac, mtu, AbiLinkState.Up, Environment.ProcessId, "fake0").WriteTo(args);
            var reply = k.Call(inet, control, (ushort)InetOp.IfAttach, default, Patience);
            k.FreeMessage(reply);
            return reply.Status;
        }

        Assert.Equal((int)InetStatus.BadArguments, Attach(0x02_00_00_00_00_01, mtu: 100));
        Assert.Equal((int)InetStatus.BadArguments, Attach(0x01_00_5e_00_00_01, mtu: 1500)); // a group MAC
        Assert.Equal((int)InetStatus.AlreadyAttached, Attach(0x02_00_00_00_00_01, mtu: 1500));

        var noControl = k.Call(inet, default, (ushort)InetOp.IfAttach, default, Patience);
        Assert.Equal((int)InetStatus.NoControl, noControl.Status);
        var unknown = k.Call(inet, k.AllocateControl(), 999, default, Patience);
        Assert.Equal((int)InetStatus.UnknownOpcode, unknown.Status);
        k.FreeMessage(unknown);

        // A frame posted by a process that is not the attached driver never reaches the stack.
        var frame = k.Allocate(1);
        frame.Span.Fill(0xAB);
        k.Post(inet, default, (ushort)InetOp.EthInput, [new DataIca(frame, 60)]);
        var s = stack.WaitStats(x => x[(int)InetStat.BadRequests] >= 3, "the bad ifattach and the foreign frame counted");
        Assert.Equal(1, s[(int)InetStat.Attaches]);
        Assert.Equal(0, s[(int)InetStat.FramesFromDriver] - s[(int)InetStat.IfaceFramesIn]);

        using var pinger = new PeerPinger(stack.Sandbox.PeerNamespace, RunningStack.HostIp);
        for (int i = 0; i < 5; i++) Assert.True(pinger.Answers((ushort)i, Patience), $"echo request {i} got no reply after the bad requests");
    }

    [PcapFact]
    public void The_driver_reports_link_down_and_up_and_pings_resume()
    {
        using var stack = new RunningStack(output);
        using var pinger = new PeerPinger(stack.Sandbox.PeerNamespace, RunningStack.HostIp);
        Assert.True(pinger.Answers(1, Patience), "echo request before the link went down got no reply");
        Assert.Equal((long)AbiLinkState.Up, stack.Stat(InetStat.Link));

        // The veth loses carrier on our side when the peer's end goes down.
        Assert.True(stack.Sandbox.RunInPeer("ip", "link", "set", SandboxOptions.PeerInterface, "down").Succeeded);
        stack.WaitStats(x => x[(int)InetStat.Link] == (long)AbiLinkState.Down, "the driver reported the link down");
        Assert.True(stack.Sandbox.RunInPeer("ip", "link", "set", SandboxOptions.PeerInterface, "up").Succeeded);
        stack.WaitStats(x => x[(int)InetStat.Link] == (long)AbiLinkState.Up, "the driver reported the link up");

        // The peer's route comes back with its link (possibly a moment later): the first echoes may find none.
        var deadline = DateTime.UtcNow + Patience;
        ushort seq = 100;
        while (!TryPing(pinger, seq++)) Assert.True(DateTime.UtcNow < deadline, "no echo came back after the link returned");
        for (int i = 0; i < 10; i++) Assert.True(pinger.Answers(seq++, Patience), "echo request after the link returned got no reply");
        Assert.Equal(1, stack.Stat(InetStat.Attached));
    }

    private static bool TryPing(PeerPinger pinger, ushort seq)
    {
        try
        {
            return pinger.Answers(seq, TimeSpan.FromSeconds(2));
        }
        catch (SocketException)
        {
            Thread.Sleep(100);
            return false;
        }
    }
}
