using System.Diagnostics;
using AntHost.Inet.Core.Buffers;
using AntHost.Inet.Core.Ip;
using AntHost.Inet.Core.Tcp.Isn;
using AntHost.Inet.Core.Tcp.Recovery;
using AntHost.Inet.Core.Time;
using AntHost.Inet.Core.Wire;

namespace AntHost.Inet.Core.Tcp;

/// <summary>
/// One TCP connection (a TCB, RFC 9293 3.3.1), or a listener, or a socket not yet either.
/// </summary>
/// <remarks>
/// The type is split by concern, as Kestrel splits its connection: this file holds the
/// state and the socket calls; <c>.Input.cs</c> segment acceptance (RFC 9293 3.10.7);
/// <c>.Output.cs</c> what goes out and when (segmentation, Nagle, silly-window
/// avoidance, loss recovery); <c>.Timers.cs</c> the deadlines; <c>.Listen.cs</c> the
/// listener's SYN and accept queues; <c>.SynCookies.cs</c> the listener's answer when its
/// SYN queue is full.
///
/// Sequence variables are named as in RFC 9293 3.3.1, plus SND.MAX (one past the highest
/// sequence number ever sent), which differs from SND.NXT only after a retransmission
/// timeout has pulled SND.NXT back to SND.UNA (go-back-N, RFC 5681 3.1 / RFC 6298 5.4):
/// ACK acceptability is judged against SND.MAX, which is what RFC 9293 means by "sent".
///
/// Timers are deadlines in microseconds (long.MaxValue: not armed); the layer's timer
/// queue is keyed by <see cref="NextDeadline"/>.
/// </remarks>
internal sealed partial class TcpConnection
{
    private const long Never = long.MaxValue;

    private readonly TcpLayer _layer;
    private readonly TcpConfig _cfg;

    // ------------------------------------------------------------ identity and layer bookkeeping
    public TcpSocket Socket;
    public bool InDirtyQueue;
    public long ScheduledDeadline = Never;
    public bool Removed;
    /// <summary>Its output waits for the end of the receive batch (<see cref="TcpLayer.HoldOutput"/>).</summary>
    public bool OutputHeld;
    public TcpEndPoint Local;
    public TcpEndPoint Remote;
    public bool IsBound;
    public bool WasListener;
    public bool HasConnected;
    private bool _established; // the handshake completed (active or passive)
    public TcpState State { get; private set; }
    public TcpError Error { get; private set; }
    private TcpError _softError;
    private TcpReadiness _lastReadiness;
    private bool _eventPending;

    // ------------------------------------------------------------ socket options
    public bool NoDelay;
    public bool KeepAlive;
    public bool ReuseAddress;
    private long _keepAliveIdleUs;
    private long _keepAliveIntervalUs;
    private int _keepAliveCount;
    private int _sendLimit;
    private int _receiveLimit;
    private int _lingerSeconds = -1;

    // ------------------------------------------------------------ send sequence space (RFC 9293 3.3.1)
    private SeqNumber _iss;
    private SeqNumber _sndUna;
    private SeqNumber _sndNxt;
    private SeqNumber _sndMax;
    private SeqNumber _sndWl1;
    private SeqNumber _sndWl2;
    private long _sndWnd;
    private long _maxSndWnd;
    private byte _sndWndShift;
    private readonly SendBuffer _send;
    private bool _finQueued;
    private bool _finSent;
    private bool _finAcked;
    private int _peerMss;
    private int _mss;          // Eff.snd.MSS for a header without options (RFC 9293 3.7.1)

    // ------------------------------------------------------------ receive sequence space
    private SeqNumber _irs;
    private SeqNumber _rcvNxt;
    private SeqNumber _rcvAdvRight; // RCV.NXT + RCV.WND as last advertised
    private byte _rcvWndShift;
    private readonly ReceiveBuffer _recv;
    private readonly MemoryAccount _memory; // what _send and _recv hold, in the layer's TcpMemory
    private bool _finReceived;
    private int _rcvMss;            // the MSS we advertised
    private int _lastRxCapacity;
    private int _lastRxLength;
    private int _bytesSinceAck;
    private bool _ackNow;
    private SackBlock _dsack;       // RFC 2883: a duplicate to report in the next ACK
    private bool _dsackPending;

