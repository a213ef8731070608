using AntHost.Inet.Core.Tcp.Congestion;
using AntHost.Inet.Core.Time;

namespace AntHost.Inet.Core.Tests.Tcp.Algorithms;

/// <summary>RFC 9438's arithmetic: constants, W_max and K, W_cubic, W_est, fast convergence, timeouts.</summary>
public class CubicTests
{
    private const int Mss = 1000;
    private static readonly Instant T0 = Instant.FromMilliseconds(10_000);

    /// <summary>A CUBIC sender grown by slow start to <paramref name="segments"/> segments.</summary>
    private static CubicCongestionControl At(int segments)
    {
        var cc = new CubicCongestionControl(Mss, 1);
        while (cc.Cwnd < segments * Mss) cc.OnAck(Mss, TimeSpan.Zero, T0);
        Assert.Equal(segments * Mss, cc.Cwnd);
        return cc;
    }

    [Fact]
    public void Constants_are_rfc9438s()
    {
        Assert.Equal(0.4, CubicCongestionControl.C);
        Assert.Equal(0.7, CubicCongestionControl.BetaCubic);
        Assert.Equal(3 * 0.3 / 1.7, CubicCongestionControl.AlphaCubic, 12);
        Assert.Equal(0.5294, CubicCongestionControl.AlphaCubic, 4);
    }

    [Fact]
    public void Congestion_event_multiplies_by_beta_and_remembers_w_max()
    {
        var cc = At(100);
        cc.OnCongestionEvent(100 * Mss, T0);
        Assert.Equal(70 * Mss, cc.Ssthresh);   // ssthresh = cwnd * beta_cubic
        Assert.Equal(70 * Mss, cc.Cwnd);
        Assert.Equal(100, cc.WMax);
    }

    [Fact]
    public void K_is_the_cube_root_of_w_max_minus_cwnd_epoch_over_c_and_w_cubic_of_k_is_w_max()
    {
        var cc = At(100);
        cc.OnCongestionEvent(100 * Mss, T0);
        cc.OnRecoveryEnd(100 * Mss, T0);       // cwnd = ssthresh = 70
        cc.OnAck(Mss, TimeSpan.FromMilliseconds(100), T0);  // the first ACK in congestion avoidance starts the epoch
        Assert.Equal(Math.Cbrt((100 - 70) / 0.4), cc.K, 9);  // RFC 9438 eq. 2: cbrt(75) = 4.2172 s
        Assert.Equal(4.2172, cc.K, 4);
        Assert.Equal(100, cc.WCubic(cc.K), 9);               // the plateau is at W_max
        Assert.Equal(70, cc.WCubic(0), 9);                   // and it starts at cwnd_epoch
        Assert.Equal(0.4 * Math.Pow(10 - cc.K, 3) + 100, cc.WCubic(10), 9);
    }

    [Fact]
    public void Fast_convergence_lowers_w_max_when_the_window_did_not_regain_it()
    {
        var cc = At(100);
        cc.OnCongestionEvent(100 * Mss, T0);   // W_max = 100, cwnd = 70
        cc.OnRecoveryEnd(100 * Mss, T0);
        cc.OnCongestionEvent(70 * Mss, T0);    // 70 < W_max: W_max = 70 * (1 + 0.7) / 2 = 59.5
        Assert.Equal(59.5, cc.WMax, 9);
        Assert.Equal(49 * Mss, cc.Cwnd);       // 70 * 0.7

        var slow = new CubicCongestionControl(Mss, 1, fastConvergence: false);
        while (slow.Cwnd < 100 * Mss) slow.OnAck(Mss, TimeSpan.Zero, T0);
        slow.OnCongestionEvent(100 * Mss, T0);
        slow.OnRecoveryEnd(100 * Mss, T0);
        slow.OnCongestionEvent(70 * Mss, T0);
        Assert.Equal(70, slow.WMax, 9);        // without it, W_max = cwnd
    }

