using System.Diagnostics;
using System.Runtime.CompilerServices;
using AntHost.Inet.Core.Buffers;
using AntHost.Inet.Core.Ip;
using AntHost.Inet.Core.Randomness;
using AntHost.Inet.Core.Time;
using AntHost.Inet.Core.Wire;

namespace AntHost.Inet.Core.Tcp;

/// <summary>
/// The TCP layer: the socket table, the demultiplexer, the timer queue and the socket API.
/// </summary>
/// <remarks>
/// Sockets are named by <see cref="TcpSocket"/> handles (slot index + generation), never by
/// object references, because the server forwards the API to apps in other processes: a
/// stale handle is refused with <see cref="TcpError.InvalidHandle"/>. A socket closed by
/// its app gives its handle up at once; its connection lives on in the background
/// (FIN-WAIT, TIME-WAIT...) reachable only through the 4-tuple map.
///
/// Demultiplexing is one hash lookup on the 4-tuple (<see cref="ConnectionKey"/>), then one
/// on (local address, port) for a listener, then on (any, port). Timers are deadlines
/// held by each connection; the layer keeps one priority queue keyed by each connection's
/// earliest deadline, with lazy deletion (an entry whose deadline no longer matches the
/// connection's is skipped), so <see cref="PollAt"/> is O(1) amortised and a poll touches
/// only the connections that are due, whatever the number of connections.
///
/// The server learns which sockets changed (readable, writable, closed...) without
/// scanning: every change puts the socket once on a dirty queue that
/// <see cref="TryGetChanged"/> drains.
/// </remarks>
public sealed partial class TcpLayer : ITransportLayer
{
    internal readonly IIpOutput Ip;
    internal readonly IPacketBufferPool Pool;
    internal readonly IRandomSource Random;
    internal readonly TcpConfig Config;
    internal readonly Isn.IsnGenerator Isn;

    private readonly List<TcpConnection?> _slots = new();
    private readonly List<int> _generations = new();
    private readonly Stack<int> _freeSlots = new();
    private readonly Dictionary<ConnectionKey, TcpConnection> _connections = new();
    private readonly Dictionary<ListenerKey, TcpConnection> _listeners = new();
    private readonly Dictionary<ushort, List<TcpConnection>> _bound = new();
    private readonly PriorityQueue<TcpConnection, long> _timers = new();
    private readonly Queue<TcpSocket> _dirty = new();
    private int _openSockets;
    private SynCookies? _cookies;

    // RFC 5961 7: a layer-wide budget of challenge ACKs per second.
    private long _challengeWindowStart = long.MinValue;
    private int _challengeCount;

    public TcpLayer(IIpOutput ip, IPacketBufferPool pool, IRandomSource random, TcpConfig config)
    {
        ArgumentNullException.ThrowIfNull(ip);
        ArgumentNullException.ThrowIfNull(pool);
        ArgumentNullException.ThrowIfNull(random);
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        Ip = ip;
        Pool = pool;
        Random = random;
        Config = config;
        Isn = new Isn.IsnGenerator(random);
    }

    /// <summary>The layer's counters.</summary>
    public TcpCounters Counters { get; } = new();

    /// <summary>What TCP's buffers may hold and hold now: the shell sets the limit from what its memory can give.</summary>
    public TcpMemory Memory { get; } = new();

    /// <summary>
    /// While a connection is held back by its share, how soon the shell should set the limit
    /// again (<see cref="PollAt"/> asks for it): first after 10 ms, then twice as long after each
    /// time nothing grew, up to a second, so that a pressed connection on an idle server costs
    /// at most one wake-up a second.
    /// </summary>
    public static readonly TimeSpan PressureRecheck = TimeSpan.FromMilliseconds(10), PressureRecheckMax = TimeSpan.FromSeconds(1);

    // Connections whose send space or window the memory share held below their own (a send
    // refused or held, a window clamped), told when the share grows (MemoryLimitSet).
    private readonly HashSet<TcpConnection> _pressed = new();
    private readonly List<TcpConnection> _pressedScratch = new();
    private long _sharedLimit = long.MaxValue;
    private int _sharedHolders;
    private long _pressureCheckedUs;
    private bool _limitSetByShell;
    private long _recheckUs = PressureRecheck.Ticks / TimeSpan.TicksPerMicrosecond;

    /// <summary>Connections the memory share holds back now (sends held, windows clamped).</summary>
    public int PressedConnections => _pressed.Count;

    /// <summary>The share held <paramref name="c"/> back: it hears when the share grows.</summary>
    internal void NotePressed(TcpConnection c)
    {
        if (!c.Removed && _pressed.Add(c)) _recheckUs = PressureRecheck.Ticks / TimeSpan.TicksPerMicrosecond;
    }

