// The socket manager: the paper's third part of the inet server, between the request
// manager (which hands it every app request) and the protocol manager (which owns the
// protocol core's Interface). It keeps the table of sockets apps hold, checks every call
// against it, and answers each call at once or holds it.
//
// Handles: a socket is a 64-bit handle, index + 1 in the low word and a generation in the
// high word, made for the process that asked. A handle that is unknown, stale (the slot
// was freed and reused) or another process's is refused with InvalidSocket and counted,
// so one app can never touch another's connection even by guessing.
//
// Holding: waiting happens here, not in the app. A blocking connect, accept, send (send
// buffer full), receive (nothing queued), close with linger, poll or ping is kept as the
// request message itself (its control ICA and data ICAs stay with inet) in a FIFO of its
// socket, and answered when the protocol core says the socket changed (TcpLayer's dirty
// queue, UdpLayer's changed queue, echo replies) or when its deadline passes. Nothing
// scans every socket: a round of the request manager drains the core's change queues,
// retries the sends of the few sockets that hold one (the core's writable edge has a
// low-water mark, so a large held send is retried every round rather than waiting for an
// edge that may not come), and re-evaluates held polls only when one of their sockets changed.
//
// Data: a send's data ICAs become the core's PacketBuffers in place (IcaPacketBuffer over
// the app's ICA, the payload region from the args); TCP keeps them until acknowledged. When
// a one-ICA send goes to the wire at once in place, the app's control ICA travels with the
// frame to the driver, which returns the result straight to the app (direct return); the
// result (bytes accepted) is written before. A received payload leaves as the very ICA the
// driver filled, detached from the buffer pool, with its offset and length in the result.
//
// Apps that die or close their last channel: their held requests' ICAs are freed and every
// socket they owned is aborted (RST to the peer). Everything runs on the request manager's
// thread.
using AntHost.Inet.Abi;
using AntHost.Inet.Buffers;
using AntHost.Inet.Core.Iface;
using AntHost.Inet.Core.Sockets;
using AntHost.Inet.Core.Tcp;
using AntHost.Inet.Core.Time;
using AntHost.Kernel;
using AntHost.Kernel.Ipc;
using AntHost.Kernel.Pool;
using Microsoft.Extensions.Logging;

namespace AntHost.Inet.Sockets;

/// <summary>The inet server's socket manager (see the file comment).</summary>
public sealed partial class SocketManager
{
    /// <summary>A handler's answer meaning "held (or handed on): no reply now".</summary>
    private const InetStatus Held = (InetStatus)(-1);

    private readonly IInetKernel _kernel;
    private readonly AppReplies _replies;
    private readonly ProtocolManager _protocol;
    private readonly IcaPacketBufferPool _pool;
    private readonly ILogger _log;
    private readonly int _maxSockets;
    private readonly uint _self;
    // The one socket table: entry i holds what inet keeps for the core's socket in slot i of the
    // interface's SocketSet (TCP, UDP and the ping socket alike).
    private readonly List<SocketEntry> _entries = new(1024);
    private SocketSet? _set;
    private readonly Dictionary<uint, AppState> _apps = new();
    private readonly List<SocketEntry> _sendWaiters = new(64);
    private readonly DataIca[] _replyData = new DataIca[InetService.MaxFramesPerMessage];
    private readonly long[] _stats;
    private Interface? _iface;
    private TcpLayer? _tcp;
    private int _open;
    // Sockets open per app (owner process id): the per-process limit under the global one.
    private readonly Dictionary<uint, int> _openBy = new();
    private readonly int _maxPerProcess;

    private sealed class AppState
    {
        public readonly List<Endpoint> Channels = new(2);
    }

    public SocketManager(IInetKernel kernel, ProtocolManager protocol, int maxSockets, int maxPerProcess, ILogger log)
    {
        _maxPerProcess = maxPerProcess;
        _kernel = kernel;
        _protocol = protocol;
        _pool = protocol.Pool;
        _log = log;
        _maxSockets = maxSockets;
        _self = kernel.Id.Value;
        _replies = protocol.Replies;
        // One counters array: the socket manager writes its range of InetStat, the protocol manager the rest.
        _stats = protocol.Counters;
    }

    /// <summary>Sockets open now.</summary>
    public int OpenSockets => _open;

    /// <summary>Sockets <paramref name="owner"/> holds now.</summary>
    public int SocketsOwnedBy(ProcessId owner) => _openBy.GetValueOrDefault(owner.Value);

