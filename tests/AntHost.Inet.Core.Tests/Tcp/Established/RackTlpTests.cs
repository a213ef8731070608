using AntHost.Inet.Core.Tcp;
using AntHost.Inet.Core.Tests.Tcp.Support;
using AntHost.Inet.Core.Wire;

namespace AntHost.Inet.Core.Tests.Tcp.Established;

/// <summary>
/// RACK-TLP (RFC 8985), segment by segment: tail loss repaired by a probe, a lost
/// retransmission found in one round trip, reordering within and beyond the reordering window.
/// </summary>
/// <remarks>
/// The connection has SACK and no timestamps (so segments carry 1460 bytes), and a 10 ms
/// round trip from the handshake: SRTT 10 ms, RTTVAR 5 ms, RACK.min_RTT 10 ms, so that the
/// reordering window before any reordering is min_RTT / 4 = 2.5 ms.
/// </remarks>
public class RackTlpTests
{
    private const int Mss = 1460;
    private static readonly TimeSpan Rtt = TimeSpan.FromMilliseconds(10);

    /// <summary>A sender with SACK and RACK-TLP (the defaults), NewReno for round numbers.</summary>
    public static TcpHarness Sender(out Conn c, TcpConfig? config = null)
    {
        var h = new TcpHarness(config ?? TcpHarness.Plain with { Sack = true });
        c = h.Established(TcpHarness.PeerSyn() with { SackPermitted = true }, rtt: Rtt);
        return h;
    }

    /// <summary>Segment <paramref name="i"/> (from 0) of <paramref name="data"/>, as the sender sends it.</summary>
    public static Seg Data(Conn c, byte[] data, int i) =>
        c.Out with { Seq = c.SndNxt + (uint)(i * Mss), Flags = TcpFlags.Ack | TcpFlags.Psh, Payload = data[(i * Mss)..Math.Min(data.Length, (i + 1) * Mss)] };

    /// <summary>The SACK block covering segments [from, to) (from 0).</summary>
    public static SackBlock Block(Conn c, int from, int to) => new(new SeqNumber(c.SndNxt + (uint)(from * Mss)), new SeqNumber(c.SndNxt + (uint)(to * Mss)));

    /// <summary>The peer's ACK of everything below segment <paramref name="below"/>, with SACK blocks.</summary>
    public static Seg Ack(Conn c, int below, params SackBlock[] sack) => c.In with { Ack = c.SndNxt + (uint)(below * Mss), Sack = sack };

    [Fact]
    public void Tail_loss_is_repaired_by_a_probe_and_rack_instead_of_a_timeout()
    {
        // RFC 8985 3.2 / 7: the last three of ten segments are lost. Without TLP only the RTO
        // could recover; the probe (2 SRTT + 2 ms later) retransmits the last segment, its SACK
        // makes RACK find the two before it lost, and they go at once.
        var h = Sender(out var c);
        var data = TcpHarness.Bytes(10 * Mss);
        h.Tcp.Send(c.Socket, data, out _, h.Now);
        for (int i = 0; i < 10; i++) h.Expect(Data(c, data, i));
        var t0 = h.Now;
        h.Now += Rtt;
        h.Feed(Ack(c, 7));
        h.ExpectNothing();

        h.RunNextTimer();
        // PTO = 2 * SRTT + 2 ms (SRTT is 7/8 * 10 + 1/8 * 10 = 10 ms after the second sample).
        Assert.Equal(TimeSpan.FromMilliseconds(10 + 22), h.Now - t0);
        h.Expect(Data(c, data, 9));
        Assert.Equal(1, h.Tcp.Counters.TlpProbes);
        Assert.Equal(1, h.Tcp.Counters.RetransmitsTlp);

        h.Now += Rtt;
        h.Feed(Ack(c, 7, Block(c, 9, 10)));
        h.Expect(Data(c, data, 7));
        h.Expect(Data(c, data, 8));
        h.ExpectNothing();
        Assert.Equal(2, h.Tcp.Counters.RetransmitsRack);
        Assert.Equal(1, h.Tcp.Counters.Recoveries);

        h.Now += Rtt;
        h.Feed(Ack(c, 10));
        Assert.Null(h.Tcp.PollAt);
        Assert.Equal(0, h.Tcp.Counters.RetransmitsTimeout);
        var info = h.Tcp.GetInfo(c.Socket);
        Assert.Equal((2, 1, 0), (info.RetransmitsRack, info.RetransmitsTlp, info.RetransmitsTimeout));
    }