    /// <summary>
    /// The shell set <see cref="Memory"/>'s limit again (once per round; a shell that calls this
    /// is asked, through <see cref="PollAt"/>, to do it again while connections are held back).
    /// When a connection's share grew (a higher limit, or fewer connections holding memory), each connection the
    /// old share held back is told: a send it held may go on (it becomes writable), and a
    /// window it clamped is advertised open (RFC 9293 3.8.6.2.2: once the right edge can move
    /// by its threshold). Nothing else would tell them: an idle connection with a held send
    /// has no segment coming, and a peer facing a closed window probes on a timer that backs
    /// off to minutes.
    /// </summary>
    public void MemoryLimitSet(Instant now)
    {
        _limitSetByShell = true;
        bool due = now.Microseconds >= _pressureCheckedUs + _recheckUs;
        _pressureCheckedUs = now.Microseconds;
        bool grew = Memory.Limit > _sharedLimit || Memory.Holders < _sharedHolders;
        _sharedLimit = Memory.Limit;
        _sharedHolders = Memory.Holders;
        if (_pressed.Count == 0) return;
        if (!grew)
        {
            if (!due) return;
            _recheckUs = Math.Min(2 * _recheckUs, PressureRecheckMax.Ticks / TimeSpan.TicksPerMicrosecond);
            _pressed.RemoveWhere(static c => c.Removed);
            return;
        }
        _recheckUs = PressureRecheck.Ticks / TimeSpan.TicksPerMicrosecond;
        _pressedScratch.AddRange(_pressed);
        _pressed.Clear();
        foreach (var c in _pressedScratch)
        {
            if (c.Removed) continue;
            if (c.OnShareGrew(now)) _pressed.Add(c);
            c.NotifyIfChanged();
            Schedule(c);
        }
        _pressedScratch.Clear();
    }

    /// <summary>Connections known to the demultiplexer (all states but LISTEN and CLOSED), orphans included.</summary>
    public int ConnectionCount => _connections.Count;

    /// <summary>Sockets with a live handle.</summary>
    public int SocketCount => _openSockets;

    /// <summary>
    /// Walks every connection for the socket table from <paramref name="cursor"/>: those with a
    /// handle by slot, then those without one (orphans closing, children not yet accepted).
    /// Fills at most <paramref name="into"/>'s length; returns the cursor to go on from, or -1
    /// at the end. The work is bounded by the slots walked and the handleless connections
    /// skipped; nothing is allocated. A table taken in several calls is not one instant's.
    /// </summary>
    public int Walk(int cursor, Span<TcpConnectionView> into, out int written)
    {
        written = 0;
        if (cursor < 0) return -1;
        while (cursor < _slots.Count)
        {
            if (written == into.Length) return cursor;
            if (_slots[cursor] is { } c) into[written++] = View(c);
            cursor++;
        }
        int skip = cursor - _slots.Count, seen = 0;
        foreach (var c in _connections.Values)
        {
            if (c.Socket != default) continue;
            if (seen++ < skip) continue;
            if (written == into.Length) return _slots.Count + seen - 1;
            into[written++] = View(c);
        }
        return -1;
    }

    private static TcpConnectionView View(TcpConnection c) => new(c.Socket, c.Local, c.Remote, c.SendQueuedBytes, c.ReceiveQueuedBytes, c.Info);

    // ---------------------------------------------------------------- socket API

    /// <summary>Creates a socket (CLOSED, unbound). Fails only with <see cref="TcpError.TooManySockets"/>.</summary>
    public TcpError Open(out TcpSocket socket)
    {
        socket = default;
        if (_openSockets >= Config.MaximumSockets) return TcpError.TooManySockets;
        var c = new TcpConnection(this);
        socket = Attach(c);
        return TcpError.None;
    }

    /// <summary>Binds a local address (or <see cref="Ipv4Address.Any"/>) and port (0: an ephemeral port).</summary>
    public TcpError Bind(TcpSocket socket, TcpEndPoint local)
    {
        if (!TryGet(socket, out var c)) return TcpError.InvalidHandle;
        if (c.State != TcpState.Closed || c.IsBound) return TcpError.InvalidState;
        if (!local.Address.IsUnspecified && !Ip.IsLocal(local.Address)) return TcpError.AddressNotAvailable;
        ushort port = local.Port;
        if (port == 0)
        {
            if (!TryPickEphemeral(default, out port)) return TcpError.NoPortsAvailable;
        }
        else if (BindConflicts(c, local.Address, port)) return TcpError.AddressInUse;
        c.Local = new TcpEndPoint(local.Address, port);
        AddBound(c);
        return TcpError.None;
    }

