using AntHost.Inet.Core.Arp;
using AntHost.Inet.Core.Counters;
using AntHost.Inet.Core.Iface;
using AntHost.Inet.Core.Tests.Support;
using AntHost.Inet.Core.Udp;
using AntHost.Inet.Core.Wire;

namespace AntHost.Inet.Core.Tests.Arp;

/// <summary>
/// A host on the link that forges ARP: unsolicited replies, answers racing the real one,
/// gratuitous announcements, and the legitimate change of a neighbour's MAC that the same
/// rules must still let through.
/// </summary>
public class ArpHardeningTests
{
    private static readonly MacAddress Forger = MacAddress.Parse("02:66:00:00:00:66");

    private static byte[] ArpFrame(MacAddress ethDst, MacAddress ethSrc, ushort op, MacAddress sm, Ipv4Address si, MacAddress tm, Ipv4Address ti) =>
        Frames.Ethernet(ethDst, ethSrc, 0x0806, Frames.Arp(op, sm, si, tm, ti));

    /// <summary>"<paramref name="ip"/> is-at <paramref name="mac"/>", sent to us by <paramref name="mac"/>.</summary>
    private static byte[] ReplyToUs(MacAddress mac, Ipv4Address ip) => ArpFrame(Net.OurMac, mac, 2, mac, ip, Net.OurMac, Net.OurIp);

    /// <summary>Our unicast probe of <paramref name="ip"/> at <paramref name="mac"/>.</summary>
    private static byte[] ProbeFromUs(MacAddress mac, Ipv4Address ip) => ArpFrame(mac, Net.OurMac, 1, Net.OurMac, Net.OurIp, MacAddress.Zero, ip);

    private static (MacAddress Mac, NeighborState State) Peer(StackFixture s)
    {
        Assert.True(s.Iface.Arp.TryGet(Net.PeerIp, out var mac, out var state), "the peer's entry is gone");
        return (mac, state);
    }

    /// <summary>Sends one UDP datagram to the peer and returns the Ethernet destination of the datagram's frame.</summary>
    private static MacAddress DatagramGoesTo(StackFixture s, UdpSocket sock, out List<byte[]> others)
    {
        Assert.Equal(UdpError.Success, sock.SendTo("x"u8, Net.PeerIp, 7, s.Now));
        var sent = s.Drain();
        var ip = Assert.Single(sent, f => f[12] == 0x08 && f[13] == 0x00);
        others = sent.Where(f => f != ip).ToList();
        return MacAddress.Read(ip);
    }

    [Fact]
    public void A_forged_unsolicited_reply_does_not_move_the_peer_and_the_old_owners_answer_refuses_it()
    {
        var s = new StackFixture();
        s.LearnPeer();
        s.Advance(TimeSpan.FromSeconds(5));      // well past the lock time
        using var sock = s.Iface.Udp.Open();

        // The attack: one unsolicited "the peer is-at 02:66:..." to us.
        s.Receive(ReplyToUs(Forger, Net.PeerIp));
        Assert.Equal(Net.PeerMac, Peer(s).Mac);
        // The claim is checked by asking the MAC we trust, and traffic keeps going there.
        Assert.Equal(ProbeFromUs(Net.PeerMac, Net.PeerIp), Assert.Single(s.Drain()));
        Assert.Equal(NeighborState.Probe, Peer(s).State);
        Assert.Equal(Net.PeerMac, DatagramGoesTo(s, sock, out var others));
        Assert.Empty(others);

        // The real peer answers: the forger is refused, the peer confirmed.
        s.Advance(TimeSpan.FromMilliseconds(1));
        s.Receive(ReplyToUs(Net.PeerMac, Net.PeerIp));
        Assert.Equal((Net.PeerMac, NeighborState.Reachable), Peer(s));
        var c = s.Counters;
        Assert.Equal(1, c[Counter.ArpChangeProbes]);
        Assert.Equal(1, c[Counter.ArpRefusedChange]);
        Assert.Equal(0, c[Counter.ArpChangesAccepted]);
        Assert.True(c.ReceiveAccountingBalances);

        // No more probes come: the question was answered.
        s.RunUntil(s.Now + TimeSpan.FromSeconds(5));
        Assert.Empty(s.Drain());
        Assert.Equal(Net.PeerMac, Peer(s).Mac);
    }

