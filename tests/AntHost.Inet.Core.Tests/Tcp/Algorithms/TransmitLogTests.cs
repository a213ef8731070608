using AntHost.Inet.Core.Tcp;
using AntHost.Inet.Core.Tcp.Recovery;

namespace AntHost.Inet.Core.Tests.Tcp.Algorithms;

/// <summary>The per-segment transmission record RACK reads: splits, marks and byte totals.</summary>
public class TransmitLogTests
{
    private static SeqNumber S(uint v) => new(v);

    [Fact]
    public void New_data_appends_and_a_retransmission_splits_the_record_it_covers_part_of()
    {
        var log = new TransmitLog(4);
        log.OnSent(S(1000), S(2000), 10);
        log.OnSent(S(2000), S(3000), 10);
        log.OnSent(S(1500), S(2500), 20);           // part of each
        Assert.Equal(4, log.Count);
        Assert.Equal((S(1000), S(1500), 10L, TransmitFlags.None), (log[0].Start, log[0].End, log[0].XmitUs, log[0].Flags));
        Assert.Equal((S(1500), S(2000), 20L, TransmitFlags.Retransmitted), (log[1].Start, log[1].End, log[1].XmitUs, log[1].Flags));
        Assert.Equal((S(2000), S(2500), 20L, TransmitFlags.Retransmitted), (log[2].Start, log[2].End, log[2].XmitUs, log[2].Flags));
        Assert.Equal((S(2500), S(3000), 10L, TransmitFlags.None), (log[3].Start, log[3].End, log[3].XmitUs, log[3].Flags));
        Assert.True(log[1].Order > log[3].Order, "the retransmission is later in transmission order");
    }

    [Fact]
    public void Sacked_and_lost_bytes_follow_the_marks_and_the_cumulative_ack()
    {
        var log = new TransmitLog(2);                // grows past its first capacity
        for (uint i = 0; i < 8; i++) log.OnSent(S(i * 100), S(i * 100 + 100), i);
        log.Cover(S(250), S(450), out int first, out int last);   // splits 200-300 and 400-500
        for (int i = first; i < last; i++) Assert.True(log.MarkSacked(i));
        Assert.Equal(200, log.SackedBytes);
        Assert.False(log.MarkSacked(first));
        log.MarkLost(0);
        log.MarkLost(1);
        Assert.Equal(200, log.LostBytes);
        Assert.Equal(0, log.FirstLost());
        log.OnSent(S(0), S(100), 50);                // retransmitted: no longer counted lost
        Assert.Equal(100, log.LostBytes);
        Assert.Equal(1, log.FirstLost());
        log.AckTo(S(300));                           // the lost record and half the SACKed range go
        Assert.Equal(0, log.LostBytes);
        Assert.Equal(150, log.SackedBytes);
        Assert.Equal(S(300), log[0].Start);
        log.AckTo(S(800));
        Assert.Equal(0, log.Count);
        Assert.Equal(0, log.SackedBytes);
    }

    [Fact]
    public void Sent_after_breaks_ties_of_time_by_transmission_order_then_end_sequence()
    {
        // RFC 8985 5.2 RACK_sent_after: time, then the transmission order, then end_seq.
        Assert.True(Rack.SentAfter(2, 1, S(100), 1, 5, S(200)));
        Assert.True(Rack.SentAfter(1, 6, S(100), 1, 5, S(200)));
        Assert.False(Rack.SentAfter(1, 5, S(200), 1, 5, S(200)));
        Assert.False(Rack.SentAfter(1, 9, S(300), 2, 1, S(100)));
        // The pieces of one offloaded send (same time, same order): the higher went later.
        Assert.True(Rack.SentAfter(1, 5, S(300), 1, 5, S(200)));
        Assert.False(Rack.SentAfter(1, 5, S(200), 1, 5, S(300)));
    }
}