    /// <summary>Turns a bound socket into a listener (RFC 9293 3.10.1 passive OPEN) with a backlog of completed connections.</summary>
    public TcpError Listen(TcpSocket socket, int backlog)
    {
        if (!TryGet(socket, out var c)) return TcpError.InvalidHandle;
        if (backlog < 0) return TcpError.InvalidArgument;
        if (c.State == TcpState.Listen)
        {
            c.Backlog = Math.Clamp(backlog, 1, Config.MaximumBacklog);
            return TcpError.None;
        }
        if (c.State != TcpState.Closed) return TcpError.InvalidState;
        if (!c.IsBound)
        {
            var e = Bind(socket, new TcpEndPoint(Ipv4Address.Any, 0));
            if (e != TcpError.None) return e;
        }
        var key = new ListenerKey(c.Local.Address, c.Local.Port);
        if (_listeners.ContainsKey(key)) return TcpError.AddressInUse;
        foreach (var other in _bound[c.Local.Port])
        {
            if (other != c && other.State == TcpState.Listen && AddressesOverlap(other.Local.Address, c.Local.Address))
                return TcpError.AddressInUse;
        }
        c.BecomeListener(Math.Clamp(backlog, 1, Config.MaximumBacklog));
        _listeners[key] = c;
        return TcpError.None;
    }

    /// <summary>
    /// Active OPEN (RFC 9293 3.10.1): sends a SYN. Completion is reported through
    /// readiness (<see cref="TcpReadiness.Connected"/> / <see cref="TcpReadiness.Writable"/>,
    /// or <see cref="TcpReadiness.Error"/> with <see cref="GetError"/>).
    /// </summary>
    public TcpError Connect(TcpSocket socket, TcpEndPoint remote, Instant now)
    {
        if (!TryGet(socket, out var c)) return TcpError.InvalidHandle;
        if (c.State == TcpState.Listen) return TcpError.InvalidState;
        if (c.State != TcpState.Closed || c.HasConnected) return TcpError.AlreadyConnected;
        if (remote.Port == 0 || remote.Address.IsUnspecified || remote.Address.IsBroadcast || remote.Address.IsMulticast)
            return TcpError.InvalidArgument;
        var source = c.Local.Address;
        if (source.IsUnspecified)
        {
            source = Ip.SourceFor(remote.Address);
            if (source.IsUnspecified) return TcpError.NetworkUnreachable;
        }
        ushort port = c.Local.Port;
        if (!c.IsBound)
        {
            if (!TryPickEphemeral(remote, out port)) return TcpError.NoPortsAvailable;
            c.Local = new TcpEndPoint(source, port);
            AddBound(c);
        }
        else
        {
            c.Local = new TcpEndPoint(source, port);
        }
        var key = new ConnectionKey(source, port, remote.Address, remote.Port);
        if (_connections.ContainsKey(key)) return TcpError.AddressInUse;
        c.Remote = remote;
        _connections[key] = c;
        Counters.ActiveOpens++;
        c.StartActiveOpen(now);
        Schedule(c);
        return TcpError.None;
    }

    /// <summary>Takes a completed connection from a listener's accept queue.</summary>
    public TcpError Accept(TcpSocket listener, out TcpSocket connection)
    {
        connection = default;
        if (!TryGet(listener, out var l)) return TcpError.InvalidHandle;
        if (l.State != TcpState.Listen) return TcpError.InvalidState;
        if (!l.TryDequeueAccepted(out var child)) return TcpError.WouldBlock;
        connection = child.Socket;
        return TcpError.None;
    }

    /// <summary>
    /// Queues the payload of <paramref name="payload"/> (its <see cref="PacketBuffer.Data"/>)
    /// for sending, zero copy. On success ownership passes to the layer, which keeps the
    /// buffer until its bytes are acknowledged. A buffer whose payload is at most one MSS and
    /// has at least <see cref="SendHeadroom"/> bytes of headroom is transmitted in place
    /// (lent to the IP layer); any other is copied into segment-sized buffers on transmission.
    /// On failure (<see cref="TcpError.WouldBlock"/> when the send buffer is full) the caller keeps it.
    /// </summary>
    public TcpError Send(TcpSocket socket, PacketBuffer payload, Instant now)
    {
        ArgumentNullException.ThrowIfNull(payload);
        if (!TryGet(socket, out var c)) return TcpError.InvalidHandle;
        var e = c.QueueSend(payload);
        if (e == TcpError.None) AfterApiCall(c, now);
        return e;
    }

    /// <summary>Copies as much of <paramref name="data"/> as the send buffer takes; <paramref name="written"/> says how much.</summary>
    public TcpError Send(TcpSocket socket, ReadOnlySpan<byte> data, out int written, Instant now)
    {
        written = 0;
        if (!TryGet(socket, out var c)) return TcpError.InvalidHandle;
        var e = c.QueueSend(data, out written);
        if (written > 0) AfterApiCall(c, now);
        return e;
    }

    /// <summary>
    /// Hands out the next received payload buffer, zero copy: its <see cref="PacketBuffer.Data"/>
    /// is the payload and the caller owns it. Returns <see cref="TcpError.None"/> with a null
    /// buffer at the end of the stream (the peer's FIN).
    /// </summary>
    public TcpError Receive(TcpSocket socket, out PacketBuffer? payload, Instant now)
    {
        payload = null;
        if (!TryGet(socket, out var c)) return TcpError.InvalidHandle;
        var e = c.DequeueReceived(out payload);
        if (payload is not null) AfterApiCall(c, now);
        return e;
    }

