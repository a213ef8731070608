using AntHost.Inet.Core.Buffers;
using AntHost.Inet.Core.Tcp.Isn;
using AntHost.Inet.Core.Tcp.Recovery;
using AntHost.Inet.Core.Time;
using AntHost.Inet.Core.Wire;

namespace AntHost.Inet.Core.Tcp;

/// <summary>
/// Segment acceptance, RFC 9293 3.10.7 ("SEGMENT ARRIVES"), with RFC 5961's defences,
/// RFC 7323's PAWS and RTTM, and RFC 2018 SACK on the way.
/// </summary>
/// <remarks>
/// The checks run in the RFC's order: SYN-SENT on its own (3.10.7.3); every other state
/// first checks the sequence number (PAWS, then the acceptability test and the trim to
/// the window), then the control bits and the acknowledgment in one switch over
/// (state, control, ACK class) whose arms name the RFC text they implement, and last
/// the payload and the FIN.
/// </remarks>
internal sealed partial class TcpConnection
{
    private enum Control : byte
    {
        None,
        Rst,
        Syn,
        Ack,
    }

    /// <summary>Where SEG.ACK lies relative to the send sequence space.</summary>
    private enum AckClass : byte
    {
        /// <summary>No ACK bit.</summary>
        Missing,
        /// <summary>SEG.ACK &lt; SND.UNA - MAX.SND.WND: RFC 5961 5.2 says "not acceptable".</summary>
        TooOld,
        /// <summary>SND.UNA - MAX.SND.WND =&lt; SEG.ACK &lt; SND.UNA: an old duplicate (RFC 9293: "can be ignored").</summary>
        Old,
        /// <summary>SEG.ACK = SND.UNA.</summary>
        Current,
        /// <summary>SND.UNA &lt; SEG.ACK =&lt; SND.MAX: acknowledges new data.</summary>
        Advances,
        /// <summary>SEG.ACK &gt; SND.MAX: acknowledges something not yet sent.</summary>
        Future,
    }

    private AckClass ClassifyAck(in Segment seg)
    {
        if (!seg.Ack) return AckClass.Missing;
        var a = seg.AckNumber;
        if (a.IsAfter(_sndMax)) return AckClass.Future;
        if (a.IsAfter(_sndUna)) return AckClass.Advances;
        if (a == _sndUna) return AckClass.Current;
        long maxWnd = Math.Max(_maxSndWnd, 1);
        return (long)(_sndUna - a) <= maxWnd ? AckClass.Old : AckClass.TooOld;
    }

    /// <summary>A segment for this connection; <paramref name="payload"/> holds its payload and passes in.</summary>
    public void Input(in Segment seg, PacketBuffer payload, Instant now)
    {
        if (State == TcpState.SynSent)
        {
            InputSynSent(in seg, payload, now);
            CheckInvariants();
            return;
        }
        if (State is TcpState.Closed or TcpState.Listen)
        {
            // A socket that is CLOSED but still has a handle (reset, waiting for its app):
            // answer as a closed port would (RFC 9293 3.10.7.1).
            _layer.Drop(payload, TcpDropReason.NoSocket);
            if (!seg.Rst) _layer.SendResetFor(in seg, Local.Address, Remote.Address, now);
            return;
        }
        InputSynchronized(in seg, payload, now);
        CheckInvariants();
    }

    // ------------------------------------------------------------------ SYN-SENT

