using AntHost.Inet.Core.Counters;
using AntHost.Inet.Core.Iface;
using AntHost.Inet.Core.Ip;
using AntHost.Inet.Core.Tests.Support;
using AntHost.Inet.Core.Udp;
using AntHost.Inet.Core.Wire;

namespace AntHost.Inet.Core.Tests.Icmp;

public class IcmpTests
{
    private static byte[] IcmpFrame(Ipv4Address src, Ipv4Address dst, byte[] icmp, MacAddress? ethDst = null, ushort id = 0x1111) =>
        Frames.IpFrame(ethDst ?? Net.OurMac, Net.PeerMac, Frames.Ipv4(src, dst, 1, icmp, id: id));

    [Fact]
    public void Echo_request_gets_the_exact_reply_in_place()
    {
        var s = new StackFixture();
        s.LearnPeer();
        var data = "0123456789abcdefghij"u8.ToArray();
        s.Receive(IcmpFrame(Net.PeerIp, Net.OurIp, Frames.Echo(8, 0x0BAD, 7, data)));
        var reply = Assert.Single(s.Drain());
        Assert.Equal(new EthernetHeader(Net.PeerMac, Net.OurMac, EtherType.Ipv4), EthernetHeader.TryParse(reply, out var eth) ? eth : default);
        Assert.True(Ipv4Packet.TryCreate(reply.AsSpan(14), out var ip));
        Assert.True(ip.IsChecksumValid);
        Assert.Equal(Net.OurIp, ip.Source);
        Assert.Equal(Net.PeerIp, ip.Destination);
        Assert.Equal(1, ip.Protocol);
        Assert.Equal(Frames.Echo(0, 0x0BAD, 7, data), ip.Payload.ToArray());
        var c = s.Counters;
        Assert.Equal(1, c.IcmpInByType(8));
        Assert.Equal(1, c.IcmpOutByType(0));
        Assert.Equal(0, s.Pool.Outstanding);
        Assert.True(c.ReceiveAccountingBalances);
    }

    [Fact]
    public void Echo_request_with_odd_length_and_nonzero_code_gets_a_valid_reply()
    {
        var s = new StackFixture();
        s.LearnPeer();
        var req = Frames.Icmp(8, 3, 0x00010002, "odd"u8);
        s.Receive(IcmpFrame(Net.PeerIp, Net.OurIp, req));
        var reply = Assert.Single(s.Drain());
        Assert.Equal(Frames.Icmp(0, 0, 0x00010002, "odd"u8), reply[34..]);
    }

    [Fact]
    public void Echo_to_a_broadcast_is_ignored()
    {
        var s = new StackFixture();
        s.LearnPeer();
        s.Receive(IcmpFrame(Net.PeerIp, Net.SubnetBroadcast, Frames.Echo(8, 1, 1, []), MacAddress.Broadcast));
        Assert.Empty(s.Drain());
        Assert.Equal(1, s.Counters[RxDrop.IcmpBroadcastEcho]);
    }

    [Fact]
    public void Bad_checksum_short_and_unknown_types_are_dropped()
    {
        var s = new StackFixture();
        s.LearnPeer();
        var bad = Frames.Echo(8, 1, 1, "x"u8);
        bad[2] ^= 1;
        s.Receive(IcmpFrame(Net.PeerIp, Net.OurIp, bad));
        s.Receive(IcmpFrame(Net.PeerIp, Net.OurIp, new byte[7]));
        s.Receive(IcmpFrame(Net.PeerIp, Net.OurIp, Frames.Icmp(42, 0, 0, [])));
        Assert.Empty(s.Drain());
        var c = s.Counters;
        Assert.Equal(1, c[RxDrop.IcmpBadChecksum]);
        Assert.Equal(1, c[RxDrop.IcmpTooShort]);
        Assert.Equal(1, c[RxDrop.IcmpUnknownType]);
        Assert.True(c.ReceiveAccountingBalances);
        Assert.Equal(0, s.Pool.Outstanding);
    }

