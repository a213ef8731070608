using AntHost.Inet.Core.Tcp;
using AntHost.Inet.Core.Tests.Tcp.Support;
using AntHost.Inet.Core.Wire;

namespace AntHost.Inet.Core.Tests.Tcp.Established;

/// <summary>RST, SYN and ACK checks in a synchronised state: RFC 9293 3.10.7.4 with RFC 5961.</summary>
public class ControlTests
{
    [Fact]
    public void Rst_at_exactly_rcv_nxt_resets_the_connection()
    {
        var h = new TcpHarness();
        var c = h.Established();
        h.Feed(c.In with { Flags = TcpFlags.Rst });
        h.ExpectNothing();
        Assert.Equal(TcpState.Closed, h.Tcp.GetState(c.Socket));
        Assert.Equal(TcpError.ConnectionReset, h.Tcp.GetError(c.Socket));
        Assert.Equal(TcpError.ConnectionReset, h.Tcp.Send(c.Socket, "x"u8, out _, h.Now));
        Assert.Equal(TcpError.ConnectionReset, h.Tcp.Receive(c.Socket, new byte[4], out _, h.Now));
        Assert.Equal(0, h.Tcp.ConnectionCount);
    }

    [Fact]
    public void Rst_flushes_queued_data_in_both_directions()
    {
        var h = new TcpHarness();
        var c = h.Established();
        h.Feed(c.In with { Payload = "unread"u8.ToArray() });
        h.Tcp.Send(c.Socket, TcpHarness.Bytes(5000), out _, h.Now);
        h.Drain();
        h.Feed(c.In with { Seq = c.In.Seq + 6, Flags = TcpFlags.Rst });
        Assert.Equal(0, h.Tcp.GetAvailable(c.Socket));
        Assert.Equal(0, h.Pool.Outstanding);
    }

    [Fact]
    public void Rst_in_the_window_but_not_at_rcv_nxt_gets_a_challenge_ack()
    {
        // RFC 5961 3.2: "TCP MUST send an acknowledgment (challenge ACK)".
        var h = new TcpHarness();
        var c = h.Established();
        h.Feed(c.In with { Seq = c.In.Seq + 100, Flags = TcpFlags.Rst });
        h.Expect(c.Out);
        Assert.Equal(TcpState.Established, h.Tcp.GetState(c.Socket));
        Assert.Equal(1, h.Tcp.Counters.ChallengeAcks);
    }

    [Fact]
    public void Rst_outside_the_window_is_dropped_silently()
    {
        var h = new TcpHarness();
        var c = h.Established();
        h.Feed(c.In with { Seq = c.In.Seq + 100_000, Flags = TcpFlags.Rst });
        h.ExpectNothing();
        Assert.Equal(TcpState.Established, h.Tcp.GetState(c.Socket));
    }

    [Fact]
    public void Syn_in_a_synchronized_state_gets_a_challenge_ack()
    {
        // RFC 5961 4.2 / RFC 9293 3.10.7.4 fourth.
        var h = new TcpHarness();
        var c = h.Established();
        h.Feed(c.In with { Flags = TcpFlags.Syn });
        h.Expect(c.Out);
        h.Feed(c.In with { Seq = c.In.Seq + 5, Flags = TcpFlags.Syn | TcpFlags.Ack });
        h.Expect(c.Out);
        Assert.Equal(TcpState.Established, h.Tcp.GetState(c.Socket));
        Assert.Equal(2, h.Tcp.Counters.ChallengeAcks);
    }

    [Fact]
    public void Challenge_acks_are_rate_limited_per_second()
    {
        // RFC 5961 7.
        var h = new TcpHarness(TcpHarness.Plain with { ChallengeAckLimitPerSecond = 3 });
        var c = h.Established();
        for (int i = 0; i < 5; i++) h.Feed(c.In with { Seq = c.In.Seq + 100, Flags = TcpFlags.Rst });
        for (int i = 0; i < 3; i++) h.Expect(c.Out);
        h.ExpectNothing();
        Assert.Equal(2, h.Tcp.Counters.ChallengeAcksSuppressed);
        h.Now += TimeSpan.FromSeconds(1);
        h.Feed(c.In with { Seq = c.In.Seq + 100, Flags = TcpFlags.Rst });
        h.Expect(c.Out);
    }

    [Fact]
    public void Ack_of_data_not_yet_sent_is_answered_with_an_ack_and_dropped()
    {
        var h = new TcpHarness();
        var c = h.Established();
        h.Feed(c.In with { Ack = c.SndNxt + 10, Payload = "data"u8.ToArray() });
        h.Expect(c.Out);
        Assert.Equal(0, h.Tcp.GetAvailable(c.Socket));
    }

    [Fact]
    public void Ack_far_below_snd_una_is_not_acceptable()
    {
        // RFC 5961 5.2: SEG.ACK must be within [SND.UNA - MAX.SND.WND, SND.NXT].
        var h = new TcpHarness();
        var c = h.Established();
        h.Feed(c.In with { Ack = c.SndNxt - 200_000, Payload = "data"u8.ToArray() });
        h.Expect(c.Out);
        Assert.Equal(0, h.Tcp.GetAvailable(c.Socket));
    }

    [Fact]
    public void Old_ack_within_the_window_still_delivers_its_data()
    {
        var h = new TcpHarness();
        var c = h.Established();
        h.Tcp.Send(c.Socket, TcpHarness.Bytes(100), out _, h.Now);
        h.Drain();
        h.Feed(c.In with { Ack = c.SndNxt + 100 });
        h.Feed(c.In with { Ack = c.SndNxt + 50, Payload = "late"u8.ToArray() });
        Assert.Equal("late"u8.ToArray(), h.ReadAll(c.Socket));
    }