    /// <summary>Requests held now (blocking calls, polls, pings, lingering closes).</summary>
    public long HeldRequests => CountHeld();

    private void Count(InetStat s, long n = 1) => _stats[(int)s] += n;

    // ---- the request entry ---------------------------------------------------------------

    /// <summary>True for the opcodes this manager serves.</summary>
    public static bool IsSocketCall(ushort opcode) => opcode is >= (ushort)InetOp.Socket and <= (ushort)InetOp.Ping;

    /// <summary>One app request (opcodes Socket..Ping). Every path answers, holds or hands on the message, and frees what it refuses.</summary>
    public void Request(in Message m, Instant now)
    {
        Count(InetStat.SocketCalls);
        if (m.Control.IsNone || !ControlIca.TryOpen(m.Control.Span, out var c) || c.FrameCount == 0)
        {
            Count(InetStat.BadSocketRequests);
            FreeData(m);
            ReplyBare(m, InetStatus.NoControl);
            return;
        }
        c.Stamp(InetTraceStage.InetReceived, _self);
        if (!SocketArgs.TryOpen(c.FrameArguments(c.FrameCount - 1), out var a))
        {
            Count(InetStat.BadSocketRequests);
            FreeData(m);
            Reply(m, InetStatus.BadArguments);
            return;
        }
        var r = SocketResult.Begin(c.ResultArea);
        c.SetResultLength(SocketResult.Length);
        NoteChannel(m);
        var op = (InetOp)m.Opcode;
        if (op is not (InetOp.Send or InetOp.SendTo or InetOp.Ping) && m.DataCount > 0)
        {
            // Data with a call that takes none: ours to free (the ABI says inet frees what it refuses).
            Count(InetStat.BadSocketRequests);
            FreeData(m);
            Reply(m, InetStatus.BadArguments);
            return;
        }
        if (!SyncInterface())
        {
            FreeData(m);
            Reply(m, SocketStatus.NetworkDown);
            return;
        }
        InetStatus status = op switch
        {
            InetOp.Socket => OpenSocket(m, a, r),
            InetOp.Poll => Poll(m, a, c.Inline, now),
            InetOp.Cancel => Cancel(m, a, r),
            InetOp.Ping => Ping(m, a, now),
            _ => SocketCall(m, op, a, r, c, now),
        };
        if (status != Held) Reply(m, status);
    }

    private InetStatus SocketCall(in Message m, InetOp op, SocketArgs a, SocketResult r, ControlIca c, Instant now)
    {
        var status = Find(m, a.Socket, out var e);
        if (status != InetStatus.Ok)
        {
            FreeData(m);
            return status;
        }
        c.Stamp(InetTraceStage.InetSocket, _self);
        return e.Type == AbiSocketType.Stream ? TcpCall(m, op, e, a, r, now) : UdpCall(m, op, e, a, r, now);
    }

    private InetStatus Find(in Message m, ulong handle, out SocketEntry e)
    {
        int index = (int)(uint)handle - 1;
        int generation = (int)(handle >> 32);
        if ((uint)index < (uint)_entries.Count)
        {
            e = _entries[index];
            if (e.InUse && !e.Closing && e.Generation == generation && e.Owner == m.Source) return InetStatus.Ok;
        }
        e = null!;
        Count(InetStat.InvalidSocketHandles);
        return SocketStatus.InvalidSocket;
    }

    private InetStatus OpenSocket(in Message m, SocketArgs a, SocketResult r)
    {
        if (!RoomFor(m.Source)) return SocketStatus.TooManySockets;
        SocketEntry e;
        switch ((AbiSocketType)a.Small)
        {
            case AbiSocketType.Stream:
                {
                    var err = _set!.OpenTcp(out var h);
                    if (err != TcpError.None) return Map(err);
                    e = NewEntry(m.Source, h);
                    break;
                }
            case AbiSocketType.Datagram:
                e = NewEntry(m.Source, _set!.OpenUdp());
                break;
            default:
                Count(InetStat.BadSocketRequests);
                return InetStatus.BadArguments;
        }
        r.Socket = e.Handle;
        r.Type = e.Type;
        return InetStatus.Ok;
    }