    private void InputSynSent(in Segment seg, PacketBuffer payload, Instant now)
    {
        // RFC 9293 3.10.7.3 first: the ACK is acceptable when ISS < SEG.ACK =< SND.NXT.
        var ack = !seg.Ack ? AckClass.Missing
            : seg.AckNumber.IsAfter(_iss) && seg.AckNumber.IsBeforeOrEqual(_sndMax) ? AckClass.Advances
            : AckClass.Future;
        var ctl = seg.Rst ? Control.Rst : seg.Syn ? Control.Syn : seg.Ack ? Control.Ack : Control.None;
        switch ((ctl, ack))
        {
            case (Control.Rst, AckClass.Advances):
                // 3.10.7.3 second: "If the ACK was acceptable, then signal to the user 'error:
                // connection reset', drop the segment, enter CLOSED state". RFC 5961 3.2 adds
                // nothing here: an acceptable ACK is the proof of being on path.
                Counters.ResetsIn++;
                payload.Release();
                EnterClosed(TcpError.ConnectionRefused);
                return;
            case (Control.Rst, _):
                // "Otherwise (no ACK), drop the segment and return."
                _layer.Drop(payload, TcpDropReason.BadRst);
                return;
            case (_, AckClass.Future):
                // 3.10.7.3 first: "If SEG.ACK =< ISS or SEG.ACK > SND.NXT, send a reset (unless
                // the RST bit is set, if so drop the segment and return) <SEQ=SEG.ACK><CTL=RST>".
                _layer.Drop(payload, TcpDropReason.BadAck);
                _layer.SendControl(Local.Address, Local.Port, Remote.Address, Remote.Port, seg.AckNumber, default, TcpFlags.Rst, 0, default, now);
                Counters.ResetsOut++;
                return;
            case (Control.Syn, AckClass.Advances):
                // 3.10.7.3 fourth: "RCV.NXT is set to SEG.SEQ+1, IRS is set to SEG.SEQ. SND.UNA
                // should be advanced to equal SEG.ACK ... If SND.UNA > ISS (our SYN has been
                // ACKed), change the connection state to ESTABLISHED, form an ACK segment
                // <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK> and send it."
                AcceptPeerSyn(in seg, now);
                _sndUna = seg.AckNumber;
                // RFC 7323 2.2: "The window field in a segment where the SYN bit is set MUST NOT be scaled."
                SetSendWindow(seg.Window, seg.Seq, seg.AckNumber, scaled: false);
                TakeRttFromSyn(in seg, now);
                Establish(now);
                _ackNow = true;
                // Data or a FIN on the SYN-ACK: "Data or controls that were queued for
                // transmission may be included"; continue with the sixth step.
                ProcessText(in seg, payload, seg.Seq + 1, now);
                Output(now);
                return;
            case (Control.Syn, AckClass.Missing):
                // 3.10.7.3 fourth: "Otherwise, enter SYN-RECEIVED, form a SYN,ACK segment
                // <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK> and send it." (simultaneous open)
                AcceptPeerSyn(in seg, now);
                SetSendWindow(seg.Window, seg.Seq, seg.AckNumber, scaled: false);
                State = TcpState.SynReceived;
                payload.Release();
                _sndNxt = _iss;
                SendSyn(now);
                return;
            default:
                // 3.10.7.3 fifth: "If neither of the SYN or RST bits is set, then drop the segment and return."
                _layer.Drop(payload, TcpDropReason.NotAcceptable);
                return;
        }
    }

    private void AcceptPeerSyn(in Segment seg, Instant now)
    {
        _irs = seg.Seq;
        _rcvNxt = seg.Seq + 1;
        _lastAckSent = _rcvNxt;
        TakePeerSynOptions(in seg);
        if (_tsEnabled) _tsRecentAtUs = now.Microseconds;
        _rcvAdvRight = _rcvNxt + (int)Math.Min(ComputeWindowBytes(), 65535);
        _lastReceiveUs = now.Microseconds;
    }

    private void TakeRttFromSyn(in Segment seg, Instant now)
    {
        if (_tsEnabled && seg.Options.HasTimestamps && seg.Options.TsEcr != 0)
        {
            var rtt = TimestampClock.RttFromEcho(seg.Options.TsEcr, now, _tsOffset);
            if (rtt is { } r && _timeouts == 0) _rto.AddSample(r);
        }
        else _rto.OnAck(seg.AckNumber, now);
    }

    private void Establish(Instant now)
    {
        bool timedOut = _timeouts > 0;
        State = TcpState.Established;
        _established = true;
        _timeouts = 0;
        _rtxAt = Never;
        StartAlgorithms(timedOut);
        _eventPending = true;
        if (_finQueued) State = TcpState.FinWait1;
        if (_listener is not null) _listener.ChildEstablished(this);
    }

    // ------------------------------------------------------------------ the other states

