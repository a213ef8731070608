// A socket of the AntHost stack, named and behaving after System.Net.Sockets.Socket so
// a .NET programmer finds what they expect: Connect, Bind, Listen, Accept, Send,
// Receive, Shutdown, Close, SendTo, ReceiveFrom, their async versions with
// cancellation, the common options, Poll and Select. Each method is one socket call
// to the inet server (InetStack); this file holds the connection calls and options,
// InetSocket.Data.cs the data path.
using System.Collections;
using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using AntHost.Inet.Abi;
using AntHost.Kernel;

namespace AntHost.Client;

/// <summary>A TCP or UDP socket of an AntHost instance (see System.Net.Sockets.Socket for the semantics).</summary>
public sealed partial class InetSocket : IDisposable
{
    private readonly AbiSocketType _type;
    private int _closed;
    private int _inFlight;
    private bool _blocking = true;
    private LingerOption _linger = new(false, 0);
    private IPEndPoint? _connectingTo;

    /// <summary>RFC 9293 state numbers as the protocol core reports them (SocketResult.State).</summary>
    private const byte TcpEstablished = 4;

    /// <summary>A socket on the process-wide stack (<see cref="InetStack.Default"/>).</summary>
    public InetSocket(SocketType socketType, ProtocolType protocolType) : this(InetStack.Default, socketType, protocolType) { }

    /// <summary>As System.Net.Sockets.Socket's constructor; only InterNetwork (IPv4) is supported.</summary>
    public InetSocket(AddressFamily addressFamily, SocketType socketType, ProtocolType protocolType)
        : this(InetStack.Default, CheckFamily(addressFamily), socketType, protocolType) { }

    public InetSocket(InetStack stack, SocketType socketType, ProtocolType protocolType)
        : this(stack, AddressFamily.InterNetwork, socketType, protocolType) { }

    private InetSocket(InetStack stack, AddressFamily family, SocketType socketType, ProtocolType protocolType)
    {
        ArgumentNullException.ThrowIfNull(stack);
        _type = (socketType, protocolType) switch
        {
            (SocketType.Stream, ProtocolType.Tcp or ProtocolType.Unspecified) => AbiSocketType.Stream,
            (SocketType.Dgram, ProtocolType.Udp or ProtocolType.Unspecified) => AbiSocketType.Datagram,
            _ => throw InetErrors.Local(SocketError.ProtocolNotSupported,
                $"AntHost has TCP (Stream) and UDP (Dgram) sockets, not {socketType}/{protocolType}"),
        };
        Stack = stack;
        var control = stack.NewRequest(InetOp.Socket, 0, InetSocketFlags.None);
        InetStack.Args(control).Small = (byte)_type;
        using var reply = stack.Call(control, InetOp.Socket, default);
        reply.ThrowIfFailed($"socket({socketType})");
        Handle = reply.Result.Socket;
        _ = family;
    }

    /// <summary>A connection taken by Accept.</summary>
    private InetSocket(InetStack stack, ulong handle, IPEndPoint? local, IPEndPoint? remote)
    {
        Stack = stack;
        _type = AbiSocketType.Stream;
        Handle = handle;
        LocalEndPoint = local;
        RemoteEndPoint = remote;
        Connected = true;
    }

    private static AddressFamily CheckFamily(AddressFamily f) => f == AddressFamily.InterNetwork ? f
        : throw InetErrors.Local(SocketError.AddressFamilyNotSupported, $"AntHost speaks IPv4 (InterNetwork), not {f}");

    /// <summary>The stack (the inet server connection) this socket lives on.</summary>
    public InetStack Stack { get; }

    /// <summary>The inet server's handle of this socket.</summary>
    public ulong Handle { get; }

    public AddressFamily AddressFamily => AddressFamily.InterNetwork;
    public SocketType SocketType => _type == AbiSocketType.Stream ? SocketType.Stream : SocketType.Dgram;
    public ProtocolType ProtocolType => _type == AbiSocketType.Stream ? ProtocolType.Tcp : ProtocolType.Udp;

    public IPEndPoint? LocalEndPoint { get; private set; }
    public IPEndPoint? RemoteEndPoint { get; private set; }

    /// <summary>True after a successful Connect or Accept, until a call reports the connection gone or the socket is closed.</summary>
    public bool Connected { get; private set; }