    /// <summary>The entry of a socket just added to the set: the one at its slot.</summary>
    private SocketEntry NewEntry(ProcessId owner, SocketHandle h)
    {
        var set = _set!;
        while (_entries.Count <= h.Slot) _entries.Add(new SocketEntry(_entries.Count));
        var e = _entries[h.Slot];
        if (e.InUse) throw new InvalidOperationException($"the socket table's slot {h.Slot} is in use (set and table disagree)");
        e.InUse = true;
        e.Owner = owner;
        e.Socket = h;
        if (set.KindOf(h) == SocketKind.Tcp)
        {
            e.Type = AbiSocketType.Stream;
            e.Tcp = set.Tcp(h);
        }
        else
        {
            e.Type = AbiSocketType.Datagram;
            e.Udp = set.Udp(h);
        }
        _open++;
        _openBy[owner.Value] = _openBy.GetValueOrDefault(owner.Value) + 1;
        return e;
    }

    /// <summary>True when <paramref name="owner"/> may open one more socket; else the refusal is counted.</summary>
    private bool RoomFor(ProcessId owner)
    {
        if (_open < _maxSockets && _openBy.GetValueOrDefault(owner.Value) < _maxPerProcess) return true;
        Count(InetStat.SocketLimitRefusals);
        return false;
    }

    private void Forget(SocketEntry e)
    {
        uint owner = e.Owner.Value;
        if (_openBy.TryGetValue(owner, out int n))
        {
            if (n <= 1) _openBy.Remove(owner);
            else _openBy[owner] = n - 1;
        }
        _open--;
    }

    /// <summary>Frees the slot (the core's socket was closed or aborted by the caller); held requests must be gone.</summary>
    private void FreeEntry(SocketEntry e)
    {
        if (!e.InUse) return;
        if (e.HasPeeked) e.Peeked.Payload.Release();
        // A UDP socket closes with it; TCP's was closed or aborted by the caller.
        _set?.Remove(e.Socket);
        if (e.InSendWaiters) _sendWaiters.Remove(e);
        if (e.Closing) _lingering.Remove(e);
        // A held poll naming this socket must see it gone (its entry now reads Error | Hangup).
        if (e.PollWaiters > 0) _pollDirty = true;
        Forget(e);
        e.Reset();
    }

    /// <summary>
    /// Follows the protocol manager's interface: none before the first ifattach (calls get
    /// NetworkDown); a new one (a driver with another MAC) ends every socket of the old one.
    /// </summary>
    private bool SyncInterface()
    {
        var iface = _protocol.Interface;
        if (iface == _iface) return iface is not null;
        if (_iface is not null)
        {
            _log.LogWarning("the interface was replaced: {N} sockets of the old one are gone", _open);
            foreach (var e in _entries)
            {
                if (!e.InUse) continue;
                AnswerAllHeld(e, SocketStatus.NetworkDown);
                if (e.InSendWaiters) _sendWaiters.Remove(e);
                if (e.Closing) Reply(e.Close, SocketStatus.NetworkDown);
                e.Udp = null;
                e.HasPeeked = false;
                Forget(e);
                e.Reset();
            }
            _lingering.Clear();
            EndPings(SocketStatus.NetworkDown);
            EndPolls();
            _echo = null;
            _echoSocket = default;
        }
        _iface = iface;
        // The old interface's sockets went with it: the new one starts an empty set.
        _set = iface is null ? null : new SocketSet(iface);
        _tcp = _set?.TcpLayer;
        return iface is not null && _tcp is not null;
    }

    // ---- replies ---------------------------------------------------------------------------

    /// <summary>Replies with the control ICA (its result area already written) and no data.</summary>
    private void Reply(in Message m, InetStatus status) => Reply(m, status, default);

    private void Reply(in Message m, InetStatus status, ReadOnlySpan<DataIca> data) => _replies.Reply(m, status, data);

    /// <summary>A reply for a request that came without a usable control ICA.</summary>
    private void ReplyBare(in Message m, InetStatus status) => _replies.ReplyBare(m, status);

    private void FreeData(in Message m)
    {
        for (int i = 0; i < m.DataCount; i++) _kernel.Free(m.GetData(i).Ica);
    }

    /// <summary>Frees a held request whose app is gone (no reply can reach it).</summary>
    private void Drop(in Message m) => _kernel.FreeMessage(m);

    /// <summary>
    /// The result area of a held request's control ICA. The app still maps the page it passed
    /// (the pool is shared; only strict mode takes the pages away), so a hostile app can have
    /// scribbled on it meanwhile: a page that is no longer a control ICA is formatted afresh.
    /// </summary>
    private static SocketResult ResultOf(in Message m)
    {
        if (!ControlIca.TryOpen(m.Control.Span, out var c)) c = ControlIca.Initialize(m.Control.Span, m.RequestId, m.Source.Value);
        c.SetResultLength(SocketResult.Length);
        return SocketResult.Begin(c.ResultArea);
    }