    /// <summary>Bytes of the buffer the next zero-copy <see cref="Receive(TcpSocket, out PacketBuffer?, Instant)"/> hands out (0: none queued).</summary>
    public int NextReceiveLength(TcpSocket socket) => TryGet(socket, out var c) ? c.NextReceivedLength : 0;

    /// <summary>Copies received bytes into <paramref name="destination"/>; <paramref name="read"/> 0 with <see cref="TcpError.None"/> is the end of the stream.</summary>
    public TcpError Receive(TcpSocket socket, Span<byte> destination, out int read, Instant now)
    {
        read = 0;
        if (!TryGet(socket, out var c)) return TcpError.InvalidHandle;
        var e = c.CopyReceived(destination, out read);
        if (read > 0) AfterApiCall(c, now);
        return e;
    }

    /// <summary>Shuts down the sending direction (half-close): a FIN follows the queued data.</summary>
    public TcpError Shutdown(TcpSocket socket, Instant now)
    {
        if (!TryGet(socket, out var c)) return TcpError.InvalidHandle;
        var e = c.ShutdownSend(now);
        AfterApiCall(c, now);
        return e;
    }

    /// <summary>
    /// Closes the socket and gives up its handle (RFC 9293 3.10.4 CLOSE). The connection, if
    /// any, closes gracefully in the background (queued data is still sent, then a FIN),
    /// unless unread data remains (RFC 2525 2.17: a RST tells the peer it was lost) or
    /// linger is 0 (abort).
    /// </summary>
    public TcpError Close(TcpSocket socket, Instant now)
    {
        if (!TryGet(socket, out var c)) return TcpError.InvalidHandle;
        Detach(c);
        c.CloseByApp(now);
        Schedule(c);
        return TcpError.None;
    }

    /// <summary>Aborts the connection with a RST (RFC 9293 3.10.5 ABORT) and gives up the handle.</summary>
    public TcpError Abort(TcpSocket socket, Instant now)
    {
        if (!TryGet(socket, out var c)) return TcpError.InvalidHandle;
        Detach(c);
        c.AbortByApp(now);
        return TcpError.None;
    }

    public TcpError SetOption(TcpSocket socket, TcpOption option, long value, Instant now)
    {
        if (!TryGet(socket, out var c)) return TcpError.InvalidHandle;
        var e = c.SetOption(option, value, now);
        if (e == TcpError.None) AfterApiCall(c, now);
        return e;
    }

    public TcpError GetOption(TcpSocket socket, TcpOption option, out long value)
    {
        value = 0;
        if (!TryGet(socket, out var c)) return TcpError.InvalidHandle;
        value = c.GetOption(option);
        return TcpError.None;
    }

    /// <summary>The socket's connection state (<see cref="TcpState.Closed"/> for an invalid handle).</summary>
    public TcpState GetState(TcpSocket socket) => TryGet(socket, out var c) ? c.State : TcpState.Closed;

    /// <summary>The error the connection ended with, or <see cref="TcpError.None"/>; <see cref="TcpError.InvalidHandle"/> for an invalid handle.</summary>
    public TcpError GetError(TcpSocket socket) => TryGet(socket, out var c) ? c.Error : TcpError.InvalidHandle;

    /// <summary>What the socket is ready for now.</summary>
    public TcpReadiness GetReadiness(TcpSocket socket) => TryGet(socket, out var c) ? c.Readiness : TcpReadiness.Closed | TcpReadiness.Error;

    public TcpEndPoint GetLocalEndPoint(TcpSocket socket) => TryGet(socket, out var c) ? c.Local : default;

    public TcpEndPoint GetRemoteEndPoint(TcpSocket socket) => TryGet(socket, out var c) ? c.Remote : default;

    /// <summary>Payload bytes waiting to be read.</summary>
    public int GetAvailable(TcpSocket socket) => TryGet(socket, out var c) ? c.ReceiveQueuedBytes : 0;

    /// <summary>Bytes the send buffer would take now (buffer capacity counted).</summary>
    public int GetSendSpace(TcpSocket socket) => TryGet(socket, out var c) ? c.SendSpace : 0;

    /// <summary>
    /// True while the layer's memory pressure (<see cref="Memory"/>) keeps the socket's send space
    /// below its own send buffer; a send held for that is counted (<see cref="TcpCounters.PressureSendRefusals"/>).
    /// </summary>
    public bool NoteSendHeld(TcpSocket socket)
    {
        if (!TryGet(socket, out var c) || !c.SendPressed) return false;
        Counters.PressureSendRefusals++;
        NotePressed(c);
        return true;
    }

