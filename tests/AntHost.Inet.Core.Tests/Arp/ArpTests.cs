using AntHost.Inet.Core.Arp;
using AntHost.Inet.Core.Counters;
using AntHost.Inet.Core.Iface;
using AntHost.Inet.Core.Tests.Support;
using AntHost.Inet.Core.Udp;
using AntHost.Inet.Core.Wire;

namespace AntHost.Inet.Core.Tests.Arp;

public class ArpTests
{
    private static byte[] ArpFrame(MacAddress ethDst, MacAddress ethSrc, ushort op, MacAddress sm, Ipv4Address si, MacAddress tm, Ipv4Address ti) =>
        Frames.Ethernet(ethDst, ethSrc, 0x0806, Frames.Arp(op, sm, si, tm, ti));

    [Fact]
    public void Request_for_our_address_gets_the_exact_reply_and_teaches_the_sender()
    {
        var s = new StackFixture();
        s.Receive(ArpFrame(MacAddress.Broadcast, Net.PeerMac, 1, Net.PeerMac, Net.PeerIp, MacAddress.Zero, Net.OurIp));
        var sent = s.Drain();
        var expected = ArpFrame(Net.PeerMac, Net.OurMac, 2, Net.OurMac, Net.OurIp, Net.PeerMac, Net.PeerIp);
        Assert.Equal(expected, Assert.Single(sent));
        Assert.True(s.Iface.Arp.TryGet(Net.PeerIp, out var mac, out var state));
        Assert.Equal(Net.PeerMac, mac);
        Assert.Equal(NeighborState.Stale, state);
        var c = s.Counters;
        Assert.Equal(1, c[Counter.ArpRequestsIn]);
        Assert.Equal(1, c[Counter.ArpRepliesOut]);
        Assert.True(c.ReceiveAccountingBalances);
    }

    [Fact]
    public void Request_for_another_host_is_not_answered_and_not_learned()
    {
        var s = new StackFixture();
        s.Receive(ArpFrame(MacAddress.Broadcast, Net.PeerMac, 1, Net.PeerMac, Net.PeerIp, MacAddress.Zero, Ipv4Address.Parse("198.18.0.77")));
        Assert.Empty(s.Drain());
        Assert.False(s.Iface.Arp.TryGet(Net.PeerIp, out _, out _));
        Assert.Equal(1, s.Counters[Counter.ArpIn]);
    }

    [Fact]
    public void Packets_for_others_teach_nothing_new()
    {
        var s = new StackFixture();
        s.LearnPeer();
        // The peer asks for another host: the same MAC, nothing to change.
        s.Receive(ArpFrame(MacAddress.Broadcast, Net.PeerMac, 1, Net.PeerMac, Net.PeerIp, MacAddress.Zero, Ipv4Address.Parse("198.18.0.77")));
        Assert.True(s.Iface.Arp.TryGet(Net.PeerIp, out var mac, out var state));
        Assert.Equal(Net.PeerMac, mac);
        Assert.Equal(NeighborState.Reachable, state);
        // An unknown host's request for another host is not learned.
        var other = Ipv4Address.Parse("198.18.0.50");
        s.Receive(ArpFrame(MacAddress.Broadcast, Net.GatewayMac, 1, Net.GatewayMac, other, MacAddress.Zero, Ipv4Address.Parse("198.18.0.77")));
        Assert.False(s.Iface.Arp.TryGet(other, out _, out _));
        Assert.Empty(s.Drain());
    }

    [Fact]
    public void Resolution_broadcasts_a_request_queues_the_datagram_and_sends_it_on_reply()
    {
        var s = new StackFixture();
        using var sock = s.Iface.Udp.Open();
        Assert.Equal(UdpError.Success, sock.Bind(5000));
        Assert.Equal(UdpError.Success, sock.SendTo("hello"u8, Net.PeerIp, 7, s.Now));
        var request = Assert.Single(s.Drain());
        Assert.Equal(ArpFrame(MacAddress.Broadcast, Net.OurMac, 1, Net.OurMac, Net.OurIp, MacAddress.Zero, Net.PeerIp), request);
        Assert.True(s.Iface.Arp.TryGet(Net.PeerIp, out _, out var state));
        Assert.Equal(NeighborState.Incomplete, state);
        Assert.Equal(1, s.Iface.HeldBuffers);

        s.Receive(ArpFrame(Net.OurMac, Net.PeerMac, 2, Net.PeerMac, Net.PeerIp, Net.OurMac, Net.OurIp));
        var frame = Assert.Single(s.Drain());
        Assert.True(EthernetHeader.TryParse(frame, out var eth));
        Assert.Equal(Net.PeerMac, eth.Destination);
        Assert.Equal(EtherType.Ipv4, eth.EtherType);
        Assert.True(s.Iface.Arp.TryGet(Net.PeerIp, out _, out state));
        Assert.Equal(NeighborState.Reachable, state);
        Assert.Equal(0, s.Iface.HeldBuffers);
    }

