using AntHost.Inet.Core.Counters;
using AntHost.Inet.Core.Tests.Support;
using AntHost.Inet.Core.Udp;
using AntHost.Inet.Core.Wire;

namespace AntHost.Inet.Core.Tests.Ip;

/// <summary>Every receive rule of the IPv4 layer, one test each: what is accepted, what is dropped and counted why.</summary>
public class Ipv4ReceiveTests
{
    private const ushort Port = 4000;

    private static (StackFixture S, UdpSocket Sock) Bound()
    {
        var s = new StackFixture();
        var sock = s.Iface.Udp.Open();
        Assert.Equal(UdpError.Success, sock.Bind(Port));
        return (s, sock);
    }

    private static byte[] UdpDatagram(Ipv4Address src, Ipv4Address dst, string text = "data") =>
        Frames.Ipv4(src, dst, 17, Frames.Udp(src, dst, 9999, Port, System.Text.Encoding.ASCII.GetBytes(text)));

    private static void Feed(StackFixture s, byte[] datagram, MacAddress? dstMac = null) =>
        s.Receive(Frames.IpFrame(dstMac ?? Net.OurMac, Net.PeerMac, datagram));

    private static void AssertDropped(StackFixture s, UdpSocket sock, RxDrop reason)
    {
        Assert.False(sock.TryReceiveFrom(out _));
        var c = s.Counters;
        Assert.Equal(1, c[reason]);
        Assert.Equal(1, c.RxDropsTotal);
        Assert.True(c.ReceiveAccountingBalances);
        Assert.Equal(0, s.Pool.Outstanding);
    }

    [Fact]
    public void A_valid_datagram_is_delivered_and_ethernet_padding_trimmed()
    {
        var (s, sock) = Bound();
        Feed(s, UdpDatagram(Net.PeerIp, Net.OurIp, "hi")); // 20 + 8 + 2 bytes: the frame is padded to 60
        Assert.True(sock.TryReceiveFrom(out var d));
        Assert.Equal("hi"u8.ToArray(), d.Payload.Data.ToArray());
        Assert.Equal(Net.PeerIp, d.RemoteAddress);
        Assert.Equal(9999, d.RemotePort);
        d.Payload.Release();
        Assert.True(s.Counters.ReceiveAccountingBalances);
        Assert.Equal(0, s.Pool.Outstanding);
    }

    [Fact]
    public void Too_short_is_dropped()
    {
        var (s, sock) = Bound();
        s.Receive(Frames.Ethernet(Net.OurMac, Net.PeerMac, 0x0800, new byte[19], pad: false));
        AssertDropped(s, sock, RxDrop.IpTooShort);
    }

    [Fact]
    public void Version_other_than_4_is_dropped()
    {
        var (s, sock) = Bound();
        var d = UdpDatagram(Net.PeerIp, Net.OurIp);
        d[0] = 0x65;
        Feed(s, d);
        AssertDropped(s, sock, RxDrop.IpBadVersion);
    }

    [Theory]
    [InlineData(0x44)]
    [InlineData(0x4F)]
    public void Header_length_below_5_or_past_the_data_is_dropped(byte versionIhl)
    {
        var (s, sock) = Bound();
        var d = Frames.Ipv4(Net.PeerIp, Net.OurIp, 17, new byte[4]);
        d[0] = versionIhl;
        Feed(s, d);
        AssertDropped(s, sock, RxDrop.IpBadHeaderLength);
    }

    [Fact]
    public void Total_length_beyond_the_frame_is_dropped()
    {
        var (s, sock) = Bound();
        var d = UdpDatagram(Net.PeerIp, Net.OurIp, new string('x', 60));
        d[2] = 0x01; // claims 256+ bytes
        Feed(s, d);
        AssertDropped(s, sock, RxDrop.IpBadTotalLength);
    }

    [Fact]
    public void Total_length_below_the_header_is_dropped()
    {
        var (s, sock) = Bound();
        var d = UdpDatagram(Net.PeerIp, Net.OurIp);
        d[2] = 0; d[3] = 19;
        Feed(s, d);
        AssertDropped(s, sock, RxDrop.IpBadTotalLength);
    }

    [Fact]
    public void Bad_header_checksum_is_dropped()
    {
        var (s, sock) = Bound();
        var d = UdpDatagram(Net.PeerIp, Net.OurIp);
        d[10] ^= 0x40;
        Feed(s, d);
        AssertDropped(s, sock, RxDrop.IpBadChecksum);
    }

    [Fact]
    public void Well_formed_options_are_skipped()
    {
        var (s, sock) = Bound();
        var payload = Frames.Udp(Net.PeerIp, Net.OurIp, 9999, Port, "opt"u8);
        Feed(s, Frames.Ipv4(Net.PeerIp, Net.OurIp, 17, payload, options: [0x94, 0x04, 0x00, 0x00, 0x01, 0x01, 0x01, 0x00]));
        Assert.True(sock.TryReceiveFrom(out var d));
        Assert.Equal("opt"u8.ToArray(), d.Payload.Data.ToArray());
        d.Payload.Release();
    }

