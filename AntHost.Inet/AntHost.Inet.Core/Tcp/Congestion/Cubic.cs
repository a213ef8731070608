using AntHost.Inet.Core.Time;

namespace AntHost.Inet.Core.Tcp.Congestion;

/// <summary>
/// CUBIC (RFC 9438): after a loss, cwnd follows W_cubic(t) = C * (t - K)^3 + W_max, a cubic
/// in the time since the congestion avoidance stage began, with a Reno-friendly estimate
/// W_est below it; slow start is RFC 5681's.
/// </summary>
/// <remarks>
/// The RFC counts windows in segments and time in seconds; so does this class internally
/// (doubles), and it rounds to bytes for <see cref="Cwnd"/>. Per-ACK increments are scaled
/// by the segments the ACK covers, so that delayed ACKs (one ACK per two segments) grow the
/// window as fast as one ACK per segment would. HyStart++ (RFC 9406) and the spurious
/// congestion event undo of RFC 9438 4.9 are not implemented.
/// </remarks>
public sealed class CubicCongestionControl : ICongestionControl
{
    /// <summary>RFC 9438 5.1: C = 0.4.</summary>
    public const double C = 0.4;

    /// <summary>RFC 9438 5.1: beta_cubic = 0.7.</summary>
    public const double BetaCubic = 0.7;

    /// <summary>RFC 9438 4.3: alpha_cubic = 3 * (1 - beta_cubic) / (1 + beta_cubic).</summary>
    public const double AlphaCubic = 3.0 * (1.0 - BetaCubic) / (1.0 + BetaCubic);

    private readonly int _initialWindowSegments;
    private readonly bool _fastConvergence;
    private int _smss;

    // All in segments.
    private double _cwnd;
    private double _ssthresh = double.PositiveInfinity;
    private double _wMax;
    private bool _wMaxKnown;
    private double _cwndPrior;
    private double _wEst;
    private double _k;
    private bool _epochStarted;
    private Instant _epochStart;
    private bool _afterTimeout;

    // RFC 9438 4.9: the state before the last reduction.
    private double _undoCwnd;
    private double _undoSsthresh = double.PositiveInfinity;
    private double _undoWMax;
    private bool _undoWMaxKnown;
    private double _undoCwndPrior;