    private readonly byte[] _noArgs = new byte[InetService.ArgumentBytes];

    /// <summary>A held request's arguments, read again; all zero when the page no longer holds a frame (see <see cref="ResultOf"/>).</summary>
    private SocketArgs ArgsOf(in Message m)
    {
        if (ControlIca.TryOpen(m.Control.Span, out var c) && c.FrameCount > 0 && SocketArgs.TryOpen(c.FrameArguments(c.FrameCount - 1), out var a)) return a;
        Array.Clear(_noArgs);
        SocketArgs.TryOpen(_noArgs, out var none);
        return none;
    }

    // ---- apps and their channels ---------------------------------------------------------

    private void NoteChannel(in Message m)
    {
        if (m.Endpoint is not { } ep) return;
        if (!_apps.TryGetValue(m.Source.Value, out var app))
        {
            app = new AppState();
            _apps[m.Source.Value] = app;
        }
        if (!app.Channels.Contains(ep)) app.Channels.Add(ep);
    }

    /// <summary>
    /// A channel's peer died or closed it (not the driver's). Held requests that came on it
    /// are freed; when it was the app's last channel, every socket it owned is aborted.
    /// </summary>
    public void PeerDied(in Message m, Instant now)
    {
        if (m.Endpoint is not { } ep) return;
        if (!_apps.TryGetValue(m.Source.Value, out var app)) return;
        app.Channels.Remove(ep);
        DropHeldOn(ep, now);
        if (app.Channels.Count > 0) return;
        _apps.Remove(m.Source.Value);
        Count(InetStat.AppDeaths);
        int aborted = 0;
        foreach (var e in _entries)
        {
            if (!e.InUse || e.Owner != m.Source) continue;
            if (e.Type == AbiSocketType.Stream && _tcp is not null)
            {
                _tcp.Abort(e.Tcp, now);
                aborted++;
            }
            FreeEntry(e);
        }
        Count(InetStat.SocketsAbortedForDeadApps, aborted);
        _log.LogInformation("app {Process} is gone ({How}): {Aborted} TCP sockets aborted", m.Source, m.Word == 1 ? "closed its channel" : "died", aborted);
    }

    private void DropHeldOn(Endpoint ep, Instant now)
    {
        foreach (var e in _entries)
        {
            if (!e.InUse) continue;
            DropQueued(e.Receives, ep);
            DropQueued(e.Sends, ep);
            DropQueued(e.Accepts, ep);
            if (e.HasConnect && e.Connect.Endpoint == ep)
            {
                Drop(e.Connect);
                e.HasConnect = false;
                e.Connect = default;
            }
            if (e.Closing && e.Close.Endpoint == ep)
            {
                // The lingering close goes on in the background; nobody waits for it now.
                Drop(e.Close);
                if (_tcp is not null) _tcp.Close(e.Tcp, now);
                FreeEntry(e);
            }
        }
        DropPollsOn(ep);
        DropPingsOn(ep);
    }

    private void DropQueued(Queue<Message>? q, Endpoint ep)
    {
        if (q is null) return;
        for (int n = q.Count; n > 0; n--)
        {
            var h = q.Dequeue();
            if (h.Endpoint == ep) Drop(h);
            else q.Enqueue(h);
        }
    }

    /// <summary>Answers every request held on <paramref name="e"/> with <paramref name="status"/>; returns how many.</summary>
    private int AnswerAllHeld(SocketEntry e, InetStatus status)
    {
        int n = AnswerQueue(e.Receives, status) + AnswerQueue(e.Sends, status) + AnswerQueue(e.Accepts, status);
        if (e.HasConnect)
        {
            Reply(e.Connect, status);
            e.HasConnect = false;
            e.Connect = default;
            n++;
        }
        return n;
    }

    private int AnswerQueue(Queue<Message>? q, InetStatus status)
    {
        if (q is null) return 0;
        int n = 0;
        while (q.TryDequeue(out var h))
        {
            // A held send still owns its data ICAs: they are refused, so freed.
            if (h.Opcode is (ushort)InetOp.Send or (ushort)InetOp.SendTo) FreeData(h);
            Reply(h, status);
            n++;
        }
        return n;
    }

