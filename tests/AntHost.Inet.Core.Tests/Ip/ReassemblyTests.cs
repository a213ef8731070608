using AntHost.Inet.Core.Counters;
using AntHost.Inet.Core.Iface;
using AntHost.Inet.Core.Randomness;
using AntHost.Inet.Core.Tests.Support;
using AntHost.Inet.Core.Udp;
using AntHost.Inet.Core.Wire;

namespace AntHost.Inet.Core.Tests.Ip;

public class ReassemblyTests
{
    private const ushort Port = 4000;

    private sealed record Fragment(int Offset, byte[] Data, bool More);

    private static (StackFixture S, UdpSocket Sock) Bound(Func<InterfaceConfig, InterfaceConfig>? configure = null)
    {
        var s = new StackFixture(configure, bufferSize: 16384);
        var sock = s.Iface.Udp.Open();
        Assert.Equal(UdpError.Success, sock.Bind(Port));
        return (s, sock);
    }

    /// <summary>A UDP datagram of <paramref name="size"/> payload bytes cut into fragments of <paramref name="chunk"/> bytes.</summary>
    private static (byte[] Payload, List<Fragment> Fragments) Make(int size, int chunk, ulong seed = 1)
    {
        var payload = new byte[size];
        new SeededRandom(seed).NextBytes(payload);
        var udp = Frames.Udp(Net.PeerIp, Net.OurIp, 9999, Port, payload);
        var list = new List<Fragment>();
        for (int off = 0; off < udp.Length; off += chunk)
        {
            int len = Math.Min(chunk, udp.Length - off);
            list.Add(new Fragment(off, udp[off..(off + len)], off + len < udp.Length));
        }
        return (payload, list);
    }

    private static void Feed(StackFixture s, Fragment f, ushort id = 77) =>
        s.Receive(Frames.IpFrame(Net.OurMac, Net.PeerMac,
            Frames.Ipv4(Net.PeerIp, Net.OurIp, 17, f.Data, id: id, mf: f.More, fragmentOffset: f.Offset)));

    private static void AssertDelivered(UdpSocket sock, byte[] payload)
    {
        Assert.True(sock.TryReceiveFrom(out var d));
        Assert.Equal(payload, d.Payload.Data.ToArray());
        d.Payload.Release();
        Assert.False(sock.TryReceiveFrom(out _));
    }

    [Fact]
    public void In_order()
    {
        var (s, sock) = Bound();
        var (payload, frags) = Make(3000, 1480);
        foreach (var f in frags) Feed(s, f);
        AssertDelivered(sock, payload);
        var c = s.Counters;
        Assert.Equal(1, c[Counter.IpReassembled]);
        Assert.Equal(3, c[Counter.IpFragmentsHeld]);
        Assert.True(c.ReceiveAccountingBalances);
        Assert.Equal(0, s.Pool.Outstanding);
        Assert.Equal(0, s.Iface.Ip.ReassemblyMemory);
    }

    [Fact]
    public void Fragments_of_unfinished_datagrams_are_given_back_when_the_interface_goes_down()
    {
        // A server that stops takes its interface down and must own no buffer after: fragments
        // a flood left in reassembly were kept until then (inet: "pages owned at stop: 32").
        var (s, _) = Bound();
        var (_, frags) = Make(3000, 1480);
        Feed(s, frags[0], id: 1);
        Feed(s, frags[1], id: 2);
        Assert.Equal(2, s.Iface.Ip.HeldBuffers);
        Assert.NotEqual(0, s.Pool.Outstanding);
        s.Iface.Down(s.Now);
        Assert.Equal(0, s.Iface.Ip.HeldBuffers);
        Assert.Equal(0, s.Iface.Ip.ReassemblyMemory);
        Assert.Equal(0, s.Pool.Outstanding);
        Assert.Equal(2, s.Counters[Counter.IpReassemblyDiscarded]);
    }

    [Fact]
    public void Out_of_order_in_every_permutation()
    {
        var (_, frags) = Make(2000, 512);
        Assert.Equal(4, frags.Count);
        foreach (var order in Permutations([0, 1, 2, 3]))
        {
            var (s, sock) = Bound();
            var (payload, fs) = Make(2000, 512);
            foreach (int i in order) Feed(s, fs[i]);
            AssertDelivered(sock, payload);
            Assert.Equal(0, s.Pool.Outstanding);
        }
    }

