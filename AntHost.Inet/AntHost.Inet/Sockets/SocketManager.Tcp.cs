// TCP sockets: each call of the ABI on the protocol core's TcpLayer, and the held
// connect, accept, send, receive and lingering close answered as the core reports changes.
using AntHost.Inet.Abi;
using AntHost.Inet.Buffers;
using AntHost.Inet.Core.Tcp;
using AntHost.Inet.Core.Time;
using AntHost.Inet.Core.Wire;
using AntHost.Kernel;
using AntHost.Kernel.Ipc;

namespace AntHost.Inet.Sockets;

public sealed partial class SocketManager
{
    /// <summary>A receive with a byte limit smaller than what is queued copies into one fresh ICA of at most this size.</summary>
    private const int MaxCopyReceive = 64 * 1024;

    private InetStatus TcpCall(in Message m, InetOp op, SocketEntry e, SocketArgs a, SocketResult r, Instant now)
    {
        var tcp = _tcp!;
        var s = e.Tcp;
        switch (op)
        {
            case InetOp.Bind:
                {
                    var err = tcp.Bind(s, new TcpEndPoint(new Ipv4Address(a.Address), a.Port));
                    if (err == TcpError.None) FillEndpoints(r, tcp, s);
                    return Map(err);
                }
            case InetOp.Listen:
                return Map(tcp.Listen(s, (int)Math.Clamp(a.Value, 0, int.MaxValue)));
            case InetOp.Connect:
                {
                    var err = tcp.Connect(s, new TcpEndPoint(new Ipv4Address(a.Address), a.Port), now);
                    if (err != TcpError.None) return Map(err);
                    FillEndpoints(r, tcp, s);
                    if ((a.Flags & InetSocketFlags.NonBlocking) != 0) return SocketStatus.InProgress;
                    e.Connect = m;
                    e.HasConnect = true;
                    return Held;
                }
            case InetOp.Accept:
                {
                    if (tcp.GetState(s) != TcpState.Listen) return SocketStatus.InvalidArgument;
                    if (TryAccept(m, e, r, now, out var status)) return status;
                    if ((a.Flags & InetSocketFlags.NonBlocking) != 0) return SocketStatus.WouldBlock;
                    Enqueue(ref e.Accepts, m);
                    return Held;
                }
            case InetOp.Send:
                {
                    if (!DataFits(m, a, -1)) return Malformed(m);
                    if (e.Sends is { Count: > 0 })
                    {
                        // Sends leave in order: behind a held one, this one waits too.
                        if ((a.Flags & InetSocketFlags.NonBlocking) != 0)
                        {
                            FreeData(m);
                            return SocketStatus.WouldBlock;
                        }
                        HoldSend(e, m);
                        return Held;
                    }
                    if (TrySendTcp(m, e, a, r, now, out var status)) return status;
                    if ((a.Flags & InetSocketFlags.NonBlocking) != 0)
                    {
                        FreeData(m);
                        return SocketStatus.WouldBlock;
                    }
                    HoldSend(e, m);
                    return Held;
                }
            case InetOp.SendTo:
                Count(InetStat.BadSocketRequests);
                FreeData(m);
                return SocketStatus.OperationNotSupported;
            case InetOp.Receive or InetOp.ReceiveFrom:
                {
                    if (e.Receives is { Count: > 0 })
                    {
                        if ((a.Flags & InetSocketFlags.NonBlocking) != 0) return SocketStatus.WouldBlock;
                        Enqueue(ref e.Receives, m);
                        return Held;
                    }
                    if (TryReceiveTcp(m, e, a, r, now)) return Held; // answered inside (with its data)
                    if ((a.Flags & InetSocketFlags.NonBlocking) != 0) return SocketStatus.WouldBlock;
                    Enqueue(ref e.Receives, m);
                    return Held;
                }
            case InetOp.Shutdown:
                {
                    var how = (AbiShutdown)a.Small;
                    if (how is not (AbiShutdown.Receive or AbiShutdown.Send or AbiShutdown.Both)) return Malformed(m);
                    if (how is AbiShutdown.Receive or AbiShutdown.Both)
                    {
                        e.ReceiveShut = true;
                        ServiceReceives(e, now);
                    }
                    if (how is AbiShutdown.Send or AbiShutdown.Both)
                    {
                        var err = tcp.Shutdown(s, now);
                        if (err != TcpError.None && how == AbiShutdown.Send) return Map(err);
                    }
                    return InetStatus.Ok;
                }
            case InetOp.Close:
                return CloseTcp(m, e, a, now);
            case InetOp.SetOption:
                return SetTcpOption(e, a.Option, a.Value, now);
            case InetOp.GetOption:
                {
                    var status = GetTcpOption(e, a.Option, out long v);
                    r.Value = v;
                    return status;
                }
            case InetOp.GetInfo:
                {
                    FillEndpoints(r, tcp, s);
                    var info = tcp.GetInfo(s);
                    r.Available = (uint)tcp.GetAvailable(s);
                    r.SendQueued = (uint)tcp.GetUnacknowledged(s);
                    r.SendSpace = (uint)tcp.GetSendSpace(s);
                    r.SmoothedRttMicros = (uint)Math.Clamp(info.SmoothedRtt.TotalMicroseconds, 0, uint.MaxValue);
                    r.CongestionWindow = (uint)Math.Max(0, info.Cwnd);
                    r.Mss = (uint)Math.Max(0, info.Mss);
                    // What a full segment carries: a send cut to the MSS would leave as one full
                    // segment and one of 12 bytes when every segment carries timestamps.
                    r.SegmentPayload = (uint)Math.Max(0, info.Mss - (info.Timestamps ? 12 : 0));
                    r.OffloadSegments = OffloadSegments((int)r.SegmentPayload);
                    r.Retransmissions = (uint)Math.Max(0, info.Retransmits);
                    return InetStatus.Ok;
                }
            default:
                Count(InetStat.BadSocketRequests);
                return InetStatus.UnknownOpcode;
        }
    }