    public bool IsBound => LocalEndPoint is not null;

    /// <summary>False: calls answer at once with WouldBlock instead of waiting.</summary>
    public bool Blocking { get => _blocking; set => _blocking = value; }

    private InetSocketFlags CallFlags => _blocking ? InetSocketFlags.None : InetSocketFlags.NonBlocking;

    // ---- Connection ------------------------------------------------------------------

    public void Bind(EndPoint localEP)
    {
        var ep = ToIPv4(localEP, nameof(localEP));
        var control = Request(InetOp.Bind, InetSocketFlags.None);
        var a = InetStack.Args(control);
        a.Address = ToAbiAddress(ep.Address);
        a.Port = (ushort)ep.Port;
        using var reply = Run(control, InetOp.Bind);
        reply.ThrowIfFailed($"bind to {ep}");
        LocalEndPoint = Local(reply.Result);
    }

    public void Listen(int backlog = 128)
    {
        var control = Request(InetOp.Listen, InetSocketFlags.None);
        InetStack.Args(control).Value = Math.Max(1, backlog);
        using var reply = Run(control, InetOp.Listen);
        reply.ThrowIfFailed("listen");
    }

    public void Connect(IPAddress address, int port) => Connect(new IPEndPoint(address, port));

    /// <summary>Connects to <paramref name="host"/> (a name resolved over AntHost, or an address) at <paramref name="port"/>: the first address.</summary>
    public void Connect(string host, int port) => Connect(new DnsEndPoint(host, port));

    public void Connect(EndPoint remoteEP) => ConnectCore(remoteEP, default, sync: true).Sync();

    public ValueTask ConnectAsync(IPAddress address, int port, CancellationToken cancellationToken = default) =>
        ConnectAsync(new IPEndPoint(address, port), cancellationToken);

    /// <summary>Connects to <paramref name="host"/> (a name resolved over AntHost, or an address) at <paramref name="port"/>: the first address.</summary>
    public ValueTask ConnectAsync(string host, int port, CancellationToken cancellationToken = default) =>
        ConnectAsync(new DnsEndPoint(host, port), cancellationToken);

    public ValueTask ConnectAsync(EndPoint remoteEP, CancellationToken cancellationToken = default) =>
        ConnectCore(remoteEP, cancellationToken, sync: false);

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask ConnectCore(EndPoint remoteEP, CancellationToken ct, bool sync)
    {
        if (remoteEP is DnsEndPoint named)
        {
            // The resolver is async (its queries are UDP calls of its own): a sync connect waits for it here.
            var resolving = ResolveFirst(named, ct);
            remoteEP = sync ? resolving.GetAwaiter().GetResult() : await resolving.ConfigureAwait(false);
        }
        var ep = ToIPv4(remoteEP, nameof(remoteEP));
        using var reply = await Call(ConnectRequest(ep), InetOp.Connect, default, ct, sync).ConfigureAwait(false);
        OnConnected(reply, ep);
    }

    /// <summary>A DnsEndPoint's first IPv4 address, resolved by the stack's resolver.</summary>
    private async Task<IPEndPoint> ResolveFirst(DnsEndPoint named, CancellationToken ct)
    {
        if (named.AddressFamily is not (AddressFamily.Unspecified or AddressFamily.InterNetwork))
            throw InetErrors.Local(SocketError.AddressFamilyNotSupported, $"AntHost speaks IPv4, not {named.AddressFamily}");
        var addresses = await Stack.ResolveAsync(named.Host, ct).ConfigureAwait(false);
        return new IPEndPoint(addresses[0], named.Port);
    }

    private IcaLease ConnectRequest(IPEndPoint ep)
    {
        if (ep.Port is 0) throw new ArgumentException("connect needs a port", "remoteEP");
        var control = Request(InetOp.Connect, CallFlags);
        var a = InetStack.Args(control);
        a.Address = ToAbiAddress(ep.Address);
        a.Port = (ushort)ep.Port;
        return control;
    }

    private void OnConnected(in InetReply reply, IPEndPoint ep)
    {
        if (reply.Status == SocketStatus.InProgress && _type == AbiSocketType.Stream)
        {
            // Non-blocking: the handshake goes on in inet; Poll for SelectWrite tells when it is done.
            _connectingTo = ep;
            RemoteEndPoint = ep;
        }
        reply.ThrowIfFailed($"connect to {ep}");
        var r = reply.Result;
        LocalEndPoint = Local(r);
        RemoteEndPoint = Remote(r) ?? ep;
        Connected = _type == AbiSocketType.Stream || RemoteEndPoint is not null;
    }

