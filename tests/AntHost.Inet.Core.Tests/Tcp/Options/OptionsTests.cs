using AntHost.Inet.Core.Tcp;
using AntHost.Inet.Core.Tests.Tcp.Support;
using AntHost.Inet.Core.Wire;

namespace AntHost.Inet.Core.Tests.Tcp.Options;

/// <summary>Options negotiated on the SYN and used after: RFC 7323 (window scale, timestamps, PAWS), RFC 2018 (SACK), MSS.</summary>
public class OptionsTests
{
    private static TcpConfig All => TcpHarness.Plain with { WindowScaling = true, Timestamps = true, Sack = true, ReceiveBufferSize = 1 << 20 };

    [Fact]
    public void Syn_ack_echoes_only_the_options_the_syn_carried()
    {
        // RFC 7323 2.2/3.2, RFC 2018 2: an option is sent on the SYN-ACK only if it was received on the SYN.
        var h = new TcpHarness(All);
        h.Listen();
        h.Feed(TcpHarness.PeerSyn());
        var plain = h.Next()!;
        Assert.Null(plain.WindowScale);
        Assert.False(plain.SackPermitted);
        Assert.False(plain.Timestamps);

        h.Feed(TcpHarness.PeerSyn(40001) with { WindowScale = 7, SackPermitted = true, Timestamps = true, TsVal = 555, TsEcr = 0 });
        var full = h.Next()!;
        Assert.Equal((byte)5, full.WindowScale);
        Assert.True(full.SackPermitted);
        Assert.True(full.Timestamps);
        Assert.Equal(555u, full.TsEcr);
    }

    [Fact]
    public void Window_scale_applies_to_windows_after_the_handshake_both_ways()
    {
        var h = new TcpHarness(All);
        var c = h.Established(TcpHarness.PeerSyn() with { WindowScale = 3, Window = 65535 });
        // Our window field is scaled by 5: 1 MiB >> 5 = 32768.
        h.Tcp.Send(c.Socket, "x"u8, out _, h.Now);
        var seg = h.Next()!;
        Assert.Equal((ushort)((1 << 20) >> 5), seg.Window);
        // Theirs by 3.
        h.Feed(c.In with { Ack = c.SndNxt + 1, Window = 1000 });
        Assert.Equal(8000u, h.Tcp.GetInfo(c.Socket).SndWnd);
    }

    [Fact]
    public void Window_scale_is_off_unless_both_sides_sent_it()
    {
        var h = new TcpHarness(All);
        var c = h.Established();
        var info = h.Tcp.GetInfo(c.Socket);
        Assert.Equal(0, info.SendWindowScale);
        Assert.Equal(0, info.ReceiveWindowScale);
    }

    private static (TcpHarness H, Conn C) WithTimestamps()
    {
        var h = new TcpHarness(All);
        var c = h.Established(TcpHarness.PeerSyn() with { Timestamps = true, TsVal = 1000, TsEcr = 0 });
        c.In = c.In with { Timestamps = true, TsVal = 1001, TsEcr = 0 };
        return (h, c);
    }

    [Fact]
    public void Every_segment_carries_a_timestamp_echoing_ts_recent()
    {
        var (h, c) = WithTimestamps();
        h.Feed(c.In with { TsVal = 2000, Payload = "a"u8.ToArray() });
        h.RunNextTimer();
        var ack = h.Next()!;
        Assert.True(ack.Timestamps);
        Assert.Equal(2000u, ack.TsEcr);
    }

    [Fact]
    public void Paws_drops_a_segment_with_an_older_timestamp_and_acknowledges()
    {
        // RFC 7323 5.3 R1.
        var (h, c) = WithTimestamps();
        h.Feed(c.In with { TsVal = 5000, Payload = "new"u8.ToArray() });
        h.Feed(c.In with { Seq = c.In.Seq + 3, TsVal = 4000, Payload = "old"u8.ToArray() });
        var ack = h.Next()!;
        Assert.Equal(c.RcvNxt + 3, ack.Ack);
        Assert.Equal(5000u, ack.TsEcr);
        Assert.Equal(3, h.Tcp.GetAvailable(c.Socket));
        Assert.Equal(1, h.Tcp.Counters.Dropped(TcpDropReason.Paws));
    }

    [Fact]
    public void Segment_without_timestamps_on_a_timestamped_connection_is_dropped()
    {
        // RFC 7323 3.2: "If a non-RST segment is received without a TSopt, a TCP SHOULD silently drop the segment."
        var (h, c) = WithTimestamps();
        h.Feed(c.In with { Timestamps = false, TsVal = null, Payload = "x"u8.ToArray() });
        h.ExpectNothing();
        Assert.Equal(0, h.Tcp.GetAvailable(c.Socket));
    }

