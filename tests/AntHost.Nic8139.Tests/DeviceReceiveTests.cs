using AntHost.Inet.Abi;
using AntHost.Inet.Core.Wire;
using AntHost.Nic8139.Pcap;
using AntHost.TestSupport;

namespace AntHost.Nic8139.Tests;

/// <summary>The receive side against a real veth: filter, direction, drops, oversize frames, stopping.</summary>
public sealed class DeviceReceiveTests(SandboxFixture fixture) : IClassFixture<SandboxFixture>
{
    private static readonly MacAddress Elsewhere = MacAddress.Parse("02:00:5e:00:00:99");
    private static readonly MacAddress Multicast = MacAddress.Parse("01:00:5e:00:00:01");

    [PcapFact]
    public void Only_frames_for_our_mac_and_broadcast_are_delivered()
    {
        using var device = fixture.OpenHost();
        using var peer = fixture.OpenPeerTap();
        Assert.True(device.Promiscuous); // our MAC is not the veth's own
        var log = new FrameLog();
        device.Start(log.Add);
        Assert.Equal(TransmitResult.Sent, peer.Transmit(TestFrames.Numbered(Elsewhere, peer.Mac, 1)));
        peer.Transmit(TestFrames.Numbered(device.Mac, peer.Mac, 2));
        peer.Transmit(TestFrames.Numbered(MacAddress.Broadcast, peer.Mac, 3));
        peer.Transmit(TestFrames.Numbered(Multicast, peer.Mac, 4));
        peer.Transmit(TestFrames.Numbered(device.Mac, peer.Mac, 5));
        log.WaitFor(f => TestFrames.NumberOf(f) == 5, "the last numbered frame");
        device.Stop();
        Assert.Equal([2, 3, 5], log.Snapshot().Select(TestFrames.NumberOf).Where(n => n > 0));
        var c = device.Counters;
        Assert.Equal(c.RxFrames, c.RxDelivered + c.RxNotForUs);
    }

    [PcapFact]
    public void Multicast_is_delivered_when_asked_for()
    {
        using var device = fixture.OpenHost(o => o with { AcceptMulticast = true });
        using var peer = fixture.OpenPeerTap();
        var log = new FrameLog();
        device.Start(log.Add);
        peer.Transmit(TestFrames.Numbered(Multicast, peer.Mac, 4));
        peer.Transmit(TestFrames.Numbered(device.Mac, peer.Mac, 5));
        log.WaitFor(f => TestFrames.NumberOf(f) == 5, "the marker");
        device.Stop();
        Assert.Contains(4, log.Snapshot().Select(TestFrames.NumberOf));
    }

    [PcapFact]
    public void Frames_going_out_of_our_adapter_are_not_received()
    {
        using var device = fixture.OpenHost();
        // A second handle on the same adapter sends as we do: Linux never loops a packet
        // socket's own frames back to it, but it does show every other outgoing frame to a
        // capture, unless the capture asks for PCAP_D_IN only.
        using var other = fixture.OpenHost(o => o with { Mac = device.Mac });
        var log = new FrameLog();
        device.Start(log.Add);
        for (int i = 0; i < 10; i++)
        {
            // Both would pass the filter if libpcap captured outgoing frames too.
            Assert.Equal(TransmitResult.Sent, other.Transmit(TestFrames.Numbered(device.Mac, device.Mac, 100 + i)));
            Assert.Equal(TransmitResult.Sent, device.Transmit(TestFrames.Numbered(MacAddress.Broadcast, device.Mac, 200 + i)));
            Assert.Equal(TransmitResult.Sent, other.Transmit(TestFrames.Numbered(MacAddress.Broadcast, device.Mac, 300 + i)));
        }
        // The peer kernel's ARP reply comes after all of them: once it is here, they would be too.
        other.Transmit(TestFrames.ArpRequest(device.Mac, SandboxFixture.HostIp, SandboxFixture.PeerIp));
        log.WaitFor(f => TestFrames.ArpReply(f, SandboxFixture.PeerIp) is not null, "the peer's ARP reply");
        device.Stop();
        Assert.Equal(0, log.Count(f => TestFrames.NumberOf(f) >= 100));
        Assert.Equal(10, device.Counters.TxFrames);
        Assert.Equal(21, other.Counters.TxFrames);
    }

    [PcapFact]
    public void Receive_allocates_nothing_per_frame()
    {
        using var device = fixture.OpenHost();
        using var peer = fixture.OpenPeerTap();
        const int total = 30000; // a bound; it stops once 2000 have arrived
        long at1000 = -1, at2000 = -1;
        int seen = 0;
        using var done = new ManualResetEventSlim();
        // The callback runs on the receive thread: the thread's allocation count between the
        // 1000th and the 2000th frame is what the loop allocated for a thousand frames.
        device.Start(f =>
        {
            seen++;
            if (seen == 1000) at1000 = GC.GetAllocatedBytesForCurrentThread();
            if (seen == 2000)
            {
                at2000 = GC.GetAllocatedBytesForCurrentThread();
                done.Set();
            }
        });
        var frame = TestFrames.Numbered(device.Mac, peer.Mac, 1, 600);
        for (int i = 0; i < total && !done.IsSet; i++)
        {
            peer.Transmit(frame);
            if (i % 64 == 0) Thread.Yield(); // keep the ring from overflowing
        }
        Assert.True(done.Wait(FrameLog.Patience), $"only {seen} frames arrived: {device.Counters}");
        device.Stop();
        Assert.Equal(0, at2000 - at1000);
    }

