namespace AntHost.Inet.Core.Tcp.Recovery;

/// <summary>
/// RACK-TLP (RFC 8985): time-based loss detection from the delivery of segments sent later,
/// and the tail loss probe's bookkeeping. <see cref="LossRecovery"/> owns one per connection
/// when SACK was negotiated and <see cref="LossDetection.Rack"/> is configured.
/// </summary>
/// <remarks>
/// <para>A segment is lost when a segment sent after it has been delivered (cumulatively or
/// selectively acknowledged) and it has not been delivered itself within RACK.rtt +
/// RACK.reo_wnd of its own transmission (RFC 8985 6.2 step 5). Because the test compares
/// transmission times, not sequence numbers, a lost retransmission is found like any other
/// loss, one round trip after it was sent, where RFC 6675 needs a timeout.</para>
/// <para>Records are kept in sequence order (<see cref="TransmitLog"/>); RFC 8985 walks them in
/// transmission order. First transmissions are sent in sequence order, so the walk in
/// sequence order may stop at the first never-retransmitted record sent after RACK.xmit_ts:
/// every record above it was sent later still (its first transmission came later, and a
/// retransmission later than that). Ties of time are broken by the order of transmission,
/// and within one transmission (an offloaded send of many segments, split by later SACK
/// blocks or retransmissions) by the end sequence number, as RFC 8985's RACK_sent_after
/// does (<see cref="SentAfter"/>).</para>
/// <para>Times are microseconds of <c>Instant</c>. min_RTT is the lowest RTT seen on the
/// connection (RFC 8985 leaves the filter to the implementation; Linux uses a windowed
/// minimum).</para>
/// </remarks>
public sealed class Rack
{
    private const long Never = long.MaxValue;

    /// <summary>RFC 8985 7.2: WCDelAckT, the worst-case delayed ACK time assumed for a one-segment flight.</summary>
    public static readonly TimeSpan WorstCaseDelayedAck = TimeSpan.FromMilliseconds(200);

    /// <summary>RFC 8985 6.2 step 4: recoveries without a D-SACK before the reordering window multiplier resets.</summary>
    public const int ReoWndPersistRecoveries = 16;

    private readonly TransmitLog _log = new();

    // RFC 8985 5.2: RACK.xmit_ts, RACK.end_seq, RACK.rtt, RACK.min_RTT, RACK.fack, RACK.reordering_seen, ...
    private bool _hasRack;
    private long _xmitUs;
    private long _xmitOrder;
    private SeqNumber _endSeq;
    private long _rttUs;
    private long _minRttUs = Never;
    private bool _fackValid;
    private SeqNumber _fack;
    private bool _reorderingSeen;
    private int _reoWndMult = 1;
    private int _reoWndPersist = ReoWndPersistRecoveries;
    private bool _dsackRoundValid;
    private SeqNumber _dsackRound;
    private long _reoWndUs;

    // RFC 8985 7: TLP.end_seq and TLP.is_retrans.
    private bool _tlpValid;
    private SeqNumber _tlpEnd;
    private bool _tlpIsRetrans;

    // The ACK in progress: the most recently sent segment it delivered.
    private bool _ackBest;
    private long _ackBestXmitUs;
    private long _ackBestOrder;
    private SeqNumber _ackBestEnd;
    private long _ackBestRttUs;

    public TransmitLog Log => _log;

    /// <summary>RACK.rtt in microseconds (0 before any delivery).</summary>
    public long RttUs => _rttUs;

    /// <summary>RACK.min_RTT in microseconds (<see cref="long.MaxValue"/> before any sample).</summary>
    public long MinRttUs => _minRttUs;

    /// <summary>RACK.reordering_seen.</summary>
    public bool ReorderingSeen => _reorderingSeen;

    /// <summary>RACK.reo_wnd as last computed, in microseconds.</summary>
    public long ReoWndUs => _reoWndUs;

    /// <summary>RACK.reo_wnd_mult.</summary>
    public int ReoWndMult => _reoWndMult;

    /// <summary>True while a loss probe is outstanding (TLP.end_seq is set).</summary>
    public bool ProbeOutstanding => _tlpValid;

    /// <summary>TLP.end_seq, when <see cref="ProbeOutstanding"/>.</summary>
    public SeqNumber ProbeEnd => _tlpEnd;

    /// <summary>Forgets every mark and the probe (after a retransmission timeout the receiver may have reneged).</summary>
    public void OnRetransmitTimeout()
    {
        _log.ClearMarks();
        _tlpValid = false;
    }

    /// <summary>An RTT sample taken another way (the handshake, timestamps): min_RTT includes it, as Linux's tcp_min_rtt does.</summary>
    public void OnRttSample(long rttUs)
    {
        if (rttUs >= 0 && rttUs < _minRttUs) _minRttUs = rttUs;
    }