    [Fact]
    public void Rst_is_not_subject_to_paws()
    {
        var (h, c) = WithTimestamps();
        h.Feed(c.In with { TsVal = 5000, Payload = "a"u8.ToArray() });
        h.Feed(c.In with { Seq = c.In.Seq + 1, Flags = TcpFlags.Rst, Timestamps = false, TsVal = null });
        Assert.Equal(TcpError.ConnectionReset, h.Tcp.GetError(c.Socket));
    }

    [Fact]
    public void Rtt_is_measured_from_the_echoed_timestamp()
    {
        var (h, c) = WithTimestamps();
        h.Tcp.Send(c.Socket, "ping"u8, out _, h.Now);
        var sent = h.Next()!;
        h.Now += TimeSpan.FromMilliseconds(80);
        h.Feed(c.In with { Ack = c.SndNxt + 4, TsEcr = sent.TsVal });
        // The handshake's echo measured 0 ms; then 80 ms: SRTT = 7/8 * 0 + 1/8 * 80 (RFC 6298 2.3).
        Assert.Equal(TimeSpan.FromMilliseconds(10), h.Tcp.GetInfo(c.Socket).SmoothedRtt);
    }

    [Fact]
    public void Data_segments_leave_room_for_the_timestamp_option_within_the_mss()
    {
        var (h, c) = WithTimestamps();
        h.Tcp.Send(c.Socket, TcpHarness.Bytes(3000), out _, h.Now);
        Assert.Equal(1448, h.Next()!.Payload.Length);
    }

    [Fact]
    public void Out_of_order_data_is_reported_in_sack_blocks_most_recent_first()
    {
        // RFC 2018 4: "The first SACK block ... MUST specify the contiguous block of data containing
        // the segment which triggered this ACK".
        var h = new TcpHarness(All);
        var c = h.Established(TcpHarness.PeerSyn() with { SackPermitted = true });
        uint r = c.RcvNxt;
        h.Feed(c.In with { Seq = r + 100, Payload = TcpHarness.Bytes(100) });
        h.Expect(c.Out with { Sack = [new SackBlock(new SeqNumber(r + 100), new SeqNumber(r + 200))] });
        h.Feed(c.In with { Seq = r + 300, Payload = TcpHarness.Bytes(100) });
        h.Expect(c.Out with { Sack = [new SackBlock(new SeqNumber(r + 300), new SeqNumber(r + 400)), new SackBlock(new SeqNumber(r + 100), new SeqNumber(r + 200))] });
        h.Feed(c.In with { Seq = r + 200, Payload = TcpHarness.Bytes(100) });
        h.Expect(c.Out with { Sack = [new SackBlock(new SeqNumber(r + 100), new SeqNumber(r + 400))] });
        h.Feed(c.In with { Payload = TcpHarness.Bytes(100) });
        h.Expect(c.Out with { Ack = r + 400 });
    }

    [Fact]
    public void Peer_mss_limits_our_segments_and_the_default_is_536()
    {
        var h = new TcpHarness();
        var c = h.Established(TcpHarness.PeerSyn() with { Mss = null });
        h.Tcp.Send(c.Socket, TcpHarness.Bytes(1000), out _, h.Now);
        Assert.Equal(536, h.Next()!.Payload.Length);
    }

    [Fact]
    public void Mss_is_clamped_to_the_path_mtu()
    {
        var h = new TcpHarness();
        h.Ip.Mtu = 1000;
        var c = h.Established(TcpHarness.PeerSyn() with { Mss = 9000 });
        h.Tcp.Send(c.Socket, TcpHarness.Bytes(2000), out _, h.Now);
        Assert.Equal(960, h.Next()!.Payload.Length);
    }

    [Fact]
    public void Duplicate_data_is_reported_once_as_a_dsack_block()
    {
        // RFC 2883 4: the first SACK block of the ACK reports the duplicate.
        var h = new TcpHarness(All);
        var c = h.Established(TcpHarness.PeerSyn() with { SackPermitted = true });
        uint r = c.RcvNxt;
        h.Feed(c.In with { Payload = TcpHarness.Bytes(100) });
        h.Feed(c.In with { Payload = TcpHarness.Bytes(100) });
        h.Expect(c.Out with { Ack = r + 100, Sack = [new SackBlock(new SeqNumber(r), new SeqNumber(r + 100))] });
        // A partial duplicate: the old part is reported at once, the new part taken.
        h.Feed(c.In with { Seq = r + 50, Payload = TcpHarness.Bytes(100) });
        h.Expect(c.Out with { Ack = r + 150, Sack = [new SackBlock(new SeqNumber(r + 50), new SeqNumber(r + 100))] });
        h.Feed(c.In with { Seq = r + 150, Payload = TcpHarness.Bytes(10) });
        h.RunNextTimer();
        h.Expect(c.Out with { Ack = r + 160 });
    }
}
