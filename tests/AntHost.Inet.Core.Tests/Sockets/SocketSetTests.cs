using AntHost.Inet.Core.Randomness;
using AntHost.Inet.Core.Sockets;
using AntHost.Inet.Core.Tcp;
using AntHost.Inet.Core.Tests.Sim;
using AntHost.Inet.Core.Tests.Support;
using AntHost.Inet.Core.Time;

namespace AntHost.Inet.Core.Tests.Sockets;

/// <summary>
/// The socket set: TCP, UDP and ICMP echo sockets behind one handle table, and one change
/// queue that names them by handle. A seeded model check (opens and removes in random order
/// against a model, every handle checked after every step) and the change queue over the
/// simulated Ethernet.
/// </summary>
public class SocketSetTests
{
    private static TcpLayer Tcp(Core.Ip.IIpOutput ip, Buffers.HeapBufferPool pool, ulong seed) =>
        new(ip, pool, new SeededRandom(seed), new TcpConfig());

    [Fact]
    public void Handles_of_every_kind_stay_valid_until_removed_and_stale_ones_name_nothing()
    {
        foreach (var seed in SimSeeds.FromEnvironment(200))
        {
            var s = new StackFixture(tcp: ip => new TcpLayer(ip, new Buffers.HeapBufferPool(4096), new SeededRandom(seed), new TcpConfig()));
            var set = new SocketSet(s.Iface, capacity: 2);
            var r = new SeededRandom(seed);
            var live = new List<(SocketHandle H, SocketKind Kind)>();
            var dead = new List<SocketHandle>();
            for (int step = 0; step < 200; step++)
            {
                int op = r.Next(4);
                if (op < 3 || live.Count == 0)
                {
                    SocketHandle h;
                    var kind = (SocketKind)(1 + r.Next(3));
                    if (kind == SocketKind.Tcp) Assert.Equal(TcpError.None, set.OpenTcp(out h));
                    else if (kind == SocketKind.Udp) h = set.OpenUdp();
                    else h = set.OpenIcmpEcho();
                    Assert.DoesNotContain(live, x => x.H.Slot == h.Slot);
                    live.Add((h, kind));
                }
                else
                {
                    int i = r.Next(live.Count);
                    var (h, kind) = live[i];
                    if (kind == SocketKind.Tcp) set.TcpLayer!.Abort(set.Tcp(h), s.Now);
                    Assert.True(set.Remove(h));
                    Assert.False(set.Remove(h));
                    live.RemoveAt(i);
                    dead.Add(h);
                }
                Assert.Equal(live.Count, set.Count);
                foreach (var (h, kind) in live)
                {
                    Assert.True(set.IsValid(h), $"seed {seed} step {step}: {h} lost");
                    Assert.Equal(kind, set.KindOf(h));
                    if (kind == SocketKind.Tcp) Assert.True(set.TryFind(set.Tcp(h), out var back) && back == h);
                    if (kind == SocketKind.Udp) Assert.False(set.Udp(h).IsClosed);
                }
                foreach (var h in dead) Assert.False(set.IsValid(h), $"seed {seed} step {step}: stale {h} still names a socket");
            }
        }
    }

    [Fact]
    public void The_change_queue_names_tcp_and_udp_sockets_by_their_handles()
    {
        var net = new SimNetwork(7, tcpA: (ip, pool) => Tcp(ip, pool, 1), tcpB: (ip, pool) => Tcp(ip, pool, 2));
        var a = new SocketSet(net.A.Iface);
        var b = new SocketSet(net.B.Iface);
        var bTcp = b.TcpLayer!;
        Assert.Equal(TcpError.None, b.OpenTcp(out var listener));
        Assert.Equal(TcpError.None, bTcp.Bind(b.Tcp(listener), new TcpEndPoint(net.B.Iface.Address, 80)));
        Assert.Equal(TcpError.None, bTcp.Listen(b.Tcp(listener), 4));
        var udpB = b.OpenUdp();
        Assert.Equal(Core.Udp.UdpError.Success, b.Udp(udpB).Bind(53));
        var udpA = a.OpenUdp();
        var ping = a.OpenIcmpEcho();
        Assert.Equal(TcpError.None, a.OpenTcp(out var client));
        Assert.Equal(TcpError.None, a.TcpLayer!.Connect(a.Tcp(client), new TcpEndPoint(net.B.Iface.Address, 80), net.Now));
        Assert.Equal(Core.Udp.UdpError.Success, a.Udp(udpA).SendTo("hello"u8, net.B.Iface.Address, 53, net.Now));
        net.RunFor(TimeSpan.FromMilliseconds(50));

        var changedA = Drain(a);
        var changedB = Drain(b);
        Assert.Contains(client, changedA);
        Assert.DoesNotContain(ping, changedA);
        Assert.Contains(listener, changedB);
        Assert.Contains(udpB, changedB);
        Assert.True(b.Udp(udpB).TryReceiveFrom(out var d));
        d.Payload.Release();

        // An accepted connection joins the set; a removed socket's changes are not named.
        Assert.Equal(TcpError.None, bTcp.Accept(b.Tcp(listener), out var child));
        var accepted = b.AddTcp(child);
        Assert.Equal(SocketKind.Tcp, b.KindOf(accepted));
        a.TcpLayer.Abort(a.Tcp(client), net.Now);
        Assert.True(a.Remove(client));
        Assert.True(a.Remove(udpA));
        Assert.True(a.Remove(ping));
        net.RunFor(TimeSpan.FromMilliseconds(50));
        Assert.Empty(Drain(a));
        Assert.Contains(accepted, Drain(b));
    }

    private static List<SocketHandle> Drain(SocketSet set)
    {
        var list = new List<SocketHandle>();
        while (set.TryGetChanged(out var h)) list.Add(h);
        return list;
    }
}
