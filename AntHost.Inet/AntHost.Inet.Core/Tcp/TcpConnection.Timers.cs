using AntHost.Inet.Core.Time;
using AntHost.Inet.Core.Wire;

namespace AntHost.Inet.Core.Tcp;

/// <summary>
/// The connection's timers, as deadlines: retransmission (RFC 6298), persist (RFC 9293
/// 3.8.6.1), delayed ACK (3.8.6.3), keepalive (3.8.4), and the TIME-WAIT / FIN-WAIT-2 end.
/// </summary>
internal sealed partial class TcpConnection
{
    /// <summary>The earliest armed deadline, in microseconds (long.MaxValue for none).</summary>
    public long NextDeadline()
    {
        long d = Math.Min(Math.Min(_rtxAt, _persistAt), Math.Min(_delAckAt, _closeAt));
        d = Math.Min(d, Math.Min(_probeAt, _reorderAt));
        return Math.Min(d, KeepAliveDeadline());
    }

    private long KeepAliveDeadline()
    {
        if (!KeepAlive || State is not (TcpState.Established or TcpState.CloseWait)) return Never;
        return _keepAliveProbes == 0 ? _lastReceiveUs + _keepAliveIdleUs : _lastKeepAliveUs + _keepAliveIntervalUs;
    }

    /// <summary>Runs every timer that is due at <paramref name="now"/>.</summary>
    public void OnTimers(Instant now)
    {
        long t = now.Microseconds;
        if (_closeAt <= t)
        {
            _closeAt = Never;
            // TIME-WAIT (RFC 9293 3.10.8): "If the time-wait timeout expires on a connection,
            // delete the TCB, enter the CLOSED state". An orphan in FIN-WAIT-2 gives up waiting
            // for the peer's FIN.
            if (State is TcpState.TimeWait or TcpState.FinWait2)
            {
                EnterClosed(TcpError.None);
                return;
            }
        }
        if (_reorderAt <= t)
        {
            _reorderAt = Never;
            OnReorderTimeout(now);
        }
        if (_probeAt <= t)
        {
            _probeAt = Never;
            OnProbeTimeout(now);
        }
        if (_rtxAt <= t)
        {
            _rtxAt = Never;
            OnRetransmissionTimeout(now);
            if (State == TcpState.Closed) return;
        }
        if (_persistAt <= t)
        {
            _persistAt = Never;
            OnPersistTimeout(now);
        }
        if (KeepAliveDeadline() <= t)
        {
            OnKeepAliveTimeout(now);
            if (State == TcpState.Closed) return;
        }
        if (_delAckAt <= t)
        {
            _delAckAt = Never;
            _ackNow = true;
        }
        Output(now);
    }

    /// <summary>RFC 6298 5.4-5.7, and the give-up rules of RFC 9293 3.8.3 (R2).</summary>
    private void OnRetransmissionTimeout(Instant now)
    {
        switch (State)
        {
            case TcpState.SynSent or TcpState.SynReceived:
                {
                    int limit = State == TcpState.SynSent ? _cfg.SynRetries : _cfg.SynAckRetries;
                    if (_timeouts >= limit)
                    {
                        Counters.ConnectionsTimedOut++;
                        EnterClosed(_softError != TcpError.None ? _softError : TcpError.TimedOut);
                        return;
                    }
                    _timeouts++;
                    _rto.Backoff();
                    Counters.RetransmitsTimeout++;
                    _retransmits++;
                    _sndNxt = _iss;
                    SendSyn(now);
                    return;
                }
            case TcpState.Established or TcpState.FinWait1 or TcpState.CloseWait or TcpState.Closing or TcpState.LastAck:
                {
                    if (_sndUna == _sndMax) return; // nothing outstanding (the timer was stale)
                    if (_timeouts >= _cfg.DataRetries)
                    {
                        Counters.ConnectionsTimedOut++;
                        // RFC 9293 3.8.3: the connection is closed; a RST tells the peer, if it is still there.
                        Fail(_softError != TcpError.None ? _softError : TcpError.TimedOut, now, sendReset: true);
                        return;
                    }
                    _timeouts++;
                    Counters.RetransmissionTimeouts++;
                    _probeAt = _reorderAt = Never;
                    // RFC 6298 5.5: "back off the timer"; RFC 5681 3.1: ssthresh and the loss window
                    // (first expiry only); RFC 6675 5.1 / RFC 2018 8: the scoreboard is cleared.
                    _recovery!.OnRetransmitTimeout(_sndUna, _sndMax, now);
                    _rto.Backoff();
                    // RFC 6298 5.4: "Retransmit the earliest segment that has not been acknowledged";
                    // the rest follows go-back-N from SND.UNA as the window reopens.
                    _sndNxt = _sndUna;
                    _rtxAt = now.Microseconds + Us(_rto.Rto); // 5.6: restart with the backed-off RTO
                    if (_sndWnd == 0)
                    {
                        // The peer closed its window with data in flight: the retransmission becomes
                        // a window probe of one octet (RFC 9293 3.8.6.1), sent past the zero window;
                        // the peer's answers keep the connection from timing out (ProcessAck).
                        Counters.ZeroWindowProbes++;
                        RetransmitRange(_sndUna, 1, Recovery.SegmentKind.Retransmit, now);
                    }
                    return; // otherwise Output (in OnTimers) sends it
                }
        }
    }

