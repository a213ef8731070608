// The broker's Unix domain socket, served by one thread on one epoll set: the
// listener, an eventfd that stops the loop, and every connection, each with a
// small state object and buffers that exist only while a frame is half read or
// a response half written (so an idle connection costs a few hundred bytes, and
// nothing stays behind when it goes). One connection per process; the
// connection closing is the death notice (the kernel closes a killed process's
// socket, and does so after it has unmapped its memory, so reclaiming then is
// safe). A request that does not parse gets an error response and is counted;
// the connection stays up, because a garbled request is not a death. Only a
// frame longer than the protocol allows ends the connection (its framing is
// lost). A peer that does not read its responses is not read from until it does
// (its requests wait in its own socket buffer), so it cannot make the broker
// queue without bound.
//
// Who may use the instance: SO_PEERCRED gives the uid and gid the kernel
// recorded when the peer connected. Root and members of the instance's group
// (its gid or a supplementary group) are served; anyone else gets
// PermissionDenied, naming the group, at its first request, is counted, and
// the connection ends. (The socket's mode, 0660 root:GROUP, already keeps
// others from connecting; this check holds also for a process that got round
// the mode, e.g. with CAP_DAC_OVERRIDE, or was handed a connected socket.)
using System.Buffers;
using System.Buffers.Binary;
using System.Net.Sockets;
using AntHost.Kernel;
using AntHost.Kernel.Interop;
using AntHost.Kernel.Pool;
using AntHost.Kernel.Protocol;
using Microsoft.Extensions.Logging;

namespace AntHost.Broker;

internal sealed class ControlServer : IDisposable
{
    private const ulong ListenerKey = 0;
    private const ulong WakeupKey = 1;
    private const int InCapacity = ControlProtocol.MaxFrame + 4;

    private sealed class Connection
    {
        public required Socket Socket { get; init; }
        public required int Fd { get; init; }
        public required ulong Key { get; init; }
        public required PeerCredentials Peer { get; init; }
        public required bool Authorized { get; init; }
        public ProcState? Proc;
        public byte[]? In;
        public int InCount;
        public byte[]? Out;
        public int OutStart;
        public int OutCount;
        public bool CloseAfterFlush;
        public bool Closed;
        public string Why = "socket closed";
    }

    private enum Outcome { Reply, ReplyWithTables, ReplyAndClose }

    private readonly KernelBroker _broker;
    private readonly ILogger _log;
    private readonly Socket _listener;
    private readonly int _epoll;
    private readonly int _wakeup;
    private readonly Dictionary<ulong, Connection> _connections = new();
    private readonly Dictionary<uint, int> _connectionsByUid = new();
    private readonly FrameWriter _writer = new();
    private ulong _nextKey = 2;
    private Thread? _loop;
    private volatile bool _stopping;