    [Fact]
    public void Requests_are_retried_once_a_second_then_the_queue_fails_with_host_unreachable()
    {
        var s = new StackFixture();
        using var sock = s.Iface.Udp.Open();
        sock.Bind(5000);
        sock.SendTo("a"u8, Net.PeerIp, 7, s.Now);
        sock.SendTo("b"u8, Net.PeerIp, 7, s.Now);
        Assert.Single(s.Drain());
        Assert.Equal(s.Now + TimeSpan.FromSeconds(1), s.Iface.PollAt);
        s.Advance(TimeSpan.FromMilliseconds(999));
        Assert.Empty(s.Drain());
        s.Advance(TimeSpan.FromMilliseconds(1));
        Assert.Single(s.Drain());       // second request
        s.Advance(TimeSpan.FromSeconds(1));
        Assert.Single(s.Drain());       // third
        Assert.Equal(UdpReadiness.Writable, sock.Readiness);
        s.Advance(TimeSpan.FromSeconds(1));
        Assert.Empty(s.Drain());        // given up
        Assert.False(s.Iface.Arp.TryGet(Net.PeerIp, out _, out _));
        var c = s.Counters;
        Assert.Equal(2, c[TxDrop.ArpFailed]);
        Assert.Equal(1, c[Counter.ArpFailures]);
        Assert.Equal(3, c[Counter.ArpRequestsOut]);
        Assert.Equal(UdpError.HostUnreachable, sock.TakeError());
        Assert.Equal((Net.PeerIp, (ushort)7), sock.PendingErrorRemote);
        Assert.Equal(0, s.Pool.Outstanding);
        Assert.Null(s.Iface.PollAt);
    }

    [Fact]
    public void Arp_failure_tells_tcp_host_unreachable_with_the_quoted_ports_and_sequence()
    {
        RecordingTransport? tcp = null;
        var s = new StackFixture(tcp: ip => tcp = new RecordingTransport(ip));
        var b = s.Pool.Rent(64, 20)!;
        var seg = b.Append(20);
        seg.Clear();
        seg[0] = 0x13; seg[1] = 0x88;           // source port 5000
        seg[2] = 0x00; seg[3] = 0x50;           // destination port 80
        seg[4] = 0xDE; seg[5] = 0xAD; seg[6] = 0xBE; seg[7] = 0xEF;
        Assert.Equal(Core.Ip.IpSendStatus.AwaitingResolution, tcp!.Ip.Send(Net.OurIp, Net.PeerIp, Core.Ip.IpProtocol.Tcp, b, new Core.Ip.IpSendOptions(Ttl: 64), s.Now));
        s.RunUntil(s.Now + TimeSpan.FromSeconds(10));
        Assert.Equal(3, s.Drain().Count);
        var e = Assert.Single(tcp.Errors);
        Assert.Equal(new Core.Ip.IcmpError(Core.Ip.IcmpErrorKind.Unreachable, 3, 1, Net.OurIp, Net.PeerIp, 5000, 80, 0xDEADBEEF, 0), e);
        Assert.Equal(0, s.Pool.Outstanding);
    }

    [Fact]
    public void A_lent_buffer_stays_its_owners_when_resolution_fails()
    {
        RecordingTransport? tcp = null;
        var s = new StackFixture(tcp: ip => tcp = new RecordingTransport(ip));
        var b = s.Pool.Rent(64, 20)!;
        b.Append(20).Clear();
        b.Lend();
        tcp!.Ip.Send(Net.OurIp, Net.PeerIp, Core.Ip.IpProtocol.Tcp, b, new Core.Ip.IpSendOptions(Ttl: 64), s.Now);
        s.RunUntil(s.Now + TimeSpan.FromSeconds(10));
        s.Drain();
        Assert.False(b.IsLent);
        Assert.Equal(1, s.Pool.Outstanding);   // still the transport's
        b.Release();
        Assert.Equal(0, s.Pool.Outstanding);
    }