    public InetSocket Accept() => AcceptCore(default, sync: true).Sync();

    public ValueTask<InetSocket> AcceptAsync(CancellationToken cancellationToken = default) => AcceptCore(cancellationToken, sync: false);

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<InetSocket> AcceptCore(CancellationToken ct, bool sync)
    {
        using var reply = await Call(Request(InetOp.Accept, CallFlags), InetOp.Accept, default, ct, sync).ConfigureAwait(false);
        return Accepted(reply);
    }

    private InetSocket Accepted(in InetReply reply)
    {
        reply.ThrowIfFailed($"accept on {LocalEndPoint}");
        var r = reply.Result;
        return new InetSocket(Stack, r.Socket, Local(r) ?? LocalEndPoint, Remote(r));
    }

    public void Shutdown(SocketShutdown how)
    {
        var control = Request(InetOp.Shutdown, InetSocketFlags.None);
        InetStack.Args(control).Small = (byte)(how switch
        {
            SocketShutdown.Receive => AbiShutdown.Receive,
            SocketShutdown.Send => AbiShutdown.Send,
            _ => AbiShutdown.Both,
        });
        using var reply = Run(control, InetOp.Shutdown);
        reply.ThrowIfFailed($"shutdown({how})");
    }

    /// <summary>
    /// Closes the socket. With <see cref="LingerState"/> enabled the call waits (in inet) up to
    /// its seconds for unsent data to be acknowledged, and a linger of 0 resets the connection.
    /// </summary>
    public void Close()
    {
        if (Interlocked.Exchange(ref _closed, 1) != 0) return;
        Connected = false;
        FreeReceived();
        if (!Stack.IsAlive) return;
        try
        {
            // Calls another thread still waits in end with OperationAborted, as .NET's do.
            if (Volatile.Read(ref _inFlight) > 0) CancelHeld();
            var control = Stack.NewRequest(InetOp.Close, Handle, _linger is { Enabled: true, LingerTime: 0 } ? InetSocketFlags.Abort : InetSocketFlags.None);
            using var reply = Stack.Call(control, InetOp.Close, default);
        }
        catch (SocketException)
        {
            // The server is gone (its sockets went with it) or already forgot this one.
        }
        catch (ObjectDisposedException) { }
    }

    /// <summary>Closes after setting the linger time to <paramref name="timeout"/> seconds (as Socket.Close(int)).</summary>
    public void Close(int timeout)
    {
        if (timeout >= 0 && Volatile.Read(ref _closed) == 0)
        {
            try { LingerState = new LingerOption(true, timeout); }
            catch (SocketException) { }
        }
        Close();
    }

    public void Dispose() => Close();

    /// <summary>Ends every call of this socket that inet holds (they complete with OperationAborted).</summary>
    private void CancelHeld()
    {
        var control = Stack.NewRequest(InetOp.Cancel, Handle, InetSocketFlags.None);
        InetStack.Args(control).Value = 0;
        using var reply = Stack.Call(control, InetOp.Cancel, default);
    }

    // ---- Options ---------------------------------------------------------------------

    public bool NoDelay
    {
        get => GetOption(AbiSocketOption.NoDelay) != 0;
        set => SetOption(AbiSocketOption.NoDelay, value ? 1 : 0);
    }

    public int ReceiveBufferSize
    {
        get => (int)GetOption(AbiSocketOption.ReceiveBuffer);
        set => SetOption(AbiSocketOption.ReceiveBuffer, value);
    }

    public int SendBufferSize
    {
        get => (int)GetOption(AbiSocketOption.SendBuffer);
        set
        {
            SetOption(AbiSocketOption.SendBuffer, value);
            _sendBufferBytes = 0; // asked again by the next large send
        }
    }

    public bool EnableBroadcast
    {
        get => GetOption(AbiSocketOption.Broadcast) != 0;
        set => SetOption(AbiSocketOption.Broadcast, value ? 1 : 0);
    }

