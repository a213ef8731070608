using AntHost.Inet.Core.Tcp.Congestion;
using AntHost.Inet.Core.Tcp.Isn;
using AntHost.Inet.Core.Time;

namespace AntHost.Inet.Core.Tcp.Recovery;

/// <summary>How a connection with SACK detects loss.</summary>
public enum LossDetection : byte
{
    /// <summary>RACK-TLP (RFC 8985): by time, from the delivery of segments sent later, with the tail loss probe.</summary>
    Rack,
    /// <summary>RFC 6675: by counting (DupThresh SACKed segments above a hole), with the rescue retransmission.</summary>
    Rfc6675,
}

/// <summary>Why a window reduction was undone.</summary>
public enum UndoReason : byte
{
    None,
    /// <summary>The ACK of the retransmitted data echoed a timestamp older than the retransmission (Eifel detection, RFC 3522).</summary>
    Timestamp,
    /// <summary>D-SACKs reported every retransmission of the episode as a duplicate (RFC 2883 / RFC 3708).</summary>
    Dsack,
    /// <summary>F-RTO (RFC 5682): new data sent after the timeout was acknowledged without the retransmitted data's help.</summary>
    Frto,
}

/// <summary>The ACK as <see cref="LossRecovery.OnAck(in AckSample)"/> needs it.</summary>
/// <param name="Ack">SEG.ACK.</param>
/// <param name="IsDuplicate">RFC 5681's duplicate ACK (the engine's judgement).</param>
/// <param name="SndUna">SND.UNA before this ACK.</param>
/// <param name="SndMax">SND.MAX.</param>
/// <param name="Srtt">The smoothed RTT (zero when none).</param>
/// <param name="Now">Now.</param>
/// <param name="HasTsEcr">The ACK carries a timestamp echo.</param>
/// <param name="TsEcr">The echo (when <paramref name="HasTsEcr"/>).</param>
/// <param name="NewDataReady">Unsent data waits and the peer's window lets some go (F-RTO needs it).</param>
public readonly record struct AckSample(
    SeqNumber Ack, bool IsDuplicate, SeqNumber SndUna, SeqNumber SndMax, TimeSpan Srtt, Instant Now,
    bool HasTsEcr = false, uint TsEcr = 0, bool NewDataReady = false);

/// <summary>What <see cref="LossRecovery.OnAck(in AckSample)"/> asks the engine to do beyond its own ACK processing.</summary>
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
    /// <summary>
    /// The last window reduction was spurious and is undone (<see cref="LossRecovery.LastUndo"/>
    /// says how it was found): after a timeout the engine stops resending from SND.UNA
    /// (SND.NXT = SND.MAX), as the first transmissions arrived.
    /// </summary>
    Undo = 16,
    /// <summary>F-RTO (RFC 5682 2.1 step 2b): set SND.NXT = SND.MAX and send up to two new segments.</summary>
    FrtoSendNew = 32,
    /// <summary>F-RTO found the timeout genuine after new data went out (step 3a): resend from SND.UNA (SND.NXT = SND.UNA).</summary>
    FrtoRevert = 64,
    /// <summary>A tail loss probe retransmission repaired a loss (RFC 8985 7.4); cwnd was reduced for it.</summary>
    ProbeRepairedLoss = 128,
}