    [Fact]
    public void An_unsolicited_reply_teaches_nothing_and_confirms_nothing()
    {
        var s = new StackFixture();
        // No entry: a reply to a question never asked creates none.
        var stranger = Ipv4Address.Parse("198.18.0.66");
        s.Receive(ReplyToUs(Forger, stranger));
        Assert.False(s.Iface.Arp.TryGet(stranger, out _, out _));

        // A stale entry is not made reachable by a reply it did not ask for, even from its own MAC.
        s.LearnPeer();
        s.RunUntil(s.Now + TimeSpan.FromSeconds(31));
        Assert.Equal(NeighborState.Stale, Peer(s).State);
        s.Receive(ReplyToUs(Net.PeerMac, Net.PeerIp));
        Assert.Equal(NeighborState.Stale, Peer(s).State);
        Assert.Empty(s.Drain());
        Assert.Equal(2, s.Counters[Counter.ArpRefusedUnsolicited]);
    }

    [Fact]
    public void A_request_addressed_to_us_does_not_make_an_entry_reachable()
    {
        var s = new StackFixture();
        s.LearnPeer();
        s.RunUntil(s.Now + TimeSpan.FromSeconds(31));
        Assert.Equal(NeighborState.Stale, Peer(s).State);

        // The peer asks for us: it is answered, and its entry stays as unconfirmed as it was.
        s.Receive(ArpFrame(MacAddress.Broadcast, Net.PeerMac, 1, Net.PeerMac, Net.PeerIp, MacAddress.Zero, Net.OurIp));
        Assert.Equal(ArpFrame(Net.PeerMac, Net.OurMac, 2, Net.OurMac, Net.OurIp, Net.PeerMac, Net.PeerIp), Assert.Single(s.Drain()));
        Assert.Equal((Net.PeerMac, NeighborState.Stale), Peer(s));

        // So its next use checks it, as for any stale entry.
        using var sock = s.Iface.Udp.Open();
        Assert.Equal(Net.PeerMac, DatagramGoesTo(s, sock, out var others));
        Assert.Equal(ProbeFromUs(Net.PeerMac, Net.PeerIp), Assert.Single(others));
    }

    [Fact]
    public void A_forged_reply_within_the_lock_time_is_refused_without_a_probe()
    {
        var s = new StackFixture();
        using var sock = s.Iface.Udp.Open();
        Assert.Equal(UdpError.Success, sock.SendTo("x"u8, Net.PeerIp, 7, s.Now));
        s.Drain();                                            // our broadcast request
        s.Advance(TimeSpan.FromMilliseconds(2));
        s.Receive(ReplyToUs(Net.PeerMac, Net.PeerIp));        // the real answer comes first
        Assert.Equal(Net.PeerMac, MacAddress.Read(Assert.Single(s.Drain())));

        // A second answer with another MAC, racing the first: refused outright.
        s.Advance(TimeSpan.FromMilliseconds(500));
        s.Receive(ReplyToUs(Forger, Net.PeerIp));
        Assert.Empty(s.Drain());
        Assert.Equal((Net.PeerMac, NeighborState.Reachable), Peer(s));
        Assert.Equal(1, s.Counters[Counter.ArpRefusedLocked]);
        Assert.Equal(0, s.Counters[Counter.ArpChangeProbes]);

        // The first answer also won when the forger answered first: the lock holds both ways.
        var t = new StackFixture();
        using var sock2 = t.Iface.Udp.Open();
        sock2.SendTo("x"u8, Net.PeerIp, 7, t.Now);
        t.Drain();
        t.Receive(ReplyToUs(Forger, Net.PeerIp));
        t.Drain();
        t.Advance(TimeSpan.FromMilliseconds(1));
        t.Receive(ReplyToUs(Net.PeerMac, Net.PeerIp));
        Assert.Equal(Forger, Peer(t).Mac);
        Assert.Equal(1, t.Counters[Counter.ArpRefusedLocked]);
    }