    [Fact]
    public void Echo_socket_sends_requests_and_receives_replies_and_errors()
    {
        var s = new StackFixture();
        s.LearnPeer();
        using var ping = s.Iface.Icmp.OpenEchoSocket(0x4321);
        Assert.Equal(IpSendStatus.Sent, ping.Send(Net.PeerIp, 1, "ping"u8, s.Now));
        var req = Assert.Single(s.Drain());
        Assert.Equal(Frames.Echo(8, 0x4321, 1, "ping"u8), req[34..]);

        s.Receive(IcmpFrame(Net.PeerIp, Net.OurIp, Frames.Echo(0, 0x4321, 1, "ping"u8)));
        Assert.True(ping.TryReceive(out var r));
        Assert.False(r.IsError);
        Assert.Equal((Net.PeerIp, (ushort)1, s.Now), (r.Source, r.Sequence, r.ReceivedAt));
        Assert.Equal("ping"u8.ToArray(), r.Payload!.Data.ToArray());
        r.Payload.Release();

        // A reply for another identifier is not ours.
        s.Receive(IcmpFrame(Net.PeerIp, Net.OurIp, Frames.Echo(0, 0x9999, 1, "ping"u8)));
        Assert.False(ping.TryReceive(out _));
        Assert.Equal(1, s.Counters[RxDrop.IcmpNoEchoSocket]);

        // A router's unreachable quoting our request comes back as an error.
        var quoted = req[14..];
        s.Receive(IcmpFrame(Net.GatewayIp, Net.OurIp, Frames.Icmp(3, 1, 0, quoted)));
        Assert.True(ping.TryReceive(out var e));
        Assert.True(e.IsError);
        Assert.Equal((IcmpType.DestinationUnreachable, (byte)1, (ushort)1, Net.PeerIp), (e.Type, e.Code, e.Sequence, e.Source));
        Assert.Null(e.Payload);
        Assert.Equal(0, s.Pool.Outstanding);
    }

    [Fact]
    public void Echo_socket_identifiers_are_unique()
    {
        var s = new StackFixture();
        using var a = s.Iface.Icmp.OpenEchoSocket(5);
        Assert.Throws<InvalidOperationException>(() => s.Iface.Icmp.OpenEchoSocket(5));
        using var b = s.Iface.Icmp.OpenEchoSocket();
        Assert.NotEqual(a.Identifier, b.Identifier);
    }

    [Fact]
    public void Closed_port_gets_port_unreachable_quoting_the_datagram()
    {
        var s = new StackFixture();
        s.LearnPeer();
        var datagram = Frames.Ipv4(Net.PeerIp, Net.OurIp, 17, Frames.Udp(Net.PeerIp, Net.OurIp, 1234, 9, "closed"u8));
        s.Receive(Frames.IpFrame(Net.OurMac, Net.PeerMac, datagram));
        var reply = Assert.Single(s.Drain());
        Assert.Equal(Frames.Icmp(3, 3, 0, datagram), reply[34..]);
        Assert.True(Ipv4Header.TryParse(reply.AsSpan(14), out var ip, out _));
        Assert.Equal((Net.OurIp, Net.PeerIp, false), (ip.Source, ip.Destination, ip.DontFragment));
        var c = s.Counters;
        Assert.Equal(1, c[RxDrop.UdpNoPort]);
        Assert.Equal(1, c.IcmpOutByType(3));
    }

    [Fact]
    public void Quotes_are_cut_to_fit_576_bytes()
    {
        var s = new StackFixture();
        s.LearnPeer();
        var datagram = Frames.Ipv4(Net.PeerIp, Net.OurIp, 17, Frames.Udp(Net.PeerIp, Net.OurIp, 1234, 9, new byte[1000]));
        s.Receive(Frames.IpFrame(Net.OurMac, Net.PeerMac, datagram));
        var reply = Assert.Single(s.Drain());
        Assert.Equal(14 + 576, reply.Length);
        Assert.Equal(datagram[..548], reply[(34 + 8)..]);
    }