    // ------------------------------------------------------------ options negotiated
    private bool _wsEnabled;
    private bool _tsEnabled;
    private bool _sackEnabled;
    private bool _peerOfferedTs;
    private bool _peerOfferedSack;
    private uint _tsRecent;
    private long _tsRecentAtUs;
    private SeqNumber _lastAckSent;
    private uint _tsOffset;

    // ------------------------------------------------------------ algorithms
    private readonly RtoEstimator _rto;
    private LossRecovery? _recovery;
    private int _retransmits;
    // Retransmissions of this connection by cause (the layer's counters sum all connections).
    private int _rtxTimeout;
    private int _rtxDupThresh;
    private int _rtxRack;
    private int _rtxTlp;
    private int _undos;

    // ------------------------------------------------------------ timers
    private long _rtxAt = Never;
    private long _persistAt = Never;
    private long _delAckAt = Never;
    private long _closeAt = Never;   // TIME-WAIT, orphaned FIN-WAIT-2
    private long _probeAt = Never;   // RFC 8985 7: the tail loss probe (PTO)
    private long _reorderAt = Never; // RFC 8985 6.2: RACK's reordering timer
    private long _lastOowAckUs = long.MinValue; // RFC 5961 7: the last ACK to an out-of-window segment
    private int _timeouts;           // consecutive retransmission timeouts
    private int _persistBackoff;
    private int _keepAliveProbes;
    private long _lastReceiveUs;
    private long _lastSendUs;
    private long _lastKeepAliveUs;

    // ------------------------------------------------------------ listener and child
    public int Backlog;
    private Queue<TcpConnection>? _acceptQueue;
    private List<TcpConnection>? _synQueue;
    private TcpConnection? _listener;

    public TcpConnection(TcpLayer layer)
    {
        _layer = layer;
        _cfg = layer.Config;
        _sendLimit = _cfg.SendBufferSize;
        _receiveLimit = _cfg.ReceiveBufferSize;
        _memory = new MemoryAccount(layer.Memory);
        _send = new SendBuffer(_memory);
        _recv = new ReceiveBuffer(_memory);
        _keepAliveIdleUs = Us(_cfg.KeepAliveIdle);
        _keepAliveIntervalUs = Us(_cfg.KeepAliveInterval);
        _keepAliveCount = _cfg.KeepAliveCount;
        _rto = new RtoEstimator(_cfg.InitialRto, _cfg.MinimumRto, _cfg.MaximumRto, TimestampClock.Granularity);
    }

    private static long Us(TimeSpan t) => t.Ticks / TimeSpan.TicksPerMicrosecond;

    private TcpCounters Counters => _layer.Counters;

    // ------------------------------------------------------------ properties the layer reads

    public int ReceiveQueuedBytes => _recv.ReadyBytes;

    public int SendQueuedBytes => _send.Bytes;

    /// <summary>True while the memory pressure keeps the send space below the connection's own send buffer.</summary>
    public bool SendPressed => SendLimitNow < _sendLimit;

    public int SendSpace => State is TcpState.Established or TcpState.CloseWait or TcpState.SynSent or TcpState.SynReceived && !_finQueued
        ? Math.Max(0, SendLimitNow - _send.Capacity)
        : 0;

    /// <summary>
    /// The send buffer this connection may fill now: its own size, or less while its share of
    /// the layer's memory limit (<see cref="TcpMemory"/>) is smaller, but not below
    /// <see cref="TcpConfig.PressureFloorBytes"/>.
    /// </summary>
    private int SendLimitNow
    {
        get
        {
            long share = _layer.Memory.ShareFor(_memory);
            if (share == long.MaxValue) return _sendLimit;
            return (int)Math.Min(_sendLimit, Math.Max(_cfg.PressureFloorBytes, share / 2));
        }
    }

