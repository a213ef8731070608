using AntHost.Inet.Core.Time;

namespace AntHost.Inet.Core.Tcp.Recovery;

/// <summary>
/// The retransmission timeout of RFC 6298: SRTT and RTTVAR from RTT samples, RTO =
/// SRTT + max(G, K * RTTVAR) bounded below and above, doubled on each expiry, and Karn's
/// rule for samples taken by timing a segment.
/// </summary>
/// <remarks>
/// The engine calls, per connection:
/// <list type="bullet">
/// <item><see cref="StartTiming"/> when it sends new data and no segment is being timed
/// (RFC 6298 5 / Karn: one timed segment per RTT), unless timestamps give samples instead;</item>
/// <item><see cref="OnRetransmit"/> whenever it retransmits anything (Karn's rule: the timed
/// segment's sample would be ambiguous, so timing stops);</item>
/// <item><see cref="OnAck"/> for each ACK that advances SND.UNA: takes the sample if the ACK
/// covers the timed segment;</item>
/// <item><see cref="AddSample"/> for an RTT measured another way (RFC 7323 RTTM from TSecr,
/// valid also for retransmitted segments because the echo names the transmission);</item>
/// <item><see cref="Backoff"/> when the retransmission timer expires (RFC 6298 5.5), and
/// <see cref="Rto"/> to arm the timer (5.1, 5.3, 5.6).</item>
/// </list>
/// A new sample after a backoff recomputes the RTO from SRTT and RTTVAR (RFC 6298 5.7's
/// "collapse" of the backoff happens by itself, as the backed-off value is not kept apart).
/// </remarks>
public sealed class RtoEstimator
{
    /// <summary>RFC 6298 2: alpha = 1/8.</summary>
    public const double Alpha = 1.0 / 8;

    /// <summary>RFC 6298 2: beta = 1/4.</summary>
    public const double Beta = 1.0 / 4;

    /// <summary>RFC 6298 2: K = 4.</summary>
    public const int KFactor = 4;

    private readonly long _minUs;
    private readonly long _maxUs;
    private readonly long _granularityUs;
    private readonly long _initialUs;
    private long _srttUs;
    private long _rttvarUs;
    private long _rtoUs;
    private bool _hasSample;
    private long _lastUs;
    private int _backoffs;

    private bool _timing;
    private SeqNumber _timedEnd;
    private Instant _timedAt;

    /// <param name="initialRto">RFC 6298 2.1: 1 s.</param>
    /// <param name="minimumRto">RFC 6298 2.4: 1 s (Linux uses 200 ms).</param>
    /// <param name="maximumRto">RFC 6298 2.5: at least 60 s.</param>
    /// <param name="clockGranularity">G of RFC 6298 2.2/2.3: the granularity of the clock the samples come from (1 ms for timestamps in milliseconds).</param>
    public RtoEstimator(TimeSpan initialRto, TimeSpan minimumRto, TimeSpan maximumRto, TimeSpan clockGranularity)
    {
        if (minimumRto <= TimeSpan.Zero || maximumRto < minimumRto) throw new ArgumentOutOfRangeException(nameof(minimumRto), "need 0 < minimumRto <= maximumRto");
        if (clockGranularity < TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(clockGranularity), "the clock granularity cannot be negative");
        _minUs = Us(minimumRto);
        _maxUs = Us(maximumRto);
        _granularityUs = Us(clockGranularity);
        _initialUs = Math.Clamp(Us(initialRto), _minUs, _maxUs);
        _rtoUs = _initialUs;
    }

    /// <summary>RFC 6298's recommended settings: initial 1 s, minimum 1 s, maximum 60 s, G = 1 ms.</summary>
    public RtoEstimator()
        : this(TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(60), TimeSpan.FromMilliseconds(1))
    {
    }

    /// <summary>The RTO to arm the retransmission timer with, backoff included.</summary>
    public TimeSpan Rto => TimeSpan.FromTicks(_rtoUs * TimeSpan.TicksPerMicrosecond);

    /// <summary>SRTT (zero before the first sample).</summary>
    public TimeSpan SmoothedRtt => TimeSpan.FromTicks(_srttUs * TimeSpan.TicksPerMicrosecond);

    /// <summary>RTTVAR (zero before the first sample).</summary>
    public TimeSpan RttVariance => TimeSpan.FromTicks(_rttvarUs * TimeSpan.TicksPerMicrosecond);

