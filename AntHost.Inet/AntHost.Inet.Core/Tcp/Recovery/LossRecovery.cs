using AntHost.Inet.Core.Tcp.Congestion;
using AntHost.Inet.Core.Time;

namespace AntHost.Inet.Core.Tcp.Recovery;

/// <summary>What <see cref="LossRecovery.OnAck"/> asks the engine to do beyond its own ACK processing.</summary>
[Flags]
public enum AckActions : byte
{
    None = 0,
    /// <summary>
    /// Retransmit one segment (up to SMSS) starting at the new SND.UNA now, before anything
    /// else: the fast retransmit on entering recovery (RFC 5681 3.2 step 2, RFC 6675 (4.3)), or
    /// NewReno's retransmission on a partial ACK (RFC 6582 3.2 step 3). Report it with
    /// <see cref="LossRecovery.OnRetransmitted"/>.
    /// </summary>
    RetransmitFirst = 1,
    /// <summary>Re-arm the retransmission timer (RFC 6582 3.2 step 3: on the first partial ACK only, "Impatient" variant).</summary>
    RestartTimer = 2,
    /// <summary>Fast recovery began with this ACK (for counters and traces).</summary>
    EnteredRecovery = 4,
    /// <summary>Fast recovery ended with this ACK.</summary>
    ExitedRecovery = 8,
}

/// <summary>
/// The sender's loss detection and recovery, one per connection: RFC 6675's conservative
/// SACK-based recovery when SACK was negotiated, RFC 5681 fast retransmit with RFC 6582's
/// NewReno fast recovery when it was not, and RFC 3042 limited transmit in both. It decides
/// when to enter and leave recovery, what to retransmit and how much may be sent; it drives
/// the <see cref="ICongestionControl"/> (NewReno or CUBIC) for the window itself.
/// </summary>
/// <remarks>
/// <para>How the engine uses it, per connection (SND.MAX is one past the highest sequence
/// number ever sent, SND.NXT the next to send; they differ only after a retransmission timeout
/// pulled SND.NXT back to SND.UNA):</para>
/// <list type="number">
/// <item>For every acceptable ACK (SND.UNA =&lt; SEG.ACK =&lt; SND.MAX), before advancing SND.UNA:
/// <see cref="AddSackBlock"/> for each SACK block it carries, then <see cref="OnAck"/>, then act on
/// the returned <see cref="AckActions"/>.</item>
/// <item>Whenever it could send (after an ACK, after the app wrote data, after a timer): call
/// <see cref="NextSegment"/> in a loop and send what it says, until it says
/// <see cref="SegmentKind.None"/> or the engine has nothing (Nagle, the peer's window). Report
/// every retransmission, wherever it came from (fast, SACK, rescue, timeout), with
/// <see cref="OnRetransmitted"/>. New data needs no report: the next call passes the new SND.NXT/SND.MAX.</item>
/// <item>When the retransmission timer expires: <see cref="OnRetransmitTimeout"/> (every expiry;
/// the window is cut only on the first of a series).</item>
/// <item>When it sends after being idle longer than an RTO: <see cref="OnIdleRestart"/>.</item>
/// </list>
/// <para>NewReno's window inflation (RFC 5681 3.2 steps 3-4, RFC 6582 3.2 step 3) is kept here
/// as <see cref="Inflation"/>, on top of the algorithm's cwnd; <see cref="Window"/> is the
/// RFC's cwnd during fast recovery. In SACK-based recovery there is no inflation: pipe counts
/// what has left the network instead (RFC 6675).</para>
/// </remarks>
public sealed partial class LossRecovery
{
    private readonly ICongestionControl _cc;
    private readonly SackScoreboard _scoreboard;
    private readonly bool _sack;
    private int _smss;
    private int _dupAcks;
    private bool _inRecovery;
    private SeqNumber _recoverEnd;
    private long _inflation;
    private bool _partialAckSeen;
    private bool _firstRetransmitPending;
    private bool _timeoutSeries;
    private int _blocksThisAck;

    /// <param name="congestion">The window algorithm.</param>
    /// <param name="sackPermitted">True when both sides sent SACK-permitted (RFC 2018).</param>
    /// <param name="iss">The initial send sequence number (RFC 6582: "recover" starts at ISS).</param>
    /// <param name="scoreboardCapacity">Most SACKed ranges remembered.</param>
    public LossRecovery(ICongestionControl congestion, bool sackPermitted, SeqNumber iss, int scoreboardCapacity = 64)
    {
        _cc = congestion ?? throw new ArgumentNullException(nameof(congestion));
        _sack = sackPermitted;
        _smss = congestion.Smss;
        _scoreboard = new SackScoreboard(scoreboardCapacity);
        _recoverEnd = iss + 1;
    }

    public ICongestionControl Congestion => _cc;