    [Fact]
    public void Malformed_options_are_dropped()
    {
        var (s, sock) = Bound();
        var payload = Frames.Udp(Net.PeerIp, Net.OurIp, 9999, Port, "opt"u8);
        Feed(s, Frames.Ipv4(Net.PeerIp, Net.OurIp, 17, payload, options: [0x07, 0x09, 0x04, 0x00]));
        // The parameter problem it earns waits for ARP, which nobody answers here.
        s.RunUntil(s.Now + TimeSpan.FromSeconds(5));
        s.Drain();
        AssertDropped(s, sock, RxDrop.IpBadOptions);
    }

    [Fact]
    public void Malformed_options_get_a_parameter_problem_pointing_at_them()
    {
        var (s, _) = Bound();
        s.LearnPeer();
        var payload = Frames.Udp(Net.PeerIp, Net.OurIp, 9999, Port, "opt"u8);
        var datagram = Frames.Ipv4(Net.PeerIp, Net.OurIp, 17, payload, options: [0x01, 0x07, 0x09, 0x04]);
        Feed(s, datagram);
        var reply = Assert.Single(s.Drain());
        Assert.Equal(Frames.Icmp(12, 0, 21u << 24, datagram), reply[34..]);
        Assert.Equal(1, s.Counters[RxDrop.IpBadOptions]);
    }

    [Fact]
    public void Source_routed_datagrams_are_dropped()
    {
        var (s, sock) = Bound();
        var payload = Frames.Udp(Net.PeerIp, Net.OurIp, 9999, Port, "opt"u8);
        Feed(s, Frames.Ipv4(Net.PeerIp, Net.OurIp, 17, payload, options: [0x83, 0x07, 0x04, 198, 18, 0, 9, 0x00]));
        AssertDropped(s, sock, RxDrop.IpSourceRouted);
    }

    [Theory]
    [InlineData("255.255.255.255")]
    [InlineData("198.18.0.255")]
    [InlineData("224.0.0.5")]
    [InlineData("127.0.0.1")]
    [InlineData("0.0.0.0")]
    [InlineData("198.18.0.1")]   // our own address, from the wire
    public void Invalid_sources_are_dropped(string source)
    {
        var (s, sock) = Bound();
        var src = Ipv4Address.Parse(source);
        Feed(s, UdpDatagram(src, Net.OurIp));
        AssertDropped(s, sock, RxDrop.IpBadSource);
        Assert.Empty(s.Drain()); // and never an ICMP error about them
    }

    [Fact]
    public void Datagrams_for_other_hosts_are_not_forwarded()
    {
        var (s, sock) = Bound();
        Feed(s, UdpDatagram(Net.PeerIp, Ipv4Address.Parse("198.18.0.3")));
        AssertDropped(s, sock, RxDrop.IpNotForUs);
        Assert.Empty(s.Drain());
    }

    [Fact]
    public void Multicast_destinations_are_dropped()
    {
        var (s, sock) = Bound();
        Feed(s, UdpDatagram(Net.PeerIp, Ipv4Address.Parse("239.1.2.3")), MacAddress.Broadcast);
        AssertDropped(s, sock, RxDrop.IpMulticast);
    }

