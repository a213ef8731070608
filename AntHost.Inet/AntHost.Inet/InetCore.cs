// The inet server's core: everything the server does, without its I/O. It takes what the
// kernel delivered (an app's request, the driver's frames and completions, a peer's death)
// and the time, and acts through the kernel seam (IInetKernel): replies, frames posted to
// the driver in batches, direct-return forwards, ICAs freed. Round runs the timers, answers
// what became answerable and flushes the core's transmit queue; PollAt is when it next has
// something to do. It reads no clock and waits for nothing: the request manager (the shell)
// receives, reads the clock and sleeps until PollAt, and a test can drive it message by
// message with a fake kernel and a virtual clock.
using AntHost.Inet.Abi;
using AntHost.Inet.Core.Time;
using AntHost.Inet.Sockets;
using AntHost.Kernel;
using AntHost.Kernel.Ipc;
using Microsoft.Extensions.Logging;

namespace AntHost.Inet;

/// <summary>The inet server's logic, sans I/O (see the file comment).</summary>
public sealed class InetCore
{
    private readonly IInetKernel _kernel;
    private readonly ILogger _log;
    private long _unknown;

    public InetCore(IInetKernel kernel, InetOptions options, uint serviceId, ILogger log)
    {
        _kernel = kernel;
        _log = log;
        Protocol = new ProtocolManager(kernel, options, serviceId, log);
        Sockets = new SocketManager(kernel, Protocol, options.MaxSockets, options.MaxSocketsPerProcess, log);
    }

    public ProtocolManager Protocol { get; }

    public SocketManager Sockets { get; }

    /// <summary>When the core next has something to do without a message (a protocol timer, a held call's deadline), or null.</summary>
    public Instant? PollAt => Instant.Earliest(Instant.Earliest(Protocol.PollAt, Sockets.PollAt), Protocol.Replies.PollAt);

    /// <summary>
    /// One round after the messages taken: the protocol's timers due at <paramref name="now"/>,
    /// the held calls that became answerable or late, the replies parked for a full ring, and
    /// the flush of what the core queued.
    /// </summary>
    public void Round(Instant now)
    {
        // The ethinputs taken since the last round were one receive batch: answered now.
        Protocol.EndReceiveBatch(now);
        Protocol.Replies.Retry(now);
        Protocol.Poll(now);
        try
        {
            Sockets.Process(now);
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or IndexOutOfRangeException)
        {
            _log.LogError(e, "the socket manager's round failed; the server goes on");
        }
        Protocol.Flush();
    }

    /// <summary>Stops: every held call answered, every socket aborted, every buffer given back.</summary>
    public void Shutdown(Instant now)
    {
        Protocol.EndReceiveBatch(now);
        Sockets.Shutdown(now);
        Protocol.Flush();
        Protocol.Shutdown(now);
        Protocol.Replies.Shutdown();
    }

    /// <summary>One message from the kernel, taken at <paramref name="now"/>. Every path answers, holds, hands on or frees it.</summary>
    public void Handle(in Message m, Instant now)
    {
        try
        {
            switch (m.Kind)
            {
                case MessageKind.Request:
                    Request(m, now);
                    break;
                case MessageKind.Reply:
                    if (m.Endpoint is not null && m.Endpoint == Protocol.Driver) Protocol.TransmitCompleted(m);
                    else Unknown(m);
                    break;
                case MessageKind.Notify:
                    if (m.Opcode == (ushort)NicNotify.TxDataBack) Protocol.DataBack(m);
                    else if (m.Opcode == (ushort)NicNotify.TxCompletions) Protocol.Completions(m);
                    else Unknown(m);
                    break;
                case MessageKind.PeerDied:
                    Protocol.PeerDied(m);
                    Sockets.PeerDied(m, now);
                    break;
                case MessageKind.ChannelOpened:
                    _log.LogDebug("channel opened by {Process}", m.Source);
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

    private void Request(in Message m, Instant now)
    {
        if (SocketManager.IsSocketCall(m.Opcode))
        {
            Sockets.Request(m, now);
            return;
        }
        switch ((InetOp)m.Opcode)
        {
            case InetOp.EthInput:
                Protocol.EthInput(m, now);
                return;
            case InetOp.EthInputList:
                Protocol.EthInputList(m, now);
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
                    var status = Protocol.Attach(m, args, now, c.ResultArea, out int len);
                    c.SetResultLength(len);
                    Answer(m, status);
                    return;
                }
            case InetOp.IfLink:
                {
                    if (!m.Control.IsNone && ControlIca.TryOpen(m.Control.Span, out var c) && c.FrameCount > 0)
                        Protocol.SetLink(m, IfLinkArgs.Read(c.FrameArguments(c.FrameCount - 1)));
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
                    Protocol.Stats();
                    Sockets.WriteStats(Protocol.StatsBuffer);
                    Protocol.WritePressure(Protocol.StatsBuffer);
                    InetStats.Write(c.Inline, Protocol.StatsBuffer);
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
                    if (m.Opcode == (ushort)InetOp.SocketTable) Sockets.WriteSocketTable(c.Inline, cursor);
                    else Sockets.WriteArpTable(c.Inline, cursor);
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

    /// <summary>Replies with the request's own ICAs (parked when the requester's ring is full; freed when it is gone).</summary>
    private void ReplyOrFree(in Message m, InetStatus status) => Protocol.Replies.Reply(m, status, m.Data);

    /// <summary>Messages that made no sense (counted, dropped).</summary>
    public long Unrecognised => _unknown;
}