    [Fact]
    public void No_error_about_a_broadcast_a_non_initial_fragment_or_an_icmp_error()
    {
        var s = new StackFixture();
        s.LearnPeer();
        s.Receive(Frames.IpFrame(MacAddress.Broadcast, Net.PeerMac, Frames.Ipv4(Net.PeerIp, Net.SubnetBroadcast, 17, Frames.Udp(Net.PeerIp, Net.SubnetBroadcast, 1, 9, "b"u8))));
        s.Receive(Frames.IpFrame(MacAddress.Broadcast, Net.PeerMac, Frames.Ipv4(Net.PeerIp, Net.OurIp, 17, Frames.Udp(Net.PeerIp, Net.OurIp, 1, 9, "b"u8))));
        s.Receive(Frames.IpFrame(Net.OurMac, Net.PeerMac, Frames.Ipv4(Net.PeerIp, Net.OurIp, 77, new byte[8], fragmentOffset: 0)));
        Assert.Single(s.Drain()); // only the last: protocol unreachable about a unicast datagram
        Assert.Equal(1, s.Counters.IcmpOutByType(3));
    }

    [Fact]
    public void Errors_are_rate_limited_by_a_token_bucket()
    {
        var s = new StackFixture(c => c with { Icmp = new IcmpConfig { ErrorBurst = 2, ErrorsPerSecond = 10 } });
        s.LearnPeer();
        byte[] Closed() => Frames.IpFrame(Net.OurMac, Net.PeerMac, Frames.Ipv4(Net.PeerIp, Net.OurIp, 17, Frames.Udp(Net.PeerIp, Net.OurIp, 1, 9, "x"u8)));
        for (int i = 0; i < 5; i++) s.Receive(Closed());
        Assert.Equal(2, s.Drain().Count);
        Assert.Equal(3, s.Counters[TxDrop.IcmpRateLimited]);
        s.Now += TimeSpan.FromMilliseconds(100);  // one token
        s.Receive(Closed());
        s.Receive(Closed());
        Assert.Single(s.Drain());
        Assert.Equal(4, s.Counters[TxDrop.IcmpRateLimited]);
    }

    [Fact]
    public void Port_unreachable_for_our_datagram_becomes_the_sockets_pending_error()
    {
        var s = new StackFixture();
        s.LearnPeer();
        using var sock = s.Iface.Udp.Open();
        sock.Bind(5555);
        sock.SendTo("q"u8, Net.PeerIp, 53, s.Now);
        var sent = Assert.Single(s.Drain());
        s.Receive(IcmpFrame(Net.PeerIp, Net.OurIp, Frames.Icmp(3, 3, 0, sent[14..])));
        Assert.Equal(UdpReadiness.Writable | UdpReadiness.Error, sock.Readiness);
        Assert.True(s.Iface.Udp.TryDequeueChanged(out var changed));
        Assert.Same(sock, changed);
        Assert.Equal(UdpError.ConnectionRefused, sock.TakeError());
        Assert.Equal((Net.PeerIp, (ushort)53), sock.PendingErrorRemote);
        Assert.Equal(UdpError.Success, sock.TakeError());
        Assert.Equal(1, s.Counters.IcmpInByType(3));
    }

