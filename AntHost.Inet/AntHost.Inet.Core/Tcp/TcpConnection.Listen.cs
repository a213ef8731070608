using AntHost.Inet.Core.Buffers;
using AntHost.Inet.Core.Time;
using AntHost.Inet.Core.Wire;

namespace AntHost.Inet.Core.Tcp;

/// <summary>
/// A listener (RFC 9293 3.10.7.2, LISTEN) and its two queues: the SYN queue of children in
/// SYN-RECEIVED and the accept queue of children that reached ESTABLISHED and wait for the
/// app. Each is bounded by the backlog; a SYN that finds the SYN queue full is answered
/// with a SYN cookie and nothing kept (<c>.SynCookies.cs</c>; dropped when cookies are off),
/// an ACK that completes a handshake while the accept queue is full is dropped (the SYN-ACK
/// is retransmitted, as Linux does).
/// </summary>
internal sealed partial class TcpConnection
{
    public void BecomeListener(int backlog)
    {
        State = TcpState.Listen;
        WasListener = true;
        Backlog = backlog;
        _acceptQueue ??= new Queue<TcpConnection>();
        _synQueue ??= new List<TcpConnection>();
    }

    public bool HasAcceptRoom => _acceptQueue is not null && _acceptQueue.Count < Backlog && _layer.CanAcceptMore(1);

    public bool TryDequeueAccepted(out TcpConnection child)
    {
        child = null!;
        if (_acceptQueue is null) return false;
        while (_acceptQueue.TryDequeue(out var c))
        {
            c._listener = null;
            if (c.Socket == default) continue;
            child = c;
            return true;
        }
        return false;
    }

    /// <summary>RFC 9293 3.10.7.2: a segment for a listener.</summary>
    public void ListenInput(in Segment seg, PacketBuffer payload, Ipv4Address remote, Ipv4Address local, Instant now)
    {
        switch (seg.Flags & (TcpFlags.Rst | TcpFlags.Ack | TcpFlags.Syn))
        {
            case var f when (f & TcpFlags.Rst) != 0:
                // "First, check for a RST: An incoming RST segment could not be valid since it
                // could not have been sent in response to anything sent by this incarnation of
                // the connection. An incoming RST should be ignored. Return."
                _layer.Drop(payload, TcpDropReason.BadRst);
                return;
            case var f when (f & TcpFlags.Ack) != 0:
                // "Second, check for an ACK: Any acknowledgment is bad if it arrives on a
                // connection still in the LISTEN state. An acceptable reset segment should be
                // formed for any arriving ACK-bearing segment. The RST should be formatted as
                // follows: <SEQ=SEG.ACK><CTL=RST>".
                _layer.Drop(payload, TcpDropReason.BadAck);
                _layer.SendResetFor(in seg, local, remote, now);
                return;
            case TcpFlags.Syn:
                break;
            default:
                // "Fourth, other control or text: Any other control or text-bearing segment (not
                // containing SYN) must have an ACK and thus would have been discarded by the ACK
                // processing in the second step ... drop the segment and return."
                _layer.Drop(payload, TcpDropReason.NotAcceptable);
                return;
        }
        payload.Release(); // data on a SYN is not kept (no TCP Fast Open); the peer sends it again

        if (_synQueue!.Count >= Backlog || !_layer.CanAcceptMore(1))
        {
            _layer.Counters.Drops[(int)TcpDropReason.BacklogFull]++;
            return;
        }
        if (_layer.Memory.Exhausted)
        {
            _layer.Counters.Drops[(int)TcpDropReason.MemoryPressure]++;
            return;
        }
        // "Third, check for a SYN: ... Set RCV.NXT to SEG.SEQ+1, IRS is set to SEG.SEQ, and any
        // other control or text should be queued for processing later. ISS should be selected
        // and a SYN segment sent of the form: <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK>. SND.NXT is set
        // to ISS+1 and SND.UNA to ISS. The connection state should be changed to SYN-RECEIVED."
        if (AddChild(local, remote, seg.SourcePort) is not { } child) return;
        child.StartPassiveOpen(in seg, now);
        _layer.Schedule(child);
    }

    private void InheritFrom(TcpConnection listener)
    {
        _sendLimit = listener._sendLimit;
        _receiveLimit = listener._receiveLimit;
        _keepAliveIdleUs = listener._keepAliveIdleUs;
        _keepAliveIntervalUs = listener._keepAliveIntervalUs;
        _keepAliveCount = listener._keepAliveCount;
        _lingerSeconds = listener._lingerSeconds;
    }

    private void StartPassiveOpen(in Segment seg, Instant now)
    {
        InitSendSpace(now);
        ChooseReceiveScale();
        State = TcpState.SynReceived;
        AcceptPeerSyn(in seg, now);
        // RFC 7323 2.2: the SYN's window is not scaled.
        SetSendWindow(seg.Window, seg.Seq, default, scaled: false);
        SendSyn(now);
    }

    /// <summary>A child completed its handshake: from the SYN queue to the accept queue, with a handle.</summary>
    public void ChildEstablished(TcpConnection child)
    {
        if (_synQueue is null || !_synQueue.Remove(child)) return;
        _layer.Attach(child);
        _acceptQueue!.Enqueue(child);
        _eventPending = true;
        NotifyIfChanged();
    }

    /// <summary>A child reached CLOSED before it was accepted.</summary>
    public void ChildGone(TcpConnection child, TcpState previous)
    {
        _synQueue?.Remove(child);
    }

    /// <summary>The app closed the listener: every child not yet accepted is reset.</summary>
    private void CloseListener(Instant now)
    {
        _layer.RemoveListener(this);
        if (_synQueue is not null)
        {
            foreach (var c in _synQueue.ToArray())
            {
                c._listener = null;
                c.SendReset(now);
                c.EnterClosed(TcpError.ConnectionAborted);
            }
            _synQueue.Clear();
        }
        if (_acceptQueue is not null)
        {
            while (_acceptQueue.TryDequeue(out var c))
            {
                c._listener = null;
                _layer.Detach(c);
                c.SendReset(now);
                c.EnterClosed(TcpError.ConnectionAborted);
            }
        }
        State = TcpState.Closed;
        _layer.Remove(this);
        _layer.Forget(this);
    }

    /// <summary>
    /// A connection made by this listener for a peer (from its SYN, or from a valid cookie),
    /// taking the listener's options, known to the layer and queued as half-open; null when
    /// the layer has no room for it.
    /// </summary>
    private TcpConnection? AddChild(Ipv4Address local, Ipv4Address remote, ushort remotePort)
    {
        var child = new TcpConnection(_layer)
        {
            Local = new TcpEndPoint(local, Local.Port),
            Remote = new TcpEndPoint(remote, remotePort),
            NoDelay = NoDelay,
            KeepAlive = KeepAlive,
            ReuseAddress = ReuseAddress,
        };
        child.InheritFrom(this);
        child._listener = this;
        if (!_layer.AddConnection(child)) return null;
        _layer.AddBoundChild(child);
        _synQueue!.Add(child);
        _layer.Counters.PassiveOpens++;
        return child;
    }
}