    // ---- accept ----------------------------------------------------------------------------

    /// <summary>Takes a connection off the listener's queue; false when none waits (nothing written).</summary>
    private bool TryAccept(in Message m, SocketEntry l, SocketResult r, Instant now, out InetStatus status)
    {
        var tcp = _tcp!;
        var err = tcp.Accept(l.Tcp, out var child);
        if (err == TcpError.WouldBlock)
        {
            status = InetStatus.Ok;
            return false;
        }
        if (err != TcpError.None)
        {
            status = Map(err);
            return true;
        }
        if (!RoomFor(l.Owner))
        {
            tcp.Abort(child, now);
            status = SocketStatus.TooManySockets;
            return true;
        }
        var e = NewEntry(l.Owner, _set!.AddTcp(child));
        r.Socket = e.Handle;
        FillEndpoints(r, tcp, child);
        status = InetStatus.Ok;
        return true;
    }

    // ---- send ------------------------------------------------------------------------------

    private void HoldSend(SocketEntry e, in Message m)
    {
        Enqueue(ref e.Sends, m);
        if (!e.InSendWaiters)
        {
            e.InSendWaiters = true;
            _sendWaiters.Add(e);
        }
    }

    /// <summary>
    /// Queues a send's data ICAs on the connection, all of them or none: false when the send
    /// buffer has no room for them now (nothing taken). True with the status otherwise; the
    /// data ICAs are TCP's (or freed) and the reply was either sent, or is deferred for direct
    /// return (status <see cref="Held"/>).
    /// </summary>
    private bool TrySendTcp(in Message m, SocketEntry e, SocketArgs a, SocketResult r, Instant now, out InetStatus status)
    {
        var tcp = _tcp!;
        var s = e.Tcp;
        if (!DataFits(m, a, -1))
        {
            // Checked when the request came; a held one is checked again (its page is shared).
            status = Malformed(m);
            return true;
        }
        var state = tcp.GetState(s);
        var error = tcp.GetError(s);
        if (error != TcpError.None)
        {
            FreeData(m);
            status = Map(error);
            return true;
        }
        if (state is not (TcpState.Established or TcpState.CloseWait or TcpState.SynSent or TcpState.SynReceived))
        {
            FreeData(m);
            status = state is TcpState.FinWait1 or TcpState.FinWait2 or TcpState.Closing or TcpState.LastAck or TcpState.TimeWait
                ? SocketStatus.Shutdown
                : SocketStatus.NotConnected;
            return true;
        }
        long capacity = 0;
        for (int i = 0; i < m.DataCount; i++) capacity += m.GetData(i).Ica.Length;
        int space = tcp.GetSendSpace(s);
        bool empty = tcp.GetUnacknowledged(s) == 0;
        // A send that does not fit waits, unless nothing is buffered: then it is taken whole
        // (under the pool's pressure the space can be less than one call's ICAs).
        if (space < capacity && !(empty && m.DataCount == 1))
        {
            tcp.GetOption(s, TcpOption.SendBufferSize, out long limit);
            if (m.DataCount > 1 && capacity > limit)
            {
                // Together larger than the send buffer: it could never be taken whole.
                FreeData(m);
                status = SocketStatus.NoBufferSpace;
                return true;
            }
            if (!empty)
            {
                tcp.NoteSendHeld(s);
                status = InetStatus.Ok;
                return false;
            }
        }
        long total = 0;
        IcaPacketBuffer? single = null;
        for (int i = 0; i < m.DataCount; i++)
        {
            var d = m.GetData(i);
            var b = _pool.WrapPayload(d.Ica, (int)a.DataOffset(i), (int)a.DataLength(i));
            TcpError err;
            // The core's IP and Ethernet layers stamp this request's timeline as its segments pass (SendTimeline).
            _protocol.Timeline.Begin(m.Control);
            try { err = tcp.Send(s, b, now); }
            finally { _protocol.Timeline.End(); }
            if (err != TcpError.None)
            {
                // Not taken: this buffer (and the ICAs after it) are refused, so freed.
                b.Release();
                for (int j = i + 1; j < m.DataCount; j++) _kernel.Free(m.GetData(j).Ica);
                r.Value = total;
                status = total > 0 ? InetStatus.Ok : Map(err);
                return true;
            }
            total += a.DataLength(i);
            if (m.DataCount == 1) single = b;
        }
        r.Value = total;
        if (ControlIca.TryOpen(m.Control.Span, out var c)) c.Stamp(InetTraceStage.InetTransport, _self);
        if (single is { IsLent: true })
        {
            // Sent at once in place: the frame is in the interface's queue (or waiting for ARP);
            // the flush decides whether the app's control ICA rides with it.
            DeferDirect(m, single, total);
            status = Held;
            return true;
        }
        Count(InetStat.SendsAnsweredByInet);
        status = InetStatus.Ok;
        return true;
    }