    /// <summary>Payload bytes queued and not yet acknowledged.</summary>
    public int GetUnacknowledged(TcpSocket socket) => TryGet(socket, out var c) ? c.SendQueuedBytes : 0;

    /// <summary>A snapshot of a connection's internals, for diagnostics (ss -i).</summary>
    public TcpConnectionInfo GetInfo(TcpSocket socket) => TryGet(socket, out var c) ? c.Info : default;

    /// <summary>
    /// What TCP asks of IPv4 for every segment: TTL 64 (RFC 1700's default, as Linux), normal
    /// service, DF set (RFC 1191 path MTU discovery; "fragmentation needed" lowers the MSS).
    /// Spelt out because a parameterless <c>new</c> of a record struct may zero the fields.
    /// </summary>
    internal static readonly IpSendOptions IpOptions = new(Ttl: 64, Tos: 0, DontFragment: true);

    /// <summary>Headroom a zero-copy send buffer needs in front of its payload to be sent in place: IP + Ethernet + the largest TCP header.</summary>
    public static int SendHeadroom => IIpOutput.HeaderRoom + TcpHeader.MaxLength;

    /// <summary>Takes the next socket whose readiness may have changed since it was last taken (each socket at most once in the queue).</summary>
    public bool TryGetChanged(out TcpSocket socket)
    {
        while (_dirty.TryDequeue(out socket))
        {
            if (TryGet(socket, out var c))
            {
                c.InDirtyQueue = false;
                return true;
            }
        }
        return false;
    }

    // ---------------------------------------------------------------- ITransportLayer

    /// <inheritdoc />
    public void Receive(Ipv4Address source, Ipv4Address destination, PacketBuffer segment, Instant now)
    {
        Counters.SegmentsIn++;
        var seg = default(Segment);
        if (!TcpHeader.TryCreate(segment.Data, out var h))
        {
            Drop(segment, TcpDropReason.Malformed);
            return;
        }
        if (!h.IsChecksumValid(source, destination))
        {
            Counters.ChecksumFailures++;
            Drop(segment, TcpDropReason.BadChecksum);
            return;
        }
        seg = new Segment(h);
        segment.TrimFront(h.HeaderLength);
        // RFC 9293 3.10.7.2 / RFC 1122 4.2.3.10: a segment from or to a broadcast or
        // multicast address is not for a connection; never answer it.
        if (source.IsBroadcast || source.IsMulticast || source.IsUnspecified || destination.IsBroadcast || destination.IsMulticast
            || seg.SourcePort == 0 || seg.DestinationPort == 0)
        {
            Drop(segment, TcpDropReason.Malformed);
            return;
        }
        Counters.BytesIn += segment.Length;

        var key = new ConnectionKey(destination, seg.DestinationPort, source, seg.SourcePort);
        if (_connections.TryGetValue(key, out var c))
        {
            c.Input(in seg, segment, now);
            AfterSegment(c);
            return;
        }
        if (_listeners.TryGetValue(new ListenerKey(destination, seg.DestinationPort), out var l)
            || _listeners.TryGetValue(new ListenerKey(Ipv4Address.Any, seg.DestinationPort), out l))
        {
            DeliverToListener(l, in seg, segment, source, destination, now);
            return;
        }
        // RFC 9293 3.10.7.1: CLOSED. "If the state is CLOSED (i.e., TCB does not exist) then
        // all data in the incoming segment is discarded. An incoming segment containing a
        // RST is discarded. An incoming segment not containing a RST causes a RST to be sent."
        segment.Release();
        Counters.Drops[(int)TcpDropReason.NoSocket]++;
        if (!seg.Rst) SendResetFor(in seg, destination, source, now);
    }

    /// <inheritdoc />
    public void ReceiveIcmpError(in IcmpError error, Instant now)
    {
        Counters.IcmpErrorsIn++;
        var key = new ConnectionKey(error.LocalAddress, error.LocalPort, error.RemoteAddress, error.RemotePort);
        if (!_connections.TryGetValue(key, out var c))
        {
            Counters.IcmpErrorsIgnored++;
            return;
        }
        c.OnIcmpError(in error, now);
        AfterSegment(c);
    }

    /// <inheritdoc />
    public void Poll(Instant now)
    {
        while (_timers.TryPeek(out var c, out long deadline) && deadline <= now.Microseconds)
        {
            _timers.Dequeue();
            if (c.ScheduledDeadline != deadline || c.Removed) continue;
            c.ScheduledDeadline = long.MaxValue;
            if (c.NextDeadline() <= now.Microseconds) c.OnTimers(now);
            AfterSegment(c);
        }
    }