    private void InputSynchronized(in Segment seg, PacketBuffer payload, Instant now)
    {
        // SYN-RECEIVED of a passive open: a retransmitted SYN means our SYN-ACK was lost.
        if (State == TcpState.SynReceived && seg.Syn && !seg.Ack && !seg.Rst && seg.Seq == _irs)
        {
            payload.Release();
            _sndNxt = _iss;
            SendSyn(now);
            return;
        }

        // RFC 1122 4.2.2.13 / RFC 6191: a new SYN for a connection in TIME-WAIT may reopen it
        // when it cannot be confused with the old one (its sequence number, or timestamp, is
        // beyond what the old connection used). The TIME-WAIT state is dropped and the SYN
        // goes to the listener, if there is one.
        if (State == TcpState.TimeWait && seg.Syn && !seg.Ack && !seg.Rst && CanReopenFromTimeWait(in seg))
        {
            EnterClosed(TcpError.None);
            _layer.RedeliverToListener(in seg, payload, Local.Address, Remote.Address, now);
            return;
        }

        _lastReceiveUs = now.Microseconds;
        _keepAliveProbes = 0;

        // RFC 7323 5.3 R1 (PAWS), before the sequence number check: "If there is a
        // Timestamps option in the arriving segment, SEG.TSval < TS.Recent, TS.Recent is
        // valid, and if the RST bit is not set, then treat the arriving segment as not acceptable".
        if (_tsEnabled && !seg.Rst)
        {
            if (!seg.Options.HasTimestamps)
            {
                // RFC 7323 3.2: "If a non-RST segment is received without a TSopt, a TCP
                // SHOULD silently drop the segment."
                _layer.Drop(payload, TcpDropReason.Paws);
                return;
            }
            if (TimestampClock.IsBefore(seg.Options.TsVal, _tsRecent))
            {
                // RFC 7323 5.5: TS.Recent older than 24 days is invalid; take the new value.
                if (now.Microseconds - _tsRecentAtUs > 24L * 86400 * 1_000_000)
                {
                    _tsRecent = seg.Options.TsVal;
                    _tsRecentAtUs = now.Microseconds;
                }
                else
                {
                    _layer.Drop(payload, TcpDropReason.Paws);
                    SendOutOfWindowAck(in seg, now);
                    return;
                }
            }
        }

        // RFC 9293 3.10.7.4 first: the sequence number test.
        long rcvWnd = Math.Max(0, _rcvAdvRight - _rcvNxt);
        int segLen = seg.Length;
        if (!IsAcceptable(seg.Seq, segLen, rcvWnd))
        {
            // "If the RCV.WND is zero, no segments will be acceptable, but special allowance
            // should be made to accept valid ACKs, URGs, and RSTs": a segment starting at RCV.NXT
            // is processed for its ACK; its text is dropped, and, not acceptable, answered with
            // an ACK (the peer's zero-window probe or retransmission learns the window from it;
            // unanswered, its timer backs off to minutes).
            if (rcvWnd == 0 && seg.Seq == _rcvNxt && (seg.Ack || seg.Rst))
            {
                if (segLen > 0 && !seg.Rst) _ackNow = true;
                payload.Truncate(0);
                segLen = 0;
                var bare = seg;
                ProcessControlAndAck(in bare, payload, now, textAllowed: false);
                return;
            }
            if (State == TcpState.TimeWait && seg.Fin)
            {
                // 3.10.7.4 eighth, TIME-WAIT: "The only thing that can arrive in this state is a
                // retransmission of the remote FIN. Acknowledge it, and restart the 2 MSL timeout."
                _closeAt = now.Microseconds + 2 * Us(_cfg.Msl);
            }
            // A duplicate of data already received is reported as a D-SACK block (RFC 2883 4),
            // which lets the sender undo a spurious retransmission.
            if (_sackEnabled && seg.PayloadLength > 0 && !seg.Rst && (seg.Seq + seg.PayloadLength).IsBeforeOrEqual(_rcvNxt))
                ReportDuplicate(seg.Seq, seg.Seq + seg.PayloadLength);
            // "If an incoming segment is not acceptable, an acknowledgment should be sent in reply
            // (unless the RST bit is set, if so drop the segment and return)".
            _layer.Drop(payload, TcpDropReason.NotAcceptable);
            if (!seg.Rst) SendOutOfWindowAck(in seg, now);
            return;
        }
        ProcessControlAndAck(in seg, payload, now, textAllowed: true);
    }

    /// <summary>RFC 9293 3.10.7.4 first: the four cases of the acceptability test.</summary>
    private bool IsAcceptable(SeqNumber seq, int len, long rcvWnd)
    {
        SeqNumber right = _rcvNxt + (uint)rcvWnd;
        // A segment without data is accepted up to and including the right edge,
        // RCV.NXT =< SEG.SEQ =< RCV.NXT+RCV.WND, one further than the RFC's table
        // ("RCV.NXT =< SEG.SEQ < RCV.NXT+RCV.WND"), as Linux (tcp_sequence) and the BSDs
        // (tcp_input's trim, which drops only octets past the edge) do. Such a segment holds
        // no sequence space outside the window; it is the peer saying that its SND.NXT is our
        // right edge, which is where its bare ACKs sit once it has filled our window. Refused,
        // its ACK and window are lost: when both peers have filled each other's windows and
        // the data in flight is lost, each sends only retransmissions of octets the other
        // already holds (wholly below RCV.NXT) and bare ACKs at the other's right edge, the
        // other refuses both and answers with an ACK that is refused in turn, and neither
        // ACK is ever read until both time out.
        if (len == 0)
            return rcvWnd == 0 ? seq == _rcvNxt : seq.IsAfterOrEqual(_rcvNxt) && seq.IsBeforeOrEqual(right);
        if (rcvWnd == 0) return false;
        SeqNumber last = seq + (len - 1);
        return (seq.IsAfterOrEqual(_rcvNxt) && seq.IsBefore(right)) || (last.IsAfterOrEqual(_rcvNxt) && last.IsBefore(right));
    }

    private bool CanReopenFromTimeWait(in Segment seg)
    {
        if (_tsEnabled && seg.Options.HasTimestamps) return TimestampClock.IsBefore(_tsRecent, seg.Options.TsVal);
        return seg.Seq.IsAfter(_rcvNxt);
    }