    [Fact]
    public void Exact_duplicates_are_dropped_alone()
    {
        var (s, sock) = Bound();
        var (payload, frags) = Make(3000, 1480);
        Feed(s, frags[0]);
        Feed(s, frags[0]);
        Feed(s, frags[2]);
        Feed(s, frags[1]);
        AssertDelivered(sock, payload);
        Assert.Equal(1, s.Counters[RxDrop.FragmentDuplicate]);
        Assert.True(s.Counters.ReceiveAccountingBalances);
    }

    [Fact]
    public void Overlapping_fragments_discard_the_whole_datagram()
    {
        var (s, sock) = Bound();
        var (_, frags) = Make(3000, 1480);
        Feed(s, frags[0]);
        // Rewrites bytes 1472..: overlaps the first fragment's tail.
        Feed(s, new Fragment(1472, new byte[16], true));
        Feed(s, frags[1]);
        Feed(s, frags[2]);
        Assert.False(sock.TryReceiveFrom(out _));
        var c = s.Counters;
        Assert.Equal(1, c[RxDrop.FragmentOverlap]);
        Assert.Equal(1, c[Counter.IpReassemblyDiscarded]);
        Assert.Equal(0, c[Counter.IpReassembled]);
        // The rest starts a new datagram that never completes: held until it times out.
        s.RunUntil(s.Now + TimeSpan.FromSeconds(31));
        Assert.Equal(0, s.Pool.Outstanding);
        Assert.True(c.ReceiveAccountingBalances);
    }

    [Fact]
    public void Timeout_sends_time_exceeded_when_the_first_fragment_came()
    {
        var (s, sock) = Bound();
        s.LearnPeer();
        var (_, frags) = Make(3000, 1480);
        Feed(s, frags[0]);
        Feed(s, frags[2]);
        Assert.Equal(2, s.Iface.HeldBuffers);
        Assert.Equal(s.Now + TimeSpan.FromSeconds(30), s.Iface.PollAt);
        s.RunUntil(s.Now + TimeSpan.FromSeconds(30));
        var err = Assert.Single(s.Drain(), f => f[12] == 0x08 && f[13] == 0x00);
        Assert.Equal(11, err[34]);    // time exceeded
        Assert.Equal(1, err[35]);     // fragment reassembly time exceeded
        // It quotes the first fragment: its IP header, then the UDP header.
        Assert.True(Ipv4Packet.TryCreate(err.AsSpan(14), out var ip));
        Assert.True(IcmpPacket.TryCreate(ip.Payload, out var icmp));
        Assert.True(icmp.IsChecksumValid);
        Assert.Equal(Net.PeerIp, Ipv4Address.Read(icmp.Body[12..]));
        Assert.Equal(0x2000, (icmp.Body[6] << 8 | icmp.Body[7]) & 0x3FFF); // MF, offset 0
        Assert.Equal(1, s.Counters[Counter.IpReassemblyTimeouts]);
        Assert.Equal(0, s.Pool.Outstanding);
        Assert.False(sock.TryReceiveFrom(out _));
    }

    [Fact]
    public void Timeout_without_the_first_fragment_is_silent()
    {
        var (s, _) = Bound();
        s.LearnPeer();
        var (_, frags) = Make(3000, 1480);
        Feed(s, frags[1]);
        s.RunUntil(s.Now + TimeSpan.FromSeconds(31));
        Assert.Empty(s.Drain());
        Assert.Equal(1, s.Counters[Counter.IpReassemblyTimeouts]);
        Assert.Equal(0, s.Pool.Outstanding);
    }

    [Fact]
    public void The_memory_limit_evicts_the_oldest_datagram()
    {
        // Each fragment holds a 16 KiB buffer: a limit of 50 KiB fits three.
        var (s, sock) = Bound(c => c with { Reassembly = new ReassemblyConfig { MemoryLimit = 50 * 1024 } });
        var (_, a) = Make(3000, 1480, seed: 1);
        var (pb, b) = Make(3000, 1480, seed: 2);
        Feed(s, a[0], id: 1);
        s.Now += TimeSpan.FromMilliseconds(1);
        Feed(s, a[1], id: 1);
        s.Now += TimeSpan.FromMilliseconds(1);
        Feed(s, b[0], id: 2);
        Assert.Equal(0, s.Counters[Counter.IpReassemblyDiscarded]);
        Feed(s, b[1], id: 2);        // a fourth buffer: evicts datagram 1
        Assert.Equal(1, s.Counters[Counter.IpReassemblyDiscarded]);
        Feed(s, b[2], id: 2);
        AssertDelivered(sock, pb);
        Assert.Equal(0, s.Pool.Outstanding);
        Assert.True(s.Counters.ReceiveAccountingBalances);
    }