    public ControlServer(KernelBroker broker, ILogger log)
    {
        _broker = broker;
        _log = log;
        _listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            _listener.Bind(new UnixDomainSocketEndPoint(broker.SocketPath));
            // Root and the instance's group may connect; others not at all.
            File.SetUnixFileMode(broker.SocketPath, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite);
            UnixAccess.SetGroup(broker.SocketPath, broker.Gid);
            _listener.Listen(512);
            _listener.Blocking = false;
            _epoll = Epoll.Create();
            _wakeup = Epoll.CreateWakeup();
            Epoll.Add(_epoll, (int)_listener.Handle, Epoll.In, ListenerKey);
            Epoll.Add(_epoll, _wakeup, Epoll.In, WakeupKey);
        }
        catch
        {
            _listener.Dispose();
            throw;
        }
    }

    /// <summary>Connections open now (registered or not).</summary>
    public int ConnectionCount { get { lock (_connections) return _connections.Count; } }

    public void Start()
    {
        _loop = new Thread(Loop) { IsBackground = true, Name = "anthost-broker-control" };
        _loop.Start();
    }

    private void Loop()
    {
        Span<uint> events = stackalloc uint[64];
        Span<ulong> keys = stackalloc ulong[64];
        while (!_stopping)
        {
            int n = Epoll.WaitFor(_epoll, events, keys, -1);
            for (int i = 0; i < n && !_stopping; i++)
            {
                try { Dispatch(keys[i], events[i]); }
                catch (Exception e) when (e is not OutOfMemoryException)
                {
                    // Never on input (every read is checked); a broken invariant costs that connection only.
                    _log.LogError(e, "control connection failed");
                    if (Find(keys[i]) is { } c) Close(c, "broker error: " + e.Message);
                }
            }
        }
        lock (_connections)
            foreach (var c in _connections.Values)
            {
                try { c.Socket.Shutdown(SocketShutdown.Both); } catch (Exception e) when (e is SocketException or ObjectDisposedException) { }
            }
    }

    private Connection? Find(ulong key)
    {
        lock (_connections) return _connections.GetValueOrDefault(key);
    }

    private void Dispatch(ulong key, uint ev)
    {
        if (key == ListenerKey) { AcceptAll(); return; }
        if (key == WakeupKey) { Epoll.Drain(_wakeup); return; }
        if (Find(key) is not { } c) return;
        if ((ev & (Epoll.Hup | Epoll.Err)) != 0 && c.Out is not null)
        {
            Close(c, c.Why); // gone while a response waited for it
            return;
        }
        if ((ev & Epoll.Out) != 0) Flush(c);
        if (!c.Closed && c.Out is null && (ev & (Epoll.In | Epoll.Hup | Epoll.Err | Epoll.RdHup)) != 0) Readable(c);
    }

    private void AcceptAll()
    {
        while (true)
        {
            Socket s;
            try { s = _listener.Accept(); }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.WouldBlock) { return; }
            catch (SocketException e)
            {
                // EMFILE and the like: the connection waits in the backlog; say so once per burst.
                _log.LogWarning("accept failed: {Error}", e.SocketErrorCode);
                return;
            }
            catch (ObjectDisposedException) { return; }
            s.Blocking = false;
            var peer = UnixAccess.PeerOf(s);
            if (peer.Uid != 0)
            {
                int open = _connectionsByUid.GetValueOrDefault(peer.Uid);
                if (open >= _broker.ConnectionsPerUid)
                {
                    // Closed unread: the counter says why (a log line each would be a flood).
                    Interlocked.Increment(ref _broker.Pool.CounterRef(BrokerCounter.QuotaConnections));
                    s.Dispose();
                    continue;
                }
                _connectionsByUid[peer.Uid] = open + 1;
            }
            var c = new Connection
            {
                Socket = s,
                Fd = (int)s.Handle,
                Key = _nextKey++,
                Peer = peer,
                Authorized = peer.Uid == 0 || UnixAccess.IsInGroup(peer, _broker.Gid),
            };
            lock (_connections) _connections.Add(c.Key, c);
            if (!Epoll.Add(_epoll, c.Fd, Epoll.In | Epoll.RdHup, c.Key)) Close(c, "epoll_ctl failed");
        }
    }

    private void Readable(Connection c)
    {
        while (!c.Closed && c.Out is null && !c.CloseAfterFlush)
        {
            c.In ??= ArrayPool<byte>.Shared.Rent(InCapacity);
            int n = c.Socket.Receive(c.In.AsSpan(c.InCount, InCapacity - c.InCount), SocketFlags.None, out SocketError err);
            if (err == SocketError.WouldBlock)
            {
                ReleaseIn(c);
                return;
            }
            if (err != SocketError.Success || n == 0)
            {
                Close(c, c.Why);
                return;
            }
            c.InCount += n;
            ProcessFrames(c);
        }
    }

    private void ReleaseIn(Connection c)
    {
        if (c.In is null || c.InCount != 0) return;
        ArrayPool<byte>.Shared.Return(c.In);
        c.In = null;
    }

    /// <summary>Handles every complete frame in the input buffer, in order, while responses can go out.</summary>
    private void ProcessFrames(Connection c)
    {
        int pos = 0;
        while (!c.Closed && c.Out is null && !c.CloseAfterFlush && c.InCount - pos >= 4)
        {
            int len = (int)BinaryPrimitives.ReadUInt32LittleEndian(c.In.AsSpan(pos));
            if (len < 2 || len > ControlProtocol.MaxFrame)
            {
                Interlocked.Increment(ref _broker.Pool.CounterRef(BrokerCounter.BadSocketRequests));
                _writer.Begin((int)KernelError.TooLarge, request: false);
                c.Why = $"frame length {len} out of range";
                c.CloseAfterFlush = true;
                Send(c, _writer.Finish());
                break;
            }
            if (c.InCount - pos < 4 + len) break;
            var op = (ControlOp)BinaryPrimitives.ReadUInt16LittleEndian(c.In.AsSpan(pos + 4));
            var r = new FrameReader(c.In.AsSpan(pos + 6, len - 2));
            var outcome = Handle(c, op, ref r);
            pos += 4 + len;
            if (outcome == Outcome.ReplyWithTables) SendTables(c, _writer.Finish());
            else
            {
                if (outcome == Outcome.ReplyAndClose) c.CloseAfterFlush = true;
                Send(c, _writer.Finish());
            }
        }
        if (c.Closed) return;
        if (pos > 0)
        {
            c.In.AsSpan(pos, c.InCount - pos).CopyTo(c.In);
            c.InCount -= pos;
        }
        ReleaseIn(c);
        if (c.CloseAfterFlush && c.Out is null) Close(c, c.Why);
    }

    private void Send(Connection c, ReadOnlySpan<byte> frame)
    {
        int sent = c.Socket.Send(frame, SocketFlags.None, out SocketError err);
        if (err == SocketError.WouldBlock) sent = 0;
        else if (err != SocketError.Success)
        {
            Close(c, c.Why);
            return;
        }
        if (sent == frame.Length) return;
        // The peer is not reading: keep the rest, stop reading its requests until it does.
        c.Out = ArrayPool<byte>.Shared.Rent(frame.Length - sent);
        frame[sent..].CopyTo(c.Out);
        c.OutStart = 0;
        c.OutCount = frame.Length - sent;
        if (!Epoll.Modify(_epoll, c.Fd, Epoll.Out, c.Key)) Close(c, "epoll_ctl failed");
    }

    private void SendTables(Connection c, ReadOnlySpan<byte> frame)
    {
        // The first response on a fresh connection: its socket buffer is empty, so all of it goes.
        int sent = UnixAccess.SendWithDescriptor(c.Socket, frame, _broker.TablesReadOnly.DangerousGetHandle(), out int errno);
        if (sent != frame.Length)
        {
            Interlocked.Increment(ref _broker.Pool.CounterRef(BrokerCounter.BadSocketRequests));
            Close(c, $"could not send the tables (sent {sent}, errno {errno})");
        }
    }

    private void Flush(Connection c)
    {
        if (c.Out is null) return;
        int sent = c.Socket.Send(c.Out.AsSpan(c.OutStart, c.OutCount), SocketFlags.None, out SocketError err);
        if (err == SocketError.WouldBlock) return;
        if (err != SocketError.Success)
        {
            Close(c, c.Why);
            return;
        }
        c.OutStart += sent;
        c.OutCount -= sent;
        if (c.OutCount > 0) return;
        ArrayPool<byte>.Shared.Return(c.Out);
        c.Out = null;
        if (c.CloseAfterFlush)
        {
            Close(c, c.Why);
            return;
        }
        if (!Epoll.Modify(_epoll, c.Fd, Epoll.In | Epoll.RdHup, c.Key)) { Close(c, "epoll_ctl failed"); return; }
        // Requests that waited behind the response.
        if (c.InCount > 0) ProcessFrames(c);
    }

    private void Close(Connection c, string why)
    {
        if (c.Closed) return;
        c.Closed = true;
        Epoll.Remove(_epoll, c.Fd);
        lock (_connections) _connections.Remove(c.Key);
        if (c.Peer.Uid != 0 && _connectionsByUid.TryGetValue(c.Peer.Uid, out int open))
        {
            if (open <= 1) _connectionsByUid.Remove(c.Peer.Uid);
            else _connectionsByUid[c.Peer.Uid] = open - 1;
        }
        if (c.In is not null) ArrayPool<byte>.Shared.Return(c.In);
        if (c.Out is not null) ArrayPool<byte>.Shared.Return(c.Out);
        c.In = c.Out = null;
        c.InCount = c.OutCount = 0;
        try
        {
            if (c.Proc is not null) _broker.ProcessGone(c.Proc, why);
        }
        finally
        {
            c.Proc = null;
            c.Socket.Dispose();
        }
    }

    private Outcome Handle(Connection c, ControlOp op, ref FrameReader r)
    {
        var w = _writer;
        Outcome Status(KernelError e)
        {
            w.Begin((int)e, request: false);
            return Outcome.Reply;
        }
        Outcome Bad()
        {
            Interlocked.Increment(ref _broker.Pool.CounterRef(BrokerCounter.BadSocketRequests));
            return Status(KernelError.Malformed);
        }
        Outcome Refused(KernelError e, string? why)
        {
            w.Begin((int)e, request: false);
            if (why is not null) w.Str(why.Length > ControlProtocol.MaxFrame / 8 ? why[..(ControlProtocol.MaxFrame / 8)] : why);
            return Outcome.Reply;
        }

        if (!c.Authorized && op is ControlOp.AttachTables or ControlOp.Register)
        {
            Interlocked.Increment(ref _broker.Pool.CounterRef(BrokerCounter.PermissionDenied));
            _log.LogWarning("refused pid {Pid} (uid {Uid}, gid {Gid}): neither root nor in group '{Group}'", c.Peer.Pid, c.Peer.Uid, c.Peer.Gid, _broker.GroupName);
            Refused(KernelError.PermissionDenied,
                $"uid {c.Peer.Uid} (gid {c.Peer.Gid}) is neither root nor a member of group '{_broker.GroupName}', which this instance is limited to");
            c.Why = "not permitted";
            return Outcome.ReplyAndClose;
        }
        if (op is not (ControlOp.Register or ControlOp.AttachTables) && c.Proc is null)
        {
            Interlocked.Increment(ref _broker.Pool.CounterRef(BrokerCounter.BadSocketRequests));
            return Status(KernelError.NotRegistered);
        }
        var proc = c.Proc!;
        switch (op)
        {
            case ControlOp.AttachTables:
                if (!r.AtEnd) return Bad();
                Status(KernelError.None);
                return Outcome.ReplyWithTables;
            case ControlOp.Register:
                {
                    uint flags = r.U32();
                    string name = r.Str();
                    if (r.Failed || !r.AtEnd || name.Length == 0) return Bad();
                    if (c.Proc is not null)
                    {
                        Interlocked.Increment(ref _broker.Pool.CounterRef(BrokerCounter.DuplicateRegistrations));
                        return Status(KernelError.AlreadyRegistered);
                    }
                    var e = _broker.Register(c.Socket, c.Peer, name, (RegisterFlags)flags, out c.Proc, out string? why);
                    if (e != KernelError.None) return Refused(e, why);
                    Status(e);
                    w.U32(c.Proc!.Id.Value);
                    return Outcome.Reply;
                }
            case ControlOp.RegisterService:
                {
                    string name = r.Str();
                    if (r.Failed || !r.AtEnd || name.Length == 0) return Bad();
                    var e = _broker.RegisterService(proc, name, out uint id, out string? why);
                    if (e != KernelError.None) return Refused(e, why);
                    Status(e);
                    w.U32(id);
                    return Outcome.Reply;
                }
            case ControlOp.LookupService:
                {
                    string name = r.Str();
                    if (r.Failed || !r.AtEnd) return Bad();
                    var e = _broker.LookupService(name, out uint id, out var owner);
                    Status(e);
                    if (e == KernelError.None) w.U32(id).U32(owner.Value);
                    return Outcome.Reply;
                }
            case ControlOp.OpenChannel:
                {
                    string name = r.Str();
                    if (r.Failed || !r.AtEnd) return Bad();
                    var e = _broker.LookupService(name, out uint id, out var owner);
                    uint channel = 0;
                    string? why = null;
                    if (e == KernelError.None) e = _broker.OpenChannel(proc, owner, id, out channel, out why);
                    if (e != KernelError.None) return Refused(e, why);
                    Status(e);
                    w.U32(channel).U32(owner.Value).U32(id);
                    return Outcome.Reply;
                }
            case ControlOp.OpenReturnChannel:
                {
                    uint target = r.U32();
                    if (r.Failed || !r.AtEnd) return Bad();
                    var e = _broker.OpenChannel(proc, new ProcessId(target), 0, out uint channel, out string? why);
                    if (e != KernelError.None) return Refused(e, why);
                    Status(e);
                    w.U32(channel);
                    return Outcome.Reply;
                }
            case ControlOp.Allocate:
                {
                    uint count = r.U32();
                    uint pages = r.U32();
                    if (r.Failed || !r.AtEnd) return Bad();
                    if (count is 0 or > ControlProtocol.MaxBatch || pages == 0 || pages > (uint)_broker.Layout.DataPages)
                    {
                        Interlocked.Increment(ref _broker.Pool.CounterRef(BrokerCounter.BadSocketRequests));
                        return Status(KernelError.TooLarge);
                    }
                    Span<IcaHandle> got = stackalloc IcaHandle[(int)count];
                    var e = _broker.Allocate(proc, (int)count, (int)pages, got, out int n, out string? why);
                    if (e != KernelError.None) return Refused(e, why);
                    Status(e);
                    w.U32((uint)n);
                    for (int i = 0; i < n; i++) w.U64(got[i].Value);
                    return Outcome.Reply;
                }
            case ControlOp.Commit:
                if (!r.AtEnd) return Bad();
                _broker.CommitNow();
                return Status(KernelError.None);
            case ControlOp.CloseChannel:
                {
                    uint channel = r.U32();
                    if (r.Failed || !r.AtEnd) return Bad();
                    return Status(_broker.CloseChannel(proc, channel));
                }
            case ControlOp.Unregister:
                Status(KernelError.None);
                c.Why = "unregistered";
                return Outcome.ReplyAndClose;
            default:
                return Bad();
        }
    }

    public void Dispose()
    {
        _stopping = true;
        Epoll.Signal(_wakeup);
        if (_loop is null || !_loop.Join(TimeSpan.FromSeconds(2)))
        {
            // Never started (or stuck): end the connections from here.
            lock (_connections)
                foreach (var c in _connections.Values)
                {
                    try { c.Socket.Shutdown(SocketShutdown.Both); } catch (Exception e) when (e is SocketException or ObjectDisposedException) { }
                }
        }
        try { _listener.Dispose(); } catch (SocketException) { }
        Epoll.Close(_epoll);
        Epoll.Close(_wakeup);
    }
}