    [Fact]
    public void Bare_ack_at_exactly_the_right_window_edge_is_accepted()
    {
        // A peer that has filled our window sends its bare ACKs with SND.NXT = RCV.NXT + RCV.WND.
        // Accepted (as Linux's tcp_sequence and the BSDs do; RFC 9293's table stops one short),
        // so its acknowledgment of our data is read even while the data it sent is lost.
        var h = new TcpHarness();
        var c = h.Established();
        h.Tcp.Send(c.Socket, TcpHarness.Bytes(100), out _, h.Now);
        var sent = h.Next()!;
        uint rightEdge = c.RcvNxt + sent.Window!.Value;
        h.Feed(c.In with { Seq = rightEdge, Ack = c.SndNxt + 100 });
        h.ExpectNothing();
        Assert.Equal(c.SndNxt + 100, h.Tcp.GetInfo(c.Socket).SndUna);
        Assert.Equal(0, h.Tcp.Counters.Dropped(TcpDropReason.NotAcceptable));
    }

    [Fact]
    public void Bare_ack_past_the_right_window_edge_is_refused_and_answered()
    {
        // RFC 9293 3.10.7.4: "If an incoming segment is not acceptable, an acknowledgment should
        // be sent in reply"; its ACK field is not processed.
        var h = new TcpHarness();
        var c = h.Established();
        h.Tcp.Send(c.Socket, TcpHarness.Bytes(100), out _, h.Now);
        var sent = h.Next()!;
        uint rightEdge = c.RcvNxt + sent.Window!.Value;
        h.Feed(c.In with { Seq = rightEdge + 1, Ack = c.SndNxt + 100 });
        h.Expect(c.Out with { Seq = c.SndNxt + 100 });
        Assert.Equal(c.SndNxt, h.Tcp.GetInfo(c.Socket).SndUna);
        Assert.Equal(1, h.Tcp.Counters.Dropped(TcpDropReason.NotAcceptable));
    }

    [Fact]
    public void Window_update_obeys_wl1_and_wl2()
    {
        // 3.10.7.4 fifth: an older segment (SEG.SEQ < SND.WL1) must not set the window.
        var h = new TcpHarness();
        var c = h.Established();
        h.Feed(c.In with { Seq = c.In.Seq, Payload = "ab"u8.ToArray(), Window = 3000 });
        Assert.Equal(3000u, h.Tcp.GetInfo(c.Socket).SndWnd);
        h.Feed(c.In with { Seq = c.In.Seq + 1, Payload = "bc"u8.ToArray(), Window = 100 });
        Assert.Equal(100u, h.Tcp.GetInfo(c.Socket).SndWnd);
        // A reordered older segment with a larger window is ignored for the window.
        h.Feed(c.In with { Seq = c.In.Seq, Payload = "ab"u8.ToArray(), Window = 9000 });
        Assert.Equal(100u, h.Tcp.GetInfo(c.Socket).SndWnd);
    }

    [Fact]
    public void Abort_sends_a_reset_and_frees_the_handle()
    {
        var h = new TcpHarness();
        var c = h.Established();
        Assert.Equal(TcpError.None, h.Tcp.Abort(c.Socket, h.Now));
        h.Expect(c.Out with { Flags = TcpFlags.Rst | TcpFlags.Ack, Window = 0 });
        Assert.Equal(TcpError.InvalidHandle, h.Tcp.GetError(c.Socket));
        Assert.Equal(0, h.Tcp.ConnectionCount);
        Assert.Equal(1, h.Tcp.Counters.ResetsOut);
    }

    [Fact]
    public void Close_with_unread_data_resets_the_connection()
    {
        // RFC 2525 2.17.
        var h = new TcpHarness();
        var c = h.Established();
        h.Feed(c.In with { Payload = "unread"u8.ToArray() });
        h.Tcp.Close(c.Socket, h.Now);
        h.Expect(c.Out with { Ack = c.RcvNxt + 6, Flags = TcpFlags.Rst | TcpFlags.Ack, Window = 0 });
        Assert.Equal(0, h.Tcp.ConnectionCount);
        Assert.Equal(0, h.Pool.Outstanding);
    }

    [Fact]
    public void Linger_zero_makes_close_a_reset()
    {
        var h = new TcpHarness();
        var c = h.Established();
        h.Tcp.SetOption(c.Socket, TcpOption.LingerSeconds, 0, h.Now);
        h.Tcp.Close(c.Socket, h.Now);
        h.Expect(c.Out with { Flags = TcpFlags.Rst | TcpFlags.Ack, Window = 0 });
        Assert.Equal(0, h.Tcp.ConnectionCount);
    }

    [Fact]
    public void Graceful_close_sends_queued_data_then_the_fin_in_the_background()
    {
        var h = new TcpHarness();
        var c = h.Established();
        h.Tcp.Send(c.Socket, "last words"u8, out _, h.Now);
        h.Drain();
        h.Tcp.Close(c.Socket, h.Now);
        // The FIN follows at once (Nagle does not hold a FIN), in a segment of its own.
        h.Expect(c.Out with { Seq = c.SndNxt + 10, Flags = TcpFlags.Fin | TcpFlags.Ack });
        Assert.Equal(1, h.Tcp.ConnectionCount);
        Assert.Equal(TcpState.Closed, h.Tcp.GetState(c.Socket)); // the handle is gone
    }
}
