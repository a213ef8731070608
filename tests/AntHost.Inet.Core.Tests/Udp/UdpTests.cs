using AntHost.Inet.Core.Counters;
using AntHost.Inet.Core.Iface;
using AntHost.Inet.Core.Tests.Support;
using AntHost.Inet.Core.Udp;
using AntHost.Inet.Core.Wire;

namespace AntHost.Inet.Core.Tests.Udp;

public class UdpTests
{
    private static byte[] UdpFrame(ushort srcPort, ushort dstPort, ReadOnlySpan<byte> payload, bool checksum = true) =>
        Frames.IpFrame(Net.OurMac, Net.PeerMac, Frames.Ipv4(Net.PeerIp, Net.OurIp, 17, Frames.Udp(Net.PeerIp, Net.OurIp, srcPort, dstPort, payload, checksum)));

    [Fact]
    public void Bind_refuses_a_taken_port_and_finds_ephemeral_ones()
    {
        var s = new StackFixture();
        using var a = s.Iface.Udp.Open();
        using var b = s.Iface.Udp.Open();
        Assert.Equal(UdpError.Success, a.Bind(53));
        Assert.Equal(UdpError.AlreadyBound, a.Bind(54));
        Assert.Equal(UdpError.AddressInUse, b.Bind(53));
        Assert.Equal(UdpError.Success, b.Bind());
        Assert.InRange(b.LocalPort, 49152, 65535);
        a.Dispose();
        using var c = s.Iface.Udp.Open();
        Assert.Equal(UdpError.Success, c.Bind(53));
        Assert.Equal(UdpError.Closed, a.Bind(1));
    }

    [Fact]
    public void The_ephemeral_range_runs_out_cleanly()
    {
        var s = new StackFixture(c => c with { Udp = new UdpConfig { EphemeralFirst = 60000, EphemeralLast = 60002 } });
        var socks = Enumerable.Range(0, 3).Select(_ => s.Iface.Udp.Open()).ToList();
        Assert.All(socks, x => Assert.Equal(UdpError.Success, x.Bind()));
        Assert.Equal(3, socks.Select(x => x.LocalPort).Distinct().Count());
        using var extra = s.Iface.Udp.Open();
        Assert.Equal(UdpError.NoEphemeralPort, extra.Bind());
        Assert.Equal(UdpError.NoEphemeralPort, extra.SendTo("x"u8, Net.PeerIp, 1, s.Now));
    }

    [Fact]
    public void Send_writes_the_exact_datagram_zero_copy()
    {
        var s = new StackFixture();
        s.LearnPeer();
        using var sock = s.Iface.Udp.Open();
        sock.Bind(1000);
        var b = s.Pool.Rent(UdpSocket.HeaderRoom, 5)!;
        "hello"u8.CopyTo(b.Append(5));
        int payloadStart = b.Start;
        Assert.Equal(UdpError.Success, sock.SendTo(b, Net.PeerIp, 2000, s.Now));
        Assert.True(s.Iface.TryDequeueTransmit(out var frame));
        Assert.Same(b, frame);                                    // the same buffer: headers written in front
        Assert.Equal(payloadStart - UdpSocket.HeaderRoom, frame.Start);
        var bytes = frame.Data.ToArray();
        frame.FinishTransmit();
        Assert.Equal(Frames.Udp(Net.OurIp, Net.PeerIp, 1000, 2000, "hello"u8), bytes[34..]);
        Assert.True(Ipv4Header.TryParse(bytes.AsSpan(14), out var ip, out _));
        Assert.False(ip.DontFragment);
        Assert.Equal(17, ip.Protocol);
        Assert.Equal(1, s.Counters[Counter.UdpOut]);
        Assert.Equal(0, s.Pool.Outstanding);
    }

    [Fact]
    public void Receive_hands_out_the_frame_trimmed_to_the_payload()
    {
        var s = new StackFixture();
        using var sock = s.Iface.Udp.Open();
        sock.Bind(7);
        s.Receive(UdpFrame(4444, 7, "payload"u8));
        Assert.Equal(UdpReadiness.Readable | UdpReadiness.Writable, sock.Readiness);
        Assert.True(s.Iface.Udp.TryDequeueChanged(out var changed));
        Assert.Same(sock, changed);
        Assert.False(s.Iface.Udp.TryDequeueChanged(out _));
        Assert.True(sock.TryReceiveFrom(out var d));
        Assert.Equal("payload"u8.ToArray(), d.Payload.Data.ToArray());
        Assert.Equal(64 + 14 + 20 + 8, d.Payload.Start);        // the fixture's headroom + the headers
        Assert.Equal((Net.PeerIp, (ushort)4444, Net.OurIp), (d.RemoteAddress, d.RemotePort, d.LocalAddress));
        d.Payload.Release();
        Assert.Equal(UdpReadiness.Writable, sock.Readiness);
        Assert.Equal(0, s.Pool.Outstanding);
    }