    [Fact]
    public void A_legitimate_mac_change_is_taken_once_the_old_owner_stays_silent()
    {
        var s = new StackFixture();
        s.LearnPeer();
        s.Advance(TimeSpan.FromSeconds(5));
        var newMac = MacAddress.Parse("02:00:00:00:00:22");

        // The peer came back with a new adapter and asks for us: answered at its new MAC.
        s.Receive(ArpFrame(MacAddress.Broadcast, newMac, 1, newMac, Net.PeerIp, MacAddress.Zero, Net.OurIp));
        var first = s.Drain();
        Assert.Equal(2, first.Count);
        Assert.Contains(first, f => f.SequenceEqual(ArpFrame(newMac, Net.OurMac, 2, Net.OurMac, Net.OurIp, newMac, Net.PeerIp)));
        Assert.Contains(first, f => f.SequenceEqual(ProbeFromUs(Net.PeerMac, Net.PeerIp)));
        Assert.Equal(Net.PeerMac, Peer(s).Mac);

        // The old MAC answers none of the probes (three in all, a second apart).
        s.RunUntil(s.Now + TimeSpan.FromSeconds(2.5));
        var probes = s.Drain();
        Assert.Equal(2, probes.Count);
        Assert.All(probes, f => Assert.Equal(ProbeFromUs(Net.PeerMac, Net.PeerIp), f));
        Assert.Equal(Net.PeerMac, Peer(s).Mac);
        s.RunUntil(s.Now + TimeSpan.FromSeconds(1));
        Assert.Equal((newMac, NeighborState.Stale), Peer(s));
        Assert.Equal(1, s.Counters[Counter.ArpChangesAccepted]);
        Assert.Equal(0, s.Counters[Counter.ArpFailures]);

        // The new MAC is used, and checked on its first use like any unconfirmed entry.
        using var sock = s.Iface.Udp.Open();
        Assert.Equal(newMac, DatagramGoesTo(s, sock, out var others));
        Assert.Equal(ProbeFromUs(newMac, Net.PeerIp), Assert.Single(others));
        s.Receive(ReplyToUs(newMac, Net.PeerIp));
        Assert.Equal((newMac, NeighborState.Reachable), Peer(s));
    }

    [Fact]
    public void Gratuitous_arp_is_ignored_by_default()
    {
        var s = new StackFixture();
        s.LearnPeer();
        s.Advance(TimeSpan.FromSeconds(5));
        // An announcement (a request) and a gratuitous reply that the peer moved to the forger.
        s.Receive(ArpFrame(MacAddress.Broadcast, Forger, 1, Forger, Net.PeerIp, MacAddress.Zero, Net.PeerIp));
        s.Receive(ArpFrame(MacAddress.Broadcast, Forger, 2, Forger, Net.PeerIp, MacAddress.Broadcast, Net.PeerIp));
        Assert.Equal((Net.PeerMac, NeighborState.Reachable), Peer(s));
        Assert.Empty(s.Drain());                                  // not even a probe
        // An unknown host's announcement is not learned; the peer's own announcement of its
        // unchanged MAC changes nothing and is no refusal.
        var other = Ipv4Address.Parse("198.18.0.50");
        s.Receive(ArpFrame(MacAddress.Broadcast, Forger, 1, Forger, other, MacAddress.Zero, other));
        Assert.False(s.Iface.Arp.TryGet(other, out _, out _));
        s.Receive(ArpFrame(MacAddress.Broadcast, Net.PeerMac, 1, Net.PeerMac, Net.PeerIp, MacAddress.Zero, Net.PeerIp));
        var c = s.Counters;
        Assert.Equal(2, c[Counter.ArpRefusedGratuitous]);
        Assert.Equal(0, c[Counter.ArpChangesAccepted]);
        Assert.True(c.ReceiveAccountingBalances);
    }