    /// <summary>
    /// The receive memory this connection may hold now: its own bound (the receive buffer times
    /// <see cref="TcpConfig.ReceiveMemoryFactor"/>), or less while its share of the layer's
    /// memory limit is smaller, but not below <see cref="TcpConfig.PressureFloorBytes"/>.
    /// </summary>
    private long ReceiveMemoryNow(out bool pressed)
    {
        long own = (long)_receiveLimit * _cfg.ReceiveMemoryFactor;
        long share = _layer.Memory.ShareFor(_memory);
        long now = share == long.MaxValue ? own : Math.Min(own, Math.Max(_cfg.PressureFloorBytes, share / 2));
        pressed = now < own;
        return now;
    }

    private bool IsSynchronized => State is TcpState.Established or TcpState.FinWait1 or TcpState.FinWait2
        or TcpState.CloseWait or TcpState.Closing or TcpState.LastAck or TcpState.TimeWait;

    public TcpReadiness Readiness
    {
        get
        {
            var r = TcpReadiness.None;
            if (State == TcpState.Listen)
            {
                if (_acceptQueue is { Count: > 0 }) r |= TcpReadiness.AcceptReady;
                return r;
            }
            if (_recv.ReadyBytes > 0 || _finReceived || Error != TcpError.None) r |= TcpReadiness.Readable;
            // Writable with a low-water mark of a quarter of the buffer (as Linux wakes writers
            // when a third is free): an app is not woken for a sliver it cannot use.
            if (State is TcpState.Established or TcpState.CloseWait && !_finQueued && SendSpace >= Math.Max(1, SendLimitNow / 4)) r |= TcpReadiness.Writable;
            if (_finReceived) r |= TcpReadiness.PeerClosed;
            if (_established && IsSynchronized) r |= TcpReadiness.Connected;
            if (State == TcpState.TimeWait || (State == TcpState.Closed && (_established || HasConnected || Error != TcpError.None))) r |= TcpReadiness.Closed;
            if (Error != TcpError.None) r |= TcpReadiness.Error;
            return r;
        }
    }

    public TcpConnectionInfo Info => new(
        State, _sndUna.Value, _sndNxt.Value, (uint)Math.Min(_sndWnd, uint.MaxValue), _rcvNxt.Value, (uint)Math.Max(0, _rcvAdvRight - _rcvNxt),
        _mss, _recovery?.Congestion.Cwnd ?? 0, _recovery?.Congestion.Ssthresh ?? 0, _rto.Rto, _rto.SmoothedRtt,
        _sndWndShift, _rcvWndShift, _tsEnabled, _sackEnabled, _recv.OutOfOrderCount, _retransmits,
        _rtxTimeout, _rtxDupThresh, _rtxRack, _rtxTlp, _undos, _recovery?.InRecovery ?? false, _rto.RttVariance);

    /// <summary>The largest payload a data segment carries (the MSS less the timestamp option).</summary>
    private int SegmentPayload => Math.Max(1, _mss - (_tsEnabled ? 12 : 0));

    /// <summary>The layer calls this after every event on the connection: has the app something to learn?</summary>
    public void NotifyIfChanged()
    {
        var r = Readiness;
        if (r != _lastReadiness || _eventPending)
        {
            _lastReadiness = r;
            _eventPending = false;
            _layer.MarkDirty(this);
        }
    }

    // ------------------------------------------------------------ socket calls

    public TcpError QueueSend(PacketBuffer payload)
    {
        var e = CheckCanSend();
        if (e != TcpError.None) return e;
        if (payload.IsLent) return TcpError.InvalidArgument;
        if (payload.Length == 0)
        {
            payload.Release();
            return TcpError.None;
        }
        // Bounded by the connection's own send buffer: the caller admits a send of buffers only
        // when it fits the send space, which the memory pressure bounds (SendLimitNow), or when
        // nothing is buffered, so that a send of several buffers is taken whole.
        if (_send.Capacity + payload.Capacity > _sendLimit && _send.ChunkCount > 0) return TcpError.WouldBlock;
        _send.Append(payload);
        return TcpError.None;
    }