    [Fact]
    public void Probe_that_repaired_a_lost_tail_segment_halves_cwnd_once()
    {
        // RFC 8985 7.4: the last segment is lost; the probe resends it; the peer reports no
        // D-SACK for it, and once an ACK covers more than the probe the loss is known to have
        // been real: cwnd is reduced once (here NewReno: to half of it), with no recovery.
        var h = Sender(out var c);
        var data = TcpHarness.Bytes(11 * Mss);
        h.Tcp.Send(c.Socket, data.AsSpan(0, 10 * Mss), out _, h.Now);
        h.Drain();
        h.Now += Rtt;
        h.Feed(Ack(c, 9));
        h.RunNextTimer();
        h.Expect(Data(c, data, 9));
        h.Now += Rtt;
        h.Feed(Ack(c, 10));
        Assert.Equal(0, h.Tcp.Counters.TlpRepairs); // the ACK reaches the probe's end only: not known yet
        int cwnd = h.Tcp.GetInfo(c.Socket).Cwnd;
        h.Tcp.Send(c.Socket, data.AsSpan(10 * Mss), out _, h.Now);
        h.Expect(Data(c, data, 10));
        h.Now += Rtt;
        h.Feed(Ack(c, 11));
        Assert.Equal(1, h.Tcp.Counters.TlpRepairs);
        var info = h.Tcp.GetInfo(c.Socket);
        Assert.Equal(cwnd / 2, info.Ssthresh);
        Assert.Equal(info.Ssthresh, info.Cwnd);
        Assert.Equal(0, h.Tcp.Counters.Recoveries);
    }

    [Fact]
    public void Probe_sends_new_data_when_there_is_some()
    {
        // RFC 8985 7.3: "If a previously unsent segment exists AND the receive window allows new
        // data to be sent: Send that segment". Here cwnd (10 segments) holds back two, and no
        // ACK comes: the probe is the eleventh segment, sent past cwnd.
        var h = Sender(out var c);
        var data = TcpHarness.Bytes(12 * Mss);
        h.Tcp.Send(c.Socket, data, out _, h.Now);
        for (int i = 0; i < 10; i++) h.Expect(Data(c, data, i));
        h.ExpectNothing();
        var t0 = h.Now;
        h.RunNextTimer();
        Assert.Equal(TimeSpan.FromMilliseconds(22), h.Now - t0); // 2 * SRTT + 2 ms
        h.Expect(Data(c, data, 10));
        h.ExpectNothing();
        Assert.Equal(1, h.Tcp.Counters.TlpProbes);
        Assert.Equal(0, h.Tcp.Counters.RetransmitsTlp);
        // "the sender MUST re-arm the RTO timer, not the PTO timer": the next expiry is the RTO.
        t0 = h.Now;
        h.RunNextTimer();
        Assert.Equal(TimeSpan.FromMilliseconds(200), h.Now - t0);
        h.Expect(Data(c, data, 0));
        Assert.Equal(1, h.Tcp.Counters.RetransmitsTimeout);
    }

