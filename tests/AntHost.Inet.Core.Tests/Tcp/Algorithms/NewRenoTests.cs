using AntHost.Inet.Core.Tcp.Congestion;
using AntHost.Inet.Core.Time;

namespace AntHost.Inet.Core.Tests.Tcp.Algorithms;

/// <summary>RFC 5681's window arithmetic as NewReno runs it.</summary>
public class NewRenoTests
{
    private static readonly Instant T0 = Instant.FromMilliseconds(1000);

    [Theory]
    [InlineData(536, 0, 2144)]   // RFC 5681 3.1: SMSS <= 1095 -> 4 * SMSS
    [InlineData(1460, 0, 4380)]  // 1095 < SMSS <= 2190 -> 3 * SMSS
    [InlineData(4000, 0, 8000)]  // SMSS > 2190 -> 2 * SMSS
    [InlineData(1460, 10, 14600)] // RFC 6928: min(10 * MSS, max(2 * MSS, 14600))
    [InlineData(536, 10, 5360)]
    [InlineData(9000, 10, 18000)]
    public void Initial_window_follows_rfc5681_or_rfc6928(int smss, int segments, int expected)
    {
        Assert.Equal(expected, NewRenoCongestionControl.InitialWindow(smss, segments));
        Assert.Equal(expected, new NewRenoCongestionControl(smss, segments).Cwnd);
    }

    [Fact]
    public void Ssthresh_starts_arbitrarily_high_and_slow_start_adds_min_of_acked_and_smss()
    {
        var cc = new NewRenoCongestionControl(1000, 0);
        Assert.Equal(int.MaxValue, cc.Ssthresh);
        Assert.True(cc.InSlowStart);
        int w = cc.Cwnd;
        cc.OnAck(2000, TimeSpan.Zero, T0);   // a delayed ACK of two segments: + SMSS only (RFC 5681 eq. 2)
        Assert.Equal(w + 1000, cc.Cwnd);
        cc.OnAck(300, TimeSpan.Zero, T0);    // a small ACK: + N
        Assert.Equal(w + 1300, cc.Cwnd);
    }

    [Fact]
    public void Congestion_avoidance_adds_one_smss_per_cwnd_of_acked_bytes()
    {
        var cc = new NewRenoCongestionControl(1000, 0);
        cc.OnCongestionEvent(20_000, T0);          // ssthresh = cwnd = 10,000
        Assert.Equal(10_000, cc.Ssthresh);
        Assert.Equal(10_000, cc.Cwnd);
        Assert.False(cc.InSlowStart);
        for (int i = 0; i < 9; i++) cc.OnAck(1000, TimeSpan.Zero, T0);
        Assert.Equal(10_000, cc.Cwnd);             // 9,000 bytes acked < cwnd
        cc.OnAck(1000, TimeSpan.Zero, T0);
        Assert.Equal(11_000, cc.Cwnd);             // bytes_acked reached cwnd
        for (int i = 0; i < 10; i++) cc.OnAck(1000, TimeSpan.Zero, T0);
        Assert.Equal(11_000, cc.Cwnd);             // now 11,000 are needed
        cc.OnAck(1000, TimeSpan.Zero, T0);
        Assert.Equal(12_000, cc.Cwnd);
    }

    [Theory]
    [InlineData(20_000, 10_000)]
    [InlineData(3_000, 2_000)]   // never below 2 * SMSS
    public void Loss_sets_ssthresh_to_half_the_flight_size_at_least_two_segments(int flight, int ssthresh)
    {
        var cc = new NewRenoCongestionControl(1000, 10);
        cc.OnCongestionEvent(flight, T0);
        Assert.Equal(ssthresh, cc.Ssthresh);
        Assert.Equal(ssthresh, cc.Cwnd);
    }

    [Fact]
    public void Timeout_sets_the_loss_window_of_one_segment_and_halves_the_flight()
    {
        var cc = new NewRenoCongestionControl(1000, 10);
        cc.OnRetransmitTimeout(12_000, T0);
        Assert.Equal(1000, cc.Cwnd);
        Assert.Equal(6000, cc.Ssthresh);
        Assert.True(cc.InSlowStart);
    }

    [Theory]
    [InlineData(20_000, 10_000)]  // plenty in flight: ssthresh
    [InlineData(3_000, 4_000)]    // little in flight: FlightSize + SMSS
    [InlineData(0, 2_000)]        // nothing in flight: max(FlightSize, SMSS) + SMSS
    public void Recovery_end_sets_cwnd_per_rfc6582_option_1(int flightAfter, int cwnd)
    {
        var cc = new NewRenoCongestionControl(1000, 10);
        cc.OnCongestionEvent(20_000, T0);
        cc.OnRecoveryEnd(flightAfter, T0);
        Assert.Equal(cwnd, cc.Cwnd);
    }

    [Fact]
    public void Restart_after_idle_limits_cwnd_to_the_initial_window()
    {
        var cc = new NewRenoCongestionControl(1000, 4);
        for (int i = 0; i < 20; i++) cc.OnAck(1000, TimeSpan.Zero, T0);
        Assert.Equal(24_000, cc.Cwnd);
        cc.OnRestartAfterIdle(T0);
        Assert.Equal(4000, cc.Cwnd);
    }

    [Fact]
    public void Mss_change_keeps_the_window_in_segments()
    {
        var cc = new NewRenoCongestionControl(1460, 10);
        cc.SetMss(1000);
        Assert.Equal(10_000, cc.Cwnd);
        Assert.Equal(1000, cc.Smss);
    }
}
