// The broker's Unix domain socket. One connection per process; the connection
// closing is the death notice (the kernel closes a killed process's socket, and
// does so after it has unmapped its memory, so reclaiming then is safe). A
// request that does not parse gets an error response and is counted; the
// connection stays up, because a garbled request is not a death. Only a frame
// longer than the protocol allows ends the connection (its framing is lost).
using System.Buffers.Binary;
using System.Net.Sockets;
using AntHost.Kernel;
using AntHost.Kernel.Pool;
using AntHost.Kernel.Protocol;
using Microsoft.Extensions.Logging;

namespace AntHost.Broker;

internal sealed class ControlServer : IDisposable
{
    private readonly KernelBroker _broker;
    private readonly ILogger _log;
    private readonly Socket _listener;
    private readonly List<Socket> _connections = new();
    private Thread? _accept;
    private volatile bool _stopping;

    public ControlServer(KernelBroker broker, ILogger log)
    {
        _broker = broker;
        _log = log;
        _listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        _listener.Bind(new UnixDomainSocketEndPoint(broker.SocketPath));
        File.SetUnixFileMode(broker.SocketPath, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite
            | UnixFileMode.OtherRead | UnixFileMode.OtherWrite);
        _listener.Listen(64);
    }

    public void Start()
    {
        _accept = new Thread(AcceptLoop) { IsBackground = true, Name = "anthost-broker-accept" };
        _accept.Start();
    }

