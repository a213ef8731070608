using AntHost.Inet.Core.Buffers;
using AntHost.Inet.Core.Ip;
using AntHost.Inet.Core.Tcp.Isn;
using AntHost.Inet.Core.Tcp.Recovery;
using AntHost.Inet.Core.Time;
using AntHost.Inet.Core.Wire;

namespace AntHost.Inet.Core.Tcp;

/// <summary>
/// What goes out, and when: segmentation, the send-side rules (Nagle, silly-window
/// avoidance, the peer's window, the congestion window through loss recovery), the
/// receive window we advertise, and the building of each segment.
/// </summary>
/// <remarks>
/// Zero copy on the way out: a send-buffer chunk whose payload is exactly the segment
/// to send, with room in front for the TCP, IP and Ethernet headers and not lent already,
/// is sent in place: the headers are prepended into its headroom and it is lent to the IP
/// layer (<see cref="PacketBuffer.Lend"/>), so the app's bytes go to the adapter where
/// the app wrote them. Any other segment (one that spans chunks or takes part of one, a
/// retransmission of a chunk that is still lent, a chunk without headroom) gets a fresh
/// buffer from the pool and a copy of its payload, and that buffer is handed over to
/// the IP layer outright. The span send call fills chunks of exactly one segment's
/// payload with full headroom, so a bulk stream goes out in place.
/// </remarks>
internal sealed partial class TcpConnection
{
    private bool CanSendData => State is TcpState.Established or TcpState.CloseWait or TcpState.FinWait1 or TcpState.Closing or TcpState.LastAck;

    /// <summary>True when a FIN is due at <see cref="_sndNxt"/> (never sent, or pulled back by a timeout).</summary>
    private bool FinDueAtNext => _finQueued && _sndNxt == _send.End;

    /// <summary>Sends whatever may be sent now, then a pending ACK if nothing carried it.</summary>
    public void Output(Instant now)
    {
        if (CanSendData && _recovery is not null)
        {
            // Bounded so that one call cannot loop forever on a bug; far above any window.
            for (int i = 0; i < 100_000; i++)
            {
                if (!SendOne(now)) break;
            }
        }
        if (_ackNow && IsSynchronized && State != TcpState.TimeWait) SendAck(now);
        else if (_ackNow && State == TcpState.TimeWait) SendAck(now);
    }

