using AntHost.Inet.Abi;
using AntHost.Inet.Core.Wire;
using AntHost.Nic8139.Faults;
using AntHost.Nic8139.Pcap;
using AntHost.TestSupport;
using PacketDotNet;

namespace AntHost.Nic8139.Tests;

/// <summary>The device against the Linux kernel at the other end of the veth: ARP and ICMP by hand, and the host namespace's kernel kept silent.</summary>
public sealed class DeviceKernelPeerTests(SandboxFixture fixture) : IClassFixture<SandboxFixture>
{
    [PcapFact]
    public void The_peer_kernel_answers_our_arp_request_and_icmp_echo()
    {
        using var device = fixture.OpenHost();
        var log = new FrameLog();
        device.Start(log.Add);

        // ARP, from our MAC and an address no kernel here holds.
        Assert.Equal(TransmitResult.Sent, device.Transmit(TestFrames.ArpRequest(device.Mac, SandboxFixture.HostIp, SandboxFixture.PeerIp)));
        var arp = TestFrames.ArpReply(log.WaitFor(f => TestFrames.ArpReply(f, SandboxFixture.PeerIp) is not null, "the peer's ARP reply"), SandboxFixture.PeerIp)!;
        Assert.Equal(fixture.Sandbox.PeerMac, MacAddress.Read(arp.SenderHardwareAddress.GetAddressBytes()).ToString());
        Assert.Equal(TestFrames.Phys(device.Mac), arp.TargetHardwareAddress);
        Assert.Equal(SandboxFixture.HostIp, arp.TargetProtocolAddress);
        var peerMac = MacAddress.Read(arp.SenderHardwareAddress.GetAddressBytes());

        // ICMP echo to the peer kernel.
        Assert.Equal(TransmitResult.Sent, device.Transmit(TestFrames.EchoRequest(device.Mac, peerMac, SandboxFixture.HostIp, SandboxFixture.PeerIp, 0x4e49, 7)));
        var reply = log.WaitFor(f => Packet.ParsePacket(LinkLayers.Ethernet, f).Extract<IcmpV4Packet>() is { TypeCode: IcmpV4TypeCode.EchoReply }, "an ICMP echo reply");
        var eth = (EthernetPacket)Packet.ParsePacket(LinkLayers.Ethernet, reply);
        var ip = eth.Extract<IPv4Packet>();
        var icmp = eth.Extract<IcmpV4Packet>();
        Assert.Equal(TestFrames.Phys(device.Mac), eth.DestinationHardwareAddress);
        Assert.Equal(SandboxFixture.PeerIp, ip.SourceAddress);
        Assert.Equal(SandboxFixture.HostIp, ip.DestinationAddress);
        Assert.True(ip.ValidChecksum, "IP header checksum");
        Assert.True(icmp.ValidIcmpChecksum, "ICMP checksum");
        Assert.Equal(0x4e49, icmp.Id);
        Assert.Equal(7, icmp.Sequence);
        device.Stop();

        var c = device.Counters;
        Assert.Equal(2, c.TxFrames);
        Assert.Equal(2, c.RxFrames);
        Assert.Equal(c.TxBytes, c.RxBytes); // each reply is as long as its request
        Assert.Equal(0, c.KernelDrops);
    }

    [PcapFact]
    public void The_host_namespace_kernel_never_answers_for_our_address()
    {
        var sb = fixture.Sandbox;
        // It holds no IPv4 address on the veth, ignores ARP, has IPv6 off there.
        Assert.DoesNotContain("inet", sb.RunInHost("ip", "-4", "addr", "show", "dev", sb.HostInterface).StandardOutput, StringComparison.Ordinal);
        Assert.Equal("8", sb.RunInHost("sysctl", "-n", $"net.ipv4.conf.{sb.HostInterface}.arp_ignore").StandardOutput.Trim());
        Assert.Equal("2", sb.RunInHost("sysctl", "-n", $"net.ipv4.conf.{sb.HostInterface}.arp_announce").StandardOutput.Trim());
        Assert.Equal("1", sb.RunInHost("sysctl", "-n", $"net.ipv6.conf.{sb.HostInterface}.disable_ipv6").StandardOutput.Trim());

        // Nobody runs on AntHost's side: the peer asks for 198.18.0.2 and hears nothing.
        using var peer = fixture.OpenPeerTap();
        var log = new FrameLog();
        peer.Start(log.Add);
        for (int i = 0; i < 3; i++)
        {
            peer.Transmit(TestFrames.ArpRequest(peer.Mac, SandboxFixture.PeerIp, SandboxFixture.HostIp));
            Thread.Sleep(300);
        }
        peer.Stop();
        Assert.Equal(0, log.Count(f => TestFrames.ArpReply(f, SandboxFixture.HostIp) is not null));
    }

