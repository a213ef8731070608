using AntHost.Inet.Core.Tcp;
using AntHost.Inet.Core.Tcp.Recovery;
using AntHost.Inet.Core.Tests.Tcp.Support;
using static AntHost.Inet.Core.Tests.Tcp.Established.RackTlpTests;

namespace AntHost.Inet.Core.Tests.Tcp.Established;

/// <summary>
/// Proportional Rate Reduction (RFC 6937, PRR-SSRB): during recovery the sender sends in
/// proportion to what the receiver reports delivered, so that pipe reaches ssthresh at the end
/// of the recovery instead of the sender falling silent for half a window and then bursting.
/// </summary>
public class PrrTests
{
    private const int Mss = 1460;

    /// <summary>
    /// Ten segments sent, the first lost, NewReno. The first two SACKs each let a new segment go
    /// (limited transmit, RFC 3042, or pipe, RFC 6675), so twelve are in flight when the third
    /// starts recovery: RecoverFS = 12 MSS, ssthresh = 6 MSS. Each SACK delivers one MSS.
    /// RFC 6937's arithmetic, ACK by ACK (in MSS):
    /// <list type="bullet">
    /// <item>SACK 3: prr_delivered 1, pipe 8 &gt; ssthresh: sndcnt = CEIL(1 * 6 / 12) - 0, at least
    /// the fast retransmit's segment: segment 0 again;</item>
    /// <item>SACK 4: prr_delivered 2, pipe 8: CEIL(2 * 6 / 12) - 1 = 0;</item>
    /// <item>SACK 5: prr_delivered 3, pipe 7: CEIL(3 * 6 / 12) - 1 = 1: segment 12;</item>
    /// <item>SACK 6: prr_delivered 4, pipe 7: CEIL(4 * 6 / 12) - 2 = 0;</item>
    /// <item>SACK 7: pipe 6 = ssthresh, PRR-SSRB: MIN(ssthresh - pipe, ...) = 0;</item>
    /// <item>SACK 8 on: pipe 5: MIN(6 - 5, MAX(prr_delivered - prr_out, 1) + 1) = 1: one new
    /// segment per segment delivered, holding pipe at ssthresh.</item>
    /// </list>
    /// Without PRR (cwnd = ssthresh at once) the sender says nothing from SACK 4 to SACK 7.
    /// </summary>
    [Theory]
    [InlineData(LossDetection.Rack)]
    [InlineData(LossDetection.Rfc6675)]
    public void Recovery_sends_in_proportion_to_what_is_delivered(LossDetection detection)
    {
        var h = Sender(out var c, TcpHarness.Plain with { Sack = true, LossDetection = detection });
        var data = TcpHarness.Bytes(20 * Mss);
        h.Tcp.Send(c.Socket, data, out _, h.Now);
        for (int i = 0; i < 10; i++) h.Expect(Data(c, data, i));
        h.ExpectNothing();
        h.Now += TimeSpan.FromMilliseconds(10);

        // What each SACK (blocks [1, k)) lets go: -1 for nothing. The SACKs come 1 ms apart, as
        // the segments they report left 1 ms apart at the bottleneck.
        int[] sends = [10, 11, 0, -1, 12, -1, -1, 13, 14, 15, 16];
        for (int k = 2; k <= 12; k++)
        {
            if (k > 2) h.Now += TimeSpan.FromMilliseconds(1);
            h.Feed(Ack(c, 0, Block(c, 1, k)));
            int expected = sends[k - 2];
            if (expected >= 0) h.Expect(Data(c, data, expected));
            h.ExpectNothing();
            if (k == 4) Assert.Equal(6 * Mss, h.Tcp.GetInfo(c.Socket).Ssthresh);
        }
        Assert.Equal(1, h.Tcp.Counters.RecoveriesPrr);

        // The retransmission arrives: recovery ends with cwnd = ssthresh (RFC 9937) = 6 MSS with
        // 5 in flight: one more.
        h.Feed(Ack(c, 12));
        h.Expect(Data(c, data, 17));
        h.ExpectNothing();
        Assert.False(h.Tcp.GetInfo(c.Socket).InRecovery);
        Assert.Equal(6 * Mss, h.Tcp.GetInfo(c.Socket).Cwnd);
    }