    /// <summary>Sends one segment if the rules allow; a loss probe (<paramref name="probe"/>) of new data skips cwnd and Nagle (RFC 8985 7.3).</summary>
    private bool SendOne(Instant now, bool probe = false)
    {
        var rec = _recovery!;
        int available = _send.End - _sndNxt;          // data at SND.NXT not yet (re)sent
        if (available < 0) available = 0;
        bool finDue = FinDueAtNext;
        long wndRoom = (long)(_sndUna - _sndNxt) + _sndWnd; // the peer's window beyond SND.NXT
        bool newAllowed = (available > 0 || finDue) && wndRoom > 0;

        // RFC 5681 4.1: restart after idle. "a TCP SHOULD set cwnd to no more than RW before
        // beginning transmission if the TCP has not sent data in an interval exceeding the
        // retransmission timeout."
        if (newAllowed && _sndUna == _sndMax && _lastSendUs != 0 && now.Microseconds - _lastSendUs > Us(_rto.Rto))
            rec.OnIdleRestart(now);

        var next = probe ? new SegmentToSend(SegmentKind.Next, _sndNxt, int.MaxValue) : rec.NextSegment(_sndUna, _sndNxt, _sndMax, newAllowed);
        switch (next.Kind)
        {
            case SegmentKind.Retransmit or SegmentKind.Rescue:
                // RFC 6675 / RFC 5681: loss inferred from DupThresh.
                if (_sackEnabled) Counters.RetransmitsSack++;
                else Counters.RetransmitsFast++;
                _rtxDupThresh++;
                return RetransmitRange(next.Seq, next.Length, next.Kind, now);
            case SegmentKind.Lost:
                // RFC 8985: a segment RACK marked lost.
                Counters.RetransmitsRack++;
                _rtxRack++;
                return RetransmitRange(next.Seq, next.Length, next.Kind, now);
            case SegmentKind.Next:
                break;
            default:
                ArmPersistIfStalled(now, available, finDue);
                return false;
        }

        int maxPayload = MaxPayloadFor(now);
        bool isNew = _sndNxt == _sndMax;
        int limit = isNew && !probe && _cfg.SegmentationOffloadBytes >= 2 * maxPayload ? OffloadLimit(maxPayload) : maxPayload;
        int len = (int)Math.Min(Math.Min(available, limit), Math.Min(wndRoom, next.Length));
        if (len < 0) len = 0;
        // An offloaded send carries whole segments: a short tail goes by itself, under the rules below.
        if (len > maxPayload) len -= len % maxPayload;
        bool fin = finDue || (_finQueued && len == available && len > 0 && wndRoom > len);

        if (isNew && len < maxPayload && len < available)
        {
            // Sender-side silly window avoidance (RFC 9293 3.8.6.2.1): send only when
            // (1) a full segment can go, (2) all queued data can go and Nagle allows, or
            // (3) at least half the largest window the peer has offered can go.
            // Here not all queued data fits: rules (1) and (2) fail; try (3).
            if (!(len > 0 && _maxSndWnd > 0 && len >= _maxSndWnd / 2))
            {
                ArmPersistIfStalled(now, available, finDue);
                return false;
            }
        }
        else if (isNew && len < maxPayload && len > 0 && !fin && !NoDelay && _sndUna != _sndMax && !probe)
        {
            // Nagle (RFC 9293 3.7.4, RFC 1122 4.2.3.4): "If there is unacknowledged data (i.e.,
            // SND.NXT > SND.UNA), then the sending TCP endpoint buffers all user data (regardless
            // of the PSH bit) until the outstanding data has been acknowledged or until the TCP
            // endpoint can send a full-sized segment". A FIN overrides it (the app said it is done).
            return false;
        }
        if (len == 0 && !fin) return false;

        bool retransmission = !isNew;
        if (retransmission)
        {
            // Go-back-N after a retransmission timeout.
            Counters.RetransmitsTimeout++;
            _rtxTimeout++;
            _retransmits++;
            _rto.OnRetransmit();
        }
        var flags = TcpFlags.Ack | (len > 0 ? TcpFlags.Psh : 0) | (fin ? TcpFlags.Fin : 0);
        SeqNumber seq = _sndNxt;
        SendSegment(seq, len, flags, now);
        _sndNxt = seq + len + (fin ? 1 : 0);
        if (fin) _finSent = true;
        rec.OnTransmit(seq, len + (fin ? 1 : 0), retransmission, now, TsValNow(now));
        if (_sndNxt.IsAfter(_sndMax))
        {
            _sndMax = _sndNxt;
            if (!_tsEnabled && !retransmission) _rto.StartTiming(_sndNxt, now);
        }
        if (_rtxAt == Never) _rtxAt = now.Microseconds + Us(_rto.Rto);
        _persistAt = Never;
        // RFC 8985 7.2: "start or restart a loss probe PTO timer after transmitting new data
        // (that was not itself a loss probe)".
        if (!retransmission && !probe) ArmProbe(now);
        return true;
    }

    /// <summary>
    /// How much new data one send may carry with segmentation offload: the rest of the
    /// send-buffer chunk at SND.NXT (the payload stays where it is and is lent as a fragment),
    /// up to the configured size; one segment when the chunk holds less than two, or is still
    /// lent to the transmitter from an earlier send (a chunk is lent once at a time).
    /// </summary>
    private int OffloadLimit(int maxPayload)
    {
        if (!_send.Locate(_sndNxt, out int idx, out int off)) return maxPayload;
        ref var chunk = ref _send[idx];
        int toEnd = chunk.Length - off;
        if (toEnd < 2 * maxPayload) return maxPayload;
        if (chunk.Buffer.IsLent)
        {
            Counters.OffloadChunkLent++;
            return maxPayload;
        }
        // The transmitter addresses an offload payload with 16-bit offsets, as IPv4 lengths are.
        return Math.Max(maxPayload, Math.Min(Math.Min(toEnd, _cfg.SegmentationOffloadBytes), ushort.MaxValue - (chunk.Offset + off)));
    }