    private void ProcessControlAndAck(in Segment seg, PacketBuffer payload, Instant now, bool textAllowed)
    {
        var ctl = seg.Rst ? Control.Rst : seg.Syn ? Control.Syn : seg.Ack ? Control.Ack : Control.None;
        var ack = ClassifyAck(in seg);
        bool exactRst = seg.Seq == _rcvNxt;

        switch ((State, ctl, ack))
        {
            // ---- RST (3.10.7.4 second, with RFC 5961 3.2) --------------------------------
            case (TcpState.SynReceived, Control.Rst, _) when exactRst:
                // "If this connection was initiated with a passive OPEN (i.e., came from the
                // LISTEN state), then return this connection to LISTEN state and return ... If
                // this connection was initiated with an active OPEN (i.e., came from SYN-SENT
                // state), then the connection was refused".
                Counters.ResetsIn++;
                payload.Release();
                EnterClosed(_listener is null ? TcpError.ConnectionRefused : TcpError.None);
                return;
            case (TcpState.Established or TcpState.FinWait1 or TcpState.FinWait2 or TcpState.CloseWait, Control.Rst, _) when exactRst:
                // "ESTABLISHED, FIN-WAIT-1, FIN-WAIT-2, CLOSE-WAIT: If the RST bit is set, then any
                // outstanding RECEIVEs and SEND should receive 'reset' responses. All segment
                // queues should be flushed. Users should also receive an unsolicited general
                // 'connection reset' signal. Enter the CLOSED state".
                Counters.ResetsIn++;
                payload.Release();
                EnterClosed(TcpError.ConnectionReset);
                return;
            case (TcpState.Closing or TcpState.LastAck or TcpState.TimeWait, Control.Rst, _) when exactRst:
                // "CLOSING, LAST-ACK, TIME-WAIT: If the RST bit is set, then enter the CLOSED state".
                Counters.ResetsIn++;
                payload.Release();
                EnterClosed(TcpError.None);
                return;
            case (_, Control.Rst, _):
                // RFC 5961 3.2: "If the RST bit is set and the sequence number does not exactly
                // match the next expected sequence value, yet is within the current receive
                // window, TCP MUST send an acknowledgment (challenge ACK)".
                _layer.Drop(payload, TcpDropReason.BadRst);
                SendChallengeAck(now);
                return;

            // ---- SYN (3.10.7.4 fourth, RFC 5961 4) --------------------------------------
            case (TcpState.SynReceived, Control.Syn, _) when _listener is not null:
                // "SYN-RECEIVED: If the connection was initiated with a passive OPEN, then return
                // this connection to the LISTEN state and return."
                _layer.Drop(payload, TcpDropReason.BadSyn);
                EnterClosed(TcpError.None);
                return;
            case (_, Control.Syn, _):
                // "If the SYN bit is set in these synchronized states, it may be either a
                // legitimate new connection attempt ... or an error ... RFC 5961 recommends ...
                // the TCP endpoint MUST send a 'challenge ACK' to the remote peer".
                _layer.Drop(payload, TcpDropReason.BadSyn);
                SendChallengeAck(now);
                return;

            // ---- ACK (3.10.7.4 fifth) ---------------------------------------------------
            case (_, Control.None, _):
                // "if the ACK bit is off, drop the segment and return".
                _layer.Drop(payload, TcpDropReason.NotAcceptable);
                return;
            case (TcpState.SynReceived, Control.Ack, AckClass.Advances):
                // "SYN-RECEIVED: If SND.UNA < SEG.ACK =< SND.NXT, then enter ESTABLISHED state and
                // continue processing with the variables below set to: SND.WND <- SEG.WND,
                // SND.WL1 <- SEG.SEQ, SND.WL2 <- SEG.ACK".
                if (_listener is not null && !_listener.HasAcceptRoom)
                {
                    // As Linux does when the accept queue is full: forget the ACK; the SYN-ACK
                    // will be retransmitted and the peer's ACK with it.
                    _layer.Drop(payload, TcpDropReason.BacklogFull);
                    return;
                }
                _sndUna = seg.AckNumber;
                SetSendWindow(seg.Window, seg.Seq, seg.AckNumber, scaled: true);
                TakeRttFromSyn(in seg, now);
                UpdateTsRecent(in seg);
                Establish(now);
                break;
            case (TcpState.SynReceived, Control.Ack, _):
                // "If the segment acknowledgment is not acceptable, form a reset segment
                // <SEQ=SEG.ACK><CTL=RST> and send it."
                _layer.Drop(payload, TcpDropReason.BadAck);
                _layer.SendControl(Local.Address, Local.Port, Remote.Address, Remote.Port, seg.AckNumber, default, TcpFlags.Rst, 0, default, now);
                Counters.ResetsOut++;
                return;
            case (_, Control.Ack, AckClass.Future):
                // "If the ACK acks something not yet sent (SEG.ACK > SND.NXT), then send an ACK,
                // drop the segment, and return." RFC 5961 5.2 rate-limits it as a challenge ACK.
                _layer.Drop(payload, TcpDropReason.BadAck);
                SendChallengeAck(now);
                return;
            case (_, Control.Ack, AckClass.TooOld):
                // RFC 5961 5.2: "(SND.UNA - MAX.SND.WND) =< SEG.ACK =< SND.NXT ... All incoming
                // segments whose ACK value doesn't satisfy the above condition MUST be discarded
                // and an ACK sent back."
                _layer.Drop(payload, TcpDropReason.BadAck);
                SendChallengeAck(now);
                return;
            case (TcpState.TimeWait, Control.Ack, _):
                // "TIME-WAIT: The only thing that can arrive in this state is a retransmission of
                // the remote FIN": handled with the FIN below.
                break;
            case (_, Control.Ack, AckClass.Old or AckClass.Current or AckClass.Advances):
                // "ESTABLISHED: If SND.UNA < SEG.ACK =< SND.NXT, then set SND.UNA <- SEG.ACK ...
                // If the ACK is a duplicate (SEG.ACK =< SND.UNA), it can be ignored ... If
                // SND.UNA =< SEG.ACK =< SND.NXT, the send window should be updated".
                UpdateTsRecent(in seg);
                ProcessAck(in seg, ack, now);
                // "FIN-WAIT-1: In addition to the processing for the ESTABLISHED state, if the FIN
                // segment is now acknowledged, then enter FIN-WAIT-2 and continue processing".
                // "CLOSING: ... if the ACK acknowledges our FIN, then enter the TIME-WAIT state".
                // "LAST-ACK: The only thing that can arrive in this state is an acknowledgment of
                // our FIN. If our FIN is now acknowledged, delete the TCB, enter the CLOSED state".
                if (_finAcked)
                {
                    switch (State)
                    {
                        case TcpState.FinWait1:
                            State = TcpState.FinWait2;
                            _eventPending = true;
                            if (Socket == default) _closeAt = now.Microseconds + Us(_cfg.FinWait2Timeout);
                            break;
                        case TcpState.Closing:
                            payload.Release();
                            EnterTimeWait(now);
                            return;
                        case TcpState.LastAck:
                            payload.Release();
                            EnterClosed(TcpError.None);
                            return;
                    }
                }
                break;
        }
        if (State == TcpState.Closed)
        {
            payload.Release();
            return;
        }

        // 3.10.7.4 sixth (URG): the urgent pointer is not supported; urgent data is delivered
        // inline like any other (as SO_OOBINLINE, which RFC 6093 recommends applications use).

        // 3.10.7.4 seventh and eighth: the segment text and the FIN.
        if (textAllowed) ProcessText(in seg, payload, seg.Seq, now);
        else payload.Release();
        // In a receive batch, the ACK of an in-order segment (and the data its ACK lets go)
        // waits for the batch's end and goes once for all. A duplicate or out-of-order
        // segment is answered at once: the peer counts those ACKs (RFC 5681 4.2, RFC 2883).
        if (State == TcpState.Established && !_recv.HasOutOfOrder && !_dsackPending && _layer.HoldOutput(this)) return;
        Output(now);
    }