/// <summary>
/// The sender's loss detection and recovery, one per connection. With SACK: RACK-TLP
/// (RFC 8985) or RFC 6675's conservative SACK-based recovery, as configured, both with
/// Proportional Rate Reduction (RFC 6937, PRR-SSRB) setting the sending rate during recovery.
/// Without SACK: RFC 5681 fast retransmit with RFC 6582's NewReno fast recovery. RFC 3042
/// limited transmit outside recovery. Spurious retransmissions are detected (timestamps as
/// Eifel, RFC 3522; D-SACK, RFC 2883/3708; F-RTO, RFC 5682) and the window reduction undone.
/// It decides when to enter and leave recovery, what to retransmit and how much may be sent;
/// it drives the <see cref="ICongestionControl"/> (NewReno or CUBIC) for the window itself.
/// </summary>
/// <remarks>
/// <para>How the engine uses it, per connection (SND.MAX is one past the highest sequence
/// number ever sent, SND.NXT the next to send; they differ only after a retransmission timeout
/// pulled SND.NXT back to SND.UNA):</para>
/// <list type="number">
/// <item>For every acceptable ACK (SND.UNA =&lt; SEG.ACK =&lt; SND.MAX), before advancing SND.UNA:
/// <see cref="AddSackBlock"/> for each SACK block it carries, in order, then <see cref="OnAck(in AckSample)"/>,
/// then act on the returned <see cref="AckActions"/>.</item>
/// <item>Whenever it could send (after an ACK, after the app wrote data, after a timer): call
/// <see cref="NextSegment"/> in a loop and send what it says, until it says
/// <see cref="SegmentKind.None"/> or the engine has nothing (Nagle, the peer's window). Report
/// every data segment sent, new or not, with <see cref="OnTransmit"/>, and every
/// retransmission also with <see cref="OnRetransmitted"/>.</item>
/// <item>When the retransmission timer expires: <see cref="OnRetransmitTimeout"/> (every expiry;
/// the window is cut only on the first of a series).</item>
/// <item>RACK's reordering timer (<see cref="ReorderDeadlineUs"/>): <see cref="OnReorderTimeout"/>;
/// the probe timer, armed while <see cref="ProbeAllowed"/>: the engine sends the probe and
/// reports it with <see cref="OnProbeSent"/>.</item>
/// <item>When it sends after being idle longer than an RTO: <see cref="OnIdleRestart"/>.</item>
/// </list>
/// <para>NewReno's window inflation (RFC 5681 3.2 steps 3-4, RFC 6582 3.2 step 3) is kept here
/// as <see cref="Inflation"/>, on top of the algorithm's cwnd; <see cref="Window"/> is the
/// RFC's cwnd during fast recovery. In SACK-based recovery there is no inflation: pipe counts
/// what has left the network instead (RFC 6675), and PRR says how much may go per ACK.</para>
/// </remarks>
public sealed partial class LossRecovery
{
    private const long Never = long.MaxValue;
    private const int MaxBlocks = 4;

    private readonly ICongestionControl _cc;
    private readonly SackScoreboard _scoreboard;
    private readonly Rack? _rack;
    private readonly bool _sack;
    private readonly bool _prr;
    private readonly bool _undo;
    private readonly bool _timestamps;
    private int _smss;
    private int _dupAcks;
    private bool _inRecovery;
    private SeqNumber _recoverEnd;
    private long _inflation;
    private bool _partialAckSeen;
    private bool _firstRetransmitPending;
    private bool _timeoutSeries;

    // The SACK blocks of the ACK in progress (AddSackBlock, then OnAck).
    private readonly SeqNumber[] _blockLeft = new SeqNumber[MaxBlocks];
    private readonly SeqNumber[] _blockRight = new SeqNumber[MaxBlocks];
    private int _blocksThisAck;
    private long _sackedBeforeBlocks;   // the scoreboard's SACKed bytes before this ACK's blocks
    private long _sackedBeforeAck;      // SACKed bytes before this ACK (for PRR's DeliveredData)

    // RFC 6937: prr_delivered, prr_out, RecoverFS, and sndcnt left from the last ACK; the
    // first ACK of a recovery always lets the fast retransmit go.
    private long _prrDelivered;
    private long _prrOut;
    private long _recoverFs;
    private long _prrSndcnt;
    private bool _prrFirst;
    private bool _rackFirstPending;

    // SND.UNA and SND.MAX as of the latest ACK or NextSegment call: what pipe is computed over.
    private SeqNumber _pipeUna;
    private SeqNumber _pipeMax;

    // RACK's reordering timer.
    private long _reorderAtUs = Never;

    // Undo of a spurious reduction: armed when cwnd is cut, with the first retransmission's TSval.
    private bool _undoArmed;
    private bool _undoTsValid;
    private uint _undoTsVal;
    private SeqNumber _undoFirstRtx;
    private long _undoRetransBytes;
    private bool _undoAfterTimeout;
    private UndoReason _lastUndo;

    // F-RTO (RFC 5682 2.1): 0 off, 1 waiting for the first ACK after the timeout, 2 after the new data.
    private int _frto;
    private SeqNumber _frtoRecover;
    private bool _frtoRtxKnown;
    private SeqNumber _frtoRtxEnd;
    private long _frtoBudget;