    [Fact]
    public void Span_receive_copies_truncates_and_releases()
    {
        var s = new StackFixture();
        using var sock = s.Iface.Udp.Open();
        sock.Bind(7);
        s.Receive(UdpFrame(4444, 7, "0123456789"u8));
        var buf = new byte[4];
        Assert.Equal(4, sock.ReceiveFrom(buf, out var from, out var port));
        Assert.Equal("0123"u8.ToArray(), buf);
        Assert.Equal((Net.PeerIp, (ushort)4444), (from, port));
        Assert.Equal(-1, sock.ReceiveFrom(buf, out _, out _));
        Assert.Equal(0, s.Pool.Outstanding);
    }

    [Fact]
    public void A_full_receive_queue_drops_and_counts()
    {
        var s = new StackFixture(c => c with { Udp = new UdpConfig { ReceiveQueueCapacity = 2 } });
        using var sock = s.Iface.Udp.Open();
        sock.Bind(7);
        for (int i = 0; i < 5; i++) s.Receive(UdpFrame(1, 7, "x"u8));
        Assert.Equal(2, sock.QueuedCount);
        Assert.Equal(3, s.Counters[RxDrop.UdpQueueFull]);
        Assert.Equal(2, s.Pool.Outstanding);
        sock.Dispose();
        Assert.Equal(0, s.Pool.Outstanding);
        Assert.Equal(UdpReadiness.Closed, sock.Readiness);
        Assert.True(s.Counters.ReceiveAccountingBalances);
    }

    [Fact]
    public void Bad_checksum_and_bad_length_are_dropped_zero_checksum_accepted()
    {
        var s = new StackFixture();
        using var sock = s.Iface.Udp.Open();
        sock.Bind(7);
        var bad = Frames.Udp(Net.PeerIp, Net.OurIp, 1, 7, "abc"u8);
        bad[8] ^= 0xFF;
        s.Receive(Frames.IpFrame(Net.OurMac, Net.PeerMac, Frames.Ipv4(Net.PeerIp, Net.OurIp, 17, bad)));
        var longLen = Frames.Udp(Net.PeerIp, Net.OurIp, 1, 7, "abc"u8);
        longLen[5] = 50;
        s.Receive(Frames.IpFrame(Net.OurMac, Net.PeerMac, Frames.Ipv4(Net.PeerIp, Net.OurIp, 17, longLen)));
        s.Receive(UdpFrame(1, 7, "nocsum"u8, checksum: false));
        var c = s.Counters;
        Assert.Equal(1, c[RxDrop.UdpBadChecksum]);
        Assert.Equal(1, c[RxDrop.UdpMalformed]);
        Assert.Equal(1, c.ChecksumFailures);
        Assert.True(sock.TryReceiveFrom(out var d));
        Assert.Equal("nocsum"u8.ToArray(), d.Payload.Data.ToArray());
        d.Payload.Release();
    }

    [Fact]
    public void Bytes_after_the_udp_length_are_not_payload()
    {
        var s = new StackFixture();
        using var sock = s.Iface.Udp.Open();
        sock.Bind(7);
        var udp = Frames.Udp(Net.PeerIp, Net.OurIp, 1, 7, "abc"u8).Concat(new byte[] { 9, 9, 9, 9 }).ToArray();
        s.Receive(Frames.IpFrame(Net.OurMac, Net.PeerMac, Frames.Ipv4(Net.PeerIp, Net.OurIp, 17, udp)));
        Assert.True(sock.TryReceiveFrom(out var d));
        Assert.Equal("abc"u8.ToArray(), d.Payload.Data.ToArray());
        d.Payload.Release();
    }

    [Fact]
    public void Send_errors_are_typed()
    {
        var s = new StackFixture(c => c with { Gateway = null });
        using var sock = s.Iface.Udp.Open();
        Assert.Equal(UdpError.NetworkUnreachable, sock.SendTo("x"u8, Net.RemoteIp, 53, s.Now));
        Assert.Equal(UdpError.InvalidArgument, sock.SendTo("x"u8, Net.PeerIp, 0, s.Now));
        Assert.Equal(UdpError.InvalidArgument, sock.SendTo(new byte[70000], Net.PeerIp, 53, s.Now));
        sock.Dispose();
        Assert.Equal(UdpError.Closed, sock.SendTo("x"u8, Net.PeerIp, 53, s.Now));
        Assert.Equal(0, s.Pool.Outstanding);
    }