    /// <summary>RFC 7323 4.3: "If SEG.TSval >= TS.Recent and SEG.SEQ =&lt; Last.ACK.sent then SEG.TSval is copied to TS.Recent".</summary>
    private void UpdateTsRecent(in Segment seg)
    {
        if (!_tsEnabled || !seg.Options.HasTimestamps) return;
        if (!TimestampClock.IsBefore(seg.Options.TsVal, _tsRecent) && seg.Seq.IsBeforeOrEqual(_lastAckSent))
        {
            _tsRecent = seg.Options.TsVal;
            _tsRecentAtUs = _lastReceiveUs;
        }
    }

    private void SetSendWindow(ushort window, SeqNumber seq, SeqNumber ack, bool scaled)
    {
        _sndWnd = scaled ? (long)window << _sndWndShift : window;
        _sndWl1 = seq;
        _sndWl2 = ack;
        if (_sndWnd > _maxSndWnd) _maxSndWnd = _sndWnd;
    }

    /// <summary>The ACK processing of ESTABLISHED (3.10.7.4 fifth) with loss recovery (RFC 5681, 6582, 6675) and RTTM.</summary>
    private void ProcessAck(in Segment seg, AckClass ack, Instant now)
    {
        var rec = _recovery!;
        long segWnd = (long)seg.Window << _sndWndShift;
        // RFC 5681 2: a duplicate ACK has outstanding data, no payload, no SYN/FIN, SEG.ACK = SND.UNA
        // and an unchanged window.
        bool duplicate = ack == AckClass.Current && _sndUna != _sndMax && seg.PayloadLength == 0 && !seg.Syn && !seg.Fin && segWnd == _sndWnd;

        if (ack is AckClass.Current or AckClass.Advances)
        {
            if (_sackEnabled)
            {
                var o = seg.Options;
                for (int i = 0; i < o.SackCount; i++)
                {
                    var b = o.GetSack(i);
                    rec.AddSackBlock(b.Left, b.Right, _sndUna, _sndMax);
                }
            }
            bool hasEcr = _tsEnabled && seg.Options.HasTimestamps && seg.Options.TsEcr != 0;
            // F-RTO needs to know whether new data could go once this ACK is taken.
            bool newDataReady = (_send.End.IsAfter(_sndMax) || (_finQueued && !_finSent)) && (long)(seg.AckNumber - _sndMax) + segWnd > 0;
            var actions = rec.OnAck(new AckSample(seg.AckNumber, duplicate, _sndUna, _sndMax, _rto.SmoothedRtt, now,
                hasEcr, hasEcr ? seg.Options.TsEcr : 0, newDataReady));

            if (ack == AckClass.Advances)
            {
                SeqNumber a = seg.AckNumber;
                // RTTM (RFC 7323 4.1) when timestamps are on, else Karn-filtered timing (RFC 6298 3).
                if (_tsEnabled && seg.Options.HasTimestamps && seg.Options.TsEcr != 0)
                {
                    if (TimestampClock.RttFromEcho(seg.Options.TsEcr, now, _tsOffset) is { } rtt)
                    {
                        _rto.AddSample(rtt);
                        rec.OnRttSample(rtt);
                    }
                }
                else if (_rto.OnAck(a, now)) rec.OnRttSample(_rto.LastSample);
                _rto.ResetBackoff();
                _timeouts = 0;

                SeqNumber dataEnd = _send.End;
                _send.AckTo(a.IsAfter(dataEnd) ? dataEnd : a);
                if (_finSent && a == dataEnd + 1) _finAcked = true;
                _sndUna = a;
                if (_sndNxt.IsBefore(_sndUna)) _sndNxt = _sndUna;
                _persistBackoff = 0;
                _persistAt = Never;
                // RFC 6298 5.2: "When all outstanding data has been acknowledged, turn off the
                // retransmission timer." 5.3: "When an ACK is received that acknowledges new data,
                // restart the retransmission timer".
                _rtxAt = _sndUna == _sndMax ? Never : now.Microseconds + Us(_rto.Rto);
                _eventPending = true;
            }

            if ((actions & AckActions.EnteredRecovery) != 0) CountRecovery(rec);
            if ((actions & AckActions.ProbeRepairedLoss) != 0) Counters.TlpRepairs++;
            if ((actions & AckActions.Undo) != 0)
            {
                _undos++;
                switch (rec.LastUndo)
                {
                    case UndoReason.Timestamp: Counters.UndosTimestamp++; break;
                    case UndoReason.Dsack: Counters.UndosDsack++; break;
                    case UndoReason.Frto: Counters.UndosFrto++; break;
                }
                if (rec.LastUndoWasTimeout) Counters.SpuriousTimeouts++;
                // After a spurious timeout the first transmissions arrived: go-back-N stops.
                if (_sndNxt.IsBefore(_sndMax)) _sndNxt = _sndMax;
            }
            if ((actions & AckActions.FrtoSendNew) != 0) _sndNxt = _sndMax;   // RFC 5682 2.1 step 2b
            if ((actions & AckActions.FrtoRevert) != 0) _sndNxt = _sndUna;    // step 3a: go-back-N after all

            if ((actions & AckActions.RetransmitFirst) != 0)
            {
                if ((actions & AckActions.EnteredRecovery) != 0 && _sackEnabled) Counters.RetransmitsSack++;
                else Counters.RetransmitsFast++;
                _rtxDupThresh++;
                RetransmitFrom(_sndUna, SegmentKind.Retransmit, now);
            }
            if ((actions & AckActions.RestartTimer) != 0) _rtxAt = now.Microseconds + Us(_rto.Rto);
            _reorderAt = rec.ReorderDeadlineUs;
            // RFC 8985 7.2: the probe timer restarts on an ACK of new data; it stops in recovery
            // and once segments are SACKed.
            if (ack == AckClass.Advances) ArmProbe(now);
            else if (!rec.ProbeAllowed) _probeAt = Never;
        }

        // 3.10.7.4 fifth: "If SND.UNA =< SEG.ACK =< SND.NXT, the send window should be updated.
        // If (SND.WL1 < SEG.SEQ or (SND.WL1 = SEG.SEQ and SND.WL2 =< SEG.ACK)), set SND.WND <-
        // SEG.WND, set SND.WL1 <- SEG.SEQ, and set SND.WL2 <- SEG.ACK."
        // A peer that answers with a zero window is alive: its probes' answers must not count
        // towards giving up (as Linux's persist logic).
        if (ack == AckClass.Current && segWnd == 0 && _sndWnd == 0) _timeouts = 0;

        if (ack is AckClass.Current or AckClass.Advances
            && (_sndWl1.IsBefore(seg.Seq) || (_sndWl1 == seg.Seq && _sndWl2.IsBeforeOrEqual(seg.AckNumber))))
        {
            bool opened = segWnd > _sndWnd;
            SetSendWindow(seg.Window, seg.Seq, seg.AckNumber, scaled: true);
            if (opened && _sndWnd > 0)
            {
                _persistAt = Never;
                _persistBackoff = 0;
                // A zero-window probe that the peer dropped is sent again as ordinary data.
                if (_sndNxt == _sndMax && _sndUna != _sndMax && _rtxAt == Never) _sndNxt = _sndUna;
                _eventPending = true;
            }
        }
    }