    [Fact]
    public void Probe_retransmits_the_last_segment_without_new_data_probes_even_with_new_data_waiting()
    {
        // TailLossProbeNewData off: the probe is the last segment again, which the receiver
        // answers at once (a duplicate below RCV.NXT, RFC 9293 3.10.7.4), where a receiver whose
        // app is slow (Linux holds ACKs while its window would shrink) answers new data late.
        // Ten segments arrived, no ACK came.
        var h = Sender(out var c, TcpHarness.Plain with { Sack = true, TailLossProbeNewData = false });
        var data = TcpHarness.Bytes(12 * Mss);
        h.Tcp.Send(c.Socket, data, out _, h.Now);
        for (int i = 0; i < 10; i++) h.Expect(Data(c, data, i));
        h.ExpectNothing();
        var t0 = h.Now;
        h.RunNextTimer();
        Assert.Equal(TimeSpan.FromMilliseconds(22), h.Now - t0); // 2 * SRTT + 2 ms
        h.Expect(Data(c, data, 9));
        h.ExpectNothing();
        Assert.Equal(1, h.Tcp.Counters.TlpProbes);
        Assert.Equal(1, h.Tcp.Counters.RetransmitsTlp);

        // The receiver's immediate answer: everything arrived, and a D-SACK of the probe. Nothing
        // was lost: no reduction, and the two segments cwnd held back go.
        int cwnd = h.Tcp.GetInfo(c.Socket).Cwnd;
        h.Now += Rtt;
        h.Feed(Ack(c, 10, Block(c, 9, 10)));
        h.Expect(Data(c, data, 10));
        h.Expect(Data(c, data, 11));
        h.ExpectNothing();
        Assert.Equal(0, h.Tcp.Counters.TlpRepairs);
        Assert.True(h.Tcp.GetInfo(c.Socket).Cwnd >= cwnd);
        Assert.Equal(0, h.Tcp.Counters.RetransmitsTimeout);
    }

    [Fact]
    public void Lost_retransmission_is_found_one_round_trip_later()
    {
        // RFC 8985 3.3: the retransmission of segment 0 is lost too. Segments sent after it are
        // SACKed a round trip later, so RACK marks it lost again then, where RFC 6675 would wait
        // for the retransmission timer.
        var h = Sender(out var c);
        var data = TcpHarness.Bytes(7 * Mss);
        h.Tcp.Send(c.Socket, data.AsSpan(0, 5 * Mss), out _, h.Now);
        for (int i = 0; i < 5; i++) h.Expect(Data(c, data, i));
        h.Now += Rtt;
        h.Feed(Ack(c, 0, Block(c, 1, 2)));
        h.Feed(Ack(c, 0, Block(c, 1, 3)));
        h.ExpectNothing(); // one or two segments SACKed: within the reordering window (2.5 ms)
        h.Feed(Ack(c, 0, Block(c, 1, 4)));
        h.Expect(Data(c, data, 0)); // three SACKed: the window is 0 (RFC 8985 6.2 step 4), segment 0 is lost
        h.Feed(Ack(c, 0, Block(c, 1, 5)));
        h.ExpectNothing();

        // The app writes two more segments; PRR lets them go behind the retransmission.
        h.Tcp.Send(c.Socket, data.AsSpan(5 * Mss), out _, h.Now);
        h.Expect(Data(c, data, 5));
        h.Expect(Data(c, data, 6));

        h.Now += Rtt;
        h.Feed(Ack(c, 0, Block(c, 5, 7), Block(c, 1, 5)));
        h.Expect(Data(c, data, 0)); // sent before segments 5 and 6, now delivered: lost again
        Assert.Equal(2, h.Tcp.Counters.RetransmitsRack);
        Assert.Equal(0, h.Tcp.Counters.RetransmitsTimeout);

        h.Now += Rtt;
        h.Feed(Ack(c, 7));
        Assert.Null(h.Tcp.PollAt);
    }

    [Fact]
    public void Reordering_within_the_window_retransmits_nothing()
    {
        // RFC 8985 6.2: segment 0 arrives after segment 1 but within the reordering window.
        var h = Sender(out var c);
        var data = TcpHarness.Bytes(4 * Mss);
        h.Tcp.Send(c.Socket, data, out _, h.Now);
        h.Drain();
        var t0 = h.Now;
        h.Now += Rtt;
        h.Feed(Ack(c, 0, Block(c, 1, 2)));
        h.ExpectNothing();
        // The reordering timer: segment 0's xmit_ts + RACK.rtt + reo_wnd = t0 + 10 + 2.5 ms.
        Assert.Equal(t0 + TimeSpan.FromMilliseconds(12.5), h.Tcp.PollAt);
        h.Now += TimeSpan.FromMilliseconds(1);
        h.Feed(Ack(c, 4));
        h.ExpectNothing();
        Assert.Equal(0, h.Tcp.Counters.Retransmits);
        Assert.Equal(0, h.Tcp.Counters.Recoveries);
        Assert.Null(h.Tcp.PollAt);
    }

