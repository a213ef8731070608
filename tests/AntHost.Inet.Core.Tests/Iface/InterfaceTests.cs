using AntHost.Inet.Core.Counters;
using AntHost.Inet.Core.Iface;
using AntHost.Inet.Core.Ip;
using AntHost.Inet.Core.Randomness;
using AntHost.Inet.Core.Tests.Support;
using AntHost.Inet.Core.Time;
using AntHost.Inet.Core.Udp;
using AntHost.Inet.Core.Wire;

namespace AntHost.Inet.Core.Tests.Iface;

public class InterfaceTests
{
    [Fact]
    public void The_transmit_queue_is_bounded_and_a_full_queue_is_a_counted_drop()
    {
        var s = new StackFixture(c => c with { TransmitQueueCapacity = 2 });
        s.LearnPeer();
        using var sock = s.Iface.Udp.Open();
        for (int i = 0; i < 5; i++) sock.SendTo("x"u8, Net.PeerIp, 9, s.Now);
        Assert.Equal(2, s.Iface.TransmitQueueLength);
        Assert.Equal(3, s.Counters[TxDrop.QueueFull]);
        Assert.Equal(2, s.Drain().Count);
        Assert.Equal(0, s.Pool.Outstanding);
    }

    [Fact]
    public void Down_drops_what_waits_and_tells_the_transports()
    {
        var s = new StackFixture();
        using var sock = s.Iface.Udp.Open();
        sock.SendTo("x"u8, Net.PeerIp, 9, s.Now);   // waits for ARP
        s.Iface.Down(s.Now);
        Assert.False(s.Iface.IsUp);
        Assert.Equal(0, s.Iface.TransmitQueueLength);
        Assert.Equal(UdpError.HostUnreachable, sock.TakeError());
        Assert.Equal(0, s.Pool.Outstanding);
        Assert.Equal(UdpError.NetworkDown, sock.SendTo("x"u8, Net.PeerIp, 9, s.Now));
        Assert.Equal(1, s.Counters[TxDrop.LinkDown]);
        Assert.Equal(0, s.Pool.Outstanding);
        Assert.Null(s.Iface.PollAt);
    }

    [Fact]
    public void PollAt_includes_the_tcp_layers_deadline_and_poll_runs_it()
    {
        RecordingTransport? tcp = null;
        var s = new StackFixture(tcp: ip => tcp = new RecordingTransport(ip));
        Assert.Same(tcp, s.Iface.Tcp);
        Assert.Same(s.Iface.Ip, tcp!.Ip);
        Assert.Null(s.Iface.PollAt);
        tcp.NextDeadline = s.Now + TimeSpan.FromMilliseconds(200);
        Assert.Equal(tcp.NextDeadline, s.Iface.PollAt);
        s.Advance(TimeSpan.FromMilliseconds(200));
        Assert.Equal(1, tcp.Polls);
    }

    [Fact]
    public void Configuration_errors_say_what_is_wrong()
    {
        var pool = new Buffers.HeapBufferPool();
        InterfaceConfig Good() => new() { Mac = Net.OurMac, Address = Net.OurIp, PrefixLength = 24, Pool = pool, Random = new SeededRandom(1) };
        Assert.Contains("unicast", Assert.Throws<ArgumentException>(() => new Interface(Good() with { Mac = MacAddress.Broadcast })).Message);
        Assert.Contains("prefix", Assert.Throws<ArgumentException>(() => new Interface(Good() with { PrefixLength = 33 })).Message);
        Assert.Contains("not on the link", Assert.Throws<ArgumentException>(() => new Interface(Good() with { Gateway = Net.RemoteIp })).Message);
        Assert.Contains("MTU", Assert.Throws<ArgumentException>(() => new Interface(Good() with { Mtu = 100 })).Message);
        Assert.Contains("cannot be", Assert.Throws<ArgumentException>(() => new Interface(Good() with { Address = Ipv4Address.Broadcast })).Message);
        _ = new Interface(Good());
    }

    [Fact]
    public void Counters_snapshot_is_frozen_and_lists_what_is_not_zero()
    {
        var s = new StackFixture();
        s.Receive(new byte[5]);
        var snap = s.Counters;
        s.Receive(new byte[5]);
        Assert.Equal(1, snap[RxDrop.FrameTooShort]);
        Assert.Equal(2, s.Counters[RxDrop.FrameTooShort]);
        Assert.Contains(("RxDrop.FrameTooShort", 1L), snap.NonZero());
        Assert.Contains("FramesIn=1", snap.ToString());
    }

    [Fact]
    public void Addresses_the_ip_output_reports()
    {
        var s = new StackFixture();
        IIpOutput ip = s.Iface.Ip;
        Assert.True(ip.IsLocal(Net.OurIp));
        Assert.False(ip.IsLocal(Net.PeerIp));
        Assert.Equal(Net.OurIp, ip.SourceFor(Net.PeerIp));
        Assert.Equal(Net.OurIp, ip.SourceFor(Net.OurIp));
        Assert.Equal(Ipv4Address.Any, ip.SourceFor(Ipv4Address.Parse("127.0.0.1")));
        Assert.Equal(1500, ip.PathMtu(Net.PeerIp));
        Assert.Equal(34, IIpOutput.HeaderRoom);
    }

    [Fact]
    public void A_frame_sent_then_received_by_another_interface_round_trips()
    {
        // Two interfaces joined by hand: what one sends, the other takes, with nothing lost.
        var a = new StackFixture();
        var bPool = new Buffers.HeapBufferPool();
        var b = new Interface(new InterfaceConfig { Mac = Net.PeerMac, Address = Net.PeerIp, PrefixLength = 24, Pool = bPool, Random = new SeededRandom(2), Arp = new ArpConfig { Announcements = 0 } });
        b.Up(a.Now);
        using var rx = b.Udp.Open();
        rx.Bind(53);
        using var tx = a.Iface.Udp.Open();
        tx.SendTo("query"u8, Net.PeerIp, 53, a.Now);
        for (int round = 0; round < 4; round++)
        {
            foreach (var f in a.Drain()) b.Receive(Copy(bPool, f), a.Now);
            while (b.TryDequeueTransmit(out var f))
            {
                a.Receive(f.Data.ToArray());
                f.FinishTransmit();
            }
        }
        Assert.True(rx.TryReceiveFrom(out var d));
        Assert.Equal("query"u8.ToArray(), d.Payload.Data.ToArray());
        d.Payload.Release();
        Assert.Equal(0, bPool.Outstanding);
        Assert.Equal(0, a.Pool.Outstanding);

        static Buffers.PacketBuffer Copy(Buffers.HeapBufferPool pool, byte[] f)
        {
            var buf = pool.Rent(64, f.Length)!;
            f.CopyTo(buf.Append(f.Length));
            return buf;
        }
    }
}

public class IpSendOptionsTests
{
    [Fact]
    public void New_without_arguments_takes_the_defaults_not_zeroes()
    {
        var o = new IpSendOptions();
        Assert.Equal((byte)64, o.Ttl);
        Assert.True(o.DontFragment);
        Assert.Equal(new IpSendOptions(64, 0, true), o);
    }
}