    /// <summary>RFC 8985 6.2: RACK's reordering timer expired; segments whose time is up are lost and sent again.</summary>
    private void OnReorderTimeout(Instant now)
    {
        var rec = _recovery;
        if (rec is null || !CanSendData || _sndUna == _sndMax) return;
        Counters.RackReorderTimeouts++;
        if (rec.OnReorderTimeout(_sndUna, _sndMax, _rto.SmoothedRtt, now)) CountRecovery(rec);
        _reorderAt = rec.ReorderDeadlineUs;
        if (!rec.ProbeAllowed) _probeAt = Never;
    }

    /// <summary>
    /// RFC 8985 7.2: arms the probe timeout after new data went out or an ACK advanced SND.UNA,
    /// when a probe is allowed: PTO = 2 SRTT, plus WCDelAckT for a one-segment flight (else 2 ms,
    /// as Linux), 1 s without an RTT sample, and never later than the retransmission timer.
    /// </summary>
    private void ArmProbe(Instant now)
    {
        var rec = _recovery;
        if (rec is null || !_cfg.TailLossProbe || !rec.ProbeAllowed || _sndUna == _sndMax || _sndNxt != _sndMax || _sndWnd == 0)
        {
            _probeAt = Never;
            return;
        }
        long pto;
        if (_rto.HasSample)
        {
            pto = 2 * Us(_rto.SmoothedRtt);
            pto += (_sndMax - _sndUna) <= SegmentPayload ? Us(Recovery.Rack.WorstCaseDelayedAck) : 2_000;
        }
        else
        {
            pto = 1_000_000;
        }
        long at = now.Microseconds + pto;
        // "If Now() + PTO > TCP_RTO_expire(): PTO = TCP_RTO_expire() - Now()".
        if (_rtxAt != Never && at > _rtxAt) at = _rtxAt;
        _probeAt = at;
    }

    /// <summary>
    /// RFC 8985 7.3: the probe timeout expired. "If a previously unsent segment exists AND the
    /// receive window allows new data to be sent: Send that segment ... Else: Retransmit the
    /// highest-sequence segment sent so far"; then the retransmission timer is re-armed. With
    /// <see cref="TcpConfig.TailLossProbeNewData"/> off the probe is always the retransmission,
    /// which the receiver answers at once whatever its ACK policy.
    /// </summary>
    private void OnProbeTimeout(Instant now)
    {
        var rec = _recovery;
        if (rec?.Rack is null || !CanSendData || _sndUna == _sndMax || !rec.ProbeAllowed) return;
        if (!rec.Rack.ProbeOutstanding)
        {
            bool sent = false;
            long wndRoom = (long)(_sndUna - _sndNxt) + _sndWnd;
            if (_cfg.TailLossProbeNewData && _sndNxt == _sndMax && (_send.End.IsAfter(_sndNxt) || FinDueAtNext) && wndRoom > 0)
            {
                sent = SendOne(now, probe: true);
                if (sent) rec.OnProbeSent(_sndNxt, isRetransmission: false);
            }
            if (!sent)
            {
                // The highest-sequence segment: the last MSS of the last send, which an
                // offloaded send (one record of the log) carries as many segments.
                var log = rec.Rack.Log;
                SeqNumber seq = log.Count > 0 ? log[log.Count - 1].Start : _sndUna;
                SeqNumber lastSegment = SeqNumber.Min(_send.End, _sndMax) - MaxPayloadFor(now);
                if (seq.IsBefore(lastSegment)) seq = lastSegment;
                if (seq.IsBefore(_sndUna)) seq = _sndUna;
                if (RetransmitRange(seq, _sndMax - seq, Recovery.SegmentKind.Probe, now))
                {
                    sent = true;
                    Counters.RetransmitsTlp++;
                    _rtxTlp++;
                    rec.OnProbeSent(_sndMax, isRetransmission: true);
                }
            }
            if (sent) Counters.TlpProbes++;
        }
        // "After attempting to send a loss probe, regardless of whether a loss probe was sent,
        // the sender MUST re-arm the RTO timer, not the PTO timer".
        _rtxAt = now.Microseconds + Us(_rto.Rto);
    }