    /// <summary>RFC 8985 6.1: a segment was (re)transmitted.</summary>
    public void OnSent(SeqNumber start, SeqNumber end, long nowUs) => _log.OnSent(start, end, nowUs);

    /// <summary>RFC 8985 7.3: a loss probe was sent; SND.NXT after it is <paramref name="sndNxt"/>.</summary>
    public void OnProbeSent(SeqNumber sndNxt, bool isRetransmission)
    {
        _tlpValid = true;
        _tlpEnd = sndNxt;
        _tlpIsRetrans = isRetransmission;
    }

    /// <summary>
    /// RFC 8985 6.2 steps 1-3 for the octets an ACK delivers: call <see cref="BeginAck"/>, then
    /// <see cref="Deliver"/> per SACK block and <see cref="AckTo"/> for the cumulative part,
    /// then <see cref="EndAck"/>.
    /// </summary>
    public void BeginAck() => _ackBest = false;

    /// <summary>Marks [<paramref name="left"/>, <paramref name="right"/>) delivered (SACKed; the cumulative part goes with <see cref="AckTo"/>). Returns the octets newly SACKed.</summary>
    public long Deliver(SeqNumber left, SeqNumber right, long nowUs)
    {
        _log.Cover(left, right, out int first, out int last);
        long added = 0;
        for (int i = first; i < last; i++)
        {
            if (!_log.MarkSacked(i)) continue;
            added += _log[i].Length;
            Update(ref _log[i], nowUs);
        }
        return added;
    }

    /// <summary>The cumulative ACK moved to <paramref name="sndUna"/>: RACK's update for the records it delivers, then they go.</summary>
    public void AckTo(SeqNumber sndUna, long nowUs)
    {
        for (int i = 0; i < _log.Count; i++)
        {
            ref var rec = ref _log[i];
            if (!rec.Start.IsBefore(sndUna)) break;
            if (!rec.Is(TransmitFlags.Sacked)) Update(ref rec, nowUs);
        }
        _log.AckTo(sndUna);
    }

    private void Update(ref TransmitRecord rec, long nowUs)
    {
        long rtt = nowUs - rec.XmitUs;
        // Step 3, RACK_detect_reordering: a never-retransmitted segment delivered below RACK.fack
        // arrived out of order.
        if (!_fackValid || rec.End.IsAfter(_fack))
        {
            _fack = rec.End;
            _fackValid = true;
        }
        else if (rec.End.IsBefore(_fack) && !rec.Is(TransmitFlags.Retransmitted))
        {
            _reorderingSeen = true;
        }
        if (rtt < 0) return;
        // Step 2: "If Segment.retransmitted is TRUE: ... If rtt < RACK.min_RTT: Return" - the
        // ACK is probably for the first transmission, and timing it would be ambiguous.
        if (rec.Is(TransmitFlags.Retransmitted))
        {
            if (rtt < _minRttUs) return;
        }
        else if (rtt < _minRttUs)
        {
            _minRttUs = rtt;
        }
        if (!_ackBest || SentAfter(rec.XmitUs, rec.Order, rec.End, _ackBestXmitUs, _ackBestOrder, _ackBestEnd))
        {
            _ackBest = true;
            _ackBestXmitUs = rec.XmitUs;
            _ackBestOrder = rec.Order;
            _ackBestEnd = rec.End;
            _ackBestRttUs = rtt;
        }
    }

    /// <summary>
    /// Ends the ACK's RACK_update (step 2: RACK.rtt from the most recently sent segment it
    /// delivered, RACK.xmit_ts/end_seq moved forward), then RACK_update_reo_wnd (step 4) with
    /// what the ACK said about D-SACK.
    /// </summary>
    public void EndAck(bool dsack, SeqNumber sndUna, SeqNumber sndNxt, bool exitedRecovery)
    {
        if (_ackBest)
        {
            _rttUs = _ackBestRttUs;
            if (!_hasRack || SentAfter(_ackBestXmitUs, _ackBestOrder, _ackBestEnd, _xmitUs, _xmitOrder, _endSeq))
            {
                _hasRack = true;
                _xmitUs = _ackBestXmitUs;
                _xmitOrder = _ackBestOrder;
                _endSeq = _ackBestEnd;
            }
        }
        // Step 4, RACK_update_reo_wnd: "If RACK.dsack_round is not None AND SND.UNA >=
        // RACK.dsack_round: RACK.dsack_round = None ... If RACK.dsack_round is None AND any DSACK
        // option is present on latest received ACK: RACK.dsack_round = SND.NXT;
        // RACK.reo_wnd_mult += 1; RACK.reo_wnd_persist = 16. Else if exiting Fast or RTO
        // recovery: RACK.reo_wnd_persist -= 1; If RACK.reo_wnd_persist <= 0: RACK.reo_wnd_mult = 1".
        if (_dsackRoundValid && sndUna.IsAfterOrEqual(_dsackRound)) _dsackRoundValid = false;
        if (!_dsackRoundValid && dsack)
        {
            _dsackRoundValid = true;
            _dsackRound = sndNxt;
            _reoWndMult++;
            _reoWndPersist = ReoWndPersistRecoveries;
        }
        else if (exitedRecovery && --_reoWndPersist <= 0)
        {
            _reoWndMult = 1;
        }
    }

