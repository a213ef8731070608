using AntHost.Inet.Core.Tcp;
using AntHost.Inet.Core.Tcp.Congestion;
using AntHost.Inet.Core.Tcp.Recovery;
using AntHost.Inet.Core.Time;

namespace AntHost.Inet.Core.Tests.Tcp.Algorithms;

/// <summary>
/// Fast retransmit and recovery: RFC 5681 + RFC 6582 (NewReno, no SACK) and RFC 6675 (SACK),
/// with RFC 3042 limited transmit, on a sender with 10 segments of 1000 bytes outstanding.
/// </summary>
public class LossRecoveryTests
{
    private const int Mss = 1000;
    private static readonly SeqNumber Iss = new(0xFFFF_FF00);
    private static readonly SeqNumber Una = Iss + 1;
    private static readonly SeqNumber Max = Una + 10_000;
    private static readonly Instant Now = Instant.FromMilliseconds(1000);
    private static readonly TimeSpan Rtt = TimeSpan.FromMilliseconds(50);

    private static LossRecovery NewReno(bool sack = false) => new(new NewRenoCongestionControl(Mss, 10), sack, Iss);

    private static AckActions DupAck(LossRecovery r, SeqNumber una, SeqNumber max) => r.OnAck(una, true, una, max, Rtt, Now);

    [Fact]
    public void Three_duplicate_acks_enter_fast_recovery_with_cwnd_ssthresh_plus_three_segments()
    {
        var r = NewReno();
        Assert.Equal(AckActions.None, DupAck(r, Una, Max));
        Assert.Equal(AckActions.None, DupAck(r, Una, Max));
        Assert.Equal(2, r.DupAcks);
        var a = DupAck(r, Una, Max);
        Assert.Equal(AckActions.RetransmitFirst | AckActions.EnteredRecovery, a);
        Assert.True(r.InRecovery);
        Assert.Equal(5000, r.Congestion.Ssthresh);                     // FlightSize / 2
        Assert.Equal(8000, r.Window);                                  // ssthresh + 3 * SMSS
        Assert.Equal(Max, r.RecoveryPointEnd);                         // recover = HighData
        DupAck(r, Una, Max);
        Assert.Equal(9000, r.Window);                                  // + SMSS per further duplicate
    }

    [Fact]
    public void Limited_transmit_allows_one_new_segment_per_early_duplicate()
    {
        var r = NewReno();                                              // cwnd 10,000 = flight: nothing may be sent
        Assert.Equal(SegmentKind.None, r.NextSegment(Una, Max, Max, true).Kind);
        DupAck(r, Una, Max);
        Assert.Equal(new SegmentToSend(SegmentKind.Next, Max, 1000), r.NextSegment(Una, Max, Max, true));
        DupAck(r, Una, Max + 1000);
        Assert.Equal(new SegmentToSend(SegmentKind.Next, Max + 1000, 1000), r.NextSegment(Una, Max + 1000, Max + 1000, true));
        Assert.Equal(SegmentKind.None, r.NextSegment(Una, Max + 2000, Max + 2000, true).Kind);
    }

    [Fact]
    public void Partial_acks_retransmit_deflate_and_restart_the_timer_once_then_a_full_ack_ends_recovery()
    {
        var r = NewReno();
        for (int i = 0; i < 3; i++) DupAck(r, Una, Max);
        for (int i = 0; i < 4; i++) DupAck(r, Una, Max);               // window 5000 + 3000 + 4000 = 12,000
        Assert.Equal(12_000, r.Window);

        var a = r.OnAck(Una + 2000, false, Una, Max, Rtt, Now);         // partial: 2000 new bytes
        Assert.Equal(AckActions.RetransmitFirst | AckActions.RestartTimer, a);
        Assert.Equal(12_000 - 2000 + 1000, r.Window);                   // deflate by 2000, add back SMSS
        a = r.OnAck(Una + 2500, false, Una + 2000, Max, Rtt, Now);      // partial, less than SMSS
        Assert.Equal(AckActions.RetransmitFirst, a);
        Assert.Equal(11_000 - 500, r.Window);
        Assert.True(r.InRecovery);

        a = r.OnAck(Max, false, Una + 2500, Max + 3000, Rtt, Now);      // covers recover: full ACK
        Assert.Equal(AckActions.ExitedRecovery, a);
        Assert.False(r.InRecovery);
        Assert.Equal(0, r.Inflation);
        Assert.Equal(4000, r.Congestion.Cwnd);                          // min(ssthresh 5000, max(3000, SMSS) + SMSS)
    }