    [Fact]
    public void Gratuitous_arp_when_accepted_moves_an_address_at_once()
    {
        var s = new StackFixture(c => c with { Arp = c.Arp with { AcceptGratuitous = true } });
        s.LearnPeer();
        // Even within the lock time: the configuration trusts announcements.
        s.Advance(TimeSpan.FromMilliseconds(100));
        var moved = MacAddress.Parse("02:00:00:00:00:99");
        s.Receive(ArpFrame(MacAddress.Broadcast, moved, 1, moved, Net.PeerIp, MacAddress.Zero, Net.PeerIp));
        Assert.Equal((moved, NeighborState.Stale), Peer(s));
        Assert.Empty(s.Drain());
        var other = Ipv4Address.Parse("198.18.0.50");
        s.Receive(ArpFrame(MacAddress.Broadcast, moved, 1, moved, other, MacAddress.Zero, other));
        Assert.True(s.Iface.Arp.TryGet(other, out var mac, out var state));
        Assert.Equal((moved, NeighborState.Stale), (mac, state));
        Assert.Equal(1, s.Counters[Counter.ArpChangesAccepted]);
        Assert.Equal(0, s.Counters[Counter.ArpRefusedGratuitous]);
    }

    [Fact]
    public void An_address_being_resolved_takes_its_hosts_own_announcement_unconfirmed()
    {
        // Gratuitous ARP off: still, for an address we are asking about, the host's own
        // announcement is as good as the first answer (which anyone could send), so the
        // waiting datagram goes, and the next use checks the MAC.
        var s = new StackFixture();
        using var sock = s.Iface.Udp.Open();
        sock.SendTo("x"u8, Net.PeerIp, 7, s.Now);
        s.Drain();
        s.Receive(ArpFrame(MacAddress.Broadcast, Net.PeerMac, 1, Net.PeerMac, Net.PeerIp, MacAddress.Zero, Net.PeerIp));
        Assert.Equal(Net.PeerMac, MacAddress.Read(Assert.Single(s.Drain())));
        Assert.Equal((Net.PeerMac, NeighborState.Stale), Peer(s));
        Assert.Equal(Net.PeerMac, DatagramGoesTo(s, sock, out var others));
        Assert.Equal(ProbeFromUs(Net.PeerMac, Net.PeerIp), Assert.Single(others));
        Assert.Equal(0, s.Counters[Counter.ArpRefusedGratuitous]);
    }

    [Fact]
    public void Packets_waiting_for_resolution_are_bounded_altogether()
    {
        var s = new StackFixture(c => c with { Arp = c.Arp with { PendingPerAddress = 4, PendingTotal = 6 } });
        using var sock = s.Iface.Udp.Open();
        for (int host = 10; host < 13; host++)
            for (int i = 0; i < 3; i++)
                sock.SendTo("x"u8, Ipv4Address.Parse($"198.18.0.{host}"), 7, s.Now);
        Assert.Equal(3, s.Drain().Count);        // one request per address
        Assert.Equal(6, s.Iface.HeldBuffers);
        Assert.Equal(3, s.Counters[TxDrop.ArpPendingFull]);
        s.RunUntil(s.Now + TimeSpan.FromSeconds(10));
        Assert.Equal(6, s.Drain().Count);        // the two retries per address
        Assert.Equal(0, s.Iface.HeldBuffers);
        Assert.Equal(0, s.Pool.Outstanding);
    }
}
