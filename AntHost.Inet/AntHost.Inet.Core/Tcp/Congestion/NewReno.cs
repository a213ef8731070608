using AntHost.Inet.Core.Time;

namespace AntHost.Inet.Core.Tcp.Congestion;

/// <summary>
/// RFC 5681's window arithmetic, the way NewReno (RFC 6582) runs it: slow start, congestion
/// avoidance by byte counting, ssthresh = max(FlightSize / 2, 2 * SMSS) on loss, and the
/// loss window of one segment after a timeout.
/// </summary>
/// <remarks>
/// Fast recovery's window inflation (cwnd + 3 * SMSS, + SMSS per further duplicate ACK,
/// deflation on partial ACKs) is kept by <see cref="Recovery.LossRecovery"/> as a separate
/// term on top of <see cref="Cwnd"/>, so that both algorithms share it and SACK-based
/// recovery (which uses pipe instead of inflation) can leave it out.
/// </remarks>
public sealed class NewRenoCongestionControl : ICongestionControl
{
    private int _cwnd;
    private int _ssthresh = int.MaxValue;
    private int _smss;
    private long _bytesAckedInCa;
    private readonly int _initialWindowSegments;
    private int _undoCwnd;
    private int _undoSsthresh = int.MaxValue;

    /// <param name="smss">Sender MSS in bytes.</param>
    /// <param name="initialWindowSegments">Initial window in segments (RFC 6928: 10); 0 or less for RFC 5681 3.1's IW.</param>
    public NewRenoCongestionControl(int smss, int initialWindowSegments = 10)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(smss, 1);
        _smss = smss;
        _initialWindowSegments = initialWindowSegments;
        _cwnd = InitialWindow(smss, initialWindowSegments);
    }

    public string Name => "newreno";

    public int Smss => _smss;

    public int Cwnd => _cwnd;

    public int Ssthresh => _ssthresh;

    public bool InSlowStart => _cwnd < _ssthresh;

    /// <summary>
    /// The initial window: RFC 5681 3.1 (4, 3 or 2 segments by SMSS) when
    /// <paramref name="segments"/> is 0 or less, otherwise RFC 6928's rule generalised to N
    /// segments: min(N * SMSS, max(2 * SMSS, N * 1460)).
    /// </summary>
    public static int InitialWindow(int smss, int segments)
    {
        if (segments <= 0)
        {
            // RFC 5681 3.1.
            if (smss > 2190) return 2 * smss;
            if (smss > 1095) return 3 * smss;
            return 4 * smss;
        }
        long n = segments;
        return (int)Math.Min(n * smss, Math.Max(2L * smss, n * 1460));
    }

    public void OnAck(int bytesAcked, TimeSpan rtt, Instant now)
    {
        if (bytesAcked <= 0) return;
        if (_cwnd < _ssthresh)
        {
            // RFC 5681 3.1 eq. 2: "cwnd += min (N, SMSS)".
            _cwnd = (int)Math.Min(int.MaxValue / 2, (long)_cwnd + Math.Min(bytesAcked, _smss));
            _bytesAckedInCa = 0;
            return;
        }
        // RFC 5681 3.1, byte counting: "cwnd incremented by up to SMSS bytes when the number
        // of bytes acknowledged reaches cwnd" (the recommended alternative to eq. 3).
        _bytesAckedInCa += bytesAcked;
        if (_bytesAckedInCa >= _cwnd)
        {
            _bytesAckedInCa -= _cwnd;
            _cwnd = (int)Math.Min(int.MaxValue / 2, (long)_cwnd + _smss);
        }
    }

    public void OnCongestionEvent(int flightSize, Instant now)
    {
        // RFC 5681 3.2 step 2 / RFC 6582 3.2 step 2: ssthresh = max (FlightSize / 2, 2*SMSS).
        _ssthresh = Math.Max(flightSize / 2, 2 * _smss);
        // RFC 6675 5 (4.2): cwnd = ssthresh; the RFC 5681 "+ 3*SMSS" is LossRecovery's inflation.
        _cwnd = _ssthresh;
        _bytesAckedInCa = 0;
    }

    public void OnRecoveryEnd(int flightSize, Instant now)
    {
        // RFC 6582 3.2 step 3 option 1: "Set cwnd to either (1) min (ssthresh, max(FlightSize, SMSS) + SMSS)
        // or (2) ssthresh" - option 1 guards against a burst when little is left in flight.
        _cwnd = Math.Min(_ssthresh, Math.Max(flightSize, _smss) + _smss);
        _bytesAckedInCa = 0;
    }

    public void OnRetransmitTimeout(int flightSize, Instant now)
    {
        // RFC 5681 3.1 eq. 4 and "cwnd MUST be set to no more than the loss window, LW, which equals 1 full-sized segment".
        _ssthresh = Math.Max(flightSize / 2, 2 * _smss);
        _cwnd = _smss;
        _bytesAckedInCa = 0;
    }

    public void OnRestartAfterIdle(Instant now)
    {
        // RFC 5681 4.1: "cwnd = min (RW, cwnd)" with RW = min (IW, cwnd).
        _cwnd = Math.Min(_cwnd, InitialWindow(_smss, _initialWindowSegments));
    }

    public void SetMss(int smss)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(smss, 1);
        if (smss == _smss) return;
        long segments = Math.Max(1, (_cwnd + _smss - 1) / _smss);
        _cwnd = (int)Math.Min(int.MaxValue / 2, segments * smss);
        if (_ssthresh != int.MaxValue) _ssthresh = Math.Max(2 * smss, (int)((long)_ssthresh * smss / _smss));
        _smss = smss;
    }

    public void SaveForUndo()
    {
        _undoCwnd = _cwnd;
        _undoSsthresh = _ssthresh;
    }

    public void Undo()
    {
        // As Linux's tcp_undo_cwnd_reduction: cwnd and ssthresh no lower than before the cut.
        _cwnd = Math.Max(_cwnd, _undoCwnd);
        _ssthresh = Math.Max(_ssthresh, _undoSsthresh);
        _bytesAckedInCa = 0;
    }
}