    /// <summary>
    /// RACK_update_reo_wnd's result: 0 before any reordering was seen when in recovery or when
    /// DupThresh segments are SACKed; otherwise min(reo_wnd_mult * min_RTT / 4, SRTT).
    /// </summary>
    public long ReorderWindowUs(bool inRecovery, int smss, long srttUs)
    {
        if (!_reorderingSeen)
        {
            if (inRecovery) return 0;
            if (_log.SackedBytes > (long)(SackScoreboard.DupThresh - 1) * smss) return 0;
        }
        if (_minRttUs == Never) return 0;
        return Math.Min(_reoWndMult * _minRttUs / 4, srttUs);
    }

    /// <summary>
    /// RFC 8985 6.2 step 5, RACK_detect_loss: marks lost every unacknowledged segment sent
    /// before RACK.xmit_ts whose time is up (xmit_ts + RACK.rtt + reo_wnd =&lt; now). Returns the
    /// reordering timer's deadline for the earliest segment not yet lost but sent before the
    /// last delivered one (<see cref="long.MaxValue"/> for none), and the octets newly marked.
    /// </summary>
    public long DetectLoss(long nowUs, bool inRecovery, int smss, long srttUs, out long newlyLost)
    {
        newlyLost = 0;
        if (!_hasRack) return Never;
        long reoWnd = ReorderWindowUs(inRecovery, smss, srttUs);
        _reoWndUs = reoWnd;
        long timeout = 0;
        for (int i = 0; i < _log.Count; i++)
        {
            ref var rec = ref _log[i];
            bool before = SentAfter(_xmitUs, _xmitOrder, _endSeq, rec.XmitUs, rec.Order, rec.End);
            if (!before && !rec.Is(TransmitFlags.Retransmitted)) break; // everything above was sent later
            if (!before || rec.Is(TransmitFlags.Sacked | TransmitFlags.Lost)) continue;
            long remaining = rec.XmitUs + _rttUs + reoWnd - nowUs;
            if (remaining <= 0)
            {
                _log.MarkLost(i);
                newlyLost += rec.Length;
            }
            else if (remaining > timeout)
            {
                timeout = remaining;
            }
        }
        return timeout > 0 ? nowUs + timeout : Never;
    }

    /// <summary>
    /// RFC 8985 7.4, TLP_process_ack. Returns true when the probe repaired a loss (the probe
    /// retransmitted the tail, the ACK covers more than it, and no D-SACK said it was
    /// redundant): the caller reduces cwnd for that loss.
    /// </summary>
    public bool ProcessProbeAck(SeqNumber ack, bool dsackOfProbe, bool pureDupAckWithoutSack)
    {
        if (!_tlpValid || ack.IsBefore(_tlpEnd)) return false;
        if (!_tlpIsRetrans) { _tlpValid = false; return false; }       // "TLP of new data delivered"
        if (dsackOfProbe) { _tlpValid = false; return false; }         // "Retransmission is redundant"
        if (ack.IsAfter(_tlpEnd)) { _tlpValid = false; return true; }  // "Repaired the single loss"
        if (pureDupAckWithoutSack) _tlpValid = false;                  // "Assume a spurious retransmission"
        return false;
    }

    /// <summary>
    /// RFC 8985 5.2, RACK_sent_after(t1, seq1, t2, seq2): "t1 &gt; t2 or (t1 == t2 and seq1 &gt; seq2)".
    /// A tie of time is broken first by the order of transmission (a retransmission sent at the
    /// same instant as, but after, a higher segment is the later one), then by the end sequence
    /// number, the RFC's seq: the records of one transmission share its time and order (an
    /// offloaded send of many segments, split by SACK blocks), and the transmitter puts its
    /// segments on the wire in sequence order, so the higher piece left after the lower one.
    /// Without this the lower, lost piece of an offloaded send whose upper piece was SACKed
    /// would never count as sent before it, and only a timeout would find the loss.
    /// </summary>
    public static bool SentAfter(long t1, long order1, SeqNumber end1, long t2, long order2, SeqNumber end2) =>
        t1 > t2 || (t1 == t2 && (order1 > order2 || (order1 == order2 && end1.IsAfter(end2))));
}