    public TcpError QueueSend(ReadOnlySpan<byte> data, out int written)
    {
        written = 0;
        var e = CheckCanSend();
        if (e != TcpError.None) return e;
        int chunk = ChunkPayloadHint();
        while (!data.IsEmpty)
        {
            int n = _send.AppendToTail(data, chunk);
            if (n == 0)
            {
                var b = _layer.Pool.Rent(TcpLayer.SendHeadroom, chunk);
                if (b is null) return written > 0 ? TcpError.None : TcpError.NoBufferSpace;
                if (_send.Capacity + b.Capacity > SendLimitNow && _send.ChunkCount > 0)
                {
                    if (_send.Capacity + b.Capacity <= _sendLimit)
                    {
                        Counters.PressureSendRefusals++;
                        _layer.NotePressed(this);
                    }
                    b.Release();
                    break;
                }
                n = Math.Min(Math.Min(chunk, b.Tailroom), data.Length);
                data[..n].CopyTo(b.Append(n));
                _send.Append(b);
            }
            data = data[n..];
            written += n;
        }
        return written > 0 || data.IsEmpty ? TcpError.None : TcpError.WouldBlock;
    }

    private int ChunkPayloadHint()
    {
        if (_mss > 0) return SegmentPayload;
        int pmtu = _layer.Ip.PathMtu(Remote.Address);
        return Math.Max(_cfg.MinimumMss, pmtu - 40 - (_cfg.Timestamps ? 12 : 0));
    }

    private TcpError CheckCanSend()
    {
        if (Error != TcpError.None) return Error;
        return State switch
        {
            TcpState.Established or TcpState.CloseWait => _finQueued ? TcpError.Shutdown : TcpError.None,
            TcpState.SynSent or TcpState.SynReceived => _finQueued ? TcpError.Shutdown : TcpError.None,
            TcpState.Closed => HasConnected || _established ? TcpError.Shutdown : TcpError.NotConnected,
            TcpState.Listen => TcpError.InvalidState,
            _ => TcpError.Shutdown,
        };
    }

    /// <summary>Bytes of the buffer <see cref="DequeueReceived"/> would hand out next (0: none).</summary>
    public int NextReceivedLength => _recv.NextReadyLength;

    public TcpError DequeueReceived(out PacketBuffer? payload)
    {
        payload = _recv.TakeReady();
        if (payload is not null)
        {
            AfterAppRead();
            return TcpError.None;
        }
        return ReceiveEmptyResult();
    }

    public TcpError CopyReceived(Span<byte> destination, out int read)
    {
        read = _recv.CopyReady(destination);
        if (read > 0)
        {
            AfterAppRead();
            return TcpError.None;
        }
        return ReceiveEmptyResult();
    }

    private TcpError ReceiveEmptyResult()
    {
        if (_finReceived) return TcpError.None; // end of stream
        if (Error != TcpError.None) return Error;
        return State switch
        {
            TcpState.Listen => TcpError.InvalidState,
            TcpState.Closed => HasConnected || _established ? TcpError.None : TcpError.NotConnected,
            _ => TcpError.WouldBlock,
        };
    }

    /// <summary>
    /// The app made room: RFC 9293 3.8.6.2.2 (receiver SWS avoidance) lets the right edge move
    /// only by at least min(RCV.BUFF / 2, MSS); when it can, and the window the peer has is
    /// small, a window update goes out at once rather than with the next segment.
    /// </summary>
    private void AfterAppRead()
    {
        if (!IsSynchronized || _finReceived) return;
        long current = _rcvAdvRight - _rcvNxt;
        long possible = ComputeWindowBytes();
        long threshold = WindowUpdateThreshold();
        if (possible - current >= threshold && current < ReceiveBufferNow() / 2) _ackNow = true;
    }