    /// <summary>
    /// 3.10.7.4 seventh and eighth: the payload (in ESTABLISHED, FIN-WAIT-1 and FIN-WAIT-2)
    /// and the FIN. <paramref name="textSeq"/> is the sequence number of the first payload byte.
    /// </summary>
    private void ProcessText(in Segment seg, PacketBuffer payload, SeqNumber textSeq, Instant now)
    {
        bool fin = seg.Fin;
        int len = payload.Length;
        bool acceptsText = State is TcpState.Established or TcpState.FinWait1 or TcpState.FinWait2;
        if (len > 0 && !acceptsText)
        {
            // "CLOSE-WAIT, CLOSING, LAST-ACK, TIME-WAIT: This should not occur since a FIN has
            // been received from the remote side. Ignore the segment text."
            payload.Release();
            if (!_finReceived) _ackNow = true;
            return;
        }
        if (len > 0 && Socket == default && _finQueued)
        {
            // Data for an app that has closed its socket cannot be delivered: reset, as Linux
            // does (RFC 2525 2.17's reasoning), rather than acknowledge data nobody will read.
            payload.Release();
            SendReset(now);
            EnterClosed(TcpError.ConnectionAborted);
            return;
        }

        // Trim to the window: bytes before RCV.NXT are old, bytes past the right edge are dropped.
        if (textSeq.IsBefore(_rcvNxt))
        {
            int old = Math.Min(_rcvNxt - textSeq, len);
            if (_sackEnabled && old > 0) ReportDuplicate(textSeq, textSeq + old);
            payload.TrimFront(old);
            textSeq += old;
            len -= old;
        }
        SeqNumber right = SeqNumber.Max(_rcvAdvRight, _rcvNxt);
        if ((textSeq + len).IsAfter(right))
        {
            int keep = Math.Max(0, right - textSeq);
            payload.Truncate(Math.Min(keep, len));
            len = payload.Length;
            fin = false; // a FIN past the window is not accepted
        }
        if (fin && _finReceived) fin = false;

        if (len > 0 || fin)
        {
            if (len > 0)
            {
                _lastRxCapacity = payload.Capacity;
                _lastRxLength = len;
            }
            long memLimit = (long)_receiveLimit * _cfg.ReceiveMemoryFactor;
            if (len > 0 && _recv.Capacity + payload.Capacity > memLimit)
            {
                // Over the memory bound. Data at RCV.NXT is worth more than data held out of
                // order (it lets the app progress, and the out-of-order data is SACKed, so the
                // peer still has it): make room by dropping the highest out-of-order segments,
                // as Linux prunes its out-of-order queue. Otherwise drop this segment
                // unacknowledged; the peer will retransmit it.
                if (textSeq == _rcvNxt)
                    while (_recv.HasOutOfOrder && _recv.Capacity + payload.Capacity > memLimit) _recv.DropHighestOutOfOrder();
                if (_recv.Capacity + payload.Capacity > memLimit)
                {
                    _layer.Drop(payload, TcpDropReason.OutOfMemory);
                    _ackNow = true;
                    return;
                }
            }
            if (textSeq == _rcvNxt)
            {
                bool hadHoles = _recv.HasOutOfOrder;
                _rcvNxt += len;
                _recv.AppendReady(payload);
                _bytesSinceAck += len;
                if (len > 0) _eventPending = true;
                if (hadHoles)
                {
                    _recv.Drain(ref _rcvNxt, out bool queuedFin);
                    fin |= queuedFin;
                    // RFC 5681 4.2: "an ACK SHOULD be generated immediately when an incoming
                    // segment fills in all or part of a gap in the sequence space".
                    _ackNow = true;
                }
                if (fin) ReceiveFin(now);
                else ScheduleAck(now);
            }
            else
            {
                if (!_recv.InsertOutOfOrder(textSeq, payload, fin, _cfg.MaximumOutOfOrderSegments))
                    Counters.Drops[(int)TcpDropReason.OutOfOrderQueueFull]++;
                // RFC 5681 4.2: "A TCP receiver SHOULD send an immediate duplicate ACK when an
                // out-of-order segment arrives." RFC 2018 4: with SACK blocks.
                _ackNow = true;
            }
        }
        else
        {
            payload.Release();
        }
    }