    public SackScoreboard Scoreboard => _scoreboard;

    public bool SackEnabled => _sack;

    /// <summary>True during fast recovery (RFC 5681/6582) or SACK loss recovery (RFC 6675).</summary>
    public bool InRecovery => _inRecovery;

    /// <summary>RFC 5681/6675 DupAcks: duplicate ACKs counted outside recovery.</summary>
    public int DupAcks => _dupAcks;

    /// <summary>RFC 6582 "recover" / RFC 6675 RecoveryPoint, plus one.</summary>
    public SeqNumber RecoveryPointEnd => _recoverEnd;

    /// <summary>NewReno fast recovery's inflation of cwnd, in bytes (0 outside it and with SACK).</summary>
    public long Inflation => _inflation;

    /// <summary>The window that limits sending: cwnd, plus the inflation during NewReno fast recovery.</summary>
    public long Window => Math.Max(_smss, _cc.Cwnd + _inflation);

    /// <summary>Records one SACK block of the ACK about to be passed to <see cref="OnAck"/> (RFC 6675 Update()).</summary>
    public void AddSackBlock(SeqNumber left, SeqNumber right, SeqNumber sndUna, SeqNumber sndMax)
    {
        if (!_sack) return;
        _blocksThisAck++;
        _scoreboard.AddBlock(left, right, sndUna, sndMax);
    }

    /// <summary>
    /// Processes an acceptable ACK. <paramref name="isDuplicate"/> is RFC 5681's definition
    /// (outstanding data, no payload, no SYN/FIN, SEG.ACK = SND.UNA, the window unchanged),
    /// which the engine knows; with SACK, RFC 6675's (the ACK SACKed new octets) is used instead,
    /// and RFC 5681's only for an ACK without SACK blocks. <paramref name="rtt"/> is the
    /// current smoothed RTT (zero when none).
    /// </summary>
    public AckActions OnAck(SeqNumber ack, bool isDuplicate, SeqNumber sndUna, SeqNumber sndMax, TimeSpan rtt, Instant now)
    {
        bool newSack = _scoreboard.TakeNewInfo();
        int blocks = _blocksThisAck;
        _blocksThisAck = 0;
        int acked = ack - sndUna;

        if (acked > 0)
        {
            _timeoutSeries = false;
            if (_sack) _scoreboard.AdvanceTo(ack);
            if (_inRecovery)
            {
                if (ack.IsAfterOrEqual(_recoverEnd))
                {
                    // RFC 6582 3.2 step 3 / RFC 6675 (A): a full ACK ends recovery.
                    _inRecovery = false;
                    _inflation = 0;
                    _dupAcks = 0;
                    _cc.OnRecoveryEnd(sndMax - ack, now);
                    _recoverEnd = ack;
                    return AckActions.ExitedRecovery;
                }
                if (_sack) return AckActions.None; // RFC 6675 (B): Update and SetPipe; NextSeg does the rest.

                // RFC 6582 3.2 step 3, partial ACK: "retransmit the first unacknowledged segment ...
                // deflate the congestion window by the amount of new data acknowledged ... If the
                // partial ACK acknowledges at least one SMSS of new data, then add back SMSS bytes".
                _inflation -= acked;
                if (acked >= _smss) _inflation += _smss;
                var actions = AckActions.RetransmitFirst;
                if (!_partialAckSeen)
                {
                    // "For the first partial ACK that arrives during fast recovery, also reset the retransmit timer."
                    _partialAckSeen = true;
                    actions |= AckActions.RestartTimer;
                }
                return actions;
            }
            _dupAcks = 0;
            _cc.OnAck(acked, rtt, now);
            if (ack.IsAfter(_recoverEnd)) _recoverEnd = ack; // keeps "recover" within the window as the sequence space wraps
            return AckActions.None;
        }

        bool duplicate = _sack ? newSack || (blocks == 0 && isDuplicate) : isDuplicate;
        if (!duplicate || !sndUna.IsBefore(sndMax)) return AckActions.None;

        if (_inRecovery)
        {
            // RFC 5681 3.2 step 4: "For each additional duplicate ACK received (after the third),
            // cwnd MUST be incremented by SMSS". With SACK, pipe does this job.
            if (!_sack) _inflation += _smss;
            return AckActions.None;
        }

        _dupAcks++;
        // RFC 6675 (2): or IsLost (HighACK + 1) says three segments arrived above the hole.
        bool lossIndicated = _dupAcks >= SackScoreboard.DupThresh || (_sack && _scoreboard.IsLost(sndUna, _smss));
        // RFC 6582 3.2 step 2 / RFC 6675 5.1: only when the ACK covers more than "recover".
        if (!lossIndicated || !ack.IsAfterOrEqual(_recoverEnd)) return AckActions.None;

        // RFC 6675 (4) / RFC 5681 3.2 step 2: enter recovery.
        _inRecovery = true;
        _recoverEnd = sndMax;                         // (4.1) RecoveryPoint = HighData
        _partialAckSeen = false;
        _firstRetransmitPending = true;
        _cc.OnCongestionEvent(sndMax - sndUna, now);  // (4.2) ssthresh = cwnd = ...
        if (_sack)
        {
            _inflation = 0;
            _scoreboard.SetHighRxt(sndUna);
            _scoreboard.SetRescueRxt(sndUna);
        }
        else
        {
            // RFC 5681 3.2 step 3: "cwnd = ssthresh + 3*SMSS".
            _inflation = 3L * _smss;
        }
        return AckActions.RetransmitFirst | AckActions.EnteredRecovery;
    }

