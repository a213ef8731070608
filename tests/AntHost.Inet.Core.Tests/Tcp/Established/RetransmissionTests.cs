using AntHost.Inet.Core.Ip;
using AntHost.Inet.Core.Tcp;
using AntHost.Inet.Core.Tcp.Recovery;
using AntHost.Inet.Core.Tests.Tcp.Support;
using AntHost.Inet.Core.Wire;

namespace AntHost.Inet.Core.Tests.Tcp.Established;

/// <summary>RFC 6298 retransmission timer, RFC 5681/6582 fast retransmit, RFC 6675 SACK recovery, RFC 9293 3.8.3 give-up.</summary>
public class RetransmissionTests
{
    [Fact]
    public void Unacknowledged_segment_is_retransmitted_after_the_rto_with_backoff()
    {
        var h = new TcpHarness();
        var c = h.Established();
        h.Tcp.Send(c.Socket, "abc"u8, out _, h.Now);
        var seg = h.Next()!;
        var t = h.Now;
        h.RunNextTimer();
        h.Expect(seg);
        // The handshake took no time on the virtual clock: SRTT 0, so the RTO is the 200 ms floor (RFC 6298 2.4).
        Assert.Equal(TimeSpan.FromMilliseconds(200), h.Now - t);
        t = h.Now;
        h.RunNextTimer();
        h.Expect(seg);
        Assert.Equal(TimeSpan.FromMilliseconds(400), h.Now - t); // 5.5: doubled
        Assert.Equal(2, h.Tcp.Counters.RetransmitsTimeout);
        h.Feed(c.In with { Ack = c.SndNxt + 3 });
        Assert.Null(h.Tcp.PollAt); // 5.2: all acknowledged, the timer is off
    }

    [Fact]
    public void Rto_follows_the_measured_round_trip()
    {
        var h = new TcpHarness(TcpHarness.Plain with { MinimumRto = TimeSpan.FromMilliseconds(10) });
        var c = h.Established();
        h.Tcp.Send(c.Socket, "abc"u8, out _, h.Now);
        h.Drain();
        h.Now += TimeSpan.FromMilliseconds(100);
        h.Feed(c.In with { Ack = c.SndNxt + 3 });
        var info = h.Tcp.GetInfo(c.Socket);
        // The SYN-ACK was timed at 0 ms (2.2: SRTT 0, RTTVAR 0); then 100 ms (2.3):
        // RTTVAR = 3/4 * 0 + 1/4 * |0 - 100| = 25, SRTT = 7/8 * 0 + 1/8 * 100 = 12.5,
        // RTO = SRTT + max(G, 4 * RTTVAR) = 112.5 ms.
        Assert.Equal(TimeSpan.FromMilliseconds(12.5), info.SmoothedRtt);
        Assert.Equal(TimeSpan.FromMilliseconds(112.5), info.Rto);
    }

    [Fact]
    public void Connection_gives_up_after_the_configured_retransmissions_with_a_reset()
    {
        var h = new TcpHarness(TcpHarness.Plain with { DataRetries = 3 });
        var c = h.Established();
        h.Tcp.Send(c.Socket, "abc"u8, out _, h.Now);
        h.Drain();
        for (int i = 0; i < 3; i++) h.RunNextTimer();
        h.Drain();
        h.RunNextTimer();
        h.Expect(c.Out with { Seq = c.SndNxt + 3, Flags = TcpFlags.Rst | TcpFlags.Ack, Window = 0 });
        Assert.Equal(TcpError.TimedOut, h.Tcp.GetError(c.Socket));
        Assert.Equal(1, h.Tcp.Counters.ConnectionsTimedOut);
    }