    [Fact]
    public void Reordering_beyond_the_window_retransmits_at_the_timer_and_a_dsack_undoes_it()
    {
        // RFC 8985 6.2: segment 0 is later than the reordering window allows; the timer marks it
        // lost and it goes again. Then the original arrives after all: the receiver's D-SACK of
        // the retransmission (RFC 2883) shows the reduction was not needed, and it is undone.
        var h = Sender(out var c);
        var data = TcpHarness.Bytes(4 * Mss);
        h.Tcp.Send(c.Socket, data, out _, h.Now);
        h.Drain();
        int cwnd = h.Tcp.GetInfo(c.Socket).Cwnd;
        var t0 = h.Now;
        h.Now += Rtt;
        h.Feed(Ack(c, 0, Block(c, 1, 2)));
        h.ExpectNothing();
        h.RunNextTimer();
        Assert.Equal(t0 + TimeSpan.FromMilliseconds(12.5), h.Now);
        h.Expect(Data(c, data, 0));
        Assert.Equal(1, h.Tcp.Counters.RackReorderTimeouts);
        Assert.Equal(1, h.Tcp.Counters.RetransmitsRack);
        Assert.True(h.Tcp.GetInfo(c.Socket).Cwnd < cwnd);
        Assert.True(h.Tcp.GetInfo(c.Socket).InRecovery);

        h.Now += TimeSpan.FromMilliseconds(2);
        h.Feed(Ack(c, 2));                        // the original segment 0, late
        h.Feed(Ack(c, 4, Block(c, 0, 1)));        // the rest, and a D-SACK of the retransmission
        h.ExpectNothing();
        Assert.Equal(1, h.Tcp.Counters.UndosDsack);
        Assert.True(h.Tcp.GetInfo(c.Socket).Cwnd >= cwnd, "the reduction was undone");
        Assert.Equal(1, h.Tcp.GetInfo(c.Socket).Undos);
    }

    /// <summary>A sender whose sends go offloaded (up to 64 KiB each, cut by the transmitter), with buffers big enough to hold one.</summary>
    private static TcpHarness OffloadSender(out Conn c)
    {
        var h = new TcpHarness(TcpHarness.Plain with { Sack = true, SegmentationOffloadBytes = TcpConfig.MaximumSegmentationOffloadBytes }, bufferSize: 64 * 1024);
        c = h.Established(TcpHarness.PeerSyn() with { SackPermitted = true }, rtt: Rtt);
        return h;
    }

    /// <summary>Hands <paramref name="data"/> to the connection as one buffer (as the app's data ICA comes), which an offloaded send may carry whole.</summary>
    private static void SendBuffer(TcpHarness h, Conn c, byte[] data)
    {
        var b = h.Pool.Rent(AntHost.Inet.Core.Tcp.TcpLayer.SendHeadroom, data.Length)!;
        data.CopyTo(b.Append(data.Length));
        Assert.Equal(TcpError.None, h.Tcp.Send(c.Socket, b, h.Now));
    }

    /// <summary>The header of an offloaded send from segment <paramref name="from"/> (from 0); its payload is lent to the transmitter.</summary>
    private static Seg Offloaded(Conn c, int from) => c.Out with { Seq = c.SndNxt + (uint)(from * Mss), Flags = TcpFlags.Ack | TcpFlags.Psh };

    [Fact]
    public void Loss_inside_an_offloaded_send_is_found_by_the_reordering_timer_not_a_timeout()
    {
        // Four segments leave as one offloaded send: one transmission time for all. The first is
        // lost, the peer SACKs the last two. RFC 8985 5.2 breaks the tie of time by end_seq, so
        // the SACKed segments count as sent after segment 0, and the reordering timer (RACK.rtt
        // + reo_wnd = 10 + 2.5 ms after the send) finds it lost: not the 200 ms timeout.
        var h = OffloadSender(out var c);
        var data = TcpHarness.Bytes(4 * Mss);
        SendBuffer(h, c, data);
        h.ExpectOffloaded(Offloaded(c, 0));
        h.ExpectNothing();
        var t0 = h.Now;
        h.Now += Rtt;
        h.Feed(Ack(c, 0, Block(c, 2, 4)));
        h.ExpectNothing();
        Assert.Equal(t0 + TimeSpan.FromMilliseconds(12.5), h.Tcp.PollAt);
        h.RunNextTimer();
        h.Expect(Data(c, data, 0));
        Assert.Equal(1, h.Tcp.Counters.RackReorderTimeouts);
        Assert.Equal(1, h.Tcp.Counters.RetransmitsRack);
        Assert.Equal(1, h.Tcp.Counters.Recoveries);

        h.Now += Rtt;
        h.Feed(Ack(c, 1, Block(c, 2, 4)));
        h.Expect(Data(c, data, 1)); // segment 1 arrived, but its ACK carried nothing new: see the next case
        h.Now += Rtt;
        h.Feed(Ack(c, 4));
        Assert.Null(h.Tcp.PollAt);
        Assert.Equal(0, h.Tcp.Counters.RetransmitsTimeout);
    }

