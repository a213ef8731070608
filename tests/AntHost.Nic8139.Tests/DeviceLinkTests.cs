using System.Collections.Concurrent;
using AntHost.Inet.Abi;
using AntHost.Inet.Core.Wire;
using AntHost.Nic8139.Pcap;
using AntHost.TestSupport;

namespace AntHost.Nic8139.Tests;

/// <summary>The link going down and coming back, on either end of the veth, and adapters that are not there.</summary>
public sealed class DeviceLinkTests(SandboxFixture fixture) : IClassFixture<SandboxFixture>
{
    private static void WaitFor(BlockingCollection<LinkState> events, LinkState state)
    {
        while (events.TryTake(out var s, FrameLog.Patience))
            if (s == state) return;
        throw new Xunit.Sdk.XunitException($"the device never reported the link {state}");
    }

    private static void ArpExchange(NicDevice device, FrameLog log, string when)
    {
        int before = log.Count(f => TestFrames.ArpReply(f, SandboxFixture.PeerIp) is not null);
        var deadline = DateTime.UtcNow + FrameLog.Patience;
        // The peer kernel may still be bringing its side up: ask until it answers.
        while (log.Count(f => TestFrames.ArpReply(f, SandboxFixture.PeerIp) is not null) == before)
        {
            if (DateTime.UtcNow > deadline) throw new Xunit.Sdk.XunitException($"no ARP reply {when}");
            device.Transmit(TestFrames.ArpRequest(device.Mac, SandboxFixture.HostIp, SandboxFixture.PeerIp));
            Thread.Sleep(50);
        }
    }

    [PcapFact]
    public void Our_adapter_going_down_and_up_is_noticed_and_the_device_reopens()
    {
        var sb = fixture.Sandbox;
        using var device = fixture.OpenHost();
        using var events = new BlockingCollection<LinkState>();
        device.LinkChanged += events.Add;
        var log = new FrameLog();
        device.Start(log.Add);
        ArpExchange(device, log, "before the link went down");
        try
        {
            sb.RunInHost("ip", "link", "set", sb.HostInterface, "down");
            WaitFor(events, LinkState.Down);
            Assert.Equal(LinkState.Down, device.Link);
            Assert.Equal(TransmitResult.LinkDown, device.Transmit(TestFrames.ArpRequest(device.Mac, SandboxFixture.HostIp, SandboxFixture.PeerIp)));
        }
        finally
        {
            sb.RunInHost("ip", "link", "set", sb.HostInterface, "up");
        }
        WaitFor(events, LinkState.Up);
        ArpExchange(device, log, "after the link came back");
        device.Stop();
        var c = device.Counters;
        Assert.True(c.Reopens >= 1, c.ToString());
        Assert.True(c.LinkDownEvents >= 1, c.ToString());
        Assert.True(c.TxLinkDown >= 1, c.ToString());
    }

    [PcapFact]
    public void The_peer_end_going_down_is_a_lost_carrier_and_its_return_is_noticed()
    {
        var sb = fixture.Sandbox;
        using var device = fixture.OpenHost();
        using var events = new BlockingCollection<LinkState>();
        device.LinkChanged += events.Add;
        var log = new FrameLog();
        device.Start(log.Add);
        try
        {
            sb.RunInPeer("ip", "link", "set", sb.PeerInterface, "down");
            WaitFor(events, LinkState.Down);
        }
        finally
        {
            sb.RunInPeer("ip", "link", "set", sb.PeerInterface, "up");
        }
        WaitFor(events, LinkState.Up);
        ArpExchange(device, log, "after the carrier came back");
        device.Stop();
    }

    [PcapFact]
    public void A_device_opened_while_the_link_is_down_opens_when_it_comes_up()
    {
        var sb = fixture.Sandbox;
        sb.RunInHost("ip", "link", "set", sb.HostInterface, "down");
        NicDevice? device = null;
        try
        {
            device = fixture.OpenHost();
            Assert.Equal(LinkState.Down, device.Link);
            using var events = new BlockingCollection<LinkState>();
            device.LinkChanged += events.Add;
            var log = new FrameLog();
            device.Start(log.Add);
            sb.RunInHost("ip", "link", "set", sb.HostInterface, "up");
            WaitFor(events, LinkState.Up);
            ArpExchange(device, log, "after the link came up");
        }
        finally
        {
            sb.RunInHost("ip", "link", "set", sb.HostInterface, "up");
            device?.Dispose();
        }
    }

    [PcapFact]
    public void A_missing_adapter_is_a_clear_error()
    {
        var e = Assert.Throws<NicDeviceException>(() => fixture.OpenHost(o => o with { Adapter = "nosuch0" }));
        Assert.Contains("nosuch0", e.Message, StringComparison.Ordinal);
        Assert.Contains("not found", e.Message, StringComparison.Ordinal);
        Assert.Contains(fixture.Sandbox.HostNamespace, e.Message, StringComparison.Ordinal);
    }
}