    /// <param name="congestion">The window algorithm.</param>
    /// <param name="sackPermitted">True when both sides sent SACK-permitted (RFC 2018).</param>
    /// <param name="iss">The initial send sequence number (RFC 6582: "recover" starts at ISS).</param>
    /// <param name="scoreboardCapacity">Most SACKed ranges remembered.</param>
    /// <param name="detection">With SACK: RACK-TLP or RFC 6675.</param>
    /// <param name="proportionalRateReduction">RFC 6937 PRR during SACK-based recovery (otherwise cwnd - pipe).</param>
    /// <param name="spuriousDetection">Undo of spurious reductions (timestamps, D-SACK) and F-RTO after timeouts.</param>
    /// <param name="timestamps">RFC 7323 timestamps were negotiated (Eifel detection instead of F-RTO).</param>
    public LossRecovery(ICongestionControl congestion, bool sackPermitted, SeqNumber iss, int scoreboardCapacity = 64,
        LossDetection detection = LossDetection.Rfc6675, bool proportionalRateReduction = false, bool spuriousDetection = false, bool timestamps = false)
    {
        _cc = congestion ?? throw new ArgumentNullException(nameof(congestion));
        _sack = sackPermitted;
        _smss = congestion.Smss;
        _scoreboard = new SackScoreboard(scoreboardCapacity);
        _recoverEnd = iss + 1;
        _prr = proportionalRateReduction && sackPermitted;
        _undo = spuriousDetection;
        _timestamps = timestamps;
        if (sackPermitted && detection == LossDetection.Rack) _rack = new Rack();
    }

    public ICongestionControl Congestion => _cc;

    public SackScoreboard Scoreboard => _scoreboard;

    /// <summary>RACK-TLP's state, when loss detection is RACK (SACK negotiated).</summary>
    public Rack? Rack => _rack;

    public bool SackEnabled => _sack;

    /// <summary>True during fast recovery (RFC 5681/6582) or SACK loss recovery (RFC 6675, RFC 8985).</summary>
    public bool InRecovery => _inRecovery;

    /// <summary>True between a retransmission timeout and the ACK of everything sent before it.</summary>
    public bool InTimeoutRecovery => _timeoutSeries;

    /// <summary>RFC 5681/6675 DupAcks: duplicate ACKs counted outside recovery.</summary>
    public int DupAcks => _dupAcks;

    /// <summary>RFC 6582 "recover" / RFC 6675 RecoveryPoint, plus one.</summary>
    public SeqNumber RecoveryPointEnd => _recoverEnd;

    /// <summary>NewReno fast recovery's inflation of cwnd, in bytes (0 outside it and with SACK).</summary>
    public long Inflation => _inflation;

    /// <summary>The window that limits sending: cwnd, plus the inflation during NewReno fast recovery.</summary>
    public long Window => Math.Max(_smss, _cc.Cwnd + _inflation);

    /// <summary>RFC 6937 sndcnt: what PRR lets go now, in bytes (meaningful during SACK-based recovery).</summary>
    public long PrrSendQuota => _prrSndcnt;

    /// <summary>True when this connection's recoveries run under PRR.</summary>
    public bool ProportionalRateReduction => _prr;

    /// <summary>When RACK's reordering timer is due (microseconds), or <see cref="long.MaxValue"/>.</summary>
    public long ReorderDeadlineUs => _reorderAtUs;

    /// <summary>How the last undo found its reduction spurious.</summary>
    public UndoReason LastUndo => _lastUndo;

    /// <summary>True when the last undo was of a retransmission timeout (a spurious timeout).</summary>
    public bool LastUndoWasTimeout => _undoAfterTimeout;

    /// <summary>The F-RTO state (0: off; 1: waiting for the first ACK after a timeout; 2: new data sent, waiting for the second).</summary>
    public int FrtoState => _frto;

    /// <summary>
    /// RFC 8985 7.2: a loss probe may be scheduled: RACK is on, and the sender is in neither fast
    /// nor RTO recovery and has no segment SACKed (delivered out of order).
    /// </summary>
    public bool ProbeAllowed => _rack is not null && !_inRecovery && !_timeoutSeries && _frto == 0 && _rack.Log.SackedBytes == 0;