    /// <inheritdoc />
    public Instant? PollAt
    {
        get
        {
            // While the memory share holds connections back, the shell is asked to set the limit
            // again (MemoryLimitSet), so that room the pool gets back reaches them.
            Instant? recheck = _pressed.Count > 0 && _limitSetByShell ? new Instant(_pressureCheckedUs + _recheckUs) : null;
            // Entries are not removed when a deadline moves later (an ACK stops the retransmission
            // timer); they are found stale here and put back at the connection's real deadline,
            // so the answer is exact and a caller never wakes for nothing.
            while (_timers.TryPeek(out var c, out long deadline))
            {
                if (c.ScheduledDeadline == deadline && !c.Removed)
                {
                    long real = c.NextDeadline();
                    if (real <= deadline) return Instant.Earliest(new Instant(deadline), recheck);
                    _timers.Dequeue();
                    c.ScheduledDeadline = long.MaxValue;
                    Schedule(c);
                    continue;
                }
                _timers.Dequeue();
            }
            return recheck;
        }
    }

    // ---------------------------------------------------------------- internals for connections

    private bool _batching;
    private readonly List<TcpConnection> _heldOutput = new(16);

    /// <inheritdoc />
    public void BeginReceiveBatch() => _batching = Config.OutputPerReceiveBatch;

    /// <inheritdoc />
    public void EndReceiveBatch(Instant now)
    {
        _batching = false;
        for (int i = 0; i < _heldOutput.Count; i++)
        {
            var c = _heldOutput[i];
            c.OutputHeld = false;
            if (c.Removed || c.State == TcpState.Closed) continue;
            c.Output(now);
            AfterSegment(c);
        }
        _heldOutput.Clear();
    }

    /// <summary>
    /// During a receive batch: takes the output of <paramref name="c"/> (after an in-order
    /// segment) to run at the batch's end; false outside a batch (the caller outputs now).
    /// </summary>
    internal bool HoldOutput(TcpConnection c)
    {
        if (!_batching) return false;
        if (!c.OutputHeld)
        {
            c.OutputHeld = true;
            _heldOutput.Add(c);
        }
        return true;
    }

    internal void AfterSegment(TcpConnection c)
    {
        c.NotifyIfChanged();
        Schedule(c);
    }

    private void AfterApiCall(TcpConnection c, Instant now)
    {
        if (c.State != TcpState.Closed) c.Output(now);
        c.NotifyIfChanged();
        Schedule(c);
    }

    /// <summary>A SYN that ended a TIME-WAIT connection (RFC 6191) goes to the listener, or is answered as for a closed port.</summary>
    internal void RedeliverToListener(in Segment seg, PacketBuffer payload, Ipv4Address local, Ipv4Address remote, Instant now)
    {
        if (_listeners.TryGetValue(new ListenerKey(local, seg.DestinationPort), out var l)
            || _listeners.TryGetValue(new ListenerKey(Ipv4Address.Any, seg.DestinationPort), out l))
        {
            DeliverToListener(l, in seg, payload, remote, local, now);
            return;
        }
        payload.Release();
        Counters.Drops[(int)TcpDropReason.NoSocket]++;
        SendResetFor(in seg, local, remote, now);
    }

    /// <summary>
    /// A segment for a listener: SYN cookies (RFC 4987 3.6) first, when on. A SYN that finds
    /// the SYN queue full, while the accept queue and the socket table have room, is answered
    /// with a cookie; a bare ACK while cookies are outstanding is checked as one. Everything
    /// else is LISTEN's (RFC 9293 3.10.7.2), which drops a SYN the queues have no room for.
    /// </summary>
    private void DeliverToListener(TcpConnection l, in Segment seg, PacketBuffer payload, Ipv4Address remote, Ipv4Address local, Instant now)
    {
        if (Config.SynCookies)
        {
            var control = seg.Flags & (TcpFlags.Rst | TcpFlags.Syn | TcpFlags.Ack);
            if (control == TcpFlags.Syn && l.SynQueueFull && l.HasAcceptRoom)
            {
                l.SendCookieSynAck(Cookies, in seg, payload, remote, local, now);
                return;
            }
            if (control == TcpFlags.Ack && l.CookiesOutstanding(now))
            {
                if (l.AcceptCookie(Cookies, in seg, payload, remote, local, now) is { } child) AfterSegment(child);
                return;
            }
        }
        l.ListenInput(in seg, payload, remote, local, now);
    }

    /// <summary>The layer's SYN cookie keys, made when a listener first needs them.</summary>
    private SynCookies Cookies => _cookies ??= new SynCookies(Random);

    internal void Schedule(TcpConnection c)
    {
        if (c.Removed) return;
        long d = c.NextDeadline();
        if (d < c.ScheduledDeadline)
        {
            c.ScheduledDeadline = d;
            _timers.Enqueue(c, d);
        }
    }

    /// <summary>Marks a socket as changed for <see cref="TryGetChanged"/>.</summary>
    internal void MarkDirty(TcpConnection c)
    {
        if (c.InDirtyQueue || c.Socket == default) return;
        c.InDirtyQueue = true;
        _dirty.Enqueue(c.Socket);
    }

