using AntHost.Inet.Core.Buffers;
using AntHost.Inet.Core.Counters;
using AntHost.Inet.Core.Iface;
using AntHost.Inet.Core.Ip;
using AntHost.Inet.Core.Time;
using AntHost.Inet.Core.Wire;

namespace AntHost.Inet.Core.Udp;

/// <summary>
/// UDP for one interface (RFC 768, RFC 1122 4.1): the port table, demultiplexing,
/// checksums, port unreachable for closed ports, and ICMP errors to sockets.
/// </summary>
/// <remarks>
/// One socket per port (the interface has one address, so a port names a socket).
/// Ephemeral ports are chosen as RFC 6056's algorithm 1: a random start in the range,
/// then the next free one. Sockets whose readiness changed (a datagram or an error
/// arrived) go once into a changed queue, which the server drains with
/// <see cref="TryDequeueChanged"/> instead of scanning every socket.
/// </remarks>
public sealed class UdpLayer
{
    /// <summary>The largest payload one IPv4 datagram can carry.</summary>
    public const int MaxPayload = Ipv4Packet.MaxTotalLength - Ipv4Packet.MinHeaderLength - UdpPacket.HeaderLength;

    private readonly Interface _iface;
    private readonly UdpConfig _config;
    private readonly Dictionary<ushort, UdpSocket> _ports = new();
    private readonly Queue<UdpSocket> _changed = new();
    private int _held;

    internal UdpLayer(Interface iface, UdpConfig config)
    {
        if (config.EphemeralFirst == 0 || config.EphemeralLast < config.EphemeralFirst)
            throw new ArgumentException("the ephemeral range must be a non-empty range of non-zero ports", nameof(config));
        _iface = iface;
        _config = config;
    }

    internal IPacketBufferPool Pool => _iface.Pool;

    internal int HeldBuffers => _held;

    /// <summary>Bound sockets.</summary>
    public int Count => _ports.Count;

    /// <summary>A new, unbound socket.</summary>
    public UdpSocket Open() => new(this, _config.ReceiveQueueCapacity);

    /// <summary>A socket whose readiness changed since it was last dequeued.</summary>
    public bool TryDequeueChanged(out UdpSocket socket)
    {
        if (_changed.TryDequeue(out socket!))
        {
            socket.InChangedQueue = false;
            return true;
        }
        return false;
    }

    internal UdpError Bind(UdpSocket socket, ushort port)
    {
        if (port == 0)
        {
            int first = _config.EphemeralFirst, count = _config.EphemeralLast - first + 1;
            int start = (int)(_iface.Config.Random.NextUInt32() % (uint)count);
            for (int i = 0; i < count; i++)
            {
                ushort candidate = (ushort)(first + (start + i) % count);
                if (!_ports.ContainsKey(candidate))
                {
                    port = candidate;
                    break;
                }
            }
            if (port == 0) return UdpError.NoEphemeralPort;
        }
        else if (_ports.ContainsKey(port)) return UdpError.AddressInUse;
        _ports.Add(port, socket);
        socket.LocalPort = port;
        return UdpError.Success;
    }

    internal void Unbind(UdpSocket socket)
    {
        if (socket.IsBound && _ports.TryGetValue(socket.LocalPort, out var s) && s == socket) _ports.Remove(socket.LocalPort);
    }

    internal UdpError NoBuffer()
    {
        _iface.Counters.Drop(TxDrop.NoBuffer);
        return UdpError.NoBufferSpace;
    }

