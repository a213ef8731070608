using AntHost.Inet.Core.Counters;
using AntHost.Inet.Core.Iface;
using AntHost.Inet.Core.Ip;
using AntHost.Inet.Core.Tests.Support;
using AntHost.Inet.Core.Udp;
using AntHost.Inet.Core.Wire;

namespace AntHost.Inet.Core.Tests.Ip;

public class Ipv4SendTests
{
    private static (StackFixture S, RecordingTransport Tcp) WithTcp(Func<InterfaceConfig, InterfaceConfig>? configure = null)
    {
        RecordingTransport? tcp = null;
        var s = new StackFixture(configure, bufferSize: 16384, tcp: ip => tcp = new RecordingTransport(ip));
        return (s, tcp!);
    }

    private static Buffers.PacketBuffer Segment(StackFixture s, int length, byte fill = 0xAB)
    {
        var b = s.Pool.Rent(IIpOutput.HeaderRoom, length)!;
        b.Append(length).Fill(fill);
        return b;
    }

    [Fact]
    public void On_link_destinations_are_sent_to_their_mac_with_df_and_the_exact_header()
    {
        var (s, tcp) = WithTcp();
        s.LearnPeer();
        var status = tcp.Ip.Send(Net.OurIp, Net.PeerIp, IpProtocol.Tcp, Segment(s, 20), new IpSendOptions(Ttl: 64), s.Now);
        Assert.Equal(IpSendStatus.Sent, status);
        var f = Assert.Single(s.Drain());
        Assert.True(EthernetHeader.TryParse(f, out var eth));
        Assert.Equal(new EthernetHeader(Net.PeerMac, Net.OurMac, EtherType.Ipv4), eth);
        Assert.True(Ipv4Packet.TryCreate(f.AsSpan(14), out var ip));
        Assert.True(ip.IsChecksumValid);
        Assert.True(ip.DontFragment);
        Assert.Equal(64, ip.Ttl);
        Assert.Equal(6, ip.Protocol);
        Assert.Equal(40, ip.TotalLength);
        Assert.Equal(Net.OurIp, ip.Source);
        Assert.Equal(Net.PeerIp, ip.Destination);
        Assert.Equal(1, s.Counters[Counter.TcpOut]);
    }

    [Fact]
    public void Tcp_segments_always_carry_df()
    {
        var (s, tcp) = WithTcp();
        s.LearnPeer();
        tcp.Ip.Send(Net.OurIp, Net.PeerIp, IpProtocol.Tcp, Segment(s, 20), new IpSendOptions(64, 0, DontFragment: false), s.Now);
        var f = Assert.Single(s.Drain());
        Assert.True(Ipv4Packet.TryCreate(f.AsSpan(14), out var ip));
        Assert.True(ip.DontFragment);
    }

    [Fact]
    public void Off_link_destinations_go_through_the_gateway()
    {
        var (s, tcp) = WithTcp();
        s.LearnGateway();
        Assert.Equal(Net.OurIp, tcp.Ip.SourceFor(Net.RemoteIp));
        tcp.Ip.Send(Net.OurIp, Net.RemoteIp, IpProtocol.Tcp, Segment(s, 20), new IpSendOptions(Ttl: 64), s.Now);
        var f = Assert.Single(s.Drain());
        Assert.Equal(Net.GatewayMac, MacAddress.Read(f));
        Assert.Equal(Net.RemoteIp, Ipv4Address.Read(f.AsSpan(14 + 16)));
    }

    [Fact]
    public void Without_a_gateway_off_link_has_no_route()
    {
        var (s, tcp) = WithTcp(c => c with { Gateway = null });
        Assert.Equal(Ipv4Address.Any, tcp.Ip.SourceFor(Net.RemoteIp));
        var b = Segment(s, 20);
        Assert.Equal(IpSendStatus.NoRoute, tcp.Ip.Send(Net.OurIp, Net.RemoteIp, IpProtocol.Tcp, b, new IpSendOptions(Ttl: 64), s.Now));
        Assert.Equal(1, s.Counters[TxDrop.NoRoute]);
        Assert.Equal(0, s.Pool.Outstanding);
    }

    [Theory]
    [InlineData("127.0.0.1")]
    [InlineData("224.0.0.1")]
    [InlineData("0.0.0.0")]
    public void Loopback_multicast_and_unspecified_have_no_route(string destination)
    {
        var (s, tcp) = WithTcp();
        Assert.Equal(IpSendStatus.NoRoute, tcp.Ip.Send(Net.OurIp, Ipv4Address.Parse(destination), IpProtocol.Tcp, Segment(s, 20), new IpSendOptions(Ttl: 64), s.Now));
        Assert.Equal(0, s.Pool.Outstanding);
    }

    [Fact]
    public void Ttl_zero_is_never_sent()
    {
        var (s, tcp) = WithTcp();
        s.LearnPeer();
        tcp.Ip.Send(Net.OurIp, Net.PeerIp, IpProtocol.Tcp, Segment(s, 20), new IpSendOptions(Ttl: 0), s.Now);
        Assert.Equal(64, Assert.Single(s.Drain())[14 + 8]);
    }

    [Fact]
    public void Too_big_with_df_is_refused()
    {
        var (s, tcp) = WithTcp();
        s.LearnPeer();
        Assert.Equal(IpSendStatus.Dropped, tcp.Ip.Send(Net.OurIp, Net.PeerIp, IpProtocol.Tcp, Segment(s, 1481), new IpSendOptions(Ttl: 64), s.Now));
        Assert.Empty(s.Drain());
        Assert.Equal(1, s.Counters[TxDrop.TooBig]);
        Assert.Equal(0, s.Pool.Outstanding);
    }

