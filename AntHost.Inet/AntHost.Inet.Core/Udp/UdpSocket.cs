using AntHost.Inet.Core.Buffers;
using AntHost.Inet.Core.Ip;
using AntHost.Inet.Core.Time;
using AntHost.Inet.Core.Wire;

namespace AntHost.Inet.Core.Udp;

/// <summary>The outcome of a UDP socket call (a <c>SocketError</c>-like code: API misuse and network failures alike).</summary>
public enum UdpError
{
    Success = 0,
    /// <summary>Nothing to receive.</summary>
    WouldBlock,
    /// <summary>Another socket is bound to that port.</summary>
    AddressInUse,
    /// <summary>Every ephemeral port is taken.</summary>
    NoEphemeralPort,
    /// <summary>The socket is bound already.</summary>
    AlreadyBound,
    /// <summary>The socket was closed.</summary>
    Closed,
    /// <summary>Port 0, a broadcast or unspecified source, a payload too large for UDP.</summary>
    InvalidArgument,
    /// <summary>No route to the destination.</summary>
    NetworkUnreachable,
    /// <summary>Larger than the path MTU with don't-fragment set.</summary>
    MessageTooLong,
    /// <summary>No buffer, or the datagram was dropped on the way out (queue full, link down).</summary>
    NoBufferSpace,
    /// <summary>A pending ICMP error: the host or network is unreachable (RFC 1122 4.1.3.3).</summary>
    HostUnreachable,
    /// <summary>A pending ICMP error: the port is unreachable (connection refused).</summary>
    ConnectionRefused,
    /// <summary>A pending ICMP error: time exceeded or a parameter problem.</summary>
    NetworkError,
    /// <summary>The interface is down.</summary>
    NetworkDown,
    /// <summary>A send without a destination on a socket that is not connected.</summary>
    NotConnected,
}

/// <summary>Readiness of a UDP socket, as a poll/epoll user reads it.</summary>
[Flags]
public enum UdpReadiness
{
    None = 0,
    Readable = 1,
    Writable = 2,
    Error = 4,
    Closed = 8,
}

/// <summary>A received datagram: its payload (zero-copy, the received frame trimmed; the receiver owns and releases it) and where it came from.</summary>
public readonly record struct UdpDatagram(PacketBuffer Payload, Ipv4Address RemoteAddress, ushort RemotePort, Ipv4Address LocalAddress, Instant ReceivedAt);

/// <summary>
/// A UDP socket (RFC 768, RFC 1122 4.1): bound to a local port, sends to any destination,
/// and queues received datagrams (bounded: when the queue is full, datagrams are dropped
/// and counted, as a kernel's receive buffer does).
/// </summary>
/// <remarks>
/// Zero copy both ways: <see cref="SendTo(PacketBuffer, Ipv4Address, ushort, Instant, in IpSendOptions)"/>
/// takes a buffer whose data is the payload, with at least <see cref="HeaderRoom"/> in front,
/// and writes the UDP, IPv4 and Ethernet headers there; <see cref="TryReceiveFrom"/> hands
/// out the received buffer itself, trimmed to the payload. Span overloads copy, for callers
/// that hold plain memory.
///
/// An ICMP error that quotes a datagram from this socket is kept as the pending error
/// (the latest wins) and raises <see cref="UdpReadiness.Error"/>; <see cref="TakeError"/>
/// reads and clears it. The error does not fail the next send or receive on its own: an
/// unconnected socket talks to many peers, and one peer's port-unreachable says nothing
/// about the others. The pending error's peer is in <see cref="PendingErrorRemote"/>.
/// </remarks>
public sealed class UdpSocket : IDisposable
{
    /// <summary>Bytes a zero-copy send leaves in front of the payload: UDP + IPv4 + Ethernet.</summary>
    public const int HeaderRoom = UdpPacket.HeaderLength + IIpOutput.HeaderRoom;

    private readonly UdpLayer _layer;
    private readonly UdpDatagram[] _queue;
    private int _head, _count;
    private UdpError _pending;

    internal UdpSocket(UdpLayer layer, int capacity)
    {
        _layer = layer;
        _queue = new UdpDatagram[Math.Max(1, capacity)];
    }

    /// <summary>The bound port, 0 until bound (a send binds an ephemeral port).</summary>
    public ushort LocalPort { get; internal set; }

    public bool IsBound => LocalPort != 0;

    public bool IsClosed { get; private set; }

    /// <summary>Datagrams waiting to be received.</summary>
    public int QueuedCount => _count;

    public int ReceiveQueueCapacity => _queue.Length;

    /// <summary>Payload bytes of the datagrams waiting (a walk of the bounded queue; for the socket table).</summary>
    public long QueuedBytes
    {
        get
        {
            long n = 0;
            for (int i = 0; i < _count; i++) n += _queue[(_head + i) % _queue.Length].Payload.Length;
            return n;
        }
    }

    /// <summary>The connected peer (see <see cref="Connect"/>); unspecified when not connected.</summary>
    public Ipv4Address RemoteAddress { get; private set; }

    public ushort RemotePort { get; private set; }

    public bool IsConnected => RemotePort != 0;

    /// <summary>The peer of the pending error, if any.</summary>
    public (Ipv4Address Address, ushort Port) PendingErrorRemote { get; private set; }

    /// <summary>Set when readiness changed and the socket is in the layer's changed queue.</summary>
    internal bool InChangedQueue { get; set; }

    public UdpReadiness Readiness
    {
        get
        {
            if (IsClosed) return UdpReadiness.Closed;
            var r = UdpReadiness.Writable;
            if (_count > 0) r |= UdpReadiness.Readable;
            if (_pending != UdpError.Success) r |= UdpReadiness.Error;
            return r;
        }
    }

