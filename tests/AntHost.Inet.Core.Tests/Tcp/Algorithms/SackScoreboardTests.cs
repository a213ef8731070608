using AntHost.Inet.Core.Tcp;
using AntHost.Inet.Core.Tcp.Recovery;

namespace AntHost.Inet.Core.Tests.Tcp.Algorithms;

/// <summary>RFC 6675's scoreboard functions on worked examples (SMSS 1000, sequence numbers relative to a base).</summary>
public class SackScoreboardTests
{
    private const int Mss = 1000;
    // A base near the wrap, so that every test also checks modulo-2^32 arithmetic.
    private const uint Base = 0xFFFF_F000;

    private static SeqNumber S(int offset) => new(unchecked(Base + (uint)offset));

    private static readonly SeqNumber Una = S(0);
    private static readonly SeqNumber Max = S(10_000);

    private static SackScoreboard With(params (int L, int R)[] blocks)
    {
        var sb = new SackScoreboard();
        foreach (var (l, r) in blocks) sb.AddBlock(S(l), S(r), Una, Max);
        return sb;
    }

    [Fact]
    public void Blocks_merge_and_report_new_information()
    {
        var sb = new SackScoreboard();
        Assert.True(sb.AddBlock(S(3000), S(4000), Una, Max));
        Assert.True(sb.AddBlock(S(1000), S(2000), Una, Max));
        Assert.False(sb.AddBlock(S(1000), S(2000), Una, Max));        // nothing new
        Assert.True(sb.AddBlock(S(2000), S(3000), Una, Max));         // adjacent on both sides: one range
        Assert.Equal(1, sb.RangeCount);
        Assert.Equal((S(1000), S(4000)), sb.GetRange(0));
        Assert.Equal(3000, sb.SackedBytes);
        Assert.True(sb.AddBlock(S(500), S(5000), Una, Max));
        Assert.Equal(4500, sb.SackedBytes);
        Assert.True(sb.TakeNewInfo());
        Assert.False(sb.TakeNewInfo());
    }

    [Fact]
    public void Dsack_reversed_and_unsent_blocks_are_ignored()
    {
        var sb = new SackScoreboard();
        Assert.False(sb.AddBlock(S(-2000), S(-1000), Una, Max));      // D-SACK below SND.UNA (RFC 2883)
        Assert.False(sb.AddBlock(S(3000), S(2000), Una, Max));        // reversed
        Assert.False(sb.AddBlock(S(9000), S(11_000), Una, Max));      // beyond SND.MAX
        Assert.Equal(0, sb.RangeCount);
        Assert.True(sb.AddBlock(S(-500), S(500), Una, Max));          // straddling SND.UNA: clipped
        Assert.Equal((Una, S(500)), sb.GetRange(0));
    }

    [Fact]
    public void Cumulative_ack_drops_and_clips_ranges()
    {
        var sb = With((1000, 2000), (3000, 4000));
        sb.AdvanceTo(S(3500));
        Assert.Equal(1, sb.RangeCount);
        Assert.Equal((S(3500), S(4000)), sb.GetRange(0));
        Assert.Equal(500, sb.SackedBytes);
    }

    [Fact]
    public void A_full_scoreboard_forgets_its_highest_range()
    {
        var sb = new SackScoreboard(capacity: 2);
        sb.AddBlock(S(1000), S(2000), Una, Max);
        sb.AddBlock(S(5000), S(6000), Una, Max);
        Assert.False(sb.AddBlock(S(8000), S(9000), Una, Max));       // highest: not kept
        Assert.True(sb.AddBlock(S(3000), S(4000), Una, Max));        // lower: the top range goes
        Assert.Equal(2, sb.RangeCount);
        Assert.Equal((S(3000), S(4000)), sb.GetRange(1));
        Assert.Equal(2000, sb.SackedBytes);
    }

    [Fact]
    public void IsLost_needs_dupthresh_ranges_or_more_than_two_segments_above()
    {
        var sb = With((1000, 2000));
        Assert.False(sb.IsLost(S(0), Mss));
        sb.AddBlock(S(3000), S(4000), Una, Max);
        Assert.False(sb.IsLost(S(0), Mss));                          // 2 ranges, 2000 bytes: not more than 2 * SMSS
        sb.AddBlock(S(5000), S(6000), Una, Max);
        Assert.True(sb.IsLost(S(0), Mss));                           // 3 ranges above
        Assert.True(sb.IsLost(S(999), Mss));
        Assert.False(sb.IsLost(S(1500), Mss));                       // SACKed
        Assert.False(sb.IsLost(S(2000), Mss));                       // 2 ranges above
        Assert.False(sb.IsLost(S(4500), Mss));

        var bytes = With((1000, 3001));
        Assert.True(bytes.IsLost(S(0), Mss));                        // 2001 bytes > 2 * SMSS
        Assert.False(With((1000, 3000)).IsLost(S(0), Mss));
    }