    [Fact]
    public void Errors_quoting_datagrams_we_did_not_send_are_dropped()
    {
        var s = new StackFixture();
        s.LearnPeer();
        using var sock = s.Iface.Udp.Open();
        sock.Bind(5555);
        // Quoted source is not our address.
        var foreign = Frames.Ipv4(Net.PeerIp, Net.RemoteIp, 17, Frames.Udp(Net.PeerIp, Net.RemoteIp, 5555, 53, "q"u8));
        s.Receive(IcmpFrame(Net.PeerIp, Net.OurIp, Frames.Icmp(3, 3, 0, foreign)));
        // Quote too short for the ports.
        var ours = Frames.Ipv4(Net.OurIp, Net.PeerIp, 17, Frames.Udp(Net.OurIp, Net.PeerIp, 5555, 53, "q"u8));
        s.Receive(IcmpFrame(Net.PeerIp, Net.OurIp, Frames.Icmp(3, 3, 0, ours[..24])));
        // No socket on the quoted port.
        var other = Frames.Ipv4(Net.OurIp, Net.PeerIp, 17, Frames.Udp(Net.OurIp, Net.PeerIp, 6000, 53, "q"u8));
        s.Receive(IcmpFrame(Net.PeerIp, Net.OurIp, Frames.Icmp(3, 3, 0, other)));
        Assert.Equal(3, s.Counters[RxDrop.IcmpErrorNotOurs]);
        Assert.Equal(UdpError.Success, sock.TakeError());
        Assert.Empty(s.Drain()); // and never an error about an error
    }

    [Fact]
    public void Errors_reach_tcp_with_the_quoted_sequence_number()
    {
        RecordingTransport? tcp = null;
        var s = new StackFixture(tcp: ip => tcp = new RecordingTransport(ip));
        var seg = new byte[20];
        seg[0] = 0xC0; seg[1] = 0x00;  // local port 49152
        seg[2] = 0x01; seg[3] = 0xBB;  // remote 443
        seg[4] = 1; seg[5] = 2; seg[6] = 3; seg[7] = 4;
        var quoted = Frames.Ipv4(Net.OurIp, Net.RemoteIp, 6, seg, df: true);
        s.Receive(IcmpFrame(Net.GatewayIp, Net.OurIp, Frames.Icmp(11, 0, 0, quoted)));
        s.Receive(IcmpFrame(Net.GatewayIp, Net.OurIp, Frames.Icmp(3, 3, 0, quoted)));
        s.Receive(IcmpFrame(Net.GatewayIp, Net.OurIp, Frames.Icmp(3, 13, 0, quoted)));
        s.Receive(IcmpFrame(Net.GatewayIp, Net.OurIp, Frames.Icmp(12, 0, 0x14000000, quoted)));
        Assert.Equal(
            [
                new IcmpError(IcmpErrorKind.Soft, 11, 0, Net.OurIp, Net.RemoteIp, 49152, 443, 0x01020304, 0),
                new IcmpError(IcmpErrorKind.PortUnreachable, 3, 3, Net.OurIp, Net.RemoteIp, 49152, 443, 0x01020304, 0),
                new IcmpError(IcmpErrorKind.Unreachable, 3, 13, Net.OurIp, Net.RemoteIp, 49152, 443, 0x01020304, 0),
                new IcmpError(IcmpErrorKind.Soft, 12, 0, Net.OurIp, Net.RemoteIp, 49152, 443, 0x01020304, 0),
            ],
            tcp!.Errors);
    }

    [Fact]
    public void Fragmentation_needed_lowers_the_path_mtu_and_tells_tcp()
    {
        RecordingTransport? tcp = null;
        var s = new StackFixture(tcp: ip => tcp = new RecordingTransport(ip));
        var quoted = Frames.Ipv4(Net.OurIp, Net.RemoteIp, 6, new byte[1480], df: true);
        Assert.Equal(1500, tcp!.Ip.PathMtu(Net.RemoteIp));
        s.Receive(IcmpFrame(Net.GatewayIp, Net.OurIp, Frames.Icmp(3, 4, 1400, quoted[..28])));
        Assert.Equal(1400, tcp.Ip.PathMtu(Net.RemoteIp));
        Assert.Equal(1500, tcp.Ip.PathMtu(Net.PeerIp));
        var e = Assert.Single(tcp.Errors);
        Assert.Equal(IcmpErrorKind.FragmentationNeeded, e.Kind);
        Assert.Equal(1400, e.NextHopMtu);
        // Never raised by a report.
        s.Receive(IcmpFrame(Net.GatewayIp, Net.OurIp, Frames.Icmp(3, 4, 1450, quoted[..28])));
        Assert.Equal(1400, tcp.Ip.PathMtu(Net.RemoteIp));
        Assert.Equal(1, s.Counters[Counter.PathMtuDecreases]);
    }