    /// <summary>Records one SACK block of the ACK about to be passed to <see cref="OnAck(in AckSample)"/> (RFC 6675 Update()).</summary>
    public void AddSackBlock(SeqNumber left, SeqNumber right, SeqNumber sndUna, SeqNumber sndMax)
    {
        if (!_sack) return;
        if (_blocksThisAck == 0) _sackedBeforeBlocks = _scoreboard.SackedBytes;
        if (_blocksThisAck < MaxBlocks)
        {
            _blockLeft[_blocksThisAck] = left;
            _blockRight[_blocksThisAck] = right;
        }
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
    public AckActions OnAck(SeqNumber ack, bool isDuplicate, SeqNumber sndUna, SeqNumber sndMax, TimeSpan rtt, Instant now) =>
        OnAck(new AckSample(ack, isDuplicate, sndUna, sndMax, rtt, now));

    /// <summary>Processes an acceptable ACK (see <see cref="OnAck(SeqNumber, bool, SeqNumber, SeqNumber, TimeSpan, Instant)"/>).</summary>
    public AckActions OnAck(in AckSample a)
    {
        SeqNumber ack = a.Ack, sndUna = a.SndUna, sndMax = a.SndMax;
        Instant now = a.Now;
        bool newSack = _scoreboard.TakeNewInfo();
        _sackedBeforeAck = _rack is not null ? _rack.Log.SackedBytes : _blocksThisAck > 0 ? _sackedBeforeBlocks : _scoreboard.SackedBytes;
        int blocks = Math.Min(_blocksThisAck, MaxBlocks);
        _blocksThisAck = 0;
        int acked = ack - sndUna;
        var actions = AckActions.None;
        _pipeUna = acked > 0 ? ack : sndUna;
        _pipeMax = sndMax;

        // RFC 2883 4: a D-SACK is the first block, below the cumulative ACK or inside the second.
        bool dsack = blocks > 0 && (_blockRight[0].IsBeforeOrEqual(ack)
            || (blocks > 1 && _blockLeft[0].IsAfterOrEqual(_blockLeft[1]) && _blockRight[0].IsBeforeOrEqual(_blockRight[1])));
        if (dsack && _undoArmed && _undoRetransBytes > 0)
        {
            // RFC 3708 / Linux's undo_retrans: every retransmission of the episode reported as a
            // duplicate means none was needed.
            _undoRetransBytes -= _blockRight[0] - _blockLeft[0];
            if (_undoRetransBytes <= 0) actions |= Undo(UndoReason.Dsack);
        }

        if (_rack is not null)
        {
            long nowUs = now.Microseconds;
            _rack.BeginAck();
            for (int i = dsack ? 1 : 0; i < blocks; i++)
            {
                if (_blockRight[i].IsAfter(sndMax) || !_blockLeft[i].IsBefore(_blockRight[i])) continue;
                _rack.Deliver(_blockLeft[i], _blockRight[i], nowUs);
            }
            if (acked > 0) _rack.AckTo(ack, nowUs);
            bool pureDup = acked == 0 && blocks == 0 && a.IsDuplicate;
            bool dsackOfProbe = dsack && _rack.ProbeOutstanding && _blockRight[0] == _rack.ProbeEnd;
            if (_rack.ProcessProbeAck(ack, dsackOfProbe, pureDup) && !_inRecovery)
            {
                // RFC 8985 7.4: "Repaired the single loss ... Invoke congestion control to reduce
                // cwnd": one reduction to ssthresh, computed from cwnd as Linux does here (after a
                // tail FlightSize is a segment or two, and RFC 5681's FlightSize / 2 would leave two).
                ArmUndo(afterTimeout: false);
                _cc.OnCongestionEvent(Math.Max(sndMax - sndUna, _cc.Cwnd), now);
                actions |= AckActions.ProbeRepairedLoss;
            }
        }

        // Spurious detection by timestamps (RFC 3522): the first ACK that covers the first
        // retransmission of the episode echoes the TSval of the transmission that arrived.
        if (_undoArmed && _undoTsValid && acked > 0 && ack.IsAfter(_undoFirstRtx))
        {
            _undoTsValid = false;
            if (a.HasTsEcr && TimestampClock.IsBefore(a.TsEcr, _undoTsVal)) actions |= Undo(UndoReason.Timestamp);
            else if (_frto == 1) _frto = 0; // the retransmission was needed: conventional recovery
        }

        if (_frto != 0 && (actions & AckActions.Undo) == 0) actions |= FrtoOnAck(in a, acked, newSack);

        if (acked > 0)
        {
            _timeoutSeries = false;
            if (_sack) _scoreboard.AdvanceTo(ack);
            if (_inRecovery)
            {
                if (ack.IsAfterOrEqual(_recoverEnd))
                {
                    // RFC 6582 3.2 step 3 / RFC 6675 (A): a full ACK ends recovery. With PRR, cwnd
                    // becomes ssthresh (RFC 9937, as Linux's tcp_end_cwnd_reduction): PRR has already
                    // paced the flight down to it, and RFC 6582's min(ssthresh, FlightSize + SMSS)
                    // would take most of the window from a sender that had little in flight at the
                    // end (an app-limited or ACK-clocked burst), at every recovery.
                    _inRecovery = false;
                    _inflation = 0;
                    _dupAcks = 0;
                    _cc.OnRecoveryEnd(_prr ? Math.Max(sndMax - ack, _cc.Ssthresh) : sndMax - ack, now);
                    _recoverEnd = ack;
                    actions |= AckActions.ExitedRecovery;
                    return actions | FinishRack(in a, dsack, acked, exitedRecovery: true);
                }
                if (_sack)
                {
                    // RFC 6675 (B): Update and SetPipe; NextSeg does the rest. RFC 8985: RACK marks.
                    return actions | FinishRack(in a, dsack, acked, exitedRecovery: false);
                }

                // RFC 6582 3.2 step 3, partial ACK: "retransmit the first unacknowledged segment ...
                // deflate the congestion window by the amount of new data acknowledged ... If the
                // partial ACK acknowledges at least one SMSS of new data, then add back SMSS bytes".
                _inflation -= acked;
                if (acked >= _smss) _inflation += _smss;
                actions |= AckActions.RetransmitFirst;
                if (!_partialAckSeen)
                {
                    // "For the first partial ACK that arrives during fast recovery, also reset the retransmit timer."
                    _partialAckSeen = true;
                    actions |= AckActions.RestartTimer;
                }
                return actions;
            }
            _dupAcks = 0;
            _cc.OnAck(acked, a.Srtt, now);
            if (ack.IsAfter(_recoverEnd)) _recoverEnd = ack; // keeps "recover" within the window as the sequence space wraps
            return actions | FinishRack(in a, dsack, acked, exitedRecovery: false);
        }

        if (_rack is not null) return actions | FinishRack(in a, dsack, acked, exitedRecovery: false);

        bool duplicate = _sack ? newSack || (blocks == 0 && a.IsDuplicate) : a.IsDuplicate;
        if (!duplicate || !sndUna.IsBefore(sndMax)) return actions;

        if (_inRecovery)
        {
            // RFC 5681 3.2 step 4: "For each additional duplicate ACK received (after the third),
            // cwnd MUST be incremented by SMSS". With SACK, pipe does this job.
            if (!_sack) _inflation += _smss;
            else UpdatePrr(acked);
            return actions;
        }

        _dupAcks++;
        // RFC 6675 (2): or IsLost (HighACK + 1) says three segments arrived above the hole.
        bool lossIndicated = _dupAcks >= SackScoreboard.DupThresh || (_sack && _scoreboard.IsLost(sndUna, _smss));
        // RFC 6582 3.2 step 2 / RFC 6675 5.1: only when the ACK covers more than "recover".
        if (!lossIndicated || !ack.IsAfterOrEqual(_recoverEnd)) return actions;

        // RFC 6675 (4) / RFC 5681 3.2 step 2: enter recovery.
        EnterRecovery(sndUna, sndMax, now);
        _partialAckSeen = false;
        _firstRetransmitPending = true;
        if (_sack)
        {
            _inflation = 0;
            _scoreboard.SetHighRxt(sndUna);
            _scoreboard.SetRescueRxt(sndUna);
            UpdatePrr(acked);
        }
        else
        {
            // RFC 5681 3.2 step 3: "cwnd = ssthresh + 3*SMSS".
            _inflation = 3L * _smss;
        }
        return actions | AckActions.RetransmitFirst | AckActions.EnteredRecovery;
    }

    /// <summary>RACK's end of an ACK: reordering window, loss detection, entry into recovery, PRR's quota.</summary>
    private AckActions FinishRack(in AckSample a, bool dsack, int acked, bool exitedRecovery)
    {
        if (_rack is null)
        {
            if (_inRecovery) UpdatePrr(acked);
            return AckActions.None;
        }
        SeqNumber una = acked > 0 ? a.Ack : a.SndUna;
        _rack.EndAck(dsack, una, a.SndMax, exitedRecovery);
        return DetectRackLoss(una, a.SndMax, a.Srtt, a.Now, acked) ? AckActions.EnteredRecovery : AckActions.None;
    }

    /// <summary>RACK_detect_loss, then recovery when something is newly lost; true when recovery began.</summary>
    private bool DetectRackLoss(SeqNumber sndUna, SeqNumber sndMax, TimeSpan srtt, Instant now, int acked)
    {
        bool entered = false;
        var rack = _rack!;
        _reorderAtUs = rack.DetectLoss(now.Microseconds, _inRecovery || _timeoutSeries, _smss, srtt.Ticks / TimeSpan.TicksPerMicrosecond, out _);
        // RFC 8985 6.2: "If any segments are newly marked lost ... enter fast recovery"; as
        // RFC 6675 5.1, not before the data outstanding at a timeout is acknowledged.
        if (!_inRecovery && rack.Log.LostBytes > 0 && !_timeoutSeries && _frto == 0 && sndUna.IsAfterOrEqual(_recoverEnd))
        {
            _pipeUna = sndUna;
            _pipeMax = sndMax;
            EnterRecovery(sndUna, sndMax, now);
            entered = true;
        }
        if (_inRecovery) UpdatePrr(acked);
        return entered;
    }

    /// <summary>RACK's reordering timer expired (RFC 8985 6.2): detect loss again; the engine then sends.</summary>
    /// <returns>True when the expiry started a recovery.</returns>
    public bool OnReorderTimeout(SeqNumber sndUna, SeqNumber sndMax, TimeSpan srtt, Instant now)
    {
        _reorderAtUs = Never;
        if (_rack is null) return false;
        _sackedBeforeAck = _rack.Log.SackedBytes;
        return DetectRackLoss(sndUna, sndMax, srtt, now, 0);
    }

    private void EnterRecovery(SeqNumber sndUna, SeqNumber sndMax, Instant now)
    {
        _inRecovery = true;
        _recoverEnd = sndMax;                         // (4.1) RecoveryPoint = HighData
        ArmUndo(afterTimeout: false);
        _cc.OnCongestionEvent(sndMax - sndUna, now);  // (4.2) ssthresh = cwnd = ...
        // RFC 6937: "prr_delivered = 0; prr_out = 0; RecoverFS = snd.nxt - snd.una".
        _prrDelivered = 0;
        _prrOut = 0;
        _recoverFs = Math.Max(1, sndMax - sndUna);
        _prrSndcnt = 0;
        _prrFirst = true;
        _rackFirstPending = _rack is not null;
    }

    /// <summary>An RTT sample the engine took (handshake, timestamps, timed segment): RACK's min_RTT takes it too.</summary>
    public void OnRttSample(TimeSpan rtt) => _rack?.OnRttSample(rtt.Ticks / TimeSpan.TicksPerMicrosecond);

    /// <summary>RFC 6937 section 3, on every ACK during recovery (PRR-SSRB).</summary>
    private void UpdatePrr(int acked)
    {
        if (!_prr || !_inRecovery) return;
        long sacked = _rack?.Log.SackedBytes ?? _scoreboard.SackedBytes;
        // "DeliveredData = change_in(snd.una) + change_in(SACKd)".
        long delivered = Math.Max(0, Math.Max(0, acked) + sacked - _sackedBeforeAck);
        _sackedBeforeAck = sacked;
        _prrDelivered += delivered;
        long pipe = PipeNow();
        long ssthresh = _cc.Ssthresh;
        long sndcnt;
        if (pipe > ssthresh)
        {
            // Proportional part: "sndcnt = CEIL(prr_delivered * ssthresh / RecoverFS) - prr_out".
            sndcnt = (_prrDelivered * ssthresh + _recoverFs - 1) / _recoverFs - _prrOut;
        }
        else
        {
            // Slow start reduction bound: "limit = MAX(prr_delivered - prr_out, DeliveredData) + MSS;
            // sndcnt = MIN(ssthresh - pipe, limit)".
            long limit = Math.Max(_prrDelivered - _prrOut, delivered) + _smss;
            sndcnt = Math.Min(ssthresh - pipe, limit);
        }
        // RFC 9937 (PRR's revision): the ACK that starts recovery always lets the fast retransmit go.
        if (_prrFirst && sndcnt < _smss) sndcnt = _smss;
        _prrFirst = false;
        _prrSndcnt = Math.Max(0, sndcnt);
    }

    /// <summary>RFC 6675 pipe: with RACK, the octets neither SACKed nor marked lost (retransmissions count again once sent).</summary>
    private long PipeNow()
    {
        if (_rack is not null) return Math.Max(0, (_pipeMax - _pipeUna) - _rack.Log.SackedBytes - _rack.Log.LostBytes);
        return _scoreboard.SetPipe(_pipeUna, _pipeMax, _smss);
    }

    /// <summary>
    /// What may be sent now. <paramref name="newDataAllowed"/>: there is data at SND.NXT the
    /// engine could send (unsent, or unacknowledged after a timeout) and the peer's window
    /// allows some. The engine sends, then calls again with the updated sequence numbers.
    /// </summary>
    public SegmentToSend NextSegment(SeqNumber sndUna, SeqNumber sndNxt, SeqNumber sndMax, bool newDataAllowed)
    {
        _pipeUna = sndUna;
        _pipeMax = sndMax;
        if (_frto == 2)
        {
            // RFC 5682 2.1 step 2b: "transmit up to two new (previously unsent) segments".
            if (!newDataAllowed || sndNxt != sndMax || _frtoBudget <= 0) return SegmentToSend.None;
            return new SegmentToSend(SegmentKind.Next, sndNxt, (int)Math.Min(_frtoBudget, _smss));
        }
        if (_rack is not null && sndNxt == sndMax)
        {
            // RFC 8985 with RFC 6675's pipe: lost segments first, then new data, as far as PRR
            // (in recovery) or cwnd - pipe (outside it) allows.
            long pipe = PipeNow();
            long room = _inRecovery && _prr ? _prrSndcnt : _cc.Cwnd - pipe;
            // Without PRR, as RFC 6675 (4.3): the first retransmission goes whatever pipe says.
            if (_rackFirstPending && _inRecovery && room < _smss) room = _smss;
            if (room <= 0) return SegmentToSend.None;
            int lost = _rack.Log.FirstLost();
            if (lost >= 0)
            {
                ref var rec = ref _rack.Log[lost];
                int len = Math.Min(rec.Length, _smss);
                // A retransmission goes whole once there is room for it (or nothing is in flight).
                if (!_inRecovery && room < len && pipe > 0) return SegmentToSend.None;
                return new SegmentToSend(SegmentKind.Lost, rec.Start, len);
            }
            if (!newDataAllowed) return SegmentToSend.None;
            // PRR's quota in whole segments, as Linux counts it: a partial segment's worth lets one go.
            if (_inRecovery && _prr && room < _smss) room = _smss;
            return new SegmentToSend(SegmentKind.Next, sndNxt, (int)Math.Min(room, int.MaxValue));
        }
        if (_inRecovery && _sack)
        {
            // RFC 6675 (C): send while cwnd - pipe >= 1 SMSS; with PRR, while sndcnt allows.
            long pipe = _scoreboard.SetPipe(sndUna, sndMax, _smss);
            long room = _prr ? _prrSndcnt : _cc.Cwnd - pipe;
            if (_prr ? room <= 0 : room < _smss) return SegmentToSend.None;
            var seg = _scoreboard.NextSeg(sndUna, sndMax, _smss, newDataAllowed && sndNxt == sndMax, _recoverEnd, inRecovery: true);
            if (seg.Kind == SegmentKind.Next) return seg with { Seq = sndNxt, Length = (int)Math.Min(Math.Max(room, _smss), int.MaxValue) };
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
    /// The engine sent [<paramref name="seq"/>, seq + <paramref name="length"/>) of sequence space
    /// (data and FIN), as new data or again (<paramref name="retransmission"/>), at
    /// <paramref name="now"/>, with TSval <paramref name="tsVal"/> when timestamps are on.
    /// </summary>
    public void OnTransmit(SeqNumber seq, int length, bool retransmission, Instant now, uint tsVal = 0)
    {
        if (length <= 0) return;
        _rack?.OnSent(seq, seq + length, now.Microseconds);
        if (retransmission) _rackFirstPending = false;
        if (_inRecovery && _prr)
        {
            // RFC 6937: "On any data transmission or retransmission: prr_out += (data sent)".
            _prrOut += length;
            _prrSndcnt = Math.Max(0, _prrSndcnt - length);
        }
        if (retransmission && _undoArmed)
        {
            if (_undoRetransBytes == 0 && _timestamps)
            {
                _undoTsValid = true;
                _undoTsVal = tsVal;
                _undoFirstRtx = seq;
            }
            _undoRetransBytes += length;
        }
        if (_frto == 1 && retransmission && !_frtoRtxKnown)
        {
            _frtoRtxKnown = true;
            _frtoRtxEnd = seq + length;
        }
        if (_frto == 2 && !retransmission) _frtoBudget -= length;
    }

    /// <summary>
    /// The engine retransmitted [<paramref name="seq"/>, seq + <paramref name="length"/>), for
    /// whatever reason; <paramref name="kind"/> is what <see cref="NextSegment"/> returned for it
    /// (<see cref="SegmentKind.Retransmit"/> for a fast retransmit or a timeout's).
    /// </summary>
    public void OnRetransmitted(SeqNumber seq, int length, SegmentKind kind = SegmentKind.Retransmit)
    {
        if (!_sack || kind is SegmentKind.Rescue or SegmentKind.Probe || length <= 0) return;
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

    /// <summary>RFC 8985 7.3: the engine sent a loss probe; SND.NXT after it is <paramref name="sndNxt"/>.</summary>
    public void OnProbeSent(SeqNumber sndNxt, bool isRetransmission) => _rack?.OnProbeSent(sndNxt, isRetransmission);

    /// <summary>
    /// The retransmission timer expired. On the first expiry of a series, the window collapses
    /// (RFC 5681 3.1 eq. 4; later expiries of the same data must not lower ssthresh again).
    /// Always: recovery ends, RecoveryPoint = HighData and no new recovery begins until it is
    /// acknowledged (RFC 6675 5.1, RFC 6582 3.2 step 1), and the scoreboard is cleared (RFC 2018:
    /// the receiver may have reneged). F-RTO (RFC 5682) starts on the first expiry when
    /// timestamps cannot tell a spurious timeout instead.
    /// </summary>
    public void OnRetransmitTimeout(SeqNumber sndUna, SeqNumber sndMax, Instant now)
    {
        if (!_timeoutSeries)
        {
            _timeoutSeries = true;
            // RFC 5682 2.1 step 1: F-RTO unless already in RTO recovery.
            ArmUndo(afterTimeout: true);
            _cc.OnRetransmitTimeout(sndMax - sndUna, now);
            _frto = _undo && !_timestamps ? 1 : 0;
            _frtoRecover = sndMax;
            _frtoRtxKnown = false;
        }
        else
        {
            _frto = 0;
            _undoTsValid = false;
        }
        _inRecovery = false;
        _inflation = 0;
        _dupAcks = 0;
        _recoverEnd = sndMax;
        _scoreboard.Clear();
        _rack?.OnRetransmitTimeout();
        _reorderAtUs = Never;
    }

    /// <summary>RFC 5682 2.1 steps 2 and 3, for an ACK after a timeout (no timestamps).</summary>
    private AckActions FrtoOnAck(in AckSample a, int acked, bool newSack)
    {
        if (_frto == 1)
        {
            // Step 2a: "If the acknowledgment is a duplicate ACK OR the Acknowledgment field covers
            // "recover" but not more than "recover" OR the acknowledgment does not acknowledge all
            // of the data that was retransmitted in step 1, revert to the conventional RTO recovery".
            if (acked <= 0)
            {
                if (a.IsDuplicate || newSack) _frto = 0;
                return AckActions.None;
            }
            if (!_frtoRtxKnown || a.Ack.IsAfterOrEqual(_frtoRecover) || a.Ack.IsBefore(_frtoRtxEnd) || !a.NewDataReady)
            {
                // Step 2a, or 2b without new data to send ("If the TCP sender does not have any new
                // data ... it SHOULD revert").
                _frto = 0;
                return AckActions.None;
            }
            // Step 2b: "transmit up to two new (previously unsent) segments and enter step 3".
            _frto = 2;
            _frtoBudget = 2L * _smss;
            return AckActions.FrtoSendNew;
        }
        // Step 3a: "If the acknowledgment is a duplicate ACK, set the congestion window to no more
        // than 3 * MSS, and continue with the slow start algorithm retransmitting unacknowledged segments".
        if (acked <= 0)
        {
            if (!a.IsDuplicate && !newSack) return AckActions.None;
            _frto = 0;
            return AckActions.FrtoRevert;
        }
        // Step 3b: "If the acknowledgment advances SND.UNA, ... declare the timeout spurious".
        _frto = 0;
        return Undo(UndoReason.Frto);
    }

    private void ArmUndo(bool afterTimeout)
    {
        if (!_undo) return;
        _undoArmed = true;
        _undoTsValid = false;
        _undoRetransBytes = 0;
        _undoAfterTimeout = afterTimeout;
        _cc.SaveForUndo();
    }

    /// <summary>Restores the window from before the reduction found spurious.</summary>
    private AckActions Undo(UndoReason reason)
    {
        _undoArmed = false;
        _undoTsValid = false;
        _lastUndo = reason;
        _cc.Undo();
        _frto = 0;
        if (_undoAfterTimeout)
        {
            // The first transmissions arrived: no RTO recovery, nothing to resend from SND.UNA.
            _timeoutSeries = false;
        }
        // The recovery ends with the reduction (its exit would cut cwnd to FlightSize again).
        _inRecovery = false;
        _inflation = 0;
        return AckActions.Undo;
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
