// UDP sockets: one datagram per call, zero copy both ways when the app leaves room for the
// headers (a payload at offset SendHeadroom goes out from the app's ICA; a received
// datagram leaves as the frame's ICA). Sends never wait; receives are held like TCP's.
using AntHost.Inet.Abi;
using AntHost.Inet.Buffers;
using AntHost.Inet.Core.Time;
using AntHost.Inet.Core.Udp;
using AntHost.Inet.Core.Wire;
using AntHost.Kernel;
using AntHost.Kernel.Ipc;

namespace AntHost.Inet.Sockets;

public sealed partial class SocketManager
{
    private InetStatus UdpCall(in Message m, InetOp op, SocketEntry e, SocketArgs a, SocketResult r, Instant now)
    {
        var u = e.Udp!;
        r.Type = AbiSocketType.Datagram;
        switch (op)
        {
            case InetOp.Bind:
                {
                    var address = new Ipv4Address(a.Address);
                    if (!address.IsUnspecified && address != _iface!.Address) return SocketStatus.AddressNotAvailable;
                    var err = u.Bind(a.Port);
                    FillUdp(r, u);
                    return Map(err);
                }
            case InetOp.Connect:
                {
                    var err = u.Connect(new Ipv4Address(a.Address), a.Port);
                    FillUdp(r, u);
                    return Map(err);
                }
            case InetOp.Send or InetOp.SendTo:
                {
                    if (!DataFits(m, a, 1)) return Malformed(m);
                    if (e.SendShut)
                    {
                        FreeData(m);
                        return SocketStatus.Shutdown;
                    }
                    Ipv4Address to;
                    ushort port;
                    if (op == InetOp.Send)
                    {
                        if (!u.IsConnected)
                        {
                            FreeData(m);
                            return SocketStatus.NotConnected;
                        }
                        to = u.RemoteAddress;
                        port = u.RemotePort;
                    }
                    else
                    {
                        to = new Ipv4Address(a.Address);
                        port = a.Port;
                    }
                    if (!e.Broadcast && (to.IsBroadcast || to == _iface!.Address.SubnetBroadcast(_iface.Config.PrefixLength)))
                    {
                        // As SO_BROADCAST: a datagram to a broadcast address needs the option.
                        FreeData(m);
                        return SocketStatus.InvalidArgument;
                    }
                    var d = m.GetData(0);
                    int offset = (int)a.DataOffset(0), length = (int)a.DataLength(0);
                    UdpError err;
                    if (offset >= UdpSocket.HeaderRoom)
                    {
                        err = u.SendTo(_pool.WrapPayload(d.Ica, offset, length), to, port, now);
                    }
                    else
                    {
                        // No room for the headers in front: one copy into a buffer that has it.
                        err = u.SendTo(d.Ica.Span.Slice(offset, length), to, port, now);
                        _kernel.Free(d.Ica);
                    }
                    if (ControlIca.TryOpen(m.Control.Span, out var c)) c.Stamp(InetTraceStage.InetTransport, _self);
                    if (err == UdpError.Success) r.Value = length;
                    FillUdp(r, u);
                    return Map(err);
                }
            case InetOp.Receive or InetOp.ReceiveFrom:
                {
                    if (e.Receives is { Count: > 0 })
                    {
                        if ((a.Flags & InetSocketFlags.NonBlocking) != 0) return SocketStatus.WouldBlock;
                        Enqueue(ref e.Receives, m);
                        return Held;
                    }
                    if (TryReceiveUdp(m, e, a, r)) return Held; // answered inside
                    if ((a.Flags & InetSocketFlags.NonBlocking) != 0) return SocketStatus.WouldBlock;
                    Enqueue(ref e.Receives, m);
                    return Held;
                }
            case InetOp.Shutdown:
                {
                    var how = (AbiShutdown)a.Small;
                    if (how is not (AbiShutdown.Receive or AbiShutdown.Send or AbiShutdown.Both)) return Malformed(m);
                    if (how is AbiShutdown.Send or AbiShutdown.Both) e.SendShut = true;
                    if (how is AbiShutdown.Receive or AbiShutdown.Both)
                    {
                        e.ReceiveShut = true;
                        ServiceReceives(e, now);
                    }
                    return InetStatus.Ok;
                }
            case InetOp.Close:
                AnswerAllHeld(e, SocketStatus.Canceled);
                FreeEntry(e);
                return InetStatus.Ok;
            case InetOp.SetOption:
                switch (a.Option)
                {
                    case AbiSocketOption.Broadcast: e.Broadcast = a.Value != 0; return InetStatus.Ok;
                    case AbiSocketOption.ReuseAddress: e.ReuseAddress = a.Value != 0; return InetStatus.Ok;
                    case AbiSocketOption.SendBuffer when a.Value > 0: e.UdpSendBuffer = a.Value; return InetStatus.Ok;
                    case AbiSocketOption.ReceiveBuffer when a.Value > 0: e.UdpReceiveBuffer = a.Value; return InetStatus.Ok;
                    case AbiSocketOption.Linger: e.Linger = a.Value; return InetStatus.Ok;
                    case AbiSocketOption.NoDelay or AbiSocketOption.KeepAlive or AbiSocketOption.KeepAliveIdleSeconds
                        or AbiSocketOption.KeepAliveIntervalSeconds or AbiSocketOption.KeepAliveCount:
                        return SocketStatus.OperationNotSupported;
                    default:
                        Count(InetStat.BadSocketRequests);
                        return SocketStatus.InvalidArgument;
                }
            case InetOp.GetOption:
                switch (a.Option)
                {
                    case AbiSocketOption.Broadcast: r.Value = e.Broadcast ? 1 : 0; return InetStatus.Ok;
                    case AbiSocketOption.ReuseAddress: r.Value = e.ReuseAddress ? 1 : 0; return InetStatus.Ok;
                    case AbiSocketOption.SendBuffer: r.Value = e.UdpSendBuffer; return InetStatus.Ok;
                    case AbiSocketOption.ReceiveBuffer: r.Value = e.UdpReceiveBuffer; return InetStatus.Ok;
                    case AbiSocketOption.Linger: r.Value = e.Linger; return InetStatus.Ok;
                    case AbiSocketOption.Error: r.Value = (long)Map(u.TakeError()); return InetStatus.Ok;
                    case AbiSocketOption.Available: r.Value = PeekLength(e); return InetStatus.Ok;
                    case AbiSocketOption.NoDelay or AbiSocketOption.KeepAlive or AbiSocketOption.KeepAliveIdleSeconds
                        or AbiSocketOption.KeepAliveIntervalSeconds or AbiSocketOption.KeepAliveCount:
                        return SocketStatus.OperationNotSupported;
                    default:
                        Count(InetStat.BadSocketRequests);
                        return SocketStatus.InvalidArgument;
                }
            case InetOp.GetInfo:
                FillUdp(r, u);
                r.Available = (uint)PeekLength(e);
                return InetStatus.Ok;
            default:
                // Listen, Accept: not for datagrams.
                Count(InetStat.BadSocketRequests);
                return SocketStatus.OperationNotSupported;
        }
    }