    [Fact]
    public void The_probe_after_an_offloaded_send_retransmits_its_last_segment_not_its_first()
    {
        // RFC 8985 7.3: "retransmit the highest-sequence segment sent so far". Four segments left
        // as one offloaded send (one record in the transmit log) and no ACK came: the probe is
        // segment 3, as Linux cuts its last MSS off the send; segment 0 would tell the peer
        // nothing about the tail.
        var h = OffloadSender(out var c);
        var data = TcpHarness.Bytes(4 * Mss);
        SendBuffer(h, c, data);
        h.ExpectOffloaded(Offloaded(c, 0));
        h.ExpectNothing();
        h.RunNextTimer();
        h.Expect(Data(c, data, 3));
        h.ExpectNothing();
        Assert.Equal(1, h.Tcp.Counters.RetransmitsTlp);

        // The peer had segments 0-2 (their ACK was lost): its answer to the probe shows the tail
        // arrived too, and nothing is retransmitted again.
        h.Now += Rtt;
        h.Feed(Ack(c, 4));
        h.ExpectNothing();
        Assert.Null(h.Tcp.PollAt);
        Assert.Equal(0, h.Tcp.Counters.RetransmitsTimeout);
    }

    [Fact]
    public void Three_sacked_segments_of_an_offloaded_send_mark_the_hole_below_lost_at_once()
    {
        // As above with five segments, four SACKed: RFC 8985 6.2 step 4 makes reo_wnd 0 (no
        // reordering seen, DupThresh segments SACKed), so the ACK itself finds segment 0 lost.
        var h = OffloadSender(out var c);
        var data = TcpHarness.Bytes(5 * Mss);
        SendBuffer(h, c, data);
        h.ExpectOffloaded(Offloaded(c, 0));
        h.ExpectNothing();
        h.Now += Rtt;
        h.Feed(Ack(c, 0, Block(c, 1, 5)));
        h.Expect(Data(c, data, 0));
        h.ExpectNothing();
        Assert.Equal(1, h.Tcp.Counters.RetransmitsRack);
        Assert.Equal(0, h.Tcp.Counters.RackReorderTimeouts);
        Assert.Equal(0, h.Tcp.Counters.RetransmitsTimeout);
    }

    [Fact]
    public void Rfc6675_fallback_waits_for_three_sacked_segments_and_sends_no_probe()
    {
        // The switchable fallback: DupThresh counting, no reordering timer and no probe; a lost
        // tail is left to the retransmission timer.
        var h = Sender(out var c, TcpHarness.Plain with { Sack = true, LossDetection = AntHost.Inet.Core.Tcp.Recovery.LossDetection.Rfc6675 });
        var data = TcpHarness.Bytes(4 * Mss);
        h.Tcp.Send(c.Socket, data, out _, h.Now);
        h.Drain();
        var t0 = h.Now;
        h.Now += Rtt;
        h.Feed(Ack(c, 0, Block(c, 1, 2)));
        h.ExpectNothing();
        Assert.Equal(t0 + TimeSpan.FromMilliseconds(200), h.Tcp.PollAt); // only the RTO (200 ms floor)
        h.RunNextTimer();
        h.Expect(Data(c, data, 0));
        Assert.Equal(1, h.Tcp.Counters.RetransmitsTimeout);
        Assert.Equal(0, h.Tcp.Counters.TlpProbes);
    }
}
