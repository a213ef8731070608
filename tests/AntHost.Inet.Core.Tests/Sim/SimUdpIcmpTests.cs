using System.Buffers.Binary;
using AntHost.Inet.Core.Randomness;
using AntHost.Inet.Core.Udp;
using Xunit.Abstractions;

namespace AntHost.Inet.Core.Tests.Sim;

/// <summary>
/// UDP and ICMP echo between two interfaces over a lossy, reordering, duplicating,
/// corrupting link, over many seeds. ANTHOST_SIM_SEEDS raises the number of seeds (a soak);
/// ANTHOST_SIM_SEED replays one.
/// </summary>
public class SimUdpIcmpTests(ITestOutputHelper output)
{
    private static byte[] Datagram(ulong seed, int index)
    {
        var r = new SeededRandom(seed * 1_000_003 + (ulong)index);
        var d = new byte[8 + r.Next(1400)];
        BinaryPrimitives.WriteInt32BigEndian(d, index);
        BinaryPrimitives.WriteInt32BigEndian(d.AsSpan(4), d.Length);
        r.NextBytes(d.AsSpan(8));
        return d;
    }

    private void Run(string what, ulong seed, LinkConfig link, Action<SimNetwork> body)
    {
        var net = new SimNetwork(seed, link);
        try
        {
            body(net);
        }
        catch (Exception e)
        {
            output.WriteLine($"{what} FAILED: {net.Describe()}");
            throw new Xunit.Sdk.XunitException($"{what} failed for {net.Describe()}: {e.Message}");
        }
    }

    [Fact]
    public void Udp_datagrams_arrive_intact_or_not_at_all_over_a_hostile_link()
    {
        foreach (var seed in SimSeeds.FromEnvironment(200))
        {
            var r = new SeededRandom(seed);
            var link = new LinkConfig
            {
                Loss = r.NextDouble() * 0.2,
                Reorder = r.NextDouble() * 0.3,
                Duplicate = r.NextDouble() * 0.1,
                Corrupt = r.NextDouble() * 0.1,
                Delay = TimeSpan.FromMicroseconds(100 + r.Next(5000)),
            };
            Run("udp", seed, link, net =>
            {
                const int count = 200;
                var a = net.A.Iface.Udp.Open();
                var b = net.B.Iface.Udp.Open();
                Assert.Equal(UdpError.Success, a.Bind(1111));
                Assert.Equal(UdpError.Success, b.Bind(2222));
                var seen = new int[count];
                int intact = 0;
                for (int i = 0; i < count; i++)
                {
                    var e = a.SendTo(Datagram(seed, i), net.B.Address, 2222, net.Now);
                    Assert.True(e is UdpError.Success or UdpError.NoBufferSpace, e.ToString());
                    // Spread over seconds, so that a lost ARP exchange is retried (once a second) within the run.
                    net.RunFor(TimeSpan.FromMilliseconds(25));
                    Collect();
                }
                net.RunFor(TimeSpan.FromSeconds(5));
                Collect();

                void Collect()
                {
                    while (b.TryReceiveFrom(out var d))
                    {
                        var data = d.Payload.Data;
                        Assert.True(data.Length >= 8, "runt datagram delivered");
                        int index = BinaryPrimitives.ReadInt32BigEndian(data);
                        Assert.InRange(index, 0, count - 1);
                        Assert.True(Datagram(seed, index).AsSpan().SequenceEqual(data), $"datagram {index} arrived corrupted");
                        Assert.Equal(1111, d.RemotePort);
                        Assert.Equal(net.A.Address, d.RemoteAddress);
                        seen[index]++;
                        intact++;
                        d.Payload.Release();
                    }
                }

                // Duplicates may arrive twice; nothing arrives more often than the link could duplicate it.
                Assert.All(seen, n => Assert.InRange(n, 0, 2));
                // With at most 20% loss, most datagrams arrive (ARP loss can cost a few at the start).
                Assert.True(intact >= count / 3, $"only {intact} of {count} arrived");

                a.Dispose();
                b.Dispose();
                Assert.True(net.RunToQuiescence(TimeSpan.FromMinutes(10)), "timers never went idle");
                Assert.Equal(0, net.A.Pool.Outstanding);
                Assert.Equal(0, net.B.Pool.Outstanding);
                Assert.True(net.A.Iface.Counters.Snapshot().ReceiveAccountingBalances);
                Assert.True(net.B.Iface.Counters.Snapshot().ReceiveAccountingBalances);
            });
        }
    }