    [Theory]
    [InlineData("255.255.255.255")]
    [InlineData("198.18.0.255")]
    public void Broadcast_destinations_are_delivered(string destination)
    {
        var (s, sock) = Bound();
        var dst = Ipv4Address.Parse(destination);
        Feed(s, UdpDatagram(Net.PeerIp, dst), MacAddress.Broadcast);
        Assert.True(sock.TryReceiveFrom(out var d));
        Assert.Equal(dst, d.LocalAddress);
        d.Payload.Release();
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    public void Ttl_below_2_is_accepted_on_receipt(byte ttl)
    {
        // RFC 1122 3.2.1.7: a host MUST NOT discard a datagram just because its TTL is below 2.
        var (s, sock) = Bound();
        Feed(s, Frames.Ipv4(Net.PeerIp, Net.OurIp, 17, Frames.Udp(Net.PeerIp, Net.OurIp, 9999, Port, "t"u8), ttl: ttl));
        Assert.True(sock.TryReceiveFrom(out var d));
        d.Payload.Release();
    }

    [Fact]
    public void The_reserved_flag_is_ignored()
    {
        var (s, sock) = Bound();
        var d = UdpDatagram(Net.PeerIp, Net.OurIp);
        d[6] |= 0x80;
        d[10] = 0; d[11] = 0;
        var c = NaiveChecksum.Compute(d.AsSpan(0, 20));
        d[10] = (byte)(c >> 8); d[11] = (byte)c;
        Feed(s, d);
        Assert.True(sock.TryReceiveFrom(out var got));
        got.Payload.Release();
    }

    [Fact]
    public void Frames_for_another_mac_are_dropped()
    {
        var (s, sock) = Bound();
        Feed(s, UdpDatagram(Net.PeerIp, Net.OurIp), MacAddress.Parse("02:00:00:00:00:33"));
        AssertDropped(s, sock, RxDrop.NotOurMac);
    }

    [Fact]
    public void Multicast_macs_are_dropped()
    {
        var (s, sock) = Bound();
        Feed(s, UdpDatagram(Net.PeerIp, Net.OurIp), MacAddress.Parse("01:00:5e:00:00:01"));
        AssertDropped(s, sock, RxDrop.NotOurMac);
    }

    [Fact]
    public void Frames_from_our_own_mac_are_dropped()
    {
        var (s, sock) = Bound();
        s.Receive(Frames.IpFrame(Net.OurMac, Net.OurMac, UdpDatagram(Net.PeerIp, Net.OurIp)));
        AssertDropped(s, sock, RxDrop.BadSourceMac);
    }

    [Fact]
    public void Unsupported_ethertypes_and_short_frames_are_dropped()
    {
        var (s, sock) = Bound();
        s.Receive(Frames.Ethernet(Net.OurMac, Net.PeerMac, 0x86DD, new byte[40]));
        s.Receive(Frames.Ethernet(Net.OurMac, Net.PeerMac, 0x8100, new byte[40]));
        s.Receive(Frames.Ethernet(Net.OurMac, Net.PeerMac, 0x0040, new byte[40])); // 802.3 length
        s.Receive(new byte[13]);
        var c = s.Counters;
        Assert.Equal(3, c[RxDrop.UnsupportedEtherType]);
        Assert.Equal(1, c[RxDrop.FrameTooShort]);
        Assert.True(c.ReceiveAccountingBalances);
        Assert.Equal(0, s.Pool.Outstanding);
    }

    [Fact]
    public void A_down_interface_takes_nothing()
    {
        var s = new StackFixture(up: false);
        s.Receive(Frames.IpFrame(Net.OurMac, Net.PeerMac, UdpDatagram(Net.PeerIp, Net.OurIp)));
        Assert.Equal(1, s.Counters[RxDrop.LinkDown]);
        Assert.Equal(0, s.Pool.Outstanding);
    }

    [Fact]
    public void Unknown_protocols_get_protocol_unreachable()
    {
        var s = new StackFixture();
        s.LearnPeer();
        var datagram = Frames.Ipv4(Net.PeerIp, Net.OurIp, 99, "proto99"u8, id: 0x4242);
        Feed(s, datagram);
        var reply = Assert.Single(s.Drain());
        var expectedIcmp = Frames.Icmp(3, 2, 0, datagram);
        Assert.Equal(expectedIcmp, reply[34..]);
        Assert.True(Ipv4Header.TryParse(reply.AsSpan(14), out var ip, out _));
        Assert.Equal(Net.OurIp, ip.Source);
        Assert.Equal(Net.PeerIp, ip.Destination);
        Assert.Equal(1, ip.Protocol);
        Assert.Equal(1, s.Counters[RxDrop.IpUnknownProtocol]);
    }

    [Fact]
    public void Without_tcp_segments_are_an_unknown_protocol()
    {
        var s = new StackFixture();
        s.LearnPeer();
        Feed(s, Frames.Ipv4(Net.PeerIp, Net.OurIp, 6, new byte[20]));
        var reply = Assert.Single(s.Drain());
        Assert.Equal(3, reply[34]);
        Assert.Equal(2, reply[35]);
    }

    [Fact]
    public void Tcp_segments_go_to_the_tcp_layer_and_never_from_broadcasts()
    {
        RecordingTransport? tcp = null;
        var s = new StackFixture(tcp: ip => tcp = new RecordingTransport(ip));
        var seg = new byte[24];
        seg[0] = 0x12;
        Feed(s, Frames.Ipv4(Net.PeerIp, Net.OurIp, 6, seg));
        var got = Assert.Single(tcp!.Segments);
        Assert.Equal((Net.PeerIp, Net.OurIp), (got.Source, got.Destination));
        Assert.Equal(seg, got.Segment);
        Feed(s, Frames.Ipv4(Net.PeerIp, Net.SubnetBroadcast, 6, seg), MacAddress.Broadcast);
        Assert.Single(tcp.Segments);
        Assert.Equal(1, s.Counters[RxDrop.IpTcpToBroadcast]);
        Assert.Equal(1, s.Counters[Counter.TcpIn]);
        Assert.True(s.Counters.ReceiveAccountingBalances);
    }
}