    /// <summary>Seconds Close waits for unsent data (enabled), 0 to reset; disabled closes in the background.</summary>
    public LingerOption LingerState
    {
        get
        {
            long v = GetOption(AbiSocketOption.Linger);
            return v < 0 ? new LingerOption(false, 0) : new LingerOption(true, (int)v);
        }
        set
        {
            ArgumentNullException.ThrowIfNull(value);
            SetOption(AbiSocketOption.Linger, value.Enabled ? Math.Max(0, value.LingerTime) : -1);
            _linger = new LingerOption(value.Enabled, value.LingerTime);
        }
    }

    /// <summary>Bytes ready to receive (TCP), or the next datagram's size (UDP), counting what this socket already holds.</summary>
    public int Available => (int)Math.Min(int.MaxValue, BufferedBytes + GetOption(AbiSocketOption.Available));

    public void SetSocketOption(SocketOptionLevel level, SocketOptionName name, int value) =>
        SetOption(MapOption(level, name), name == SocketOptionName.Linger ? (value != 0 ? value : -1) : value);

    public void SetSocketOption(SocketOptionLevel level, SocketOptionName name, bool value) => SetSocketOption(level, name, value ? 1 : 0);

    public void SetSocketOption(SocketOptionLevel level, SocketOptionName name, object value)
    {
        ArgumentNullException.ThrowIfNull(value);
        switch (value)
        {
            case LingerOption l when name == SocketOptionName.Linger:
                LingerState = l;
                return;
            case int i:
                SetSocketOption(level, name, i);
                return;
            case bool b:
                SetSocketOption(level, name, b);
                return;
            default:
                throw InetErrors.Local(SocketError.InvalidArgument, $"option {level}.{name} does not take a {value.GetType().Name}");
        }
    }

    public object? GetSocketOption(SocketOptionLevel level, SocketOptionName name)
    {
        if (name == SocketOptionName.Linger && level == SocketOptionLevel.Socket) return LingerState;
        long v = GetOption(MapOption(level, name));
        return name switch
        {
            SocketOptionName.NoDelay or SocketOptionName.KeepAlive or SocketOptionName.ReuseAddress or SocketOptionName.Broadcast => v != 0 ? 1 : 0,
            _ => (int)v,
        };
    }

    private static AbiSocketOption MapOption(SocketOptionLevel level, SocketOptionName name) => (level, name) switch
    {
        (SocketOptionLevel.Tcp, SocketOptionName.NoDelay) => AbiSocketOption.NoDelay,
        (SocketOptionLevel.Socket, SocketOptionName.KeepAlive) => AbiSocketOption.KeepAlive,
        (SocketOptionLevel.Socket, SocketOptionName.SendBuffer) => AbiSocketOption.SendBuffer,
        (SocketOptionLevel.Socket, SocketOptionName.ReceiveBuffer) => AbiSocketOption.ReceiveBuffer,
        (SocketOptionLevel.Socket, SocketOptionName.ReuseAddress) => AbiSocketOption.ReuseAddress,
        (SocketOptionLevel.Socket, SocketOptionName.Linger) => AbiSocketOption.Linger,
        (SocketOptionLevel.Socket, SocketOptionName.Broadcast) or (SocketOptionLevel.Udp, SocketOptionName.Broadcast) => AbiSocketOption.Broadcast,
        (SocketOptionLevel.Socket, SocketOptionName.Error) => AbiSocketOption.Error,
        (SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveTime) => AbiSocketOption.KeepAliveIdleSeconds,
        (SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveInterval) => AbiSocketOption.KeepAliveIntervalSeconds,
        (SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveRetryCount) => AbiSocketOption.KeepAliveCount,
        _ => throw InetErrors.Local(SocketError.ProtocolOption, $"AntHost does not have the option {level}.{name}"),
    };

    private void SetOption(AbiSocketOption option, long value)
    {
        var control = Request(InetOp.SetOption, InetSocketFlags.None);
        var a = InetStack.Args(control);
        a.Option = option;
        a.Value = value;
        using var reply = Run(control, InetOp.SetOption);
        reply.ThrowIfFailed($"set option {option} = {value}");
        if (option == AbiSocketOption.SendBuffer) _sendBufferBytes = 0; // asked again before the next pipelined send
    }