    [Fact]
    public void The_queue_per_address_is_bounded()
    {
        var s = new StackFixture(c => c with { Arp = new ArpConfig { Announcements = 0, PendingPerAddress = 4 } });
        using var sock = s.Iface.Udp.Open();
        for (int i = 0; i < 7; i++) sock.SendTo("x"u8, Net.PeerIp, 7, s.Now);
        Assert.Single(s.Drain());
        Assert.Equal(4, s.Iface.HeldBuffers);
        Assert.Equal(3, s.Counters[TxDrop.ArpQueueFull]);
        s.Receive(ArpFrame(Net.OurMac, Net.PeerMac, 2, Net.PeerMac, Net.PeerIp, Net.OurMac, Net.OurIp));
        Assert.Equal(4, s.Drain().Count);
    }

    [Fact]
    public void Entries_go_stale_then_a_use_probes_by_unicast_and_silence_flushes_them()
    {
        var s = new StackFixture();
        s.LearnPeer();
        Assert.True(s.Iface.Arp.TryGet(Net.PeerIp, out _, out var st));
        Assert.Equal(NeighborState.Reachable, st);
        s.RunUntil(s.Now + TimeSpan.FromSeconds(31));
        Assert.True(s.Iface.Arp.TryGet(Net.PeerIp, out _, out st));
        Assert.Equal(NeighborState.Stale, st);

        using var sock = s.Iface.Udp.Open();
        sock.SendTo("x"u8, Net.PeerIp, 7, s.Now);
        var sent = s.Drain();
        Assert.Equal(2, sent.Count);
        // The datagram goes out at once to the stale MAC, with a unicast probe.
        Assert.Contains(sent, f => f[12] == 0x08 && f[13] == 0x00 && MacAddress.Read(f) == Net.PeerMac);
        Assert.Contains(sent, f => f.SequenceEqual(ArpFrame(Net.PeerMac, Net.OurMac, 1, Net.OurMac, Net.OurIp, MacAddress.Zero, Net.PeerIp)));
        s.RunUntil(s.Now + TimeSpan.FromSeconds(5));
        Assert.Equal(2, s.Drain().Count);       // two more probes
        Assert.False(s.Iface.Arp.TryGet(Net.PeerIp, out _, out _));
    }

    [Fact]
    public void A_probe_answered_makes_the_entry_reachable_again()
    {
        var s = new StackFixture();
        s.LearnPeer();
        s.RunUntil(s.Now + TimeSpan.FromSeconds(31));
        using var sock = s.Iface.Udp.Open();
        sock.SendTo("x"u8, Net.PeerIp, 7, s.Now);
        s.Drain();
        s.Receive(ArpFrame(Net.OurMac, Net.PeerMac, 2, Net.PeerMac, Net.PeerIp, Net.OurMac, Net.OurIp));
        Assert.True(s.Iface.Arp.TryGet(Net.PeerIp, out _, out var st));
        Assert.Equal(NeighborState.Reachable, st);
    }

    [Fact]
    public void Unused_stale_entries_are_freed()
    {
        var s = new StackFixture();
        s.LearnPeer();
        s.RunUntil(s.Now + TimeSpan.FromSeconds(30 + 61));
        Assert.False(s.Iface.Arp.TryGet(Net.PeerIp, out _, out _));
        Assert.Equal(0, s.Iface.Arp.Count);
    }

    [Fact]
    public void Another_station_claiming_our_address_is_a_counted_conflict()
    {
        var s = new StackFixture();
        s.Receive(ArpFrame(MacAddress.Broadcast, Net.PeerMac, 1, Net.PeerMac, Net.OurIp, MacAddress.Zero, Net.OurIp));
        Assert.Empty(s.Drain());
        Assert.Equal(1, s.Counters[RxDrop.ArpAddressConflict]);
    }

    [Fact]
    public void A_sender_address_that_is_not_the_frames_source_is_refused()
    {
        var s = new StackFixture();
        s.LearnPeer();
        var damaged = MacAddress.Parse("02:00:00:00:00:03");   // one bit away from the peer's
        s.Receive(ArpFrame(Net.OurMac, Net.PeerMac, 2, damaged, Net.PeerIp, Net.OurMac, Net.OurIp));
        Assert.True(s.Iface.Arp.TryGet(Net.PeerIp, out var mac, out _));
        Assert.Equal(Net.PeerMac, mac);
        Assert.Equal(1, s.Counters[RxDrop.ArpSenderMismatch]);
    }