    [Fact]
    public void Three_duplicate_acks_trigger_a_fast_retransmit()
    {
        // RFC 5681 3.2.
        var h = new TcpHarness();
        var c = h.Established();
        var data = TcpHarness.Bytes(1460 * 6);
        h.Tcp.Send(c.Socket, data, out _, h.Now);
        h.Drain();
        for (int i = 0; i < 2; i++) h.Feed(c.In with { Ack = c.SndNxt });
        h.Feed(c.In with { Ack = c.SndNxt + 1460 }); // the first segment arrived
        for (int i = 0; i < 2; i++)
        {
            h.Feed(c.In with { Ack = c.SndNxt + 1460 });
            h.ExpectNothing();
        }
        h.Feed(c.In with { Ack = c.SndNxt + 1460 });
        h.Expect(c.Out with { Seq = c.SndNxt + 1460, Flags = TcpFlags.Ack | TcpFlags.Psh, Payload = data[1460..2920] });
        Assert.Equal(1, h.Tcp.Counters.RetransmitsFast);
    }

    [Fact]
    public void Fast_retransmit_carries_only_octets_already_sent()
    {
        // RFC 5681 3.2 retransmits "what appears to be the missing segment": octets from SND.UNA
        // up to SND.MAX, even when the send buffer holds more than the peer's window let out.
        // Past SND.MAX the retransmission would be new data beyond the peer's window, and the
        // peer's ACK of it would be refused as one of data never sent (SEG.ACK > SND.MAX).
        var h = new TcpHarness();
        var c = h.Established(TcpHarness.PeerSyn() with { Window = 500 });
        var data = TcpHarness.Bytes(3000);
        h.Tcp.Send(c.Socket, data, out _, h.Now);
        h.Expect(c.Out with { Flags = TcpFlags.Ack | TcpFlags.Psh, Payload = data[..500] });
        h.ExpectNothing(); // the window is full
        for (int i = 0; i < 3; i++) h.Feed(c.In with { Ack = c.SndNxt });
        h.Expect(c.Out with { Flags = TcpFlags.Ack | TcpFlags.Psh, Payload = data[..500] });
        h.ExpectNothing();
        Assert.Equal(1, h.Tcp.Counters.RetransmitsFast);
        Assert.Equal(c.SndNxt + 500, h.Tcp.GetInfo(c.Socket).SndNxt);
        // The peer's ACK of all that was sent is taken, and the next window's worth goes out.
        h.Feed(c.In with { Ack = c.SndNxt + 500 });
        Assert.Equal(c.SndNxt + 500, h.Tcp.GetInfo(c.Socket).SndUna);
        h.Expect(c.Out with { Seq = c.SndNxt + 500, Flags = TcpFlags.Ack | TcpFlags.Psh, Payload = data[500..1000] });
    }

    [Fact]
    public void Sack_blocks_from_the_peer_drive_retransmission_of_the_hole()
    {
        // RFC 6675: three SACKed segments above a hole make it lost. (RACK, the default, would
        // call it lost at the first SACK here: the virtual clock gives an RTT of zero.)
        var cfg = TcpHarness.Plain with { Sack = true, LossDetection = LossDetection.Rfc6675 };
        var h = new TcpHarness(cfg);
        var c = h.Established(TcpHarness.PeerSyn() with { SackPermitted = true });
        var data = TcpHarness.Bytes(1460 * 5);
        h.Tcp.Send(c.Socket, data, out _, h.Now);
        h.Drain();
        uint s0 = c.SndNxt;
        var sack = new SackBlock(new SeqNumber(s0 + 1460), new SeqNumber(s0 + 1460 * 2));
        h.Feed(c.In with { Ack = s0, Sack = [sack] });
        h.Feed(c.In with { Ack = s0, Sack = [sack with { Right = new SeqNumber(s0 + 1460 * 3) }] });
        h.ExpectNothing();
        h.Feed(c.In with { Ack = s0, Sack = [sack with { Right = new SeqNumber(s0 + 1460 * 4) }] });
        h.Expect(c.Out with { Flags = TcpFlags.Ack | TcpFlags.Psh, Payload = data[..1460] });
        Assert.Equal(1, h.Tcp.Counters.RetransmitsSack);
    }