    public TcpError ShutdownSend(Instant now)
    {
        if (Error != TcpError.None && State == TcpState.Closed) return Error;
        switch (State)
        {
            case TcpState.Closed:
                return HasConnected ? TcpError.None : TcpError.NotConnected;
            case TcpState.Listen:
                return TcpError.InvalidState;
            case TcpState.SynSent:
                // As Linux: a shutdown before the handshake completes abandons it (RFC 9293 3.10.4 CLOSE in SYN-SENT: "Delete the TCB").
                EnterClosed(TcpError.None);
                return TcpError.None;
            case TcpState.SynReceived:
                // RFC 9293 3.10.4: "queue for processing after entering ESTABLISHED state".
                _finQueued = true;
                return TcpError.None;
            case TcpState.Established:
                // RFC 9293 3.10.4: "Queue this until all preceding SENDs have been segmentized,
                // then form a FIN segment and send it. In any case, enter FIN-WAIT-1 state."
                _finQueued = true;
                State = TcpState.FinWait1;
                return TcpError.None;
            case TcpState.CloseWait:
                // "Queue this request until all preceding SENDs have been segmentized; then send a FIN segment, enter CLOSING state" — RFC 9293 errata: LAST-ACK.
                _finQueued = true;
                State = TcpState.LastAck;
                return TcpError.None;
            default:
                return TcpError.None; // already shut down
        }
    }

    public void CloseByApp(Instant now)
    {
        switch (State)
        {
            case TcpState.Closed:
                ReleaseAll();
                _layer.Remove(this);
                _layer.Forget(this);
                return;
            case TcpState.Listen:
                CloseListener(now);
                return;
            case TcpState.SynSent:
                EnterClosed(TcpError.None);
                return;
        }
        if (_lingerSeconds == 0 || (_recv.ReadyBytes > 0 && State is TcpState.SynReceived or TcpState.Established or TcpState.FinWait1 or TcpState.FinWait2 or TcpState.CloseWait))
        {
            // Linger 0 is an abort by request. Unread data: RFC 2525 2.17, "If an application
            // closes a connection with unread data ... a RST should be sent", so the peer learns
            // that the data was not consumed (Linux does the same).
            SendReset(now);
            EnterClosed(TcpError.ConnectionAborted);
            return;
        }
        _recv.Clear();
        if (State != TcpState.SynReceived) ShutdownSend(now);
        else _finQueued = true;
        if (State == TcpState.FinWait2) _closeAt = now.Microseconds + Us(_cfg.FinWait2Timeout);
        Output(now);
    }

    public void AbortByApp(Instant now)
    {
        // RFC 9293 3.10.5 ABORT: in SYN-RECEIVED, ESTABLISHED, FIN-WAIT-1/2 and CLOSE-WAIT,
        // "Send a reset segment: <SEQ=SND.NXT><CTL=RST>"; in the others, just delete the TCB.
        switch (State)
        {
            case TcpState.Listen:
                CloseListener(now);
                return;
            case TcpState.SynReceived or TcpState.Established or TcpState.FinWait1 or TcpState.FinWait2 or TcpState.CloseWait:
                SendReset(now);
                break;
        }
        if (State == TcpState.Closed)
        {
            ReleaseAll();
            _layer.Remove(this);
            _layer.Forget(this);
            return;
        }
        EnterClosed(TcpError.ConnectionAborted);
    }