    private void ServiceSends(SocketEntry e, Instant now)
    {
        var q = e.Sends;
        while (q is { Count: > 0 })
        {
            var m = q.Peek();
            var a = ArgsOf(m);
            var r = ResultOf(m);
            if (!TrySendTcp(m, e, a, r, now, out var status)) return;
            q.Dequeue();
            if (status != Held) Reply(m, status);
        }
    }

    // ---- receive ---------------------------------------------------------------------------

    /// <summary>
    /// Answers a receive if it can be answered now (data, end of stream, an error): true when
    /// it was answered (the reply sent, with its data ICAs), false when it must wait.
    /// </summary>
    private bool TryReceiveTcp(in Message m, SocketEntry e, SocketArgs a, SocketResult r, Instant now)
    {
        var tcp = _tcp!;
        var s = e.Tcp;
        if (e.ReceiveShut)
        {
            Reply(m, InetStatus.Ok);
            return true;
        }
        long limit = a.Value;
        int available = tcp.GetAvailable(s);
        // A received buffer is one frame's ICA (the driver may have merged several segments
        // into it): with a limit, whole buffers go out (zero copy) as long as the next one
        // does not pass the limit; a limit below the first buffer copies.
        bool everything = limit <= 0 || limit >= available;
        if (!everything && limit < tcp.NextReceiveLength(s)) return CopyReceive(m, e, r, (int)Math.Min(limit, MaxCopyReceive), now);
        int n = 0;
        var err = TcpError.None;
        while (n < InetService.MaxFramesPerMessage)
        {
            if (!everything && r.Value + tcp.NextReceiveLength(s) > limit) break;
            err = tcp.Receive(s, out var payload, now);
            if (payload is null) break;
            if (payload is not IcaPacketBuffer b)
            {
                payload.Release();
                continue;
            }
            int offset = b.Start, length = b.Length;
            var lease = _pool.Detach(b);
            _replyData[n] = new DataIca(lease, offset + length);
            r.SetData(n, offset, length);
            r.Value += length;
            n++;
        }
        if (n > 0)
        {
            r.DataCount = n;
            FillEndpoints(r, tcp, s);
            Count(InetStat.ReceiveIcasToApps, n);
            Reply(m, InetStatus.Ok, _replyData.AsSpan(0, n));
            Array.Clear(_replyData);
            return true;
        }
        if (err == TcpError.WouldBlock) return false;
        // End of stream (None with no buffer) or the connection's error.
        Reply(m, Map(err));
        return true;
    }