    [Fact]
    public void Path_mtu_has_a_floor_below_which_df_is_cleared()
    {
        RecordingTransport? tcp = null;
        var s = new StackFixture(tcp: ip => tcp = new RecordingTransport(ip));
        s.LearnGateway();
        var quoted = Frames.Ipv4(Net.OurIp, Net.RemoteIp, 6, new byte[1480], df: true);
        s.Receive(IcmpFrame(Net.GatewayIp, Net.OurIp, Frames.Icmp(3, 4, 300, quoted[..28])));
        Assert.Equal(552, tcp!.Ip.PathMtu(Net.RemoteIp));
        var b = s.Pool.Rent(IIpOutput.HeaderRoom, 532)!;
        b.Append(532);
        tcp.Ip.Send(Net.OurIp, Net.RemoteIp, IpProtocol.Tcp, b, new IpSendOptions(Ttl: 64), s.Now);
        var f = Assert.Single(s.Drain());
        Assert.True(Ipv4Packet.TryCreate(f.AsSpan(14), out var ip));
        Assert.False(ip.DontFragment);
    }

    [Fact]
    public void Path_mtu_zero_report_takes_the_next_plateau_and_ages_out()
    {
        RecordingTransport? tcp = null;
        var s = new StackFixture(tcp: ip => tcp = new RecordingTransport(ip));
        var quoted = Frames.Ipv4(Net.OurIp, Net.RemoteIp, 6, new byte[1480], df: true);
        s.Receive(IcmpFrame(Net.GatewayIp, Net.OurIp, Frames.Icmp(3, 4, 0, quoted[..28])));
        Assert.Equal(1492, tcp!.Ip.PathMtu(Net.RemoteIp));
        s.Advance(TimeSpan.FromMinutes(10));
        Assert.Equal(1500, tcp.Ip.PathMtu(Net.RemoteIp));
    }

    [Fact]
    public void Fragmentation_needed_about_a_datagram_without_df_is_not_believed()
    {
        RecordingTransport? tcp = null;
        var s = new StackFixture(tcp: ip => tcp = new RecordingTransport(ip));
        var quoted = Frames.Ipv4(Net.OurIp, Net.RemoteIp, 6, new byte[1480], df: false);
        s.Receive(IcmpFrame(Net.GatewayIp, Net.OurIp, Frames.Icmp(3, 4, 1000, quoted[..28])));
        Assert.Equal(1500, tcp!.Ip.PathMtu(Net.RemoteIp));
        Assert.Empty(tcp.Errors);
        Assert.Equal(1, s.Counters[RxDrop.IcmpErrorNotOurs]);
    }

    [Fact]
    public void Source_quench_redirect_and_timestamp_are_consumed_without_action()
    {
        var s = new StackFixture();
        s.LearnPeer();
        var quoted = Frames.Ipv4(Net.OurIp, Net.RemoteIp, 17, new byte[8]);
        s.Receive(IcmpFrame(Net.PeerIp, Net.OurIp, Frames.Icmp(4, 0, 0, quoted)));
        s.Receive(IcmpFrame(Net.PeerIp, Net.OurIp, Frames.Icmp(5, 1, Net.PeerIp.Value, quoted)));
        s.Receive(IcmpFrame(Net.PeerIp, Net.OurIp, Frames.Icmp(13, 0, 0, new byte[12])));
        Assert.Empty(s.Drain());
        var c = s.Counters;
        Assert.Equal(3, c[Counter.IcmpIn]);
        Assert.True(c.ReceiveAccountingBalances);
        Assert.Equal(0, s.Pool.Outstanding);
    }
}