    [Fact]
    public void The_datagram_slots_are_bounded()
    {
        var (s, _) = Bound(c => c with { Reassembly = new ReassemblyConfig { MaxDatagrams = 2 } });
        var (_, a) = Make(3000, 1480);
        for (ushort id = 1; id <= 5; id++)
        {
            Feed(s, a[1], id);
            s.Now += TimeSpan.FromMilliseconds(1);
        }
        Assert.Equal(2, s.Iface.HeldBuffers);
        Assert.Equal(3, s.Counters[Counter.IpReassemblyDiscarded]);
    }

    [Fact]
    public void Fragments_not_a_multiple_of_8_or_past_65535_are_invalid()
    {
        var (s, _) = Bound();
        Feed(s, new Fragment(0, new byte[100], true));              // 100 is not a multiple of 8
        Feed(s, new Fragment(65528, new byte[16], false));          // the ping of death: ends past 65535
        Assert.Equal(2, s.Counters[RxDrop.FragmentInvalid]);
        Assert.Equal(0, s.Pool.Outstanding);
    }

    [Fact]
    public void A_second_different_end_or_data_beyond_the_end_discards_the_datagram()
    {
        var (s, _) = Bound();
        Feed(s, new Fragment(8, new byte[16], true));
        Feed(s, new Fragment(24, new byte[8], false));    // ends at 32
        Feed(s, new Fragment(40, new byte[8], false));    // ends at 48: inconsistent
        Assert.Equal(1, s.Counters[RxDrop.FragmentInvalid]);
        Assert.Equal(1, s.Counters[Counter.IpReassemblyDiscarded]);
        Assert.Equal(0, s.Pool.Outstanding);

        Feed(s, new Fragment(64, new byte[16], true), id: 9);
        Feed(s, new Fragment(8, new byte[8], false), id: 9);  // ends at 16, but data at 64 exists
        Assert.Equal(2, s.Counters[RxDrop.FragmentInvalid]);
        Assert.Equal(0, s.Pool.Outstanding);
    }

    [Fact]
    public void A_datagram_larger_than_the_pools_buffers_is_dropped_and_counted()
    {
        var s = new StackFixture(bufferSize: 2048);
        using var sock = s.Iface.Udp.Open();
        sock.Bind(Port);
        var (_, frags) = Make(3000, 1480);
        foreach (var f in frags) Feed(s, f);
        Assert.False(sock.TryReceiveFrom(out _));
        Assert.Equal(1, s.Counters[TxDrop.NoBuffer]);
        Assert.Equal(0, s.Pool.Outstanding);
    }

    [Fact]
    public void Random_orders_with_duplicates_always_reassemble_exactly()
    {
        var rng = new SeededRandom(99);
        for (int round = 0; round < 200; round++)
        {
            var (s, sock) = Bound();
            int size = 100 + rng.Next(6000);
            int chunk = 8 * (1 + rng.Next(180));
            var (payload, frags) = Make(size, chunk, (ulong)round);
            var order = new List<Fragment>(frags);
            for (int i = 0; i < frags.Count / 2; i++) order.Add(frags[rng.Next(frags.Count)]);
            for (int i = order.Count - 1; i > 0; i--)
            {
                int j = rng.Next(i + 1);
                (order[i], order[j]) = (order[j], order[i]);
            }
            foreach (var f in order) Feed(s, f);
            if (frags.Count > 64)
            {
                Assert.False(sock.TryReceiveFrom(out _));
                continue;
            }
            // Duplicates after completion start a new, never-finished datagram; the first completion must be exact.
            AssertDeliveredFirst(sock, payload, $"round {round}, size {size}, chunk {chunk}");
            s.RunUntil(s.Now + TimeSpan.FromSeconds(31));
            s.RunUntil(s.Now + TimeSpan.FromSeconds(5)); // the time-exceeded's ARP resolution gives up
            s.Drain();
            while (sock.TryReceiveFrom(out var extra)) extra.Payload.Release();
            Assert.Equal(0, s.Pool.Outstanding);
            Assert.True(s.Counters.ReceiveAccountingBalances);
        }
    }

    private static void AssertDeliveredFirst(UdpSocket sock, byte[] payload, string what)
    {
        Assert.True(sock.TryReceiveFrom(out var d), what);
        Assert.True(payload.AsSpan().SequenceEqual(d.Payload.Data), what);
        d.Payload.Release();
    }

    private static IEnumerable<int[]> Permutations(int[] items)
    {
        if (items.Length <= 1)
        {
            yield return items;
            yield break;
        }
        for (int i = 0; i < items.Length; i++)
        {
            var rest = items.Where((_, k) => k != i).ToArray();
            foreach (var p in Permutations(rest)) yield return [items[i], .. p];
        }
    }
}