    private void ReportDuplicate(SeqNumber left, SeqNumber right)
    {
        _dsack = new SackBlock(left, right);
        _dsackPending = true;
        _ackNow = true;
    }

    /// <summary>3.10.7.4 eighth: the FIN is in order.</summary>
    private void ReceiveFin(Instant now)
    {
        // "advance RCV.NXT over the FIN, and send an acknowledgment for the FIN".
        _rcvNxt += 1;
        _finReceived = true;
        _ackNow = true;
        _eventPending = true;
        switch (State)
        {
            case TcpState.SynReceived or TcpState.Established:
                // "Enter the CLOSE-WAIT state."
                State = TcpState.CloseWait;
                break;
            case TcpState.FinWait1:
                // "If our FIN has been ACKed (perhaps in this segment), then enter TIME-WAIT, start
                // the time-wait timer, turn off the other timers; otherwise, enter the CLOSING state."
                if (_finAcked)
                {
                    SendAck(now);
                    EnterTimeWait(now);
                }
                else State = TcpState.Closing;
                break;
            case TcpState.FinWait2:
                // "Enter the TIME-WAIT state. Start the time-wait timer, turn off the other timers."
                SendAck(now);
                EnterTimeWait(now);
                break;
        }
    }

    /// <summary>
    /// Delayed ACKs (RFC 9293 3.8.6.3, RFC 1122 4.2.3.2, RFC 5681 4.2): "an ACK SHOULD be
    /// generated for at least every second full-sized segment", and none is delayed more than
    /// the configured time (at most 500 ms).
    /// </summary>
    private void ScheduleAck(Instant now)
    {
        if (_bytesSinceAck >= 2 * Math.Max(1, _rcvMss - (_tsEnabled ? 12 : 0))) _ackNow = true;
        else if (_delAckAt == Never && _bytesSinceAck > 0) _delAckAt = now.Microseconds + Us(_cfg.DelayedAckTimeout);
    }