    private static void Enqueue(ref Queue<Message>? q, in Message m)
    {
        q ??= new Queue<Message>(4);
        q.Enqueue(m);
    }

    // ---- stats and stop --------------------------------------------------------------------

    /// <summary>TCP's input drops by reason ("BadChecksum=3, NoSocket=12"), for the log at stop.</summary>
    public string TcpDrops()
    {
        if (_tcp is not { } t) return "no TCP";
        var text = string.Join(", ", Enum.GetValues<TcpDropReason>().Where(r => r != TcpDropReason.Count && t.Counters.Dropped(r) != 0).Select(r => $"{r}={t.Counters.Dropped(r)}"));
        return text.Length == 0 ? "none" : text;
    }

    /// <summary>For the meter, from another thread: the counters this manager increments as it goes, the open sockets, and TCP's counters (plain reads).</summary>
    internal void ReadLive(long[] v)
    {
        foreach (var s in new[] { InetStat.SocketCalls, InetStat.InvalidSocketHandles, InetStat.AppDeaths, InetStat.SocketsAbortedForDeadApps, InetStat.BadSocketRequests,
            InetStat.DirectReturns, InetStat.SendsAnsweredByInet, InetStat.ReceiveIcasToApps, InetStat.Canceled, InetStat.PingsSent, InetStat.SocketLimitRefusals })
            v[(int)s] = Volatile.Read(ref _stats[(int)s]);
        v[(int)InetStat.SocketsOpen] = Volatile.Read(ref _open);
        WriteTcp(v);
    }

    /// <summary>Writes the socket manager's counters into <paramref name="stats"/> (InetStat order).</summary>
    public void WriteStats(long[] stats)
    {
        _stats[(int)InetStat.SocketsOpen] = _open;
        _stats[(int)InetStat.HeldRequests] = CountHeld();
        WriteTcp(_stats);
        if (stats != _stats) for (int i = (int)InetStat.SocketsOpen; i < (int)InetStat.Count; i++) stats[i] = _stats[i];
    }

    /// <summary>TCP's counters, in InetStat order.</summary>
    private void WriteTcp(long[] v)
    {
        if (_tcp is not { } t) return;
        var tc = t.Counters;
        v[(int)InetStat.TcpSegmentsIn] = tc.SegmentsIn;
        v[(int)InetStat.TcpSegmentsOut] = tc.SegmentsOut;
        v[(int)InetStat.TcpRetransmits] = tc.Retransmits;
        v[(int)InetStat.TcpResetsIn] = tc.ResetsIn;
        v[(int)InetStat.TcpResetsOut] = tc.ResetsOut;
        v[(int)InetStat.TcpConnections] = t.ConnectionCount;
        v[(int)InetStat.TcpRetransmitsTimeout] = tc.RetransmitsTimeout;
        v[(int)InetStat.TcpRetransmitsFast] = tc.RetransmitsFast;
        v[(int)InetStat.TcpRetransmitsSack] = tc.RetransmitsSack;
        v[(int)InetStat.TcpRetransmitsRack] = tc.RetransmitsRack;
        v[(int)InetStat.TcpRetransmitsTlp] = tc.RetransmitsTlp;
        v[(int)InetStat.TcpTimeouts] = tc.RetransmissionTimeouts;
        v[(int)InetStat.TcpTlpProbes] = tc.TlpProbes;
        v[(int)InetStat.TcpDropsIn] = tc.DropsTotal;
        v[(int)InetStat.TcpOffloadSegments] = tc.OffloadSegments;
        v[(int)InetStat.TcpOffloadChunkLent] = tc.OffloadChunkLent;
    }

    private long CountHeld()
    {
        long n = _polls.Count + _pings.Count;
        foreach (var e in _entries)
        {
            if (!e.InUse) continue;
            n += e.HeldCount + (e.Closing ? 1 : 0);
        }
        return n;
    }

    /// <summary>Stops: every held request is answered (ConnectionAborted) and every socket aborted, before the interface goes down.</summary>
    public void Shutdown(Instant now)
    {
        foreach (var e in _entries)
        {
            if (!e.InUse) continue;
            AnswerAllHeld(e, SocketStatus.ConnectionAborted);
            if (e.Closing) Reply(e.Close, SocketStatus.ConnectionAborted);
            if (e.Type == AbiSocketType.Stream) _tcp?.Abort(e.Tcp, now);
            FreeEntry(e);
        }
        EndPings(SocketStatus.ConnectionAborted);
        EndPolls();
        if (_echo is not null) _set?.Remove(_echoSocket);
        _echo = null;
        _echoSocket = default;
    }

