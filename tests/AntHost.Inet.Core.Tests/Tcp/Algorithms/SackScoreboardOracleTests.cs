using AntHost.Inet.Core.Randomness;
using AntHost.Inet.Core.Tcp;
using AntHost.Inet.Core.Tcp.Recovery;

namespace AntHost.Inet.Core.Tests.Tcp.Algorithms;

/// <summary>
/// The scoreboard's range arithmetic against RFC 6675's definitions taken literally, octet by
/// octet, over a small sequence space, for thousands of random scoreboards (sequence numbers
/// placed across the 2^32 wrap).
/// </summary>
public class SackScoreboardOracleTests
{
    private const int Space = 3000;
    private const int Mss = 100;

    [Fact]
    public void IsLost_SetPipe_and_NextSeg_match_the_per_octet_definitions()
    {
        var r = new SeededRandom(6675);
        for (int round = 0; round < 3000; round++)
        {
            var baseSeq = new SeqNumber(r.NextUInt32());
            var una = baseSeq;
            var max = baseSeq + Space;
            var sb = new SackScoreboard();
            var sacked = new bool[Space];
            int blocks = r.Next(12);
            for (int b = 0; b < blocks; b++)
            {
                int left = r.Next(Space), len = 1 + r.Next(r.Next(2) == 0 ? 50 : 400);
                int right = Math.Min(Space, left + len);
                bool added = sb.AddBlock(baseSeq + left, baseSeq + right, una, max);
                bool anyNew = false;
                for (int i = left; i < right; i++) { anyNew |= !sacked[i]; sacked[i] = true; }
                Assert.Equal(anyNew, added);
            }
            int cut = r.Next(4) == 0 ? r.Next(Space / 2) : 0;        // a cumulative ACK part way
            una = baseSeq + cut;
            sb.AdvanceTo(una);
            int highRxt = r.Next(3) == 0 ? -1 : cut + r.Next(Space - cut);
            if (highRxt >= 0) sb.SetHighRxt(baseSeq + highRxt);

            // The per-octet oracle: for each octet, the SACKed octets and the separate SACKed
            // runs above it (a backward scan, so that each round stays linear).
            var bytesAbove = new int[Space + 1];
            var runsAbove = new int[Space + 1];
            for (int i = Space - 1; i >= 0; i--)
            {
                bytesAbove[i] = bytesAbove[i + 1] + (i + 1 < Space && sacked[i + 1] ? 1 : 0);
                runsAbove[i] = runsAbove[i + 1] + (i + 1 < Space && sacked[i + 1] && !sacked[i] ? 1 : 0);
            }
            bool IsLost(int s) =>
                !sacked[s] && (runsAbove[s] >= SackScoreboard.DupThresh || bytesAbove[s] > (SackScoreboard.DupThresh - 1) * Mss);
            long pipe = 0;
            int firstLost = -1, highestSacked = -1;
            for (int i = cut; i < Space; i++) if (sacked[i]) highestSacked = i;
            int from = highRxt >= 0 ? Math.Max(cut, highRxt) : cut;
            for (int s = cut; s < Space; s++)
            {
                if (sacked[s]) continue;
                bool lost = IsLost(s);
                if (!lost) pipe++;
                if (highRxt >= 0 && s < highRxt) pipe++;
                Assert.Equal(lost, sb.IsLost(baseSeq + s, Mss));
                if (firstLost < 0 && s >= from && s < highestSacked && lost) firstLost = s;
            }
            Assert.Equal(pipe, sb.SetPipe(una, max, Mss));
            int sackedBytes = 0;
            for (int i = cut; i < Space; i++) if (sacked[i]) sackedBytes++;
            Assert.Equal(sackedBytes, sb.SackedBytes);

            var seg = sb.NextSeg(una, max, Mss, newDataAllowed: true, max, inRecovery: true);
            if (firstLost >= 0)
            {
                // Rule 1: the first lost octet above HighRxt, up to SMSS and not into SACKed data.
                int end = firstLost;
                while (end < Space && !sacked[end] && end - firstLost < Mss) end++;
                Assert.Equal(new SegmentToSend(SegmentKind.Retransmit, baseSeq + firstLost, end - firstLost), seg);
            }
            else
            {
                Assert.Equal(SegmentKind.Next, seg.Kind);            // rule 2
            }
        }
    }
}
