// The request manager: the inet server's one thread. It waits on the process's
// doorbell (one wait across every channel: the NIC driver's, later every app's)
// with a timeout equal to the protocol core's next deadline, so a timer and a
// message wake it the same way, and it dispatches each message to the protocol
// manager or the socket manager, lets the socket manager answer what became
// answerable, then hands whatever the core queued to the driver. One thread means the core needs no lock, and a request's whole path
// through the server (receive, protocol, transmit) runs without a context switch.
using System.Diagnostics;
using AntHost.Inet.Abi;
using AntHost.Inet.Core.Time;
using AntHost.Inet.Sockets;
using AntHost.Kernel;
using AntHost.Kernel.Ipc;
using Microsoft.Extensions.Logging;

namespace AntHost.Inet;

/// <summary>The inet server's request loop (see the file comment).</summary>
public sealed class RequestManager
{
    private readonly KernelConnection _kernel;
    private readonly ProtocolManager _protocol;
    private readonly SocketManager _sockets;
    private readonly ILogger _log;
    private readonly long _epoch = Stopwatch.GetTimestamp();
    private long _unknown;

    public RequestManager(KernelConnection kernel, ProtocolManager protocol, SocketManager sockets, ILogger log)
    {
        _kernel = kernel;
        _protocol = protocol;
        _sockets = sockets;
        _log = log;
    }

    /// <summary>Monotonic microseconds since the server started: the core's clock.</summary>
    public Instant Now => new((long)Stopwatch.GetElapsedTime(_epoch).TotalMicroseconds);