    internal UdpError Send(UdpSocket socket, PacketBuffer payload, Ipv4Address destination, ushort port, in IpSendOptions options, Instant now)
    {
        if (port == 0 || destination.IsUnspecified || payload.Length > MaxPayload || payload.Headroom < UdpSocket.HeaderRoom)
        {
            payload.FinishTransmit();
            return UdpError.InvalidArgument;
        }
        if (!_iface.IsUp)
        {
            payload.FinishTransmit();
            _iface.Counters.Drop(TxDrop.LinkDown);
            return UdpError.NetworkDown;
        }
        var ip = _iface.Ip;
        var source = ip.SourceFor(destination);
        if (source.IsUnspecified)
        {
            payload.FinishTransmit();
            _iface.Counters.Drop(TxDrop.NoRoute);
            return UdpError.NetworkUnreachable;
        }
        int length = UdpPacket.HeaderLength + payload.Length;
        payload.Prepend(UdpPacket.HeaderLength);
        new UdpHeader(socket.LocalPort, port, (ushort)length).WriteTo(payload.Data, source, destination);
        _iface.Counters.Add(Counter.UdpOut);
        return ip.Send(source, destination, IpProtocol.Udp, payload, options, now) switch
        {
            IpSendStatus.Sent or IpSendStatus.AwaitingResolution => UdpError.Success,
            IpSendStatus.NoRoute => UdpError.NetworkUnreachable,
            _ when length + Ipv4Packet.MinHeaderLength > ip.PathMtu(destination) && options.DontFragment => UdpError.MessageTooLong,
            _ => UdpError.NoBufferSpace,
        };
    }

    /// <summary>A UDP datagram (IP header trimmed); ownership passes in.</summary>
    internal void Receive(PacketBuffer buffer, in IpReceiveInfo info, Instant now)
    {
        if (!UdpPacket.TryCreate(buffer.Data, out var udp)) { _iface.DropRx(buffer, RxDrop.UdpMalformed); return; }
        if (!udp.IsChecksumValid(info.Source, info.Destination)) { _iface.DropRx(buffer, RxDrop.UdpBadChecksum); return; }
        ushort srcPort = udp.SourcePort, dstPort = udp.DestinationPort;
        int length = udp.Length;

        if (dstPort == 0 || !_ports.TryGetValue(dstPort, out var socket))
        {
            // RFC 1122 4.1.3.1: port unreachable, but never about a broadcast (3.2.2).
            if (!info.IsBroadcast)
            {
                info.Restore(buffer);
                _iface.Icmp.SendErrorForDatagram(IcmpType.DestinationUnreachable, (byte)IcmpUnreachableCode.Port, 0, buffer.Data, false, now);
            }
            _iface.DropRx(buffer, RxDrop.UdpNoPort);
            return;
        }
        if (socket.IsConnected && (socket.RemoteAddress != info.Source || socket.RemotePort != srcPort))
        {
            _iface.DropRx(buffer, RxDrop.UdpNotFromPeer);
            return;
        }
        buffer.Truncate(length);
        buffer.TrimFront(UdpPacket.HeaderLength);
        if (!socket.Enqueue(new UdpDatagram(buffer, info.Source, srcPort, info.Destination, now)))
        {
            _iface.DropRx(buffer, RxDrop.UdpQueueFull);
            return;
        }
        _held++;
        _iface.Counters.Add(Counter.UdpIn);
        MarkChanged(socket);
    }

    internal bool ReceiveIcmpError(in IcmpError error)
    {
        if (!_ports.TryGetValue(error.LocalPort, out var socket)) return false;
        if (socket.IsConnected && (socket.RemoteAddress != error.RemoteAddress || socket.RemotePort != error.RemotePort)) return false;
        var code = error.Kind switch
        {
            IcmpErrorKind.PortUnreachable => UdpError.ConnectionRefused,
            IcmpErrorKind.Unreachable => UdpError.HostUnreachable,
            IcmpErrorKind.FragmentationNeeded => UdpError.MessageTooLong,
            _ => UdpError.NetworkError,
        };
        socket.SetError(code, error.RemoteAddress, error.RemotePort);
        MarkChanged(socket);
        return true;
    }

    /// <summary>Called by a socket's reader: one datagram fewer held.</summary>
    internal void Taken() => _held--;

    private void MarkChanged(UdpSocket socket)
    {
        if (socket.InChangedQueue) return;
        socket.InChangedQueue = true;
        _changed.Enqueue(socket);
    }
}