    [Fact]
    public void After_a_timeout_the_sender_restarts_from_snd_una_in_slow_start()
    {
        var h = new TcpHarness();
        var c = h.Established();
        var data = TcpHarness.Bytes(1460 * 4);
        h.Tcp.Send(c.Socket, data, out _, h.Now);
        h.Drain();
        h.RunNextTimer();
        // RFC 5681 3.1: cwnd = one segment after the timeout.
        h.Expect(c.Out with { Flags = TcpFlags.Ack | TcpFlags.Psh, Payload = data[..1460] });
        h.ExpectNothing();
        h.Feed(c.In with { Ack = c.SndNxt + 1460 });
        h.Expect(c.Out with { Seq = c.SndNxt + 1460, Flags = TcpFlags.Ack | TcpFlags.Psh, Payload = data[1460..2920] });
        h.Expect(c.Out with { Seq = c.SndNxt + 2920, Flags = TcpFlags.Ack | TcpFlags.Psh, Payload = data[2920..4380] });
    }

    [Fact]
    public void Pure_ack_after_a_timeout_carries_the_highest_sequence_number_sent()
    {
        var h = new TcpHarness();
        var c = h.Established();
        h.Tcp.Send(c.Socket, TcpHarness.Bytes(1460 * 2), out _, h.Now);
        h.Drain();
        h.RunNextTimer();
        h.Drain();
        // Data arrives: the ACK's SEQ must be acceptable to the peer, whose RCV.NXT may be past SND.UNA.
        h.Feed(c.In with { Ack = c.SndNxt, Payload = TcpHarness.Bytes(1460) });
        h.Feed(c.In with { Seq = c.In.Seq + 1460, Ack = c.SndNxt, Payload = TcpHarness.Bytes(1460) });
        h.Expect(c.Out with { Seq = c.SndNxt + 2920, Ack = c.RcvNxt + 2920 });
    }

    [Fact]
    public void Newreno_partial_ack_retransmits_the_next_hole_at_once()
    {
        // RFC 6582 3.2 step 3: a partial ACK during fast recovery retransmits the first unacknowledged segment.
        var h = new TcpHarness();
        var c = h.Established();
        var data = TcpHarness.Bytes(1460 * 8);
        h.Tcp.Send(c.Socket, data, out _, h.Now);
        h.Drain();
        // Segments 0 and 2 are lost: duplicate ACKs for 0.
        for (int i = 0; i < 3; i++) h.Feed(c.In with { Ack = c.SndNxt });
        h.Expect(c.Out with { Flags = TcpFlags.Ack | TcpFlags.Psh, Payload = data[..1460] });
        h.Drain();
        // The retransmission fills the first hole: the ACK stops at the second (partial).
        h.Feed(c.In with { Ack = c.SndNxt + 2920 });
        h.Expect(c.Out with { Seq = c.SndNxt + 2920, Flags = TcpFlags.Ack | TcpFlags.Psh, Payload = data[2920..4380] });
        Assert.Equal(2, h.Tcp.Counters.RetransmitsFast);
    }

    [Fact]
    public void Soft_icmp_error_is_reported_if_the_connection_then_times_out()
    {
        var h = new TcpHarness(TcpHarness.Plain with { DataRetries = 1 });
        var c = h.Established();
        h.Tcp.Send(c.Socket, "abc"u8, out _, h.Now);
        h.Drain();
        var err = new IcmpError(IcmpErrorKind.Unreachable, 3, 1, TcpHarness.LocalAddress, TcpHarness.RemoteAddress, 80, TcpHarness.RemotePort, c.SndNxt, 0);
        h.Tcp.ReceiveIcmpError(err, h.Now);
        Assert.Equal(TcpState.Established, h.Tcp.GetState(c.Socket)); // soft in a synchronised state
        h.RunNextTimer();
        h.RunNextTimer();
        Assert.Equal(TcpError.HostUnreachable, h.Tcp.GetError(c.Socket));
    }
}