    [PcapFact]
    public void Loss_rules_at_the_peer_drop_about_the_share_asked_and_spare_arp()
    {
        var sb = fixture.Sandbox;
        using var device = fixture.OpenHost();
        var log = new FrameLog();
        device.Start(log.Add);
        device.Transmit(TestFrames.ArpRequest(device.Mac, SandboxFixture.HostIp, SandboxFixture.PeerIp));
        var peerMac = MacAddress.Parse(sb.PeerMac);
        log.WaitFor(f => TestFrames.ArpReply(f, SandboxFixture.PeerIp) is not null, "the peer's ARP reply");
        const int n = 1000;
        sb.SetLoss(30, 0);
        try
        {
            for (int i = 0; i < n; i++)
            {
                device.Transmit(TestFrames.EchoRequest(device.Mac, peerMac, SandboxFixture.HostIp, SandboxFixture.PeerIp, 0x55, (ushort)i));
                if (i % 32 == 0) Thread.Yield();
            }
            // ARP is not in the inet family: it passes the loss rules.
            int arpBefore = log.Count(f => TestFrames.ArpReply(f, SandboxFixture.PeerIp) is not null);
            device.Transmit(TestFrames.ArpRequest(device.Mac, SandboxFixture.HostIp, SandboxFixture.PeerIp));
            log.WaitFor(f => log.Count(g => TestFrames.ArpReply(g, SandboxFixture.PeerIp) is not null) > arpBefore, "an ARP reply through the loss rules");
            // Every echo is either answered or counted by the rule; wait (bounded) until all are one or the other.
            int Replies() => log.Count(f => Packet.ParsePacket(LinkLayers.Ethernet, f).Extract<IcmpV4Packet>() is { TypeCode: IcmpV4TypeCode.EchoReply, Id: 0x55 });
            var deadline = DateTime.UtcNow + FrameLog.Patience;
            (long In, long Out) dropped;
            int replies;
            while ((replies = Replies()) + (dropped = sb.LossDropped()).In < n && DateTime.UtcNow < deadline) Thread.Sleep(50);
            device.Stop();
            Assert.Equal(0, device.Counters.KernelDrops);
            Assert.Equal(n, replies + dropped.In);
            // Five standard deviations of a binomial around 30 %: nftables' own random numbers.
            double sd = Math.Sqrt(n * 0.3 * 0.7);
            Assert.InRange(dropped.In, n * 0.3 - 5 * sd, n * 0.3 + 5 * sd);
        }
        finally
        {
            sb.SetLoss(0, 0);
        }
    }

    [PcapFact]
    public void Injected_faults_act_on_real_traffic_both_ways()
    {
        var faults = new FaultSettings { Duplicate = 1, Delay = 1, DelayTime = TimeSpan.FromMilliseconds(50), Seed = 3 };
        using var device = fixture.OpenHost(o => o with { ReceiveFaults = new FaultSettings { Duplicate = 1, Seed = 4 }, TransmitFaults = faults });
        using var peer = fixture.OpenPeerTap();
        var atPeer = new FrameLog();
        peer.Start(atPeer.Add);
        var log = new FrameLog();
        device.Start(log.Add);
        // Sent once, duplicated and delayed by the injector: the receive loop releases it at its deadline.
        device.Transmit(TestFrames.Numbered(peer.Mac, device.Mac, 1));
        atPeer.WaitForCount(f => TestFrames.NumberOf(f) == 1, 2, "the delayed frame and its duplicate at the peer");
        peer.Transmit(TestFrames.Numbered(device.Mac, peer.Mac, 2));
        peer.Transmit(TestFrames.Numbered(device.Mac, peer.Mac, 3));
        log.WaitFor(f => TestFrames.NumberOf(f) == 3, "the marker");
        log.WaitForCount(f => TestFrames.NumberOf(f) == 2, 2, "frame 2 and its duplicate");
        var tx = device.TransmitFaultStatistics;
        device.Stop();
        peer.Stop();
        Assert.Equal(2, atPeer.Count(f => TestFrames.NumberOf(f) == 1));
        Assert.Equal(1, tx.Duplicated);
        Assert.Equal(2, tx.Delayed);
        Assert.Equal(2, log.Count(f => TestFrames.NumberOf(f) == 2));
        Assert.True(device.ReceiveFaultStatistics.Duplicated >= 2);
    }
}