    /// <summary>Gives a connection a handle (new sockets, and children accepted from a listener).</summary>
    internal TcpSocket Attach(TcpConnection c)
    {
        int index;
        if (!_freeSlots.TryPop(out index))
        {
            index = _slots.Count;
            _slots.Add(null);
            _generations.Add(0);
        }
        int gen = _generations[index] + 1;
        if (gen == 0) gen = 1; // generation 0 is reserved for TcpSocket.None
        _generations[index] = gen;
        _slots[index] = c;
        _openSockets++;
        c.Socket = new TcpSocket(index, gen);
        return c.Socket;
    }

    internal void Detach(TcpConnection c)
    {
        if (c.Socket == default) return;
        int index = c.Socket.Index;
        Debug.Assert(_slots[index] == c, "slot holds another connection");
        _slots[index] = null;
        _freeSlots.Push(index);
        _openSockets--;
        c.Socket = default;
        c.InDirtyQueue = false;
    }

    internal bool CanAcceptMore(int count) => _openSockets + count <= Config.MaximumSockets;

    /// <summary>Registers a child connection made by a listener.</summary>
    internal bool AddConnection(TcpConnection c)
    {
        var key = new ConnectionKey(c.Local.Address, c.Local.Port, c.Remote.Address, c.Remote.Port);
        return _connections.TryAdd(key, c);
    }

    /// <summary>Forgets a connection that reached CLOSED: it leaves the map, the listener table and the bound ports.</summary>
    internal void Remove(TcpConnection c)
    {
        if (c.Removed) return;
        if (c.Remote.Port != 0)
        {
            var key = new ConnectionKey(c.Local.Address, c.Local.Port, c.Remote.Address, c.Remote.Port);
            if (_connections.TryGetValue(key, out var found) && found == c) _connections.Remove(key);
        }
        if (c.State == TcpState.Listen || c.WasListener)
        {
            var lk = new ListenerKey(c.Local.Address, c.Local.Port);
            if (_listeners.TryGetValue(lk, out var found) && found == c) _listeners.Remove(lk);
        }
        RemoveBound(c);
        if (c.Socket == default) c.Removed = true; // an orphan is gone; a socket with a handle stays until closed
    }

    /// <summary>A listener stopped listening (closed by its app).</summary>
    internal void RemoveListener(TcpConnection c)
    {
        var lk = new ListenerKey(c.Local.Address, c.Local.Port);
        if (_listeners.TryGetValue(lk, out var found) && found == c) _listeners.Remove(lk);
    }

    internal void Drop(PacketBuffer segment, TcpDropReason reason)
    {
        Counters.Drops[(int)reason]++;
        segment.Release();
    }

    /// <summary>RFC 5961 7: true when one more challenge ACK fits in this second's budget.</summary>
    internal bool TakeChallengeAck(Instant now)
    {
        long second = now.Microseconds / 1_000_000;
        if (second != _challengeWindowStart)
        {
            _challengeWindowStart = second;
            _challengeCount = 0;
        }
        if (_challengeCount >= Config.ChallengeAckLimitPerSecond)
        {
            Counters.ChallengeAcksSuppressed++;
            return false;
        }
        _challengeCount++;
        Counters.ChallengeAcks++;
        return true;
    }

    /// <summary>
    /// A reset for a segment that has no connection (RFC 9293 3.10.7.1): "If the ACK bit is
    /// off, sequence number zero is used, &lt;SEQ=0&gt;&lt;ACK=SEG.SEQ+SEG.LEN&gt;&lt;CTL=RST,ACK&gt;.
    /// If the ACK bit is on, &lt;SEQ=SEG.ACK&gt;&lt;CTL=RST&gt;".
    /// </summary>
    internal void SendResetFor(in Segment seg, Ipv4Address local, Ipv4Address remote, Instant now)
    {
        if (seg.Ack)
            SendControl(local, seg.DestinationPort, remote, seg.SourcePort, seg.AckNumber, default, TcpFlags.Rst, 0, default, now);
        else
            SendControl(local, seg.DestinationPort, remote, seg.SourcePort, default, seg.Seq + seg.Length, TcpFlags.Rst | TcpFlags.Ack, 0, default, now);
        Counters.ResetsOut++;
    }

    /// <summary>Sends a segment without payload (RST, SYN-ACK of a listener's SYN queue, ACK); false when no buffer could be had.</summary>
    internal bool SendControl(Ipv4Address local, ushort localPort, Ipv4Address remote, ushort remotePort,
        SeqNumber seq, SeqNumber ack, TcpFlags flags, ushort window, in TcpOptions options, Instant now)
    {
        int hlen = TcpHeaderFields.LengthWith(options);
        var b = Pool.Rent(IIpOutput.HeaderRoom + hlen, 0);
        if (b is null)
        {
            Counters.SendDropped++;
            return false;
        }
        var header = b.Prepend(hlen);
        new TcpHeaderFields(localPort, remotePort, seq, ack, flags, window).WriteTo(header, options);
        TcpHeaderFields.FillChecksum(b.Data, local, remote);
        Counters.SegmentsOut++;
        Ip.Send(local, remote, IpProtocol.Tcp, b, TcpLayer.IpOptions, now);
        return true;
    }