    /// <summary>Runs until <paramref name="stop"/> is cancelled.</summary>
    public void Run(CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            var now = Now;
            _protocol.Poll(now);
            try
            {
                _sockets.Process(now);
            }
            catch (Exception e) when (e is ArgumentException or InvalidOperationException or IndexOutOfRangeException)
            {
                _log.LogError(e, "the socket manager's round failed; the server goes on");
            }
            _protocol.Flush();
            // No deadline: sleep until a message comes (a stop wakes the doorbell too).
            TimeSpan wait = Timeout.InfiniteTimeSpan;
            if (Instant.Earliest(_protocol.PollAt, _sockets.PollAt) is { } at)
            {
                var left = at - now;
                wait = left <= TimeSpan.Zero ? TimeSpan.Zero : left;
            }
            if (!_kernel.Receive(out var m, wait, stop)) continue;
            Dispatch(m);
            // Take what else is waiting before the next poll and flush, up to a bound.
            for (int i = 0; i < 63 && _kernel.TryReceive(out m); i++) Dispatch(m);
        }
    }

    private void Dispatch(in Message m)
    {
        try
        {
            switch (m.Kind)
            {
                case MessageKind.Request:
                    Request(m);
                    break;
                case MessageKind.Reply:
                    if (m.Endpoint is not null && m.Endpoint == _protocol.Driver) _protocol.TransmitCompleted(m);
                    else Unknown(m);
                    break;
                case MessageKind.Notify:
                    if (m.Opcode == (ushort)NicNotify.TxDataBack) _protocol.DataBack(m);
                    else Unknown(m);
                    break;
                case MessageKind.PeerDied:
                    _protocol.PeerDied(m);
                    _sockets.PeerDied(m, Now);
                    break;
                case MessageKind.ChannelOpened:
                    _log.LogDebug("channel opened by {Process} ({Name})", m.Source, _kernel.Pool.ProcessName(m.Source));
                    break;
                case MessageKind.Refused:
                    _log.LogWarning("the kernel refused a message of ours: {Error}", (KernelError)m.Word);
                    break;
                default:
                    Unknown(m);
                    break;
            }
        }
        catch (KernelException e)
        {
            // A peer that died between its request and our answer, or a ring that stayed full:
            // the request is lost, the server goes on.
            _log.LogWarning("request {Kind} {Opcode} from {Process}: {Error}", m.Kind, m.Opcode, m.Source, e.Message);
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or IndexOutOfRangeException)
        {
            // A request no check foresaw (its pages are shared: a hostile app can change them
            // under us) must cost that request, not the server and every other app's sockets.
            _unknown++;
            _log.LogError(e, "request {Kind} {Opcode} from {Process} failed; the server goes on", m.Kind, m.Opcode, m.Source);
        }
    }

    private void Request(in Message m)
    {
        if (SocketManager.IsSocketCall(m.Opcode))
        {
            _sockets.Request(m, Now);
            return;
        }
        switch ((InetOp)m.Opcode)
        {
            case InetOp.EthInput:
                _protocol.EthInput(m, Now);
                return;
            case InetOp.IfAttach:
                {
                    if (m.Control.IsNone || !ControlIca.TryOpen(m.Control.Span, out var c) || c.FrameCount == 0)
                    {
                        Answer(m, InetStatus.NoControl);
                        return;
                    }
                    if (!IfAttachArgs.TryRead(c.FrameArguments(c.FrameCount - 1), out var args))
                    {
                        Answer(m, InetStatus.BadArguments);
                        return;
                    }
                    var status = _protocol.Attach(m, args, Now, c.ResultArea, out int len);
                    c.SetResultLength(len);
                    Answer(m, status);
                    return;
                }
            case InetOp.IfLink:
                {
                    if (!m.Control.IsNone && ControlIca.TryOpen(m.Control.Span, out var c) && c.FrameCount > 0)
                        _protocol.SetLink(m, IfLinkArgs.Read(c.FrameArguments(c.FrameCount - 1)));
                    Answer(m, InetStatus.Ok);
                    return;
                }
            case InetOp.Stats:
                {
                    if (m.Control.IsNone || !ControlIca.TryOpen(m.Control.Span, out var c))
                    {
                        Answer(m, InetStatus.NoControl);
                        return;
                    }
                    _protocol.Stats();
                    _sockets.WriteStats(_protocol.StatsBuffer);
                    InetStats.Write(c.Inline, _protocol.StatsBuffer);
                    Answer(m, InetStatus.Ok);
                    return;
                }
            case InetOp.SocketTable:
            case InetOp.ArpTable:
                {
                    if (m.Control.IsNone || !ControlIca.TryOpen(m.Control.Span, out var c) || c.FrameCount == 0)
                    {
                        Answer(m, InetStatus.NoControl);
                        return;
                    }
                    int cursor = System.Buffers.Binary.BinaryPrimitives.ReadInt32LittleEndian(c.FrameArguments(c.FrameCount - 1));
                    if (m.Opcode == (ushort)InetOp.SocketTable) _sockets.WriteSocketTable(c.Inline, cursor);
                    else _sockets.WriteArpTable(c.Inline, cursor);
                    Answer(m, InetStatus.Ok);
                    return;
                }
            default:
                Answer(m, InetStatus.UnknownOpcode);
                return;
        }
    }

    /// <summary>Replies to a sync request (control ICA and data go back); frees an async one's ICAs.</summary>
    private void Answer(in Message m, InetStatus status)
    {
        if (m.IsSync)
        {
            ReplyOrFree(m, status);
            return;
        }
        if (status is not InetStatus.Ok) _unknown++;
        _kernel.FreeMessage(m);
    }

    private void Unknown(in Message m)
    {
        _unknown++;
        _log.LogDebug("dropped {Message}", m.ToString());
        if (m.Kind == MessageKind.Request && m.IsSync) ReplyOrFree(m, InetStatus.UnknownOpcode);
        else _kernel.FreeMessage(m);
    }

    /// <summary>Replies with the request's own ICAs; frees them when the reply failed before they left (see KernelException.HandlesKept).</summary>
    private void ReplyOrFree(in Message m, InetStatus status)
    {
        try
        {
            _kernel.Reply(m, m.Control, (int)status, m.Data);
        }
        catch (KernelException e) when (e.HandlesKept)
        {
            _log.LogWarning("reply to {Process} failed ({Error}): {Message}; its ICAs are freed", m.Source, e.Error, e.Message);
            _kernel.FreeMessage(m);
        }
    }

    /// <summary>Messages that made no sense (counted, dropped).</summary>
    public long Unrecognised => _unknown;
}