    /// <summary>Binds to <paramref name="port"/>, or to a free ephemeral port when it is 0.</summary>
    public UdpError Bind(ushort port = 0)
    {
        if (IsClosed) return UdpError.Closed;
        if (IsBound) return UdpError.AlreadyBound;
        return _layer.Bind(this, port);
    }

    /// <summary>
    /// Connects the socket (RFC 1122 4.1.3.4's "specify the remote address"): sends without a
    /// destination go to <paramref name="remote"/>:<paramref name="port"/>, only datagrams from
    /// there are received (others are dropped and counted), and only ICMP errors about that
    /// peer become the pending error. An unbound socket is bound to an ephemeral port.
    /// Connecting to <see cref="Ipv4Address.Any"/> and port 0 disconnects.
    /// </summary>
    public UdpError Connect(Ipv4Address remote, ushort port)
    {
        if (IsClosed) return UdpError.Closed;
        if (remote.IsUnspecified && port == 0)
        {
            RemoteAddress = default;
            RemotePort = 0;
            return UdpError.Success;
        }
        if (port == 0 || remote.IsUnspecified || remote.IsMulticast) return UdpError.InvalidArgument;
        if (!IsBound)
        {
            var e = _layer.Bind(this, 0);
            if (e != UdpError.Success) return e;
        }
        RemoteAddress = remote;
        RemotePort = port;
        return UdpError.Success;
    }

    /// <summary>Sends to the connected peer; ownership of the buffer passes in whatever the result.</summary>
    public UdpError Send(PacketBuffer payload, Instant now)
    {
        if (!IsConnected && !IsClosed) { payload.FinishTransmit(); return UdpError.NotConnected; }
        return SendTo(payload, RemoteAddress, RemotePort, now);
    }

    /// <summary>Sends a copy of <paramref name="payload"/> to the connected peer.</summary>
    public UdpError Send(ReadOnlySpan<byte> payload, Instant now)
    {
        if (!IsConnected && !IsClosed) return UdpError.NotConnected;
        return SendTo(payload, RemoteAddress, RemotePort, now);
    }

    /// <summary>
    /// Sends <paramref name="payload"/>'s data as one datagram; ownership of the buffer passes
    /// in whatever the result. An unbound socket is bound to an ephemeral port first.
    /// </summary>
    public UdpError SendTo(PacketBuffer payload, Ipv4Address destination, ushort port, Instant now, in IpSendOptions options = default)
    {
        if (IsClosed) { payload.FinishTransmit(); return UdpError.Closed; }
        if (!IsBound)
        {
            var e = _layer.Bind(this, 0);
            if (e != UdpError.Success) { payload.FinishTransmit(); return e; }
        }
        return _layer.Send(this, payload, destination, port, options == default ? DefaultOptions : options, now);
    }

    /// <summary>Sends a copy of <paramref name="payload"/> as one datagram.</summary>
    public UdpError SendTo(ReadOnlySpan<byte> payload, Ipv4Address destination, ushort port, Instant now)
    {
        if (IsClosed) return UdpError.Closed;
        if (payload.Length > UdpLayer.MaxPayload) return UdpError.InvalidArgument;
        var b = _layer.Pool.Rent(HeaderRoom, payload.Length);
        if (b is null) return _layer.NoBuffer();
        payload.CopyTo(b.Append(payload.Length));
        return SendTo(b, destination, port, now);
    }

    /// <summary>UDP's defaults: TTL 64, DF clear (a datagram larger than the path MTU is fragmented).</summary>
    public static IpSendOptions DefaultOptions => new(64, 0, false);

    /// <summary>The oldest received datagram; the caller owns its payload buffer and releases it.</summary>
    public bool TryReceiveFrom(out UdpDatagram datagram)
    {
        if (_count == 0)
        {
            datagram = default;
            return false;
        }
        datagram = _queue[_head];
        _queue[_head] = default;
        _head = (_head + 1) % _queue.Length;
        _count--;
        _layer.Taken();
        return true;
    }

    /// <summary>
    /// Copies the oldest datagram into <paramref name="destination"/> (truncating, as
    /// recvfrom does) and releases it. Returns the bytes copied, or -1 when nothing waits.
    /// </summary>
    public int ReceiveFrom(Span<byte> destination, out Ipv4Address remoteAddress, out ushort remotePort)
    {
        if (!TryReceiveFrom(out var d))
        {
            remoteAddress = default;
            remotePort = 0;
            return -1;
        }
        var data = d.Payload.Data;
        int n = Math.Min(data.Length, destination.Length);
        data[..n].CopyTo(destination);
        d.Payload.Release();
        remoteAddress = d.RemoteAddress;
        remotePort = d.RemotePort;
        return n;
    }

    /// <summary>Reads and clears the pending error (<see cref="UdpError.Success"/> when none).</summary>
    public UdpError TakeError()
    {
        var e = _pending;
        _pending = UdpError.Success;
        return e;
    }

    internal bool Enqueue(in UdpDatagram d)
    {
        if (_count == _queue.Length) return false;
        _queue[(_head + _count) % _queue.Length] = d;
        _count++;
        return true;
    }

    internal void SetError(UdpError e, Ipv4Address remote, ushort port)
    {
        _pending = e;
        PendingErrorRemote = (remote, port);
    }

    /// <summary>The slot of the <see cref="Sockets.SocketSet"/> that holds this socket (-1: none).</summary>
    internal int SetSlot { get; set; } = -1;

    /// <summary>Closes the socket: it is unbound and every queued datagram released.</summary>
    public void Dispose()
    {
        if (IsClosed) return;
        while (TryReceiveFrom(out var d)) d.Payload.Release();
        _layer.Unbind(this);
        IsClosed = true;
    }
}