    private void AcceptLoop()
    {
        while (!_stopping)
        {
            Socket s;
            try { s = _listener.Accept(); }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                if (_stopping) return;
                continue;
            }
            lock (_connections) _connections.Add(s);
            new Thread(() => Serve(s)) { IsBackground = true, Name = "anthost-broker-conn" }.Start();
        }
    }

    private static int PeerPid(Socket s)
    {
        Span<byte> cred = stackalloc byte[12];
        try
        {
            int n = s.GetRawSocketOption(1 /* SOL_SOCKET */, 17 /* SO_PEERCRED */, cred);
            return n >= 4 ? BinaryPrimitives.ReadInt32LittleEndian(cred) : 0;
        }
        catch (SocketException) { return 0; }
    }

    private void Serve(Socket s)
    {
        ProcState? proc = null;
        int pid = PeerPid(s);
        var buf = new byte[ControlProtocol.MaxFrame];
        var w = new FrameWriter();
        string why = "socket closed";
        try
        {
            Span<byte> head = stackalloc byte[6];
            while (!_stopping)
            {
                ControlProtocol.ReadExactly(s, head[..4]);
                int len = (int)BinaryPrimitives.ReadUInt32LittleEndian(head);
                if (len < 2 || len > ControlProtocol.MaxFrame)
                {
                    Interlocked.Increment(ref _broker.Pool.CounterRef(BrokerCounter.BadSocketRequests));
                    w.Begin((int)KernelError.TooLarge, request: false);
                    s.Send(w.Finish());
                    why = $"frame length {len} out of range";
                    break;
                }
                ControlProtocol.ReadExactly(s, buf.AsSpan(0, len));
                var op = (ControlOp)BinaryPrimitives.ReadUInt16LittleEndian(buf);
                var r = new FrameReader(buf.AsSpan(2, len - 2));
                bool unregister = Handle(s, pid, ref proc, op, ref r, w);
                s.Send(w.Finish());
                if (unregister) { why = "unregistered"; break; }
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException or IOException) { }
        catch (Exception e)
        {
            _log.LogError(e, "control connection of pid {Pid} failed", pid);
            why = "broker error: " + e.Message;
        }
        finally
        {
            if (proc is not null) _broker.ProcessGone(proc, why);
            lock (_connections) _connections.Remove(s);
            s.Dispose();
        }
    }

    private bool Handle(Socket s, int pid, ref ProcState? proc, ControlOp op, ref FrameReader r, FrameWriter w)
    {
        KernelError Bad()
        {
            Interlocked.Increment(ref _broker.Pool.CounterRef(BrokerCounter.BadSocketRequests));
            return KernelError.Malformed;
        }

        void Status(KernelError e) => w.Begin((int)e, request: false);

        if (op != ControlOp.Register && proc is null)
        {
            Interlocked.Increment(ref _broker.Pool.CounterRef(BrokerCounter.BadSocketRequests));
            Status(KernelError.NotRegistered);
            return false;
        }
        switch (op)
        {
            case ControlOp.Register:
                {
                    uint flags = r.U32();
                    string name = r.Str();
                    if (r.Failed || !r.AtEnd || name.Length == 0) { Status(Bad()); return false; }
                    if (proc is not null)
                    {
                        Interlocked.Increment(ref _broker.Pool.CounterRef(BrokerCounter.DuplicateRegistrations));
                        Status(KernelError.AlreadyRegistered);
                        return false;
                    }
                    var e = _broker.Register(s, pid, name, (flags & 1) != 0, out proc);
                    Status(e);
                    if (e == KernelError.None) w.U32(proc!.Id.Value);
                    return false;
                }
            case ControlOp.RegisterService:
                {
                    string name = r.Str();
                    if (r.Failed || !r.AtEnd || name.Length == 0) { Status(Bad()); return false; }
                    var e = _broker.RegisterService(proc!, name, out uint id);
                    Status(e);
                    if (e == KernelError.None) w.U32(id);
                    return false;
                }
            case ControlOp.LookupService:
                {
                    string name = r.Str();
                    if (r.Failed || !r.AtEnd) { Status(Bad()); return false; }
                    var e = _broker.LookupService(name, out uint id, out var owner);
                    Status(e);
                    if (e == KernelError.None) w.U32(id).U32(owner.Value);
                    return false;
                }
            case ControlOp.OpenChannel:
                {
                    string name = r.Str();
                    if (r.Failed || !r.AtEnd) { Status(Bad()); return false; }
                    var e = _broker.LookupService(name, out uint id, out var owner);
                    uint channel = 0;
                    if (e == KernelError.None) e = _broker.OpenChannel(proc!, owner, id, out channel);
                    Status(e);
                    if (e == KernelError.None) w.U32(channel).U32(owner.Value).U32(id);
                    return false;
                }
            case ControlOp.OpenReturnChannel:
                {
                    uint target = r.U32();
                    if (r.Failed || !r.AtEnd) { Status(Bad()); return false; }
                    var e = _broker.OpenChannel(proc!, new ProcessId(target), 0, out uint channel);
                    Status(e);
                    if (e == KernelError.None) w.U32(channel);
                    return false;
                }
            case ControlOp.Allocate:
                {
                    uint count = r.U32();
                    uint pages = r.U32();
                    if (r.Failed || !r.AtEnd) { Status(Bad()); return false; }
                    if (count is 0 or > ControlProtocol.MaxBatch || pages == 0 || pages > (uint)_broker.Layout.DataPages)
                    {
                        Interlocked.Increment(ref _broker.Pool.CounterRef(BrokerCounter.BadSocketRequests));
                        Status(KernelError.TooLarge);
                        return false;
                    }
                    Span<IcaHandle> got = stackalloc IcaHandle[(int)count];
                    var e = _broker.Allocate(proc!, (int)count, (int)pages, got, out int n);
                    Status(e);
                    if (e == KernelError.None)
                    {
                        w.U32((uint)n);
                        for (int i = 0; i < n; i++) w.U64(got[i].Value);
                    }
                    return false;
                }
            case ControlOp.Commit:
                if (!r.AtEnd) { Status(Bad()); return false; }
                _broker.CommitNow();
                Status(KernelError.None);
                return false;
            case ControlOp.CloseChannel:
                {
                    uint channel = r.U32();
                    if (r.Failed || !r.AtEnd) { Status(Bad()); return false; }
                    Status(_broker.CloseChannel(proc!, channel));
                    return false;
                }
            case ControlOp.Unregister:
                Status(KernelError.None);
                return true;
            default:
                Status(Bad());
                return false;
        }
    }

    public void Dispose()
    {
        _stopping = true;
        try { _listener.Dispose(); } catch (SocketException) { }
        lock (_connections)
            foreach (var c in _connections)
            {
                try { c.Shutdown(SocketShutdown.Both); } catch (Exception e) when (e is SocketException or ObjectDisposedException) { }
            }
        _accept?.Join(TimeSpan.FromSeconds(1));
    }
}