    [Fact]
    public void SetPipe_counts_unsacked_octets_not_lost_plus_those_retransmitted()
    {
        var sb = With((1000, 2000), (3000, 4000), (5000, 6000));
        // [0,1000) is lost; [2000,3000), [4000,5000), [6000,10000) are not lost and not SACKed.
        Assert.Equal(S(1000), sb.LostBoundary(Una, Mss));
        Assert.Equal(6000, sb.SetPipe(Una, Max, Mss));
        sb.SetHighRxt(S(1000));                                      // [0,1000) retransmitted
        Assert.Equal(7000, sb.SetPipe(Una, Max, Mss));
        sb.SetHighRxt(S(3000));                                      // and [2000,3000): not lost, retransmitted: counts twice
        Assert.Equal(8000, sb.SetPipe(Una, Max, Mss));
    }

    [Fact]
    public void SetPipe_without_sacks_is_the_flight_size()
    {
        var sb = new SackScoreboard();
        Assert.Equal(10_000, sb.SetPipe(Una, Max, Mss));
    }

    [Fact]
    public void NextSeg_rule_1_retransmits_the_first_lost_hole()
    {
        var sb = With((1000, 2000), (3000, 4000), (5000, 6000));
        var seg = sb.NextSeg(Una, Max, Mss, newDataAllowed: true, Max, inRecovery: true);
        Assert.Equal(new SegmentToSend(SegmentKind.Retransmit, S(0), 1000), seg);
    }

    [Fact]
    public void NextSeg_rule_1_segment_stops_at_the_next_sacked_range()
    {
        var sb = With((500, 2000), (3000, 4000), (5000, 6000));
        var seg = sb.NextSeg(Una, Max, Mss, newDataAllowed: true, Max, inRecovery: true);
        Assert.Equal(new SegmentToSend(SegmentKind.Retransmit, S(0), 500), seg);
    }

    [Fact]
    public void NextSeg_rule_2_prefers_new_data_to_holes_not_yet_lost_then_rule_3()
    {
        var sb = With((1000, 2000), (3000, 4000), (5000, 6000));
        sb.SetHighRxt(S(1000));
        var seg = sb.NextSeg(Una, Max, Mss, newDataAllowed: true, Max, inRecovery: true);
        Assert.Equal(SegmentKind.Next, seg.Kind);                    // rule 2
        Assert.Equal(Max, seg.Seq);
        seg = sb.NextSeg(Una, Max, Mss, newDataAllowed: false, Max, inRecovery: true);
        Assert.Equal(new SegmentToSend(SegmentKind.Retransmit, S(2000), 1000), seg);  // rule 3: 2000 is not lost
    }

    [Fact]
    public void NextSeg_rule_4_rescues_the_highest_unsacked_segment_once()
    {
        var sb = With((1000, 2000), (3000, 4000), (5000, 6000));
        sb.SetHighRxt(S(6000));                                      // every hole below the top SACK retransmitted
        sb.SetRescueRxt(S(1000));
        // HighACK has passed RescueRxt: the rescue is allowed.
        var una = S(1500);
        sb.AdvanceTo(una);
        var seg = sb.NextSeg(una, Max, Mss, newDataAllowed: false, Max, inRecovery: true);
        Assert.Equal(new SegmentToSend(SegmentKind.Rescue, S(9000), 1000), seg);
        Assert.Equal(Max, sb.RescueRxtEnd);                          // RescueRxt = RecoveryPoint
        Assert.Equal(S(6000), sb.HighRxtEnd);                        // HighRxt untouched
        Assert.Equal(SegmentKind.None, sb.NextSeg(una, Max, Mss, false, Max, true).Kind);
    }

    [Fact]
    public void NextSeg_rule_4_includes_the_highest_unsacked_octet_below_a_top_sack()
    {
        var sb = With((2000, 3000), (9500, 10_000));
        sb.SetHighRxt(S(9500));
        var seg = sb.NextSeg(Una, Max, Mss, newDataAllowed: false, Max, inRecovery: true);
        Assert.Equal(new SegmentToSend(SegmentKind.Rescue, S(8500), 1000), seg);
        Assert.Equal(SegmentKind.None, new SackScoreboard().NextSeg(Una, Max, Mss, false, Max, inRecovery: false).Kind);
    }
}