    [Fact]
    public void A_probe_with_sender_zero_is_answered_but_not_learned()
    {
        var s = new StackFixture();
        s.Receive(ArpFrame(MacAddress.Broadcast, Net.PeerMac, 1, Net.PeerMac, Ipv4Address.Any, MacAddress.Zero, Net.OurIp));
        var reply = Assert.Single(s.Drain());
        Assert.Equal(ArpFrame(Net.PeerMac, Net.OurMac, 2, Net.OurMac, Net.OurIp, Net.PeerMac, Ipv4Address.Any), reply);
        Assert.Equal(0, s.Iface.Arp.Count);
    }

    [Theory]
    [InlineData("ff:ff:ff:ff:ff:ff", "198.18.0.2", RxDrop.ArpBadSender)]
    [InlineData("02:00:00:00:00:02", "255.255.255.255", RxDrop.ArpBadSender)]
    [InlineData("02:00:00:00:00:02", "224.0.0.1", RxDrop.ArpBadSender)]
    [InlineData("00:00:00:00:00:00", "198.18.0.2", RxDrop.ArpBadSender)]
    public void Unusable_senders_are_dropped(string mac, string ip, RxDrop reason)
    {
        var s = new StackFixture();
        s.Receive(ArpFrame(MacAddress.Broadcast, Net.PeerMac, 1, MacAddress.Parse(mac), Ipv4Address.Parse(ip), MacAddress.Zero, Net.OurIp));
        Assert.Empty(s.Drain());
        Assert.Equal(1, s.Counters[reason]);
    }

    [Fact]
    public void Malformed_and_unknown_operations_are_dropped()
    {
        var s = new StackFixture();
        var bad = Frames.Arp(1, Net.PeerMac, Net.PeerIp, MacAddress.Zero, Net.OurIp);
        bad[5] = 16; // protocol length
        s.Receive(Frames.Ethernet(MacAddress.Broadcast, Net.PeerMac, 0x0806, bad));
        var op3 = Frames.Arp(3, Net.PeerMac, Net.PeerIp, MacAddress.Zero, Net.OurIp);
        s.Receive(Frames.Ethernet(MacAddress.Broadcast, Net.PeerMac, 0x0806, op3));
        s.Receive(Frames.Ethernet(MacAddress.Broadcast, Net.PeerMac, 0x0806, new byte[10], pad: false));
        Assert.Empty(s.Drain());
        var c = s.Counters;
        Assert.Equal(2, c[RxDrop.ArpMalformed]);
        Assert.Equal(1, c[RxDrop.ArpBadOperation]);
        Assert.True(c.ReceiveAccountingBalances);
        Assert.Equal(0, s.Pool.Outstanding);
    }

    [Fact]
    public void Up_announces_our_address_twice_two_seconds_apart()
    {
        var s = new StackFixture(c => c with { Arp = new ArpConfig() }, up: false);
        s.Iface.Up(s.Now);
        var announce = ArpFrame(MacAddress.Broadcast, Net.OurMac, 1, Net.OurMac, Net.OurIp, MacAddress.Zero, Net.OurIp);
        Assert.Equal(announce, Assert.Single(s.Drain()));
        Assert.Equal(s.Now + TimeSpan.FromSeconds(2), s.Iface.PollAt);
        s.RunUntil(s.Now + TimeSpan.FromSeconds(10));
        Assert.Equal(announce, Assert.Single(s.Drain()));
        Assert.Equal(2, s.Counters[Counter.ArpAnnouncements]);
    }

    [Fact]
    public void A_full_cache_evicts_the_oldest_stale_entry()
    {
        var s = new StackFixture(c => c with { Arp = new ArpConfig { Announcements = 0, CacheCapacity = 2 } });
        var a = Ipv4Address.Parse("198.18.0.10");
        var b = Ipv4Address.Parse("198.18.0.11");
        var c3 = Ipv4Address.Parse("198.18.0.12");
        foreach (var ip in new[] { a, b })
        {
            s.Receive(ArpFrame(MacAddress.Broadcast, Net.PeerMac, 1, Net.PeerMac, ip, MacAddress.Zero, Net.OurIp));
            s.Now += TimeSpan.FromSeconds(1);
        }
        s.Receive(ArpFrame(MacAddress.Broadcast, Net.PeerMac, 1, Net.PeerMac, c3, MacAddress.Zero, Net.OurIp));
        Assert.False(s.Iface.Arp.TryGet(a, out _, out _));
        Assert.True(s.Iface.Arp.TryGet(b, out _, out _));
        Assert.True(s.Iface.Arp.TryGet(c3, out _, out _));
    }
}