    [Fact]
    public void Without_prr_the_sender_is_silent_until_pipe_falls_below_cwnd()
    {
        // The same losses with PRR off (RFC 6675 alone): cwnd drops to ssthresh at once, so
        // after the fast retransmit nothing goes until pipe is a segment below it.
        var h = Sender(out var c, TcpHarness.Plain with { Sack = true, LossDetection = LossDetection.Rfc6675, ProportionalRateReduction = false });
        var data = TcpHarness.Bytes(20 * Mss);
        h.Tcp.Send(c.Socket, data, out _, h.Now);
        h.Drain();
        h.Now += TimeSpan.FromMilliseconds(10);
        int[] sends = [10, 11, 0, -1, -1, -1, 12, 13];
        for (int k = 2; k <= 9; k++)
        {
            h.Feed(Ack(c, 0, Block(c, 1, k)));
            int expected = sends[k - 2];
            if (expected >= 0) h.Expect(Data(c, data, expected));
            h.ExpectNothing();
        }
        Assert.Equal(0, h.Tcp.Counters.RecoveriesPrr);
        Assert.Equal(1, h.Tcp.Counters.Recoveries);
    }

    [Fact]
    public void Prr_slow_start_reduction_bound_refills_pipe_after_a_burst_of_losses()
    {
        // PRR-SSRB (RFC 6937 3.1): when many segments are lost, pipe falls far below ssthresh;
        // the bound lets the sender catch up by at most one MSS more than was delivered per ACK.
        // Ten in flight; 0-5 lost; 6-9 SACKed one by one (the first two let 10 and 11 go).
        var h = Sender(out var c, TcpHarness.Plain with { Sack = true, LossDetection = LossDetection.Rfc6675 });
        var data = TcpHarness.Bytes(20 * Mss);
        h.Tcp.Send(c.Socket, data, out _, h.Now);
        h.Drain();
        h.Now += TimeSpan.FromMilliseconds(10);
        h.Feed(Ack(c, 0, Block(c, 6, 7)));
        h.Expect(Data(c, data, 10));
        h.Feed(Ack(c, 0, Block(c, 6, 8)));
        h.Expect(Data(c, data, 11));
        h.ExpectNothing();
        // Third SACK: segments 0-5 are lost (RFC 6675 IsLost), pipe = 3 (9, 10, 11), ssthresh 6:
        // limit = MAX(1 - 0, 1) + 1 = 2 MSS, sndcnt = MIN(6 - 3, 2) = 2: segments 0 and 1.
        h.Feed(Ack(c, 0, Block(c, 6, 9)));
        h.Expect(Data(c, data, 0));
        h.Expect(Data(c, data, 1));
        h.ExpectNothing();
        // Fourth: prr_delivered 2, prr_out 2, pipe = 4 (10, 11, and 0 and 1 again):
        // limit = MAX(0, 1) + 1 = 2, sndcnt = MIN(6 - 4, 2) = 2.
        h.Feed(Ack(c, 0, Block(c, 6, 10)));
        h.Expect(Data(c, data, 2));
        h.Expect(Data(c, data, 3));
        h.ExpectNothing();
    }

    [Fact]
    public void Recovery_ends_with_cwnd_at_ssthresh_even_when_little_is_in_flight()
    {
        // RFC 9937 (PRR, which obsoletes RFC 6937) brings cwnd to ssthresh at the end of
        // recovery, as Linux does (tcp_end_cwnd_reduction); RFC 6582's min(ssthresh,
        // FlightSize + MSS) would leave cwnd at two segments when the app had nothing more to
        // send during the recovery, and a sender whose flight drains between its bursts would
        // lose most of its window at every recovery. Ten segments, the first lost, no more data.
        var h = Sender(out var c);
        var data = TcpHarness.Bytes(16 * Mss);
        h.Tcp.Send(c.Socket, data.AsSpan(0, 10 * Mss), out _, h.Now);
        h.Drain();
        h.Now += TimeSpan.FromMilliseconds(10);
        for (int k = 2; k <= 10; k++) h.Feed(Ack(c, 0, Block(c, 1, k)));
        h.Expect(Data(c, data, 0));
        h.ExpectNothing();
        Assert.True(h.Tcp.GetInfo(c.Socket).InRecovery);
        Assert.Equal(5 * Mss, h.Tcp.GetInfo(c.Socket).Ssthresh);

        h.Now += TimeSpan.FromMilliseconds(10);
        h.Feed(Ack(c, 10));
        var info = h.Tcp.GetInfo(c.Socket);
        Assert.False(info.InRecovery);
        Assert.Equal(5 * Mss, info.Cwnd);

        // Six more segments from the app: the five cwnd allows go at once.
        h.Tcp.Send(c.Socket, data.AsSpan(10 * Mss), out _, h.Now);
        for (int i = 10; i < 15; i++) h.Expect(Data(c, data, i));
        h.ExpectNothing();
    }
}