    /// <summary>The TSval a segment sent now carries (0 without timestamps).</summary>
    private uint TsValNow(Instant now) => _tsEnabled ? TimestampClock.TsVal(now, _tsOffset) : 0;

    /// <summary>The largest payload the next data segment can carry, given the options it will carry.</summary>
    private int MaxPayloadFor(Instant now)
    {
        var o = BuildOptions(syn: false, now);
        return Math.Max(1, _mss - o.WrittenLength);
    }

    /// <summary>
    /// The persist timer (RFC 9293 3.8.6.1): data waits, nothing is in flight to bring an ACK
    /// that would open the window, so probes must be sent.
    /// </summary>
    private void ArmPersistIfStalled(Instant now, int available, bool finDue)
    {
        if ((available > 0 || finDue) && _sndUna == _sndMax && _rtxAt == Never && _persistAt == Never)
        {
            long backoff = Us(_rto.Rto) << Math.Min(_persistBackoff, 16);
            _persistAt = now.Microseconds + Math.Clamp(backoff, Us(_cfg.MinimumPersist), Us(_cfg.MaximumPersist));
        }
    }

    /// <summary>Retransmits the segment at <paramref name="seq"/> (fast retransmit, partial ACK).</summary>
    private void RetransmitFrom(SeqNumber seq, SegmentKind kind, Instant now)
    {
        RetransmitRange(seq, MaxPayloadFor(now), kind, now);
    }

    /// <summary>Sends again up to <paramref name="length"/> octets from <paramref name="seq"/>, and the FIN if it falls there.</summary>
    /// <remarks>
    /// A retransmission carries only octets already sent, below SND.MAX: RFC 6298 5.4
    /// retransmits "the earliest segment that has not been acknowledged" and RFC 5681 3.2
    /// "what appears to be the missing segment", both segments that went out before. The
    /// send buffer usually holds more than was sent (data the peer's window or cwnd held
    /// back), so a full-sized segment from SND.UNA would run past SND.MAX: new data past the
    /// peer's window and cwnd, which SND.MAX would not cover, and the peer's ACK of it would
    /// meet RFC 9293 3.10.7.4 fifth, "If the ACK acks something not yet sent (SEG.ACK &gt;
    /// SND.NXT), then send an ACK, drop the segment, and return", every time, until the
    /// connection timed out.
    /// </remarks>
    private bool RetransmitRange(SeqNumber seq, int length, SegmentKind kind, Instant now)
    {
        if (!seq.IsBefore(_sndMax)) return false;
        int maxPayload = MaxPayloadFor(now);
        SeqNumber dataEnd = _send.End;
        SeqNumber sentEnd = SeqNumber.Min(dataEnd, _sndMax); // the FIN, if sent, sits at dataEnd
        int dataLen = Math.Max(0, Math.Min(Math.Min(length, maxPayload), sentEnd - seq));
        bool fin = _finSent && seq + dataLen == dataEnd && (dataEnd + 1).IsBeforeOrEqual(_sndMax) && (dataLen < length || dataLen == 0);
        if (dataLen == 0 && !fin) return false;
        var flags = TcpFlags.Ack | (dataLen > 0 ? TcpFlags.Psh : 0) | (fin ? TcpFlags.Fin : 0);
        SendSegment(seq, dataLen, flags, now);
        _retransmits++;
        _rto.OnRetransmit();
        _recovery?.OnTransmit(seq, dataLen + (fin ? 1 : 0), retransmission: true, now, TsValNow(now));
        _recovery?.OnRetransmitted(seq, dataLen + (fin ? 1 : 0), kind);
        if (_rtxAt == Never) _rtxAt = now.Microseconds + Us(_rto.Rto);
        return true;
    }