    [Fact]
    public void New_data_sent_during_fast_recovery_follows_the_inflated_window()
    {
        var r = NewReno();
        for (int i = 0; i < 3; i++) DupAck(r, Una, Max);
        Assert.Equal(SegmentKind.None, r.NextSegment(Una, Max, Max, true).Kind);     // 8000 < 10,000 in flight
        for (int i = 0; i < 3; i++) DupAck(r, Una, Max);                // window 11,000
        Assert.Equal(new SegmentToSend(SegmentKind.Next, Max, 1000), r.NextSegment(Una, Max, Max, true));
    }

    [Fact]
    public void After_a_timeout_duplicates_below_recover_do_not_start_recovery()
    {
        var r = NewReno();
        r.OnRetransmitTimeout(Una, Max, Now);
        Assert.Equal(1000, r.Congestion.Cwnd);
        Assert.Equal(5000, r.Congestion.Ssthresh);
        r.OnRetransmitTimeout(Una, Max, Now);                           // a backed-off expiry: ssthresh stays
        Assert.Equal(5000, r.Congestion.Ssthresh);

        var una = Una + 3000;                                           // go-back-N progress, still below recover
        r.OnAck(una, false, Una, Max, Rtt, Now);
        for (int i = 0; i < 5; i++) Assert.Equal(AckActions.None, DupAck(r, una, Max));
        Assert.False(r.InRecovery);

        r.OnAck(Max, false, una, Max, Rtt, Now);                        // recover is acknowledged
        for (int i = 0; i < 2; i++) DupAck(r, Max, Max + 5000);
        Assert.Equal(AckActions.RetransmitFirst | AckActions.EnteredRecovery, DupAck(r, Max, Max + 5000));
    }

    [Fact]
    public void Acks_of_new_data_outside_recovery_grow_the_window_and_reset_dupacks()
    {
        var r = NewReno();
        DupAck(r, Una, Max);
        r.OnAck(Una + 1000, false, Una, Max, Rtt, Now);
        Assert.Equal(0, r.DupAcks);
        Assert.Equal(11_000, r.Congestion.Cwnd);
    }

    [Fact]
    public void Sack_duplicates_are_acks_that_sack_new_data()
    {
        var r = NewReno(sack: true);
        r.AddSackBlock(Una + 1000, Una + 2000, Una, Max);
        Assert.Equal(AckActions.None, r.OnAck(Una, false, Una, Max, Rtt, Now));
        Assert.Equal(1, r.DupAcks);
        r.AddSackBlock(Una + 1000, Una + 2000, Una, Max);               // the same block again: not a duplicate
        r.OnAck(Una, true, Una, Max, Rtt, Now);
        Assert.Equal(1, r.DupAcks);
        r.AddSackBlock(Una + 3000, Una + 4000, Una, Max);
        r.OnAck(Una, true, Una, Max, Rtt, Now);
        Assert.Equal(2, r.DupAcks);
    }

    [Fact]
    public void Sack_recovery_enters_early_when_isLost_says_so_and_cwnd_becomes_ssthresh()
    {
        var r = NewReno(sack: true);
        // One ACK SACKing three segments above the hole: IsLost (HighACK + 1) with DupAcks = 1.
        r.AddSackBlock(Una + 1000, Una + 4000, Una, Max);
        var a = r.OnAck(Una, false, Una, Max, Rtt, Now);
        Assert.Equal(AckActions.RetransmitFirst | AckActions.EnteredRecovery, a);
        Assert.Equal(5000, r.Congestion.Cwnd);
        Assert.Equal(0, r.Inflation);                                   // no inflation with SACK: pipe instead
        r.OnRetransmitted(Una, 1000);
        Assert.Equal(Una + 1000, r.Scoreboard.HighRxtEnd);
        Assert.Equal(Una + 1000, r.Scoreboard.RescueRxtEnd);
        // pipe = unSACKed not lost [4000, 10000) = 6000, + retransmitted [0,1000) = 7000 > cwnd.
        Assert.Equal(7000, r.Scoreboard.SetPipe(Una, Max, Mss));
        Assert.Equal(SegmentKind.None, r.NextSegment(Una, Max, Max, true).Kind);
    }