    [Fact]
    public void Concave_region_grows_by_target_minus_cwnd_over_cwnd_per_segment()
    {
        var cc = At(100);
        cc.OnCongestionEvent(100 * Mss, T0);
        cc.OnRecoveryEnd(100 * Mss, T0);
        var rtt = TimeSpan.FromMilliseconds(100);
        cc.OnAck(Mss, rtt, T0);                                  // epoch starts at T0
        double before = cc.CwndSegments;
        var t = T0 + TimeSpan.FromSeconds(1);
        double expectedTarget = Math.Min(1.5 * before, Math.Max(before, 0.4 * Math.Pow(1.1 - cc.K, 3) + 100));
        double westBefore = cc.WEst;
        cc.OnAck(Mss, rtt, t);
        double west = westBefore + CubicCongestionControl.AlphaCubic / before;
        Assert.True(cc.WCubic(1.0) >= west, "this point is outside the Reno-friendly region");
        Assert.Equal(before + (expectedTarget - before) / before, cc.CwndSegments, 9);
        Assert.True(cc.CwndSegments < 100);                      // concave: still below W_max
    }

    [Fact]
    public void Target_is_clamped_to_one_and_a_half_cwnd()
    {
        var cc = At(20);
        cc.OnCongestionEvent(20 * Mss, T0);
        cc.OnRecoveryEnd(20 * Mss, T0);
        cc.OnAck(Mss, TimeSpan.Zero, T0);
        double before = cc.CwndSegments;
        // 100 s into the epoch W_cubic is huge; the target is capped at 1.5 * cwnd.
        cc.OnAck(Mss, TimeSpan.Zero, T0 + TimeSpan.FromSeconds(100));
        Assert.Equal(before + (1.5 * before - before) / before, cc.CwndSegments, 9);
    }

    [Fact]
    public void Reno_friendly_region_sets_cwnd_to_w_est()
    {
        var cc = At(10);
        cc.OnCongestionEvent(10 * Mss, T0);    // W_max = 10, cwnd = 7, K = cbrt(7.5)
        cc.OnRecoveryEnd(10 * Mss, T0);
        cc.OnAck(Mss, TimeSpan.Zero, T0);      // epoch start: W_est = 7 + alpha / 7
        double expected = 7 + CubicCongestionControl.AlphaCubic / 7;
        Assert.Equal(expected, cc.WEst, 9);
        Assert.True(cc.WCubic(0) < cc.WEst);   // W_cubic(0) = 7 < W_est
        Assert.Equal(expected, cc.CwndSegments, 9);
        cc.OnAck(Mss, TimeSpan.Zero, T0);
        expected += CubicCongestionControl.AlphaCubic / expected;
        Assert.Equal(expected, cc.CwndSegments, 9);
    }

    [Fact]
    public void Alpha_becomes_one_once_w_est_reaches_cwnd_prior()
    {
        var cc = At(4);
        cc.OnCongestionEvent(4 * Mss, T0);     // cwnd_prior = 4, cwnd = 2.8
        cc.OnRecoveryEnd(4 * Mss, T0);
        // Grow W_est past 4 at t = 0 (W_cubic stays at 2.8 there: Reno-friendly region).
        while (cc.WEst < 4) cc.OnAck(Mss, TimeSpan.Zero, T0);
        double w = cc.WEst;
        cc.OnAck(Mss, TimeSpan.Zero, T0);
        Assert.Equal(w + 1.0 / w, cc.WEst, 9);
    }

    [Fact]
    public void Timeout_sets_one_segment_and_ssthresh_beta_cwnd_and_the_next_stage_has_k_zero()
    {
        var cc = At(40);
        cc.OnRetransmitTimeout(40 * Mss, T0);
        Assert.Equal(Mss, cc.Cwnd);
        Assert.Equal(28 * Mss, cc.Ssthresh);
        while (cc.InSlowStart) cc.OnAck(Mss, TimeSpan.Zero, T0);
        double atStart = cc.CwndSegments;
        cc.OnAck(Mss, TimeSpan.Zero, T0 + TimeSpan.FromSeconds(1));
        Assert.Equal(0, cc.K);                  // RFC 9438 4.8
        Assert.Equal(atStart, cc.WMax, 9);      // W_max = cwnd at the start of the stage
    }

    [Fact]
    public void Ssthresh_never_drops_below_two_segments()
    {
        var cc = new CubicCongestionControl(Mss, 2);
        cc.OnCongestionEvent(2 * Mss, T0);
        Assert.Equal(2 * Mss, cc.Ssthresh);
        Assert.Equal(2 * Mss, cc.Cwnd);
    }
}