    /// <summary>
    /// A bare ACK: &lt;SEQ=SND.NXT&gt;&lt;ACK=RCV.NXT&gt;&lt;CTL=ACK&gt;, where the RFC's SND.NXT is our
    /// SND.MAX: after a timeout pulled SND.NXT back, an ACK carrying the old value would be
    /// below the peer's RCV.NXT, unacceptable, and the peer would drop it unread and answer
    /// with an ACK of its own, and so on.
    /// </summary>
    private void SendAck(Instant now)
    {
        if (State is TcpState.Closed or TcpState.Listen or TcpState.SynSent) return;
        SendSegment(_sndMax, 0, TcpFlags.Ack, now);
    }

    /// <summary>The SYN (SYN-SENT) or SYN-ACK (SYN-RECEIVED), at ISS, with our options.</summary>
    private void SendSyn(Instant now)
    {
        var flags = State == TcpState.SynSent ? TcpFlags.Syn : TcpFlags.Syn | TcpFlags.Ack;
        SendSegment(_iss, 0, flags, now);
        _sndNxt = _iss + 1;
        if (_sndMax.IsBefore(_sndNxt)) _sndMax = _sndNxt;
        if (_rtxAt == Never) _rtxAt = now.Microseconds + Us(_rto.Rto);
        if (_timeouts == 0) _rto.StartTiming(_sndNxt, now);
    }

    private TcpOptions BuildOptions(bool syn, Instant now)
    {
        var o = default(TcpOptions);
        if (syn)
        {
            o.SetMss((ushort)Math.Min(_rcvMss, 65535));
            bool synAck = State == TcpState.SynReceived;
            // RFC 7323 2.2 / 3.2, RFC 2018 2: a SYN-ACK carries an option only if the SYN did.
            if (_cfg.WindowScaling && (!synAck || _wsEnabled)) o.SetWindowScale(_rcvWndShift);
            if (_cfg.Sack && (!synAck || _peerOfferedSack)) o.SackPermitted = true;
            if (_cfg.Timestamps && (!synAck || _peerOfferedTs)) o.SetTimestamps(TimestampClock.TsVal(now, _tsOffset), synAck ? _tsRecent : 0);
            return o;
        }
        if (_tsEnabled) o.SetTimestamps(TimestampClock.TsVal(now, _tsOffset), _tsRecent);
        if (_sackEnabled)
        {
            int max = _tsEnabled ? 3 : 4;
            // RFC 2883: a duplicate segment is reported once, as the first block (D-SACK).
            if (_dsackPending) o.AddSack(_dsack);
            if (_recv.HasOutOfOrder) _recv.FillSack(ref o, max);
        }
        return o;
    }

    /// <summary>
    /// The receive window we can offer now, in bytes: what the receive buffer limit leaves,
    /// and what the memory bound leaves (in payload bytes, estimated from the last buffer a
    /// segment arrived in: its capacity per full segment, or per the payload it carried when
    /// that was more, a driver's coalesced frame of many segments costing little more than
    /// its payload).
    /// </summary>
    /// <remarks>
    /// Under the layer's memory pressure (<see cref="TcpMemory"/>) the memory bound is the
    /// connection's share instead, so the window offered shrinks as the pool empties; the
    /// right edge already advertised stays (<see cref="WindowField"/>), and data arriving
    /// within it is taken (only the connection's own bound drops data).
    /// </remarks>
    private long ComputeWindowBytes() => ComputeWindowBytes(out _);

    private long ComputeWindowBytes(out bool pressed)
    {
        long free = (long)_receiveLimit - _recv.ReadyBytes;
        long memWindow = MemoryToWindow(ReceiveMemoryNow(out bool shared) - _recv.Capacity);
        pressed = shared && memWindow < free;
        return Math.Max(0, Math.Min(free, memWindow));
    }