    public TcpError SetOption(TcpOption option, long value, Instant now)
    {
        switch (option)
        {
            case TcpOption.NoDelay:
                NoDelay = value != 0;
                return TcpError.None;
            case TcpOption.KeepAlive:
                KeepAlive = value != 0;
                _keepAliveProbes = 0;
                _lastReceiveUs = now.Microseconds;
                return TcpError.None;
            case TcpOption.KeepAliveIdleMs when value is > 0 and <= int.MaxValue:
                _keepAliveIdleUs = value * 1000;
                return TcpError.None;
            case TcpOption.KeepAliveIntervalMs when value is > 0 and <= int.MaxValue:
                _keepAliveIntervalUs = value * 1000;
                return TcpError.None;
            case TcpOption.KeepAliveCount when value is > 0 and <= 1000:
                _keepAliveCount = (int)value;
                return TcpError.None;
            case TcpOption.SendBufferSize when value is >= 4096 and <= int.MaxValue / 2:
                _sendLimit = (int)value;
                return TcpError.None;
            case TcpOption.ReceiveBufferSize when value is >= 1024 and <= (1 << 30):
                // The window scale is chosen from this size on the SYN; set it before connecting or listening.
                _receiveLimit = (int)value;
                return TcpError.None;
            case TcpOption.LingerSeconds when value is >= -1 and <= int.MaxValue:
                _lingerSeconds = (int)value;
                return TcpError.None;
            case TcpOption.ReuseAddress:
                ReuseAddress = value != 0;
                return TcpError.None;
            default:
                return TcpError.InvalidArgument;
        }
    }

    public long GetOption(TcpOption option) => option switch
    {
        TcpOption.NoDelay => NoDelay ? 1 : 0,
        TcpOption.KeepAlive => KeepAlive ? 1 : 0,
        TcpOption.KeepAliveIdleMs => _keepAliveIdleUs / 1000,
        TcpOption.KeepAliveIntervalMs => _keepAliveIntervalUs / 1000,
        TcpOption.KeepAliveCount => _keepAliveCount,
        TcpOption.SendBufferSize => _sendLimit,
        TcpOption.ReceiveBufferSize => _receiveLimit,
        TcpOption.LingerSeconds => _lingerSeconds,
        TcpOption.ReuseAddress => ReuseAddress ? 1 : 0,
        _ => 0,
    };

    // ------------------------------------------------------------ opening

    /// <summary>RFC 9293 3.10.1 OPEN, active: "A SYN segment of the form &lt;SEQ=ISS&gt;&lt;CTL=SYN&gt; is sent. Set SND.UNA to ISS, SND.NXT to ISS+1, enter SYN-SENT state".</summary>
    public void StartActiveOpen(Instant now)
    {
        HasConnected = true;
        InitSendSpace(now);
        ChooseReceiveScale();
        State = TcpState.SynSent;
        SendSyn(now);
    }

    private void InitSendSpace(Instant now)
    {
        _iss = _layer.Isn.Generate(Local.Address, Local.Port, Remote.Address, Remote.Port, now);
        _tsOffset = _layer.Isn.TimestampOffset(Local.Address, Local.Port, Remote.Address, Remote.Port);
        _sndUna = _iss;
        _sndNxt = _iss;
        _sndMax = _iss;
        _send.Reset(_iss + 1);
        int pmtu = _layer.Ip.PathMtu(Remote.Address);
        _rcvMss = Math.Clamp(pmtu - 40, _cfg.MinimumMss, 65535);
        _lastReceiveUs = now.Microseconds;
    }

    /// <summary>RFC 7323 2.2: the smallest shift that lets the receive buffer be advertised.</summary>
    private void ChooseReceiveScale()
    {
        byte shift = 0;
        if (_cfg.WindowScaling)
            while (shift < TcpOptions.MaxWindowScale && ((long)_receiveLimit >> shift) > 65535) shift++;
        _rcvWndShift = shift;
    }

    /// <summary>Applies the options of the peer's SYN (RFC 9293 3.7.1, RFC 7323 2.2 and 3.2, RFC 2018 2).</summary>
    private void TakePeerSynOptions(in Segment seg)
    {
        var o = seg.Options;
        _peerMss = o.HasMss ? Math.Max((int)o.Mss, _cfg.MinimumMss) : _cfg.DefaultMss;
        int pmtu = _layer.Ip.PathMtu(Remote.Address);
        // RFC 9293 3.7.1 / RFC 6691: Eff.snd.MSS = min(SendMSS + 20, MMS_S) - 20 - 20.
        _mss = Math.Max(_cfg.MinimumMss, Math.Min(_peerMss, pmtu - 40));
        if (o.HasWindowScale && _cfg.WindowScaling)
        {
            _wsEnabled = true;
            _sndWndShift = Math.Min(o.WindowScale, TcpOptions.MaxWindowScale);
        }
        else
        {
            _wsEnabled = false;
            _sndWndShift = 0;
            _rcvWndShift = 0;
        }
        _peerOfferedTs = o.HasTimestamps;
        _peerOfferedSack = o.SackPermitted;
        _tsEnabled = _cfg.Timestamps && o.HasTimestamps;
        if (_tsEnabled)
        {
            _tsRecent = o.TsVal;
        }
        _sackEnabled = _cfg.Sack && o.SackPermitted;
    }