    [Fact]
    public void Ping_over_a_lossy_link_gets_intact_replies()
    {
        foreach (var seed in SimSeeds.FromEnvironment(100))
        {
            var r = new SeededRandom(seed + 500);
            var link = new LinkConfig { Loss = r.NextDouble() * 0.2, Reorder = 0.2, Duplicate = 0.05, Corrupt = 0.05 };
            Run("ping", seed, link, net =>
            {
                using var ping = net.A.Iface.Icmp.OpenEchoSocket();
                int replies = 0;
                var sent = new Dictionary<ushort, byte[]>();
                for (ushort seq = 0; seq < 50; seq++)
                {
                    var payload = Datagram(seed, seq);
                    sent[seq] = payload;
                    ping.Send(net.B.Address, seq, payload, net.Now);
                    net.RunFor(TimeSpan.FromMilliseconds(100));
                    while (ping.TryReceive(out var reply))
                    {
                        if (reply.IsError)
                        {
                            // A lost ARP exchange ends as host unreachable: allowed, and payload-less.
                            Assert.Null(reply.Payload);
                            continue;
                        }
                        Assert.True(sent.TryGetValue(reply.Sequence, out var expected), "reply to a request never sent");
                        Assert.True(expected.AsSpan().SequenceEqual(reply.Payload!.Data), $"reply {reply.Sequence} corrupted");
                        reply.Payload.Release();
                        replies++;
                    }
                }
                Assert.True(replies >= 15, $"only {replies} of 50 pings answered");
                ping.Dispose();
                Assert.True(net.RunToQuiescence(TimeSpan.FromMinutes(10)));
                Assert.Equal(0, net.A.Pool.Outstanding);
                Assert.Equal(0, net.B.Pool.Outstanding);
            });
        }
    }

    [Fact]
    public void Arp_recovers_from_loss_of_its_own_frames()
    {
        foreach (var seed in SimSeeds.FromEnvironment(100))
        {
            // Half the frames lost: resolutions fail and are retried by the next datagram.
            Run("arp", seed, new LinkConfig { Loss = 0.5 }, net =>
            {
                var a = net.A.Iface.Udp.Open();
                var b = net.B.Iface.Udp.Open();
                b.Bind(7);
                int received = 0;
                for (int i = 0; i < 100; i++)
                {
                    a.SendTo(Datagram(seed, i), net.B.Address, 7, net.Now);
                    net.RunFor(TimeSpan.FromMilliseconds(500));
                    while (b.TryReceiveFrom(out var d))
                    {
                        received++;
                        d.Payload.Release();
                    }
                }
                // Expected about half; anything over a fifth shows the cache resolved and recovered.
                Assert.True(received >= 20, $"only {received} of 100 arrived");
                if (net.A.Iface.Arp.TryGet(net.B.Address, out var mac, out var state) && state != Core.Arp.NeighborState.Incomplete)
                    Assert.Equal(net.B.Mac, mac);
                a.Dispose();
                b.Dispose();
                Assert.True(net.RunToQuiescence(TimeSpan.FromMinutes(10)));
                Assert.Equal(0, net.A.Pool.Outstanding);
                Assert.Equal(0, net.B.Pool.Outstanding);
            });
        }
    }

    [Fact]
    public void A_perfect_link_delivers_everything_in_order()
    {
        var net = new SimNetwork(1, new LinkConfig());
        var a = net.A.Iface.Udp.Open();
        var b = net.B.Iface.Udp.Open();
        b.Bind(7);
        // The first datagram waits for ARP; the rest would overflow its queue if sent at once.
        a.SendTo(Datagram(1, 0), net.B.Address, 7, net.Now);
        net.RunFor(TimeSpan.FromMilliseconds(10));
        for (int i = 1; i < 100; i++) a.SendTo(Datagram(1, i), net.B.Address, 7, net.Now);
        net.RunFor(TimeSpan.FromSeconds(1));
        for (int i = 0; i < 100; i++)
        {
            Assert.True(b.TryReceiveFrom(out var d), $"datagram {i} missing");
            Assert.True(Datagram(1, i).AsSpan().SequenceEqual(d.Payload.Data));
            d.Payload.Release();
        }
        Assert.Equal(0, net.FramesLost);
    }
}
