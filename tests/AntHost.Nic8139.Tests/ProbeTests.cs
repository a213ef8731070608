using AntHost.Sandbox;
using AntHost.TestSupport;

namespace AntHost.Nic8139.Tests;

/// <summary>The real <c>anthost-nic</c> process, run inside the sandbox's host namespace as the driver will be.</summary>
public sealed class ProbeTests(SandboxFixture fixture) : IClassFixture<SandboxFixture>
{
    private CommandResult RunDriver(params string[] args) =>
        CommandRunner.RunIn(fixture.Sandbox.HostNamespace, SandboxNetwork.DotnetHost(),
            new[] { Path.Combine(AppContext.BaseDirectory, "anthost-nic.dll") }.Concat(args));

    [PcapFact]
    public void Probe_pings_the_peer_kernel_through_the_adapter()
    {
        var r = RunDriver("--adapter", "anthost0", "--probe", "--address", "198.18.0.2", "--ping", "198.18.0.1", "--ping-count", "50", "--spin-us", "20");
        Assert.True(r.Succeeded, r.StandardOutput + r.StandardError);
        Assert.Contains("adapter anthost0: link Up, MTU 1500", r.StandardOutput, StringComparison.Ordinal);
        Assert.Contains($"198.18.0.1 is at {fixture.Sandbox.PeerMac} (ARP)", r.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("pcap ping 198.18.0.1: 50 replies, 0 lost", r.StandardOutput, StringComparison.Ordinal);
    }

    [PcapFact]
    public void Probe_reports_what_arrives()
    {
        var sb = fixture.Sandbox;
        // The peer kernel sends to 198.18.0.2 until the probe is done: ARP requests
        // (broadcast) while it does not know our MAC, the datagrams themselves once it does.
        var probe = Task.Run(() => RunDriver("--adapter", "anthost0", "--probe", "--probe-seconds", "3"));
        while (!probe.IsCompleted)
        {
            CommandRunner.RunIn(sb.PeerNamespace, "socat", ["-u", "-", "UDP:198.18.0.2:9"], "x");
            Thread.Sleep(100);
        }
        var r = probe.Result;
        Assert.True(r.Succeeded, r.StandardError);
        Assert.Matches($"{sb.PeerMac} > [0-9a-f:]{{17}} type 0x08(06|00) length", r.StandardOutput);
    }

    [PcapFact]
    public void A_missing_adapter_or_a_bad_option_is_a_message_and_an_exit_code()
    {
        var r = RunDriver("--adapter", "nosuch0", "--probe");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("adapter 'nosuch0' not found", r.StandardError, StringComparison.Ordinal);
        r = RunDriver("--adapter", "anthost0", "--probe", "--fault-drop", "1.5");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("Drop must be in [0, 1]", r.StandardError, StringComparison.Ordinal);
    }
}