    private bool CopyReceive(in Message m, SocketEntry e, SocketResult r, int bytes, Instant now)
    {
        IcaLease lease;
        try
        {
            lease = _kernel.Allocate((bytes + AntHost.Kernel.Pool.PoolLayout.PageSize - 1) / AntHost.Kernel.Pool.PoolLayout.PageSize);
        }
        catch (KernelException)
        {
            Reply(m, SocketStatus.NoBufferSpace);
            return true;
        }
        var err = _tcp!.Receive(e.Tcp, lease.Span[..bytes], out int read, now);
        if (read == 0)
        {
            _kernel.Free(lease);
            if (err == TcpError.WouldBlock) return false;
            Reply(m, Map(err));
            return true;
        }
        r.DataCount = 1;
        r.SetData(0, 0, read);
        r.Value = read;
        _replyData[0] = new DataIca(lease, read);
        Reply(m, InetStatus.Ok, _replyData.AsSpan(0, 1));
        _replyData[0] = default;
        return true;
    }

    private void ServiceReceives(SocketEntry e, Instant now)
    {
        var q = e.Receives;
        while (q is { Count: > 0 })
        {
            var m = q.Peek();
            bool answered = e.Type == AbiSocketType.Stream
                ? TryReceiveTcp(m, e, ArgsOf(m), ResultOf(m), now)
                : TryReceiveUdp(m, e, ArgsOf(m), ResultOf(m));
            if (!answered) return;
            q.Dequeue();
        }
    }

    // ---- connect and accept held -----------------------------------------------------------

    private void ServiceConnect(SocketEntry e)
    {
        if (!e.HasConnect) return;
        var tcp = _tcp!;
        var readiness = tcp.GetReadiness(e.Tcp);
        InetStatus status;
        if ((readiness & TcpReadiness.Error) != 0) status = Map(tcp.GetError(e.Tcp));
        else if ((readiness & (TcpReadiness.Connected | TcpReadiness.Writable)) != 0) status = InetStatus.Ok;
        else if ((readiness & TcpReadiness.Closed) != 0) status = SocketStatus.ConnectionAborted;
        else return;
        var m = e.Connect;
        e.HasConnect = false;
        e.Connect = default;
        FillEndpoints(ResultOf(m), tcp, e.Tcp);
        Reply(m, status);
    }

    private void ServiceAccepts(SocketEntry e, Instant now)
    {
        var q = e.Accepts;
        while (q is { Count: > 0 })
        {
            var m = q.Peek();
            if (!TryAccept(m, e, ResultOf(m), now, out var status)) return;
            q.Dequeue();
            Reply(m, status);
        }
    }

    // ---- close -----------------------------------------------------------------------------

    private InetStatus CloseTcp(in Message m, SocketEntry e, SocketArgs a, Instant now)
    {
        var tcp = _tcp!;
        AnswerAllHeld(e, SocketStatus.Canceled);
        if ((a.Flags & InetSocketFlags.Abort) != 0 || e.Linger == 0)
        {
            tcp.Abort(e.Tcp, now);
            FreeEntry(e);
            return InetStatus.Ok;
        }
        var state = tcp.GetState(e.Tcp);
        if (e.Linger > 0 && state is TcpState.Established or TcpState.CloseWait or TcpState.SynReceived)
        {
            // Held until the queued data and our FIN are acknowledged, or the linger time passes.
            tcp.Shutdown(e.Tcp, now);
            e.Closing = true;
            e.Close = m;
            e.CloseDeadline = now + TimeSpan.FromSeconds(Math.Min(e.Linger, 3600));
            if (e.InSendWaiters)
            {
                _sendWaiters.Remove(e);
                e.InSendWaiters = false;
            }
            _lingering.Add(e);
            ServiceClose(e, now);
            return Held;
        }
        tcp.Close(e.Tcp, now);
        FreeEntry(e);
        return InetStatus.Ok;
    }

    private readonly List<SocketEntry> _lingering = new();

    /// <summary>A lingering close: done when our FIN is acknowledged (or the connection ended), or at its deadline.</summary>
    private void ServiceClose(SocketEntry e, Instant now)
    {
        if (!e.Closing) return;
        var tcp = _tcp!;
        var state = tcp.GetState(e.Tcp);
        bool done = state is TcpState.FinWait2 or TcpState.TimeWait or TcpState.Closed;
        bool late = now >= e.CloseDeadline;
        if (!done && !late) return;
        var m = e.Close;
        var r = ResultOf(m);
        r.Value = done ? 1 : 0;
        var error = tcp.GetError(e.Tcp);
        tcp.Close(e.Tcp, now);
        _lingering.Remove(e);
        FreeEntry(e);
        Reply(m, error is TcpError.None or TcpError.ConnectionAborted ? InetStatus.Ok : Map(error));
    }

    // ---- options ---------------------------------------------------------------------------