    /// <summary>The handshake completed: the algorithms start with the negotiated MSS.</summary>
    private void StartAlgorithms(bool synTimedOut)
    {
        int smss = SegmentPayload;
        Congestion.ICongestionControl cc = _cfg.CongestionControl switch
        {
            CongestionControlKind.NewReno => new Congestion.NewRenoCongestionControl(smss, _cfg.InitialWindowSegments),
            _ => new Congestion.CubicCongestionControl(smss, _cfg.InitialWindowSegments),
        };
        _recovery = new LossRecovery(cc, _sackEnabled, _iss, detection: _cfg.LossDetection,
            proportionalRateReduction: _cfg.ProportionalRateReduction, spuriousDetection: _cfg.SpuriousRetransmissionUndo, timestamps: _tsEnabled);
        if (synTimedOut) _rto.OnHandshakeCompletedAfterTimeout();
        if (_rto.HasSample) _recovery.OnRttSample(_rto.LastSample);
    }

    // ------------------------------------------------------------ closing

    /// <summary>Enters CLOSED: timers stop, queues are flushed (all of them on an error), the demultiplexer forgets the connection.</summary>
    private void EnterClosed(TcpError error)
    {
        if (State == TcpState.Closed && Removed) return;
        var previous = State;
        State = TcpState.Closed;
        if (error != TcpError.None && Error == TcpError.None) Error = error;
        _rtxAt = _persistAt = _delAckAt = _closeAt = _probeAt = _reorderAt = Never;
        _send.Clear();
        if (error != TcpError.None || Socket == default) _recv.Clear();
        else _recv.ClearOutOfOrder();
        if (_listener is not null)
        {
            _listener.ChildGone(this, previous);
            _listener = null;
        }
        _eventPending = true;
        _layer.Remove(this);
    }

    private void EnterTimeWait(Instant now)
    {
        State = TcpState.TimeWait;
        _rtxAt = _persistAt = _probeAt = _reorderAt = Never;
        _send.Clear();
        _recv.ClearOutOfOrder();
        _closeAt = now.Microseconds + 2 * Us(_cfg.Msl);
        _eventPending = true;
    }

    private void ReleaseAll()
    {
        _send.Clear();
        _recv.Clear();
    }

    /// <summary>RFC 9293 3.10.5 / 3.10.7.4: &lt;SEQ=SND.NXT&gt;&lt;CTL=RST&gt;.</summary>
    private void SendReset(Instant now)
    {
        if (Remote.Port == 0) return;
        SeqNumber seq = SeqNumber.Max(_sndNxt, _sndMax);
        _layer.SendControl(Local.Address, Local.Port, Remote.Address, Remote.Port, seq, _rcvNxt, TcpFlags.Rst | TcpFlags.Ack, 0, default, now);
        Counters.ResetsOut++;
    }

    private void Fail(TcpError error, Instant now, bool sendReset)
    {
        if (sendReset) SendReset(now);
        EnterClosed(error);
    }

    [Conditional("DEBUG")]
    private void CheckInvariants()
    {
        Debug.Assert(_sndUna.IsBeforeOrEqual(_sndNxt), "SND.UNA after SND.NXT");
        Debug.Assert(_sndNxt.IsBeforeOrEqual(_sndMax), "SND.NXT after SND.MAX");
    }
}