    private void FillUdp(SocketResult r, UdpSocket u)
    {
        r.Type = AbiSocketType.Datagram;
        r.LocalAddress = u.IsBound ? _iface!.Address.Value : 0;
        r.LocalPort = u.LocalPort;
        r.RemoteAddress = u.RemoteAddress.Value;
        r.RemotePort = u.RemotePort;
    }

    /// <summary>The next datagram's length (taken off the core's queue and kept for the next receive), 0 when none.</summary>
    private static int PeekLength(SocketEntry e)
    {
        if (!e.HasPeeked && e.Udp!.TryReceiveFrom(out var d))
        {
            e.Peeked = d;
            e.HasPeeked = true;
        }
        return e.HasPeeked ? e.Peeked.Payload.Length : 0;
    }

    /// <summary>Answers a UDP receive if a datagram (or a connected socket's error) is there; false when it must wait.</summary>
    private bool TryReceiveUdp(in Message m, SocketEntry e, SocketArgs a, SocketResult r)
    {
        var u = e.Udp!;
        if (e.ReceiveShut)
        {
            Reply(m, InetStatus.Ok);
            return true;
        }
        UdpDatagram d;
        if (e.HasPeeked)
        {
            d = e.Peeked;
            e.Peeked = default;
            e.HasPeeked = false;
        }
        else if (!u.TryReceiveFrom(out d))
        {
            // A connected socket learns of its peer's port unreachable on its next receive.
            if (u.IsConnected && (u.Readiness & UdpReadiness.Error) != 0)
            {
                Reply(m, Map(u.TakeError()));
                return true;
            }
            return false;
        }
        FillUdp(r, u);
        r.RemoteAddress = d.RemoteAddress.Value;
        r.RemotePort = d.RemotePort;
        if (d.Payload is not IcaPacketBuffer b)
        {
            d.Payload.Release();
            Reply(m, SocketStatus.NoBufferSpace);
            return true;
        }
        int offset = b.Start, length = b.Length;
        long limit = a.Value;
        int given = limit > 0 && limit < length ? (int)limit : length;
        var lease = _pool.Detach(b);
        r.DataCount = 1;
        r.SetData(0, offset, given);
        r.Value = given;
        _replyData[0] = new DataIca(lease, offset + given);
        Count(InetStat.ReceiveIcasToApps);
        Reply(m, InetStatus.Ok, _replyData.AsSpan(0, 1));
        _replyData[0] = default;
        return true;
    }
}