    /// <summary>
    /// The layer's memory share grew (<see cref="TcpLayer.MemoryLimitSet"/>): the app hears of
    /// it (an event, whether or not the readiness flips: a send the shell held for more space
    /// than the low-water mark is tried again), and a window the share had clamped is
    /// advertised now if its right edge can move by the update threshold (the ACK carries it).
    /// True while the share still holds this connection back.
    /// </summary>
    internal bool OnShareGrew(Instant now)
    {
        _eventPending = true;
        long win = ComputeWindowBytes(out bool windowPressed);
        if (IsSynchronized && State != TcpState.TimeWait && _rcvAdvRight.IsAfterOrEqual(_rcvNxt)
            && (_rcvNxt + (uint)Math.Min(win, int.MaxValue)) - _rcvAdvRight >= WindowUpdateThreshold())
        {
            _ackNow = true;
            Output(now);
        }
        return windowPressed || SendPressed;
    }

    /// <summary>Payload bytes that <paramref name="memory"/> bytes of buffer capacity hold, as the last segment's buffer carried them.</summary>
    private long MemoryToWindow(long memory)
    {
        long carried = Math.Max(_lastRxLength, Math.Max(1, _rcvMss));
        return _lastRxCapacity > carried ? memory * carried / _lastRxCapacity : memory;
    }

    /// <summary>
    /// RCV.BUFF for receiver-side silly window avoidance (RFC 9293 3.8.6.2.2): the window an
    /// empty queue would offer now. Under memory pressure this is the share, not the socket's
    /// buffer size: a threshold of min(RCV.BUFF / 2, MSS) from the full buffer could exceed
    /// every window the share allows, and the window would stay closed for good.
    /// </summary>
    private long ReceiveBufferNow() => Math.Max(1, Math.Min(_receiveLimit, MemoryToWindow(ReceiveMemoryNow(out _))));

    /// <summary>How far the right edge must be able to move before it does (RFC 9293 3.8.6.2.2).</summary>
    private long WindowUpdateThreshold() => Math.Max(1, Math.Min(ReceiveBufferNow() / 2, Math.Max(1, _rcvMss)));

    /// <summary>
    /// The window field to send, and the right edge it advertises. RFC 9293 3.8.6.2.2: the
    /// right edge never moves left (the window is not shrunk), and it moves right only by at
    /// least min(RCV.BUFF / 2, MSS) (receiver-side silly window avoidance). RFC 7323 2.2:
    /// scaled except on a SYN.
    /// </summary>
    private ushort WindowField(bool syn)
    {
        if (syn) return (ushort)Math.Min(ComputeWindowBytes(), 65535);
        long win = ComputeWindowBytes(out bool pressed);
        if (pressed)
        {
            Counters.PressureWindowClamps++;
            _layer.NotePressed(this);
        }
        SeqNumber right = _rcvNxt + (uint)Math.Min(win, int.MaxValue);
        long threshold = WindowUpdateThreshold();
        bool keepOld = _rcvAdvRight.IsAfterOrEqual(_rcvNxt) && (right - _rcvAdvRight) < threshold;
        long field;
        if (keepOld)
        {
            long oldWin = _rcvAdvRight - _rcvNxt;
            field = (oldWin + (1L << _rcvWndShift) - 1) >> _rcvWndShift; // round up: never shrink
        }
        else
        {
            field = win >> _rcvWndShift;
        }
        field = Math.Min(field, 65535);
        SeqNumber advertised = _rcvNxt + (uint)(field << _rcvWndShift);
        if (advertised.IsAfter(_rcvAdvRight) || !_rcvAdvRight.IsAfterOrEqual(_rcvNxt)) _rcvAdvRight = advertised;
        return (ushort)field;
    }