    /// <summary>A loss recovery began: counted, with PRR when it sets the rate.</summary>
    private void CountRecovery(Recovery.LossRecovery rec)
    {
        Counters.Recoveries++;
        if (rec.ProportionalRateReduction) Counters.RecoveriesPrr++;
    }

    /// <summary>
    /// RFC 9293 3.8.6.1: "The sending TCP peer must regularly transmit at least one octet of
    /// new data (if available), or retransmit to the receiving TCP peer even if the send window
    /// is zero, in order to 'probe' the window." The probe carries one byte (or the FIN) beyond
    /// the window; the interval backs off exponentially, bounded.
    /// </summary>
    private void OnPersistTimeout(Instant now)
    {
        if (!CanSendData || _recovery is null) return;
        SeqNumber at = _sndUna;
        SeqNumber dataEnd = _send.End;
        bool hasData = at.IsBefore(dataEnd);
        bool fin = !hasData && _finQueued && at == dataEnd;
        if (!hasData && !fin) return;
        if (_sndUna != _sndMax && !(_sndMax == _sndUna + 1))
        {
            return; // data in flight: the retransmission timer covers it
        }
        Counters.ZeroWindowProbes++;
        var flags = TcpFlags.Ack | (fin ? TcpFlags.Fin : TcpFlags.Psh);
        SendSegment(at, hasData ? 1 : 0, flags, now);
        if (fin) _finSent = true;
        SeqNumber end = at + 1;
        _recovery.OnTransmit(at, 1, retransmission: !at.IsAfterOrEqual(_sndMax), now, TsValNow(now));
        if (end.IsAfter(_sndMax)) _sndMax = end;
        if (end.IsAfter(_sndNxt)) _sndNxt = end;
        _persistBackoff++;
        long backoff = Us(_rto.Rto) << Math.Min(_persistBackoff, 16);
        _persistAt = now.Microseconds + Math.Clamp(backoff, Us(_cfg.MinimumPersist), Us(_cfg.MaximumPersist));
    }

    /// <summary>
    /// RFC 9293 3.8.4 / RFC 1122 4.2.3.6: after an idle period, probes
    /// &lt;SEQ=SND.NXT-1&gt;&lt;ACK=RCV.NXT&gt; with no data, which a live peer answers with an
    /// ACK; after the configured count of unanswered probes the connection is dropped.
    /// </summary>
    private void OnKeepAliveTimeout(Instant now)
    {
        if (_keepAliveProbes >= _keepAliveCount)
        {
            Counters.ConnectionsTimedOut++;
            Fail(_softError != TcpError.None ? _softError : TcpError.TimedOut, now, sendReset: true);
            return;
        }
        if (_sndUna != _sndMax || _send.End != _sndNxt)
        {
            // Data outstanding or waiting: the retransmission and persist timers probe already.
            _keepAliveProbes = 0;
            _lastReceiveUs = now.Microseconds;
            return;
        }
        _lastKeepAliveUs = now.Microseconds;
        _keepAliveProbes++;
        Counters.KeepAliveProbes++;
        SendSegment(_sndMax - 1, 0, TcpFlags.Ack, now);
    }
}