    [PcapFact]
    public void Transmit_allocates_nothing()
    {
        using var device = fixture.OpenHost();
        var frame = TestFrames.Numbered(MacAddress.Broadcast, device.Mac, 1, 1514);
        for (int i = 0; i < 100; i++) device.Transmit(frame);
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 1000; i++) device.Transmit(frame);
        long after = GC.GetAllocatedBytesForCurrentThread();
        Assert.Equal(0, after - before);
        Assert.Equal(1100, device.Counters.TxFrames);
    }

    [PcapFact]
    public void Stop_returns_while_no_frame_comes()
    {
        using var device = fixture.OpenHost();
        device.Start(_ => { });
        Assert.True(device.IsRunning);
        // Nothing is sent: a receive loop blocked in pcap_next_ex would never come back.
        var stop = Task.Run(device.Stop);
        Assert.True(stop.Wait(FrameLog.Patience), "Stop did not return while the link was idle");
        Assert.False(device.IsRunning);
        // And the device can start again.
        var log = new FrameLog();
        device.Start(log.Add);
        device.Transmit(TestFrames.ArpRequest(device.Mac, SandboxFixture.HostIp, SandboxFixture.PeerIp));
        log.WaitFor(f => TestFrames.ArpReply(f, SandboxFixture.PeerIp) is not null, "the peer's ARP reply after a restart");
    }

    [PcapFact]
    public void Kernel_drops_are_counted_when_the_ring_overflows()
    {
        using var device = fixture.OpenHost(o => o with { BufferBytes = 64 * 1024 });
        using var peer = fixture.OpenPeerTap();
        using var release = new ManualResetEventSlim();
        using var first = new ManualResetEventSlim();
        device.Start(_ =>
        {
            first.Set();
            release.Wait(); // the consumer stalls: the ring fills and the kernel must drop
        });
        try
        {
            var frame = TestFrames.Numbered(device.Mac, peer.Mac, 1, 1500);
            peer.Transmit(frame);
            Assert.True(first.Wait(FrameLog.Patience), "the first frame never arrived");
            for (int i = 0; i < 3000; i++) peer.Transmit(frame);
            Assert.True(device.Counters.KernelDrops > 0, $"no drops counted: {device.Counters}");
        }
        finally
        {
            release.Set();
            device.Stop();
        }
        var c = device.Counters;
        Assert.True(c.KernelDrops > 0);
        Assert.True(c.RxDelivered + c.KernelDrops <= 3001 + 10, c.ToString());
    }

    [PcapFact]
    public void Frames_longer_than_the_mtu_are_counted_and_dropped()
    {
        var sb = fixture.Sandbox;
        // Both ends accept 9000-byte frames; the driver still works at MTU 1500, as with
        // offloads left on, when the peer hands over super-frames.
        sb.RunInHost("ip", "link", "set", sb.HostInterface, "mtu", "9000");
        sb.RunInPeer("ip", "link", "set", sb.PeerInterface, "mtu", "9000");
        try
        {
            using var device = fixture.OpenHost(o => o with { Mtu = 1500 });
            using var peer = fixture.OpenPeerTap(mtu: 9000);
            var log = new FrameLog();
            device.Start(log.Add);
            Assert.Equal(TransmitResult.Sent, peer.Transmit(TestFrames.Numbered(device.Mac, peer.Mac, 1, 4000)));
            peer.Transmit(TestFrames.Numbered(device.Mac, peer.Mac, 2, 1518));
            peer.Transmit(TestFrames.Numbered(device.Mac, peer.Mac, 3));
            log.WaitFor(f => TestFrames.NumberOf(f) == 3, "the marker");
            device.Stop();
            Assert.Equal([2, 3], log.Snapshot().Select(TestFrames.NumberOf).Where(n => n > 0));
            Assert.Equal(1, device.Counters.RxOversize);
            // Nor does the driver send one.
            Assert.Equal(TransmitResult.TooLong, device.Transmit(new byte[1519]));
        }
        finally
        {
            sb.RunInHost("ip", "link", "set", sb.HostInterface, "mtu", "1500");
            sb.RunInPeer("ip", "link", "set", sb.PeerInterface, "mtu", "1500");
        }
    }

    [PcapFact]
    public void Bad_transmits_are_refused_and_counted_not_thrown()
    {
        using var device = fixture.OpenHost();
        Assert.Equal(TransmitResult.TooShort, device.Transmit(new byte[13]));
        Assert.Equal(TransmitResult.TooLong, device.Transmit(new byte[device.MaxFrameLength + 1]));
        var full = TestFrames.Numbered(MacAddress.Broadcast, device.Mac, 1, device.Mtu + 14);
        Assert.Equal(TransmitResult.Sent, device.Transmit(full));
        var c = device.Counters;
        Assert.Equal(2, c.TxRejected);
        Assert.Equal(1, c.TxFrames);
        Assert.Equal(full.Length, c.TxBytes);
    }

    [PcapFact]
    public void An_exception_in_the_receive_callback_is_counted_and_the_loop_goes_on()
    {
        using var device = fixture.OpenHost();
        using var peer = fixture.OpenPeerTap();
        var log = new FrameLog();
        device.Start(f =>
        {
            if (TestFrames.NumberOf(f.ToArray()) == 1) throw new InvalidOperationException("handler bug");
            log.Add(f);
        });
        peer.Transmit(TestFrames.Numbered(device.Mac, peer.Mac, 1));
        peer.Transmit(TestFrames.Numbered(device.Mac, peer.Mac, 2));
        log.WaitFor(f => TestFrames.NumberOf(f) == 2, "the frame after the failing one");
        device.Stop();
        Assert.Equal(1, device.Counters.RxHandlerErrors);
        Assert.Contains("handler bug", device.LastError, StringComparison.Ordinal);
    }
}