    /// <summary>RFC 5961 7: challenge ACKs, rate-limited for the whole layer.</summary>
    /// <summary>
    /// The ACK RFC 9293 3.10.7.4 asks for in reply to an unacceptable segment, throttled as
    /// RFC 5961 7 advises ("an implementation SHOULD include an ACK throttling mechanism"): a
    /// bare segment (no data, SYN or FIN) is answered at most once per
    /// <see cref="TcpConfig.OutOfWindowAckInterval"/> per connection, which breaks ACK loops
    /// between two ends that disagree about the window (as Linux's tcp_oow_rate_limited).
    /// A segment that occupies sequence space is always answered: its sender is retransmitting
    /// and needs the ACK.
    /// </summary>
    private void SendOutOfWindowAck(in Segment seg, Instant now)
    {
        if (seg.Length == 0)
        {
            long interval = Us(_cfg.OutOfWindowAckInterval);
            if (interval > 0 && _lastOowAckUs != long.MinValue && now.Microseconds - _lastOowAckUs < interval)
            {
                Counters.OutOfWindowAcksSuppressed++;
                return;
            }
            _lastOowAckUs = now.Microseconds;
        }
        SendAck(now);
    }

    private void SendChallengeAck(Instant now)
    {
        if (_layer.TakeChallengeAck(now)) SendAck(now);
    }

    // ------------------------------------------------------------------ ICMP (RFC 5927, RFC 1122 4.2.3.9)

    public void OnIcmpError(in Ip.IcmpError error, Instant now)
    {
        // RFC 5927 4.1: the quoted sequence number must be in the send window
        // (SND.UNA =< SEG.SEQ < SND.NXT), or the error is not believed.
        var seq = new SeqNumber(error.TcpSequence);
        bool inWindow = State == TcpState.SynSent ? seq == _iss : seq.IsAfterOrEqual(_sndUna) && seq.IsBefore(_sndMax);
        if (!inWindow || State is TcpState.Closed or TcpState.Listen or TcpState.TimeWait)
        {
            Counters.IcmpErrorsIgnored++;
            return;
        }
        switch (error.Kind)
        {
            case Ip.IcmpErrorKind.FragmentationNeeded:
                {
                    // RFC 1191 / RFC 5927 7.2: lower the MSS to fit the next-hop MTU and send again.
                    int mss = Math.Max(_cfg.MinimumMss, error.NextHopMtu - 40);
                    if (_mss == 0 || mss >= _mss || error.NextHopMtu < 68)
                    {
                        Counters.IcmpErrorsIgnored++;
                        return;
                    }
                    _mss = mss;
                    _recovery?.SetMss(SegmentPayload);
                    if (IsSynchronized)
                    {
                        // Everything in flight was too big: send it again at the new size (not a
                        // congestion signal, so the window is left alone).
                        _sndNxt = _sndUna;
                        _rto.OnRetransmit();
                        Output(now);
                    }
                    return;
                }
            case Ip.IcmpErrorKind.PortUnreachable or Ip.IcmpErrorKind.Unreachable when State == TcpState.SynSent:
                // RFC 1122 4.2.3.9 / RFC 5461: a hard error while connecting aborts the attempt.
                EnterClosed(error.Kind == Ip.IcmpErrorKind.PortUnreachable ? TcpError.ConnectionRefused : TcpError.HostUnreachable);
                return;
            default:
                // Soft in a synchronised state (RFC 5461): remembered, reported if the connection times out.
                _softError = error.Kind == Ip.IcmpErrorKind.PortUnreachable ? TcpError.ConnectionRefused : TcpError.HostUnreachable;
                return;
        }
    }
}