    /// <summary>
    /// What may be sent now. <paramref name="newDataAllowed"/>: there is data at SND.NXT the
    /// engine could send (unsent, or unacknowledged after a timeout) and the peer's window
    /// allows some. The engine sends, then calls again with the updated sequence numbers.
    /// </summary>
    public SegmentToSend NextSegment(SeqNumber sndUna, SeqNumber sndNxt, SeqNumber sndMax, bool newDataAllowed)
    {
        if (_inRecovery && _sack)
        {
            // RFC 6675 (C): send while cwnd - pipe >= 1 SMSS.
            long room = _cc.Cwnd - _scoreboard.SetPipe(sndUna, sndMax, _smss);
            if (room < _smss) return SegmentToSend.None;
            var seg = _scoreboard.NextSeg(sndUna, sndMax, _smss, newDataAllowed && sndNxt == sndMax, _recoverEnd, inRecovery: true);
            if (seg.Kind == SegmentKind.Next) return seg with { Seq = sndNxt, Length = (int)Math.Min(room, int.MaxValue) };
            return seg;
        }
        if (!newDataAllowed) return SegmentToSend.None;
        long window = Window;
        // RFC 3042: on the first two duplicate ACKs, a new segment each, "provided ... the
        // outstanding data ... would remain less than or equal to the congestion window plus 2*SMSS".
        if (!_inRecovery && _dupAcks > 0) window += (long)Math.Min(_dupAcks, 2) * _smss;
        long flight = sndNxt - sndUna;
        long allowed = window - flight;
        if (allowed <= 0) return SegmentToSend.None;
        return new SegmentToSend(SegmentKind.Next, sndNxt, (int)Math.Min(allowed, int.MaxValue));
    }

    /// <summary>
    /// The engine retransmitted [<paramref name="seq"/>, seq + <paramref name="length"/>), for
    /// whatever reason; <paramref name="kind"/> is what <see cref="NextSegment"/> returned for it
    /// (<see cref="SegmentKind.Retransmit"/> for a fast retransmit or a timeout's).
    /// </summary>
    public void OnRetransmitted(SeqNumber seq, int length, SegmentKind kind = SegmentKind.Retransmit)
    {
        if (!_sack || kind == SegmentKind.Rescue || length <= 0) return;
        SeqNumber end = seq + length;
        // RFC 6675 (C.2): HighRxt = the highest sequence number of the retransmitted segment.
        if (!_scoreboard.HighRxtValid || end.IsAfter(_scoreboard.HighRxtEnd)) _scoreboard.SetHighRxt(end);
        if (_firstRetransmitPending)
        {
            // (4.3): "set both HighRxt and RescueRxt to the highest sequence number in the retransmitted segment".
            _firstRetransmitPending = false;
            _scoreboard.SetRescueRxt(end);
        }
    }

    /// <summary>
    /// The retransmission timer expired. On the first expiry of a series, the window collapses
    /// (RFC 5681 3.1 eq. 4; later expiries of the same data must not lower ssthresh again).
    /// Always: recovery ends, RecoveryPoint = HighData and no new recovery begins until it is
    /// acknowledged (RFC 6675 5.1, RFC 6582 3.2 step 1), and the scoreboard is cleared (RFC 2018:
    /// the receiver may have reneged).
    /// </summary>
    public void OnRetransmitTimeout(SeqNumber sndUna, SeqNumber sndMax, Instant now)
    {
        if (!_timeoutSeries)
        {
            _timeoutSeries = true;
            _cc.OnRetransmitTimeout(sndMax - sndUna, now);
        }
        _inRecovery = false;
        _inflation = 0;
        _dupAcks = 0;
        _recoverEnd = sndMax;
        _scoreboard.Clear();
    }

    /// <summary>RFC 5681 4.1: sending resumes after an idle period longer than an RTO.</summary>
    public void OnIdleRestart(Instant now) => _cc.OnRestartAfterIdle(now);

    /// <summary>The SMSS changed (path MTU).</summary>
    public void SetMss(int smss)
    {
        _cc.SetMss(smss);
        _smss = smss;
    }
}