    // ---- status mapping --------------------------------------------------------------------

    private static InetStatus Map(TcpError e) => e switch
    {
        TcpError.None => InetStatus.Ok,
        TcpError.WouldBlock => SocketStatus.WouldBlock,
        TcpError.InvalidHandle => SocketStatus.InvalidSocket,
        TcpError.InvalidState => SocketStatus.InvalidArgument,
        TcpError.InvalidArgument => SocketStatus.InvalidArgument,
        TcpError.AddressInUse => SocketStatus.AddressInUse,
        TcpError.AddressNotAvailable => SocketStatus.AddressNotAvailable,
        TcpError.AlreadyConnected => SocketStatus.AlreadyConnected,
        TcpError.NotConnected => SocketStatus.NotConnected,
        TcpError.Shutdown => SocketStatus.Shutdown,
        TcpError.NoBufferSpace => SocketStatus.NoBufferSpace,
        TcpError.ConnectionRefused => SocketStatus.ConnectionRefused,
        TcpError.ConnectionReset => SocketStatus.ConnectionReset,
        TcpError.TimedOut => SocketStatus.TimedOut,
        TcpError.HostUnreachable => SocketStatus.HostUnreachable,
        TcpError.NetworkUnreachable => SocketStatus.NetworkUnreachable,
        TcpError.ConnectionAborted => SocketStatus.ConnectionAborted,
        TcpError.NoPortsAvailable => SocketStatus.AddressNotAvailable,
        TcpError.TooManySockets => SocketStatus.TooManySockets,
        _ => SocketStatus.InvalidArgument,
    };

    private static InetStatus Map(Core.Udp.UdpError e) => e switch
    {
        Core.Udp.UdpError.Success => InetStatus.Ok,
        Core.Udp.UdpError.WouldBlock => SocketStatus.WouldBlock,
        Core.Udp.UdpError.AddressInUse => SocketStatus.AddressInUse,
        Core.Udp.UdpError.NoEphemeralPort => SocketStatus.AddressNotAvailable,
        Core.Udp.UdpError.AlreadyBound => SocketStatus.InvalidArgument,
        Core.Udp.UdpError.Closed => SocketStatus.InvalidSocket,
        Core.Udp.UdpError.InvalidArgument => SocketStatus.InvalidArgument,
        Core.Udp.UdpError.NetworkUnreachable => SocketStatus.NetworkUnreachable,
        Core.Udp.UdpError.MessageTooLong => SocketStatus.MessageTooLong,
        Core.Udp.UdpError.NoBufferSpace => SocketStatus.NoBufferSpace,
        Core.Udp.UdpError.HostUnreachable => SocketStatus.HostUnreachable,
        Core.Udp.UdpError.ConnectionRefused => SocketStatus.PortUnreachable,
        Core.Udp.UdpError.NetworkError => SocketStatus.HostUnreachable,
        Core.Udp.UdpError.NetworkDown => SocketStatus.NetworkDown,
        Core.Udp.UdpError.NotConnected => SocketStatus.NotConnected,
        _ => SocketStatus.InvalidArgument,
    };

    /// <summary>Checks a request's data ICA descriptors against the ICAs; false when one does not fit.</summary>
    private bool DataFits(in Message m, SocketArgs a, int count)
    {
        if (m.DataCount != count && !(count == -1 && m.DataCount >= 1)) return false;
        if (a.Small != 0 && a.Small != m.DataCount) return false;
        for (int i = 0; i < m.DataCount; i++)
        {
            var ica = m.GetData(i).Ica;
            ulong end = (ulong)a.DataOffset(i) + a.DataLength(i);
            if (end > (ulong)ica.Length || a.DataLength(i) == 0) return false;
        }
        return true;
    }

    private InetStatus Malformed(in Message m)
    {
        Count(InetStat.BadSocketRequests);
        FreeData(m);
        return InetStatus.BadArguments;
    }

    private static void FillEndpoints(SocketResult r, TcpLayer tcp, TcpSocket s)
    {
        var l = tcp.GetLocalEndPoint(s);
        var p = tcp.GetRemoteEndPoint(s);
        r.LocalAddress = l.Address.Value;
        r.LocalPort = l.Port;
        r.RemoteAddress = p.Address.Value;
        r.RemotePort = p.Port;
        r.Type = AbiSocketType.Stream;
        r.State = (byte)tcp.GetState(s);
    }
}