    [Fact]
    public void Sack_recovery_sends_per_nextseg_while_cwnd_minus_pipe_allows()
    {
        var r = NewReno(sack: true);
        r.AddSackBlock(Una + 1000, Una + 2000, Una, Max);
        r.OnAck(Una, false, Una, Max, Rtt, Now);
        r.AddSackBlock(Una + 3000, Una + 4000, Una, Max);
        r.OnAck(Una, false, Una, Max, Rtt, Now);
        r.AddSackBlock(Una + 5000, Una + 9000, Una, Max);
        Assert.Equal(AckActions.RetransmitFirst | AckActions.EnteredRecovery, r.OnAck(Una, false, Una, Max, Rtt, Now));
        r.OnRetransmitted(Una, 1000);
        // cwnd 5000. [5000, 9000) is more than 2 * SMSS, so every hole below 5000 is lost;
        // pipe = not lost [9000, 10000) + retransmitted [0, 1000) = 2000.
        Assert.Equal(2000, r.Scoreboard.SetPipe(Una, Max, Mss));
        var seg = r.NextSegment(Una, Max, Max, true);
        Assert.Equal(new SegmentToSend(SegmentKind.Retransmit, Una + 2000, 1000), seg);   // rule 1
        r.OnRetransmitted(seg.Seq, seg.Length, seg.Kind);
        seg = r.NextSegment(Una, Max, Max, true);
        Assert.Equal(new SegmentToSend(SegmentKind.Retransmit, Una + 4000, 1000), seg);
        r.OnRetransmitted(seg.Seq, seg.Length, seg.Kind);
        Assert.Equal(4000, r.Scoreboard.SetPipe(Una, Max, Mss));
        seg = r.NextSegment(Una, Max, Max, true);
        Assert.Equal(new SegmentToSend(SegmentKind.Next, Max, 1000), seg);                 // rule 2, cwnd - pipe = 1000
        Assert.Equal(SegmentKind.None, r.NextSegment(Una, Max + 1000, Max + 1000, true).Kind);
        // Without new data, rule 3 has nothing (every hole below the top SACK was sent) and the
        // rescue waits until HighACK passes RescueRxt.
        Assert.Equal(SegmentKind.None, r.NextSegment(Una, Max, Max, false).Kind);
    }

    [Fact]
    public void Sack_recovery_ends_on_an_ack_covering_the_recovery_point()
    {
        var r = NewReno(sack: true);
        r.AddSackBlock(Una + 1000, Una + 4000, Una, Max);
        r.OnAck(Una, false, Una, Max, Rtt, Now);
        r.OnRetransmitted(Una, 1000);
        Assert.Equal(AckActions.None, r.OnAck(Una + 4000, false, Una, Max, Rtt, Now));   // partial: no NewReno retransmit
        Assert.True(r.InRecovery);
        Assert.Equal(AckActions.ExitedRecovery, r.OnAck(Max, false, Una + 4000, Max, Rtt, Now));
        Assert.False(r.InRecovery);
        Assert.Equal(0, r.Scoreboard.RangeCount);
    }

    [Fact]
    public void Timeout_clears_the_scoreboard_and_ends_recovery()
    {
        var r = new LossRecovery(new CubicCongestionControl(Mss, 10), true, Iss);
        r.AddSackBlock(Una + 1000, Una + 4000, Una, Max);
        r.OnAck(Una, false, Una, Max, Rtt, Now);
        Assert.True(r.InRecovery);
        r.OnRetransmitTimeout(Una, Max, Now);
        Assert.False(r.InRecovery);
        Assert.Equal(0, r.Scoreboard.RangeCount);
        Assert.Equal(Mss, r.Congestion.Cwnd);
        Assert.Equal(new SegmentToSend(SegmentKind.Next, Una, 1000), r.NextSegment(Una, Una, Max, true));
    }
}