    /// <summary>Builds and sends one segment: [seq, seq + len) of the send buffer with <paramref name="flags"/>.</summary>
    private void SendSegment(SeqNumber seq, int len, TcpFlags flags, Instant now)
    {
        bool syn = (flags & TcpFlags.Syn) != 0;
        var options = BuildOptions(syn, now);
        int hlen = TcpHeaderFields.LengthWith(options);
        SeqNumber ack = (flags & TcpFlags.Ack) != 0 ? _rcvNxt : default;
        ushort window = WindowField(syn);
        var fields = new TcpHeaderFields(Local.Port, Remote.Port, seq, ack, flags, window);

        int maxPayload = _mss - options.WrittenLength;
        if (len > maxPayload && !syn)
        {
            SendOffloaded(seq, len, maxPayload, hlen, fields, options, flags, now);
            return;
        }
        PacketBuffer? b = null;
        bool lent = false;
        if (len > 0 && _send.Locate(seq, out int idx, out int off) && off == 0)
        {
            ref var chunk = ref _send[idx];
            if (chunk.Length == len && !chunk.Buffer.IsLent && chunk.Offset >= IIpOutput.HeaderRoom + hlen)
            {
                b = chunk.Buffer;
                b.SetData(chunk.Offset, chunk.Length);
                lent = true;
            }
        }
        if (b is null)
        {
            b = _layer.Pool.Rent(IIpOutput.HeaderRoom + hlen, len);
            if (b is null)
            {
                // No buffer: the segment is lost as if on the wire; the timers recover.
                Counters.SendDropped++;
                return;
            }
            if (len > 0) _send.CopyOut(seq, b.Append(len));
        }
        var header = b.Prepend(hlen);
        fields.WriteTo(header, options);
        TcpHeaderFields.FillChecksum(b.Data, Local.Address, Remote.Address);
        if (lent) b.Lend();
        Counters.SegmentsOut++;
        Counters.BytesOut += len;
        Transmit(b, len, flags, syn, now);
    }

    /// <summary>
    /// Segmentation offload: [seq, seq + len), whole segments of one send-buffer chunk, goes
    /// down as one buffer holding the headers with the chunk's bytes attached in place (lent);
    /// the transmitter cuts it into frames of <paramref name="segmentSize"/> payload bytes and
    /// computes each frame's checksums.
    /// </summary>
    private void SendOffloaded(SeqNumber seq, int len, int segmentSize, int hlen, in TcpHeaderFields fields, in TcpOptions options, TcpFlags flags, Instant now)
    {
        bool found = _send.Locate(seq, out int idx, out int off);
        System.Diagnostics.Debug.Assert(found && _send[idx].Length - off >= len && !_send[idx].Buffer.IsLent, "an offloaded send outside one free chunk");
        ref var chunk = ref _send[idx];
        var b = _layer.Pool.Rent(IIpOutput.HeaderRoom + hlen, 0);
        if (b is null)
        {
            Counters.SendDropped++;
            return;
        }
        fields.WriteTo(b.Prepend(hlen), options);
        b.AttachFragment(chunk.Buffer, chunk.Offset + off, len, segmentSize);
        int segments = TcpSegmentation.FrameCount(len, segmentSize);
        Counters.OffloadSends++;
        Counters.OffloadSegments += segments;
        Counters.SegmentsOut += segments;
        Counters.BytesOut += len;
        Transmit(b, len, flags, syn: false, now);
    }

    private void Transmit(PacketBuffer b, int len, TcpFlags flags, bool syn, Instant now)
    {
        if ((flags & TcpFlags.Ack) != 0)
        {
            if (!syn) _dsackPending = false;
            _lastAckSent = _rcvNxt;
            _delAckAt = Never;
            _bytesSinceAck = 0;
            _ackNow = false;
        }
        if (len > 0 || (flags & (TcpFlags.Syn | TcpFlags.Fin)) != 0) _lastSendUs = now.Microseconds;
        var status = _layer.Ip.Send(Local.Address, Remote.Address, IpProtocol.Tcp, b, TcpLayer.IpOptions, now);
        // No route (or ARP gave up on the next hop): remembered as a soft error, reported if
        // the connection then times out, as an ICMP unreachable would be.
        if (status == IpSendStatus.NoRoute && _softError == TcpError.None) _softError = TcpError.NetworkUnreachable;
    }
}