    /// <summary>The latest RTT sample (zero before the first).</summary>
    public TimeSpan LastSample => TimeSpan.FromTicks(_lastUs * TimeSpan.TicksPerMicrosecond);

    /// <summary>True once an RTT sample has been taken.</summary>
    public bool HasSample => _hasSample;

    /// <summary>How many times in a row the timer expired (reset by an ACK of new data: <see cref="ResetBackoff"/>).</summary>
    public int Backoffs => _backoffs;

    /// <summary>True while a segment is being timed.</summary>
    public bool IsTiming => _timing;

    /// <summary>Takes an RTT measurement (RFC 6298 2.2 for the first, 2.3 after).</summary>
    public void AddSample(TimeSpan rtt)
    {
        long r = Math.Max(0, Us(rtt));
        _lastUs = r;
        if (!_hasSample)
        {
            // RFC 6298 2.2: SRTT <- R, RTTVAR <- R/2.
            _srttUs = r;
            _rttvarUs = r / 2;
            _hasSample = true;
        }
        else
        {
            // RFC 6298 2.3: RTTVAR <- (1 - beta) * RTTVAR + beta * |SRTT - R'|, then
            // SRTT <- (1 - alpha) * SRTT + alpha * R' (RTTVAR first, with the old SRTT).
            long delta = Math.Abs(_srttUs - r);
            _rttvarUs = (long)Math.Round((1 - Beta) * _rttvarUs + Beta * delta);
            _srttUs = (long)Math.Round((1 - Alpha) * _srttUs + Alpha * r);
        }
        // RFC 6298 2.2/2.3: RTO <- SRTT + max (G, K*RTTVAR); 2.4 lower bound, 2.5 upper bound.
        long rto = _srttUs + Math.Max(_granularityUs, KFactor * _rttvarUs);
        _rtoUs = Math.Clamp(rto, _minUs, _maxUs);
        _backoffs = 0;
    }

    /// <summary>The retransmission timer expired: RFC 6298 5.5, "RTO <- RTO * 2", up to the maximum.</summary>
    public void Backoff()
    {
        _rtoUs = Math.Min(_maxUs, _rtoUs * 2);
        _backoffs++;
        // Karn: whatever was being timed will be retransmitted.
        _timing = false;
    }

    /// <summary>
    /// An ACK acknowledged new data after timeouts, but no sample was taken (all the acked
    /// data was retransmitted and there are no timestamps): the backoff is kept (Karn's
    /// algorithm keeps the backed-off RTO until a valid sample arrives); only the count is
    /// cleared, for the engine's give-up logic.
    /// </summary>
    public void ResetBackoff() => _backoffs = 0;

    /// <summary>
    /// RFC 6298 5.7: the SYN or SYN-ACK timed out and the connection then completed without an
    /// RTT sample: the RTO "MUST be re-initialized to 3 seconds when data transmission begins"
    /// (when the initial RTO is below 3 s).
    /// </summary>
    public void OnHandshakeCompletedAfterTimeout()
    {
        if (_hasSample) return;
        long three = 3_000_000;
        if (_initialUs < three) _rtoUs = Math.Clamp(three, _minUs, _maxUs);
    }

    /// <summary>Starts timing the segment that ends (exclusive) at <paramref name="end"/>, sent at <paramref name="now"/>, if none is being timed.</summary>
    public void StartTiming(SeqNumber end, Instant now)
    {
        if (_timing) return;
        _timing = true;
        _timedEnd = end;
        _timedAt = now;
    }

    /// <summary>Karn's rule (RFC 6298 3): a retransmission makes the current timing ambiguous, so it is abandoned.</summary>
    public void OnRetransmit() => _timing = false;

    /// <summary>
    /// An ACK advanced SND.UNA to <paramref name="ack"/>: when it covers the timed segment, takes the sample.
    /// Returns true when a sample was taken.
    /// </summary>
    public bool OnAck(SeqNumber ack, Instant now)
    {
        if (!_timing || ack.IsBefore(_timedEnd)) return false;
        _timing = false;
        AddSample(now - _timedAt);
        return true;
    }

    private static long Us(TimeSpan t) => t.Ticks / TimeSpan.TicksPerMicrosecond;
}