    private InetStatus SetTcpOption(SocketEntry e, AbiSocketOption option, long value, Instant now)
    {
        var tcp = _tcp!;
        TcpError err;
        switch (option)
        {
            case AbiSocketOption.NoDelay: err = tcp.SetOption(e.Tcp, TcpOption.NoDelay, value != 0 ? 1 : 0, now); break;
            case AbiSocketOption.KeepAlive: err = tcp.SetOption(e.Tcp, TcpOption.KeepAlive, value != 0 ? 1 : 0, now); break;
            case AbiSocketOption.KeepAliveIdleSeconds: err = tcp.SetOption(e.Tcp, TcpOption.KeepAliveIdleMs, checked(value * 1000), now); break;
            case AbiSocketOption.KeepAliveIntervalSeconds: err = tcp.SetOption(e.Tcp, TcpOption.KeepAliveIntervalMs, checked(value * 1000), now); break;
            case AbiSocketOption.KeepAliveCount: err = tcp.SetOption(e.Tcp, TcpOption.KeepAliveCount, value, now); break;
            case AbiSocketOption.SendBuffer: err = tcp.SetOption(e.Tcp, TcpOption.SendBufferSize, value, now); break;
            case AbiSocketOption.ReceiveBuffer: err = tcp.SetOption(e.Tcp, TcpOption.ReceiveBufferSize, value, now); break;
            case AbiSocketOption.ReuseAddress:
                err = tcp.SetOption(e.Tcp, TcpOption.ReuseAddress, value != 0 ? 1 : 0, now);
                if (err == TcpError.None) e.ReuseAddress = value != 0;
                break;
            case AbiSocketOption.Linger:
                if (value < -1) return SocketStatus.InvalidArgument;
                err = tcp.SetOption(e.Tcp, TcpOption.LingerSeconds, value, now);
                if (err == TcpError.None) e.Linger = value;
                break;
            case AbiSocketOption.Broadcast:
                return SocketStatus.OperationNotSupported;
            default:
                Count(InetStat.BadSocketRequests);
                return SocketStatus.InvalidArgument;
        }
        return Map(err);
    }

    private InetStatus GetTcpOption(SocketEntry e, AbiSocketOption option, out long value)
    {
        var tcp = _tcp!;
        value = 0;
        switch (option)
        {
            case AbiSocketOption.NoDelay: return Map(tcp.GetOption(e.Tcp, TcpOption.NoDelay, out value));
            case AbiSocketOption.KeepAlive: return Map(tcp.GetOption(e.Tcp, TcpOption.KeepAlive, out value));
            case AbiSocketOption.KeepAliveIdleSeconds:
                {
                    var err = tcp.GetOption(e.Tcp, TcpOption.KeepAliveIdleMs, out value);
                    value /= 1000;
                    return Map(err);
                }
            case AbiSocketOption.KeepAliveIntervalSeconds:
                {
                    var err = tcp.GetOption(e.Tcp, TcpOption.KeepAliveIntervalMs, out value);
                    value /= 1000;
                    return Map(err);
                }
            case AbiSocketOption.KeepAliveCount: return Map(tcp.GetOption(e.Tcp, TcpOption.KeepAliveCount, out value));
            case AbiSocketOption.SendBuffer: return Map(tcp.GetOption(e.Tcp, TcpOption.SendBufferSize, out value));
            case AbiSocketOption.ReceiveBuffer: return Map(tcp.GetOption(e.Tcp, TcpOption.ReceiveBufferSize, out value));
            case AbiSocketOption.ReuseAddress: value = e.ReuseAddress ? 1 : 0; return InetStatus.Ok;
            case AbiSocketOption.Linger: value = e.Linger; return InetStatus.Ok;
            case AbiSocketOption.Error: value = (long)Map(tcp.GetError(e.Tcp)); return InetStatus.Ok;
            case AbiSocketOption.Available: value = tcp.GetAvailable(e.Tcp); return InetStatus.Ok;
            case AbiSocketOption.Broadcast: return SocketStatus.OperationNotSupported;
            default:
                Count(InetStat.BadSocketRequests);
                return SocketStatus.InvalidArgument;
        }
    }

    /// <summary>
    /// Segments one send ICA should carry (GetInfo's OffloadSegments): as many as one offloaded
    /// send takes, in an ICA the kernel connection still caches (16 pages); 1 without offload.
    /// </summary>
    private uint OffloadSegments(int payload)
    {
        int bytes = _protocol.OffloadBytes;
        if (payload <= 0 || bytes < 2 * payload) return 1;
        int perIca = (KernelConnection.MaxCachedPages * AntHost.Kernel.Pool.PoolLayout.PageSize - InetService.SendHeadroom) / payload;
        return (uint)Math.Max(1, Math.Min(bytes / payload, perIca));
    }
}