    [Fact]
    public void A_connected_socket_sends_to_its_peer_and_hears_only_from_it()
    {
        var s = new StackFixture();
        s.LearnPeer();
        using var sock = s.Iface.Udp.Open();
        Assert.Equal(UdpError.NotConnected, sock.Send("x"u8, s.Now));
        Assert.Equal(UdpError.Success, sock.Connect(Net.PeerIp, 53));
        Assert.True(sock.IsBound);
        Assert.Equal(UdpError.Success, sock.Send("q"u8, s.Now));
        var f = Assert.Single(s.Drain());
        Assert.Equal(Frames.Udp(Net.OurIp, Net.PeerIp, sock.LocalPort, 53, "q"u8), f[34..]);

        s.Receive(UdpFrame(53, sock.LocalPort, "answer"u8));
        s.Receive(UdpFrame(54, sock.LocalPort, "other port"u8));
        Assert.True(sock.TryReceiveFrom(out var d));
        Assert.Equal("answer"u8.ToArray(), d.Payload.Data.ToArray());
        d.Payload.Release();
        Assert.False(sock.TryReceiveFrom(out _));
        Assert.Equal(1, s.Counters[RxDrop.UdpNotFromPeer]);

        // An error about another peer is not this socket's.
        var other = Frames.Ipv4(Net.OurIp, Net.GatewayIp, 17, Frames.Udp(Net.OurIp, Net.GatewayIp, sock.LocalPort, 53, "q"u8));
        s.Receive(Frames.IpFrame(Net.OurMac, Net.PeerMac, Frames.Ipv4(Net.PeerIp, Net.OurIp, 1, Frames.Icmp(3, 3, 0, other))));
        Assert.Equal(UdpError.Success, sock.TakeError());
        s.Receive(Frames.IpFrame(Net.OurMac, Net.PeerMac, Frames.Ipv4(Net.PeerIp, Net.OurIp, 1, Frames.Icmp(3, 3, 0, f[14..]))));
        Assert.Equal(UdpError.ConnectionRefused, sock.TakeError());

        Assert.Equal(UdpError.Success, sock.Connect(Ipv4Address.Any, 0));
        Assert.False(sock.IsConnected);
        s.Receive(UdpFrame(54, sock.LocalPort, "anyone"u8));
        Assert.True(sock.TryReceiveFrom(out d));
        d.Payload.Release();
        Assert.Equal(0, s.Pool.Outstanding);
    }

    [Fact]
    public void No_buffer_is_a_typed_error()
    {
        var s = new StackFixture(poolLimit: 0);
        using var sock = s.Iface.Udp.Open();
        Assert.Equal(UdpError.NoBufferSpace, sock.SendTo("x"u8, Net.PeerIp, 53, s.Now));
        Assert.Equal(1, s.Counters[TxDrop.NoBuffer]);
    }

    [Fact]
    public void Large_datagrams_are_fragmented_and_reassembled_end_to_end()
    {
        var s = new StackFixture(bufferSize: 16384);
        using var a = s.Iface.Udp.Open();
        using var b = s.Iface.Udp.Open();
        b.Bind(9000);
        var payload = new byte[9000];
        new Randomness.SeededRandom(3).NextBytes(payload);
        // To ourselves: the loopback queue does not fragment, so check the wire path with a peer instead.
        s.LearnPeer();
        Assert.Equal(UdpError.Success, a.SendTo(payload, Net.PeerIp, 9000, s.Now));
        var frames = s.Drain();
        Assert.Equal(7, frames.Count);
        // Feed the fragments back as if the peer had sent the same datagram to us.
        foreach (var f in frames.AsEnumerable().Reverse())
        {
            var ip = f[14..];
            Net.PeerIp.WriteTo(ip.AsSpan(12));
            Net.OurIp.WriteTo(ip.AsSpan(16));
            ip[10] = 0; ip[11] = 0;
            var c = NaiveChecksum.Compute(ip.AsSpan(0, 20));
            ip[10] = (byte)(c >> 8); ip[11] = (byte)c;
            s.Receive(Frames.IpFrame(Net.OurMac, Net.PeerMac, ip));
        }
        // The UDP checksum covers the pseudo-header, which swapping addresses leaves unchanged in sum.
        Assert.True(b.TryReceiveFrom(out var d));
        Assert.Equal(payload, d.Payload.Data.ToArray());
        d.Payload.Release();
        Assert.Equal(0, s.Pool.Outstanding);
    }
}
