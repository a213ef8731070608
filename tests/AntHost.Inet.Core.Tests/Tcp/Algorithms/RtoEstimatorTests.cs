using AntHost.Inet.Core.Tcp;
using AntHost.Inet.Core.Tcp.Recovery;
using AntHost.Inet.Core.Time;

namespace AntHost.Inet.Core.Tests.Tcp.Algorithms;

/// <summary>RFC 6298: SRTT, RTTVAR, RTO, bounds, granularity, backoff and Karn's rule.</summary>
public class RtoEstimatorTests
{
    private static TimeSpan Ms(double ms) => TimeSpan.FromMicroseconds(ms * 1000);

    private static RtoEstimator Make(double minMs = 200, double maxMs = 60_000, double gMs = 1, double initialMs = 1000) =>
        new(Ms(initialMs), Ms(minMs), Ms(maxMs), Ms(gMs));

    [Fact]
    public void Initial_rto_is_one_second()
    {
        var rto = new RtoEstimator();
        Assert.Equal(TimeSpan.FromSeconds(1), rto.Rto);
        Assert.False(rto.HasSample);
    }

    [Fact]
    public void First_sample_sets_srtt_r_and_rttvar_half_r()
    {
        var rto = Make();
        rto.AddSample(Ms(100));
        Assert.Equal(Ms(100), rto.SmoothedRtt);
        Assert.Equal(Ms(50), rto.RttVariance);
        Assert.Equal(Ms(300), rto.Rto);          // 100 + max(1, 4 * 50)
    }

    [Fact]
    public void Later_samples_update_rttvar_with_the_old_srtt_then_srtt()
    {
        var rto = Make();
        rto.AddSample(Ms(100));
        rto.AddSample(Ms(200));
        // RTTVAR = 3/4 * 50 + 1/4 * |100 - 200| = 62.5; SRTT = 7/8 * 100 + 1/8 * 200 = 112.5
        Assert.Equal(Ms(62.5), rto.RttVariance);
        Assert.Equal(Ms(112.5), rto.SmoothedRtt);
        Assert.Equal(Ms(112.5 + 250), rto.Rto);
    }

    [Fact]
    public void The_minimum_rounds_up_and_defaults_to_one_second()
    {
        var rfc = new RtoEstimator();
        rfc.AddSample(Ms(10));
        Assert.Equal(TimeSpan.FromSeconds(1), rfc.Rto);   // RFC 6298 2.4

        var linux = Make(minMs: 200);
        linux.AddSample(Ms(10));
        Assert.Equal(Ms(200), linux.Rto);
    }

    [Fact]
    public void Clock_granularity_bounds_the_variance_term()
    {
        var rto = Make(minMs: 1, gMs: 100);
        for (int i = 0; i < 200; i++) rto.AddSample(Ms(10));  // RTTVAR decays to ~0
        Assert.True(rto.RttVariance < Ms(1));
        Assert.Equal(Ms(110), rto.Rto);                         // SRTT + max(G, K * RTTVAR) = 10 + 100
    }

    [Fact]
    public void Backoff_doubles_up_to_the_maximum_and_a_sample_collapses_it()
    {
        var rto = Make(maxMs: 5000);
        Assert.Equal(Ms(1000), rto.Rto);
        rto.Backoff();
        Assert.Equal(Ms(2000), rto.Rto);
        rto.Backoff();
        Assert.Equal(Ms(4000), rto.Rto);
        rto.Backoff();
        Assert.Equal(Ms(5000), rto.Rto);
        rto.Backoff();
        Assert.Equal(Ms(5000), rto.Rto);
        Assert.Equal(4, rto.Backoffs);
        rto.AddSample(Ms(100));
        Assert.Equal(Ms(300), rto.Rto);
        Assert.Equal(0, rto.Backoffs);
    }

    [Fact]
    public void Timing_a_segment_takes_a_sample_when_the_ack_covers_it()
    {
        var rto = Make();
        var t0 = Instant.FromMilliseconds(5000);
        rto.StartTiming(new SeqNumber(2000), t0);
        rto.StartTiming(new SeqNumber(3000), t0 + Ms(10));   // one at a time: ignored
        Assert.False(rto.OnAck(new SeqNumber(1500), t0 + Ms(40)));
        Assert.True(rto.OnAck(new SeqNumber(2000), t0 + Ms(80)));
        Assert.Equal(Ms(80), rto.SmoothedRtt);
        Assert.False(rto.IsTiming);
    }

    [Fact]
    public void Karn_no_sample_from_a_retransmitted_segment()
    {
        var rto = Make();
        var t0 = Instant.FromMilliseconds(5000);
        rto.StartTiming(new SeqNumber(2000), t0);
        rto.OnRetransmit();
        Assert.False(rto.OnAck(new SeqNumber(2000), t0 + Ms(900)));
        Assert.False(rto.HasSample);

        rto.StartTiming(new SeqNumber(3000), t0);
        rto.Backoff();                                          // a timeout retransmits it too
        Assert.False(rto.OnAck(new SeqNumber(3000), t0 + Ms(900)));
        Assert.Equal(Ms(2000), rto.Rto);                        // the backoff stays until a valid sample
        rto.ResetBackoff();
        Assert.Equal(Ms(2000), rto.Rto);
    }

    [Fact]
    public void Handshake_timeout_reinitialises_to_three_seconds()
    {
        var rto = Make();
        rto.Backoff();
        rto.OnHandshakeCompletedAfterTimeout();
        Assert.Equal(TimeSpan.FromSeconds(3), rto.Rto);
    }

    [Fact]
    public void Bad_bounds_are_refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => Make(minMs: 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => Make(minMs: 2000, maxMs: 1000));
    }
}