    private long GetOption(AbiSocketOption option)
    {
        var control = Request(InetOp.GetOption, InetSocketFlags.None);
        InetStack.Args(control).Option = option;
        using var reply = Run(control, InetOp.GetOption);
        reply.ThrowIfFailed($"get option {option}");
        return reply.Result.Value;
    }

    /// <summary>The connection's state as inet sees it (queues, RTT, window, MSS).</summary>
    public InetSocketInfo GetInfo()
    {
        var control = Request(InetOp.GetInfo, InetSocketFlags.None);
        using var reply = Run(control, InetOp.GetInfo);
        reply.ThrowIfFailed("get info");
        var r = reply.Result;
        return new InetSocketInfo(r.State, Local(r), Remote(r), (int)r.Available, (int)r.SendQueued, (int)r.SendSpace,
            TimeSpan.FromMicroseconds(r.SmoothedRttMicros), (int)r.CongestionWindow, (int)r.Mss, (int)r.Retransmissions)
        {
            SegmentPayload = r.SegmentPayload > 0 ? (int)r.SegmentPayload : (int)r.Mss,
            OffloadSegments = (int)Math.Max(1, r.OffloadSegments),
        };
    }

    // ---- Readiness -------------------------------------------------------------------

    /// <summary>As Socket.Poll: waits up to <paramref name="microSeconds"/> (negative: forever) for the socket to be ready.</summary>
    public bool Poll(int microSeconds, SelectMode mode)
    {
        if (mode == SelectMode.SelectRead && BufferedBytes > 0) return true;
        Span<PollEntry> one = [new PollEntry(this, ToEvents(mode))];
        Stack.Poll(one, microSeconds < 0 ? Timeout.InfiniteTimeSpan : TimeSpan.FromMicroseconds(microSeconds));
        bool ready = IsReady(one[0].Ready, mode);
        if (ready && mode == SelectMode.SelectWrite) CompleteConnect();
        return ready;
    }

    /// <summary>After a non-blocking connect reported writable: the connection's endpoints, and Connected.</summary>
    private void CompleteConnect()
    {
        if (_connectingTo is null || Connected) return;
        var info = GetInfo();
        if (info.TcpState < TcpEstablished) return;
        _connectingTo = null;
        LocalEndPoint = info.LocalEndPoint ?? LocalEndPoint;
        RemoteEndPoint = info.RemoteEndPoint ?? RemoteEndPoint;
        Connected = true;
    }

    /// <summary>
    /// As Socket.Select: waits until some socket of the lists is ready, then leaves only the
    /// ready ones in each list. Every socket belongs to one stack; at most 128 in all.
    /// </summary>
    public static void Select(IList? checkRead, IList? checkWrite, IList? checkError, int microSeconds)
    {
        var entries = new List<(IList List, int Index, SelectMode Mode)>();
        var poll = new List<PollEntry>();
        InetStack? stack = null;
        void Add(IList? list, SelectMode mode)
        {
            if (list is null) return;
            for (int i = 0; i < list.Count; i++)
            {
                var s = list[i] as InetSocket ?? throw new ArgumentException("Select takes InetSocket lists", nameof(list));
                stack ??= s.Stack;
                if (s.Stack != stack) throw new ArgumentException("every socket of a Select belongs to one stack", nameof(list));
                entries.Add((list, i, mode));
                poll.Add(new PollEntry(s, ToEvents(mode)));
            }
        }
        Add(checkRead, SelectMode.SelectRead);
        Add(checkWrite, SelectMode.SelectWrite);
        Add(checkError, SelectMode.SelectError);
        if (stack is null) throw new ArgumentNullException(nameof(checkRead), "Select needs at least one socket");
        var arr = poll.ToArray();
        // Data this process already holds makes a socket readable without asking inet.
        bool anyBuffered = false;
        for (int i = 0; i < arr.Length; i++)
            if (entries[i].Mode == SelectMode.SelectRead && arr[i].Socket.BufferedBytes > 0) anyBuffered = true;
        stack.Poll(arr, anyBuffered ? TimeSpan.Zero : microSeconds < 0 ? Timeout.InfiniteTimeSpan : TimeSpan.FromMicroseconds(microSeconds));
        var keep = new HashSet<(IList, int)>();
        for (int i = 0; i < arr.Length; i++)
        {
            bool ready = IsReady(arr[i].Ready, entries[i].Mode)
                || (entries[i].Mode == SelectMode.SelectRead && arr[i].Socket.BufferedBytes > 0);
            if (ready) keep.Add((entries[i].List, entries[i].Index));
            if (ready && entries[i].Mode == SelectMode.SelectWrite) arr[i].Socket.CompleteConnect();
        }
        foreach (var list in new[] { checkRead, checkWrite, checkError })
        {
            if (list is null) continue;
            for (int i = list.Count - 1; i >= 0; i--)
                if (!keep.Contains((list, i))) list.RemoveAt(i);
        }
    }