    /// <param name="smss">Sender MSS in bytes.</param>
    /// <param name="initialWindowSegments">Initial window in segments (RFC 6928: 10); 0 or less for RFC 5681 3.1's IW.</param>
    /// <param name="fastConvergence">RFC 9438 4.7 fast convergence (on by default, as the RFC recommends).</param>
    public CubicCongestionControl(int smss, int initialWindowSegments = 10, bool fastConvergence = true)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(smss, 1);
        _smss = smss;
        _initialWindowSegments = initialWindowSegments;
        _fastConvergence = fastConvergence;
        _cwnd = (double)NewRenoCongestionControl.InitialWindow(smss, initialWindowSegments) / smss;
    }

    public string Name => "cubic";

    public int Smss => _smss;

    public int Cwnd => (int)Math.Min(int.MaxValue / 2, Math.Max(_smss, Math.Round(_cwnd * _smss)));

    public int Ssthresh => double.IsPositiveInfinity(_ssthresh) ? int.MaxValue : (int)Math.Min(int.MaxValue / 2, Math.Round(_ssthresh * _smss));

    public bool InSlowStart => _cwnd < _ssthresh;

    /// <summary>W_max in segments: the window just before the last reduction (after fast convergence), or NaN before any.</summary>
    public double WMax => _wMaxKnown ? _wMax : double.NaN;

    /// <summary>K in seconds for the current congestion avoidance stage (RFC 9438 eq. 2).</summary>
    public double K => _k;

    /// <summary>The Reno-friendly estimate W_est in segments (RFC 9438 4.3).</summary>
    public double WEst => _wEst;

    /// <summary>The window in segments, unrounded.</summary>
    public double CwndSegments => _cwnd;

    /// <summary>RFC 9438 eq. 1: W_cubic(t) = C * (t - K)^3 + W_max, in segments, for <paramref name="t"/> seconds into the stage.</summary>
    public double WCubic(double t)
    {
        double d = t - _k;
        return C * d * d * d + _wMax;
    }

    public void OnAck(int bytesAcked, TimeSpan rtt, Instant now)
    {
        if (bytesAcked <= 0) return;
        double segmentsAcked = (double)bytesAcked / _smss;
        if (_cwnd < _ssthresh)
        {
            // RFC 9438 4.10: slow start as RFC 5681 3.1 eq. 2, cwnd += min(N, SMSS).
            _cwnd += Math.Min(segmentsAcked, 1.0);
            return;
        }

        if (!_epochStarted)
        {
            // A new congestion avoidance stage begins (RFC 9438 4.2).
            _epochStarted = true;
            _epochStart = now;
            if (!_wMaxKnown || _afterTimeout || _cwnd >= _wMax)
            {
                // RFC 9438 4.8: after a timeout (and, likewise, before any loss or above the
                // old maximum) "K is set to 0, and W_max is set to the congestion window size
                // at the beginning of the current congestion avoidance stage".
                _wMax = _cwnd;
                _wMaxKnown = true;
                _k = 0;
            }
            else
            {
                // RFC 9438 eq. 2: K = cubic_root((W_max - cwnd_epoch) / C).
                _k = Math.Cbrt((_wMax - _cwnd) / C);
            }
            _afterTimeout = false;
            _wEst = _cwnd;
        }

        double t = (now - _epochStart).TotalSeconds;
        double rttSeconds = Math.Max(0, rtt.TotalSeconds);

        // RFC 9438 4.3: W_est += alpha_cubic * segments_acked / cwnd; alpha becomes 1 once
        // W_est has reached cwnd_prior.
        double alpha = _wEst >= _cwndPrior ? 1.0 : AlphaCubic;
        _wEst += alpha * segmentsAcked / _cwnd;

        double wCubicNow = WCubic(t);
        if (wCubicNow < _wEst)
        {
            // RFC 9438 4.3: the Reno-friendly region, "cwnd SHOULD be set to W_est".
            _cwnd = _wEst;
            return;
        }

        // RFC 9438 4.4 / 4.5: target = W_cubic(t + RTT), clamped to [cwnd, 1.5 * cwnd];
        // cwnd += (target - cwnd) / cwnd for each segment acknowledged.
        double target = WCubic(t + rttSeconds);
        if (target < _cwnd) target = _cwnd;
        else if (target > 1.5 * _cwnd) target = 1.5 * _cwnd;
        _cwnd += (target - _cwnd) / _cwnd * segmentsAcked;
    }

    public void OnCongestionEvent(int flightSize, Instant now) => Reduce(timeout: false);

    public void OnRecoveryEnd(int flightSize, Instant now)
    {
        // RFC 6582 3.2 step 3 (the fast recovery CUBIC runs with, RFC 9438 4.6):
        // cwnd = min(ssthresh, max(FlightSize, SMSS) + SMSS).
        double flight = (double)flightSize / _smss;
        _cwnd = Math.Min(_ssthresh, Math.Max(flight, 1.0) + 1.0);
        _epochStarted = false;
    }

    public void OnRetransmitTimeout(int flightSize, Instant now)
    {
        Reduce(timeout: true);
        // RFC 9438 4.8: "CUBIC follows Reno to reduce cwnd [RFC5681]" - the loss window of one segment.
        _cwnd = 1.0;
    }

    public void OnRestartAfterIdle(Instant now)
    {
        // RFC 5681 4.1: cwnd = min(RW, cwnd); the cubic epoch restarts with the next ACK.
        double rw = (double)NewRenoCongestionControl.InitialWindow(_smss, _initialWindowSegments) / _smss;
        if (_cwnd > rw) _cwnd = rw;
        _epochStarted = false;
    }

    public void SetMss(int smss)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(smss, 1);
        // Windows are kept in segments, so they keep their size in segments.
        _smss = smss;
    }

    private void Reduce(bool timeout)
    {
        // RFC 9438 4.7, fast convergence: "if (cwnd < W_max AND fast_convergence_enabled)
        // W_max = cwnd * (1 + beta_cubic) / 2; else W_max = cwnd".
        if (_fastConvergence && _wMaxKnown && _cwnd < _wMax) _wMax = _cwnd * (1.0 + BetaCubic) / 2.0;
        else _wMax = _cwnd;
        _wMaxKnown = true;

        // RFC 9438 4.6: "ssthresh = cwnd * beta_cubic; cwnd_prior = cwnd; cwnd = max(ssthresh, 2)".
        _cwndPrior = _cwnd;
        _ssthresh = Math.Max(_cwnd * BetaCubic, 2.0);
        _cwnd = _ssthresh;
        _epochStarted = false;
        _afterTimeout = timeout;
    }

    public void SaveForUndo()
    {
        _undoCwnd = _cwnd;
        _undoSsthresh = _ssthresh;
        _undoWMax = _wMax;
        _undoWMaxKnown = _wMaxKnown;
        _undoCwndPrior = _cwndPrior;
    }

    public void Undo()
    {
        // RFC 9438 4.9: "cwnd = max(cwnd, cwnd_prev); ssthresh = max(ssthresh, ssthresh_prev);
        // cwnd_prior = cwnd_prior_prev; W_max = W_max_prev; K = K_prev; epoch_start = epoch_start_prev"
        // (the epoch restarts with the next ACK, and K is recomputed there).
        _cwnd = Math.Max(_cwnd, _undoCwnd);
        _ssthresh = Math.Max(_ssthresh, _undoSsthresh);
        _wMax = _undoWMax;
        _wMaxKnown = _undoWMaxKnown;
        _cwndPrior = _undoCwndPrior;
        _afterTimeout = false;
        _epochStarted = false;
    }
}