    // ---------------------------------------------------------------- ports

    private bool TryGet(TcpSocket socket, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out TcpConnection? c)
    {
        c = null;
        int i = socket.Index;
        if ((uint)i >= (uint)_slots.Count || _generations[i] != socket.Generation) return false;
        c = _slots[i];
        return c is not null;
    }

    private static bool AddressesOverlap(Ipv4Address a, Ipv4Address b) => a.IsUnspecified || b.IsUnspecified || a == b;

    private bool BindConflicts(TcpConnection c, Ipv4Address address, ushort port)
    {
        if (!_bound.TryGetValue(port, out var list)) return false;
        foreach (var other in list)
        {
            if (other == c || !AddressesOverlap(other.Local.Address, address)) continue;
            if (other.State == TcpState.Listen) return true;
            // SO_REUSEADDR: a port whose other users are all reusable (or in TIME-WAIT) can be bound again.
            if (!c.ReuseAddress) return true;
            if (!other.ReuseAddress && other.State != TcpState.TimeWait) return true;
        }
        return false;
    }

    private bool TryPickEphemeral(TcpEndPoint remote, out ushort port)
    {
        int first = Config.EphemeralPortFirst, count = Config.EphemeralPortLast - first + 1;
        int start = (int)(Random.NextUInt32() % (uint)count);
        for (int i = 0; i < count; i++)
        {
            ushort p = (ushort)(first + (start + i) % count);
            if (!_bound.ContainsKey(p))
            {
                port = p;
                return true;
            }
        }
        port = 0;
        return false;
    }

    private void AddBound(TcpConnection c)
    {
        if (!_bound.TryGetValue(c.Local.Port, out var list))
        {
            list = new List<TcpConnection>(1);
            _bound[c.Local.Port] = list;
        }
        list.Add(c);
        c.IsBound = true;
    }

    /// <summary>A child connection shares its listener's port.</summary>
    internal void AddBoundChild(TcpConnection c) => AddBound(c);

    private void RemoveBound(TcpConnection c)
    {
        if (!c.IsBound) return;
        c.IsBound = false;
        if (_bound.TryGetValue(c.Local.Port, out var list))
        {
            list.Remove(c);
            if (list.Count == 0) _bound.Remove(c.Local.Port);
        }
    }

    /// <summary>A socket whose app closed it while it was never connected or listening: forget it entirely.</summary>
    internal void Forget(TcpConnection c)
    {
        RemoveBound(c);
        c.Removed = true;
    }
}

/// <summary>The 4-tuple that names a connection, hashed for the demultiplexer.</summary>
internal readonly record struct ConnectionKey(Ipv4Address LocalAddress, ushort LocalPort, Ipv4Address RemoteAddress, ushort RemotePort)
{
    public override int GetHashCode()
    {
        ulong a = (ulong)LocalAddress.Value << 32 | RemoteAddress.Value;
        ulong b = (ulong)LocalPort << 16 | RemotePort;
        ulong h = (a ^ (b * 0x9E3779B97F4A7C15)) * 0xBF58476D1CE4E5B9;
        return (int)(h ^ (h >> 31));
    }

    public bool Equals(ConnectionKey other) =>
        LocalAddress == other.LocalAddress && RemoteAddress == other.RemoteAddress && LocalPort == other.LocalPort && RemotePort == other.RemotePort;
}

internal readonly record struct ListenerKey(Ipv4Address Address, ushort Port);

/// <summary>A snapshot of a connection's internals (diagnostics and tests).</summary>
public readonly record struct TcpConnectionInfo(
    TcpState State,
    uint SndUna,
    uint SndNxt,
    uint SndWnd,
    uint RcvNxt,
    uint RcvWnd,
    int Mss,
    int Cwnd,
    int Ssthresh,
    TimeSpan Rto,
    TimeSpan SmoothedRtt,
    byte SendWindowScale,
    byte ReceiveWindowScale,
    bool Timestamps,
    bool Sack,
    int OutOfOrderSegments,
    int Retransmits,
    int RetransmitsTimeout = 0,
    int RetransmitsDupThresh = 0,
    int RetransmitsRack = 0,
    int RetransmitsTlp = 0,
    int Undos = 0,
    bool InRecovery = false,
    TimeSpan RttVariance = default);

/// <summary>A connection as the socket table (<c>anthost ss</c>) shows it.</summary>
public readonly record struct TcpConnectionView(TcpSocket Socket, TcpEndPoint Local, TcpEndPoint Remote, int SendQueued, int ReceiveQueued, TcpConnectionInfo Info);