    private static PollEvents ToEvents(SelectMode mode) => mode switch
    {
        SelectMode.SelectRead => PollEvents.Readable,
        SelectMode.SelectWrite => PollEvents.Writable,
        _ => PollEvents.Error,
    };

    private static bool IsReady(PollEvents ready, SelectMode mode) => mode switch
    {
        SelectMode.SelectRead => (ready & (PollEvents.Readable | PollEvents.Hangup | PollEvents.Error)) != 0,
        SelectMode.SelectWrite => (ready & PollEvents.Writable) != 0,
        _ => (ready & PollEvents.Error) != 0,
    };

    // ---- Plumbing --------------------------------------------------------------------

    private IcaLease Request(InetOp op, InetSocketFlags flags, Kernel.Ipc.RequestFrameFlags frameFlags = Kernel.Ipc.RequestFrameFlags.None)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _closed) != 0, this);
        return Stack.NewRequest(op, Handle, flags, frameFlags);
    }

    internal void Observe(InetStatus status)
    {
        if (status is SocketStatus.ConnectionReset or SocketStatus.ConnectionAborted or SocketStatus.NotConnected or SocketStatus.TimedOut)
            Connected = false;
    }

    internal static uint ToAbiAddress(IPAddress address)
    {
        ArgumentNullException.ThrowIfNull(address);
        if (address.AddressFamily != AddressFamily.InterNetwork)
            throw InetErrors.Local(SocketError.AddressFamilyNotSupported, $"AntHost speaks IPv4, not {address}");
        Span<byte> b = stackalloc byte[4];
        address.TryWriteBytes(b, out _);
        return System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(b);
    }

    internal static IPAddress FromAbiAddress(uint address) =>
        new(new byte[] { (byte)(address >> 24), (byte)(address >> 16), (byte)(address >> 8), (byte)address });

    private static IPEndPoint ToIPv4(EndPoint ep, string name) => ep switch
    {
        IPEndPoint { AddressFamily: AddressFamily.InterNetwork } ip => ip,
        IPEndPoint ip => throw InetErrors.Local(SocketError.AddressFamilyNotSupported, $"AntHost speaks IPv4, not {ip}"),
        null => throw new ArgumentNullException(name),
        _ => throw new ArgumentException($"AntHost takes IPEndPoint addresses here (a DnsEndPoint only in Connect): {ep}", name),
    };

    private static IPEndPoint? Local(SocketResult r) =>
        r.LocalAddress == 0 && r.LocalPort == 0 ? null : new IPEndPoint(FromAbiAddress(r.LocalAddress), r.LocalPort);

    private static IPEndPoint? Remote(SocketResult r) =>
        r.RemoteAddress == 0 && r.RemotePort == 0 ? null : new IPEndPoint(FromAbiAddress(r.RemoteAddress), r.RemotePort);

    public override string ToString() => $"{ProtocolType} socket {Handle:x} {LocalEndPoint?.ToString() ?? "unbound"} -> {RemoteEndPoint?.ToString() ?? "-"}";
}

/// <summary>A connection's state as the inet server reports it (GetInfo).</summary>
public sealed record InetSocketInfo(byte TcpState, IPEndPoint? LocalEndPoint, IPEndPoint? RemoteEndPoint, int Available, int SendQueued,
    int SendSpace, TimeSpan SmoothedRtt, int CongestionWindow, int Mss, int Retransmissions)
{
    /// <summary>The data one full segment carries: the MSS less the options every segment carries (timestamps: 12 bytes).</summary>
    public int SegmentPayload { get; init; } = Mss;

    /// <summary>Full segments one send ICA may carry and still go to the wire in place (inet's segmentation offload; 1 without).</summary>
    public int OffloadSegments { get; init; } = 1;
}