    [Fact]
    public void Too_big_without_df_is_fragmented_on_8_byte_boundaries()
    {
        var (s, tcp) = WithTcp();
        s.LearnPeer();
        var b = s.Pool.Rent(IIpOutput.HeaderRoom, 4000)!;
        var payload = b.Append(4000);
        for (int i = 0; i < payload.Length; i++) payload[i] = (byte)i;
        var original = payload.ToArray();
        Assert.Equal(IpSendStatus.Sent, tcp.Ip.Send(Net.OurIp, Net.PeerIp, IpProtocol.Udp, b, new IpSendOptions(DontFragment: false), s.Now));
        var frames = s.Drain();
        Assert.Equal(3, frames.Count);
        var reassembled = new byte[4000];
        ushort? id = null;
        int[] offsets = [0, 1480, 2960];
        for (int k = 0; k < 3; k++)
        {
            Assert.True(Ipv4Packet.TryCreate(frames[k].AsSpan(14), out var ip));
            Assert.True(ip.IsChecksumValid);
            Assert.False(ip.DontFragment);
            Assert.Equal(offsets[k], ip.FragmentOffset);
            Assert.Equal(k < 2, ip.MoreFragments);
            Assert.True(ip.TotalLength <= 1500);
            id ??= ip.Identification;
            Assert.Equal(id, ip.Identification);
            ip.Payload.CopyTo(reassembled.AsSpan(ip.FragmentOffset));
        }
        Assert.Equal(original, reassembled);
        Assert.Equal(3, s.Counters[Counter.IpFragmentsOut]);
        Assert.Equal(0, s.Pool.Outstanding);
    }

    [Fact]
    public void Datagrams_to_our_own_address_loop_back_on_the_next_poll()
    {
        var s = new StackFixture();
        using var a = s.Iface.Udp.Open();
        using var b = s.Iface.Udp.Open();
        b.Bind(7000);
        Assert.Equal(UdpError.Success, a.SendTo("self"u8, Net.OurIp, 7000, s.Now));
        Assert.Empty(s.Drain());
        Assert.Equal(s.Now, s.Iface.PollAt);
        s.Iface.Poll(s.Now);
        Assert.True(b.TryReceiveFrom(out var d));
        Assert.Equal("self"u8.ToArray(), d.Payload.Data.ToArray());
        Assert.Equal(a.LocalPort, d.RemotePort);
        Assert.Equal(Net.OurIp, d.RemoteAddress);
        d.Payload.Release();
        Assert.True(s.Counters.ReceiveAccountingBalances);
        Assert.Equal(1, s.Counters[Counter.IpLoopback]);
    }

    [Fact]
    public void A_source_not_ours_or_short_headroom_is_refused()
    {
        var (s, tcp) = WithTcp();
        s.LearnPeer();
        Assert.Equal(IpSendStatus.Dropped, tcp.Ip.Send(Net.PeerIp, Net.PeerIp, IpProtocol.Tcp, Segment(s, 20), new IpSendOptions(Ttl: 64), s.Now));
        var tight = s.Pool.Rent(10, 20)!;
        tight.Append(20);
        Assert.Equal(IpSendStatus.Dropped, tcp.Ip.Send(Net.OurIp, Net.PeerIp, IpProtocol.Tcp, tight, new IpSendOptions(Ttl: 64), s.Now));
        Assert.Equal(2, s.Counters[TxDrop.BadRequest]);
        Assert.Equal(0, s.Pool.Outstanding);
    }

    [Fact]
    public void A_lent_buffer_sent_comes_back_to_its_owner_after_transmission()
    {
        var (s, tcp) = WithTcp();
        s.LearnPeer();
        var b = Segment(s, 100);
        b.Lend();
        tcp.Ip.Send(Net.OurIp, Net.PeerIp, IpProtocol.Tcp, b, new IpSendOptions(Ttl: 64), s.Now);
        Assert.True(b.IsLent);
        s.Drain();
        Assert.False(b.IsLent);
        Assert.Equal(1, s.Pool.Outstanding);
        b.Release();
    }

    [Fact]
    public void Broadcasts_go_to_the_ethernet_broadcast_without_arp()
    {
        var s = new StackFixture();
        using var sock = s.Iface.Udp.Open();
        sock.SendTo("all"u8, Net.SubnetBroadcast, 9, s.Now);
        sock.SendTo("all"u8, Ipv4Address.Broadcast, 9, s.Now);
        var frames = s.Drain();
        Assert.Equal(2, frames.Count);
        Assert.All(frames, f => Assert.Equal(MacAddress.Broadcast, MacAddress.Read(f)));
        Assert.Equal(0, s.Counters[Counter.ArpRequestsOut]);
    }

    [Fact]
    public void Identification_advances_per_datagram()
    {
        var (s, tcp) = WithTcp();
        s.LearnPeer();
        tcp.Ip.Send(Net.OurIp, Net.PeerIp, IpProtocol.Tcp, Segment(s, 20), new IpSendOptions(Ttl: 64), s.Now);
        tcp.Ip.Send(Net.OurIp, Net.PeerIp, IpProtocol.Tcp, Segment(s, 20), new IpSendOptions(Ttl: 64), s.Now);
        var f = s.Drain();
        ushort a = (ushort)(f[0][18] << 8 | f[0][19]), b = (ushort)(f[1][18] << 8 | f[1][19]);
        Assert.Equal((ushort)(a + 1), b);
    }
}
