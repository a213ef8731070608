using System.Buffers.Binary;
using AntHost.Inet.Core.Buffers;
using AntHost.Inet.Core.Counters;
using AntHost.Inet.Core.Iface;
using AntHost.Inet.Core.Ip;
using AntHost.Inet.Core.Time;
using AntHost.Inet.Core.Wire;

namespace AntHost.Inet.Core.Icmp;

/// <summary>
/// ICMPv4 for one interface (RFC 792, RFC 1122 3.2.2): echo replies, echo sockets for
/// the ping sample, the errors we send (rate-limited), and the errors we receive, which
/// are turned into <see cref="IcmpError"/>s for the transport whose datagram they quote.
/// </summary>
/// <remarks>
/// Echo replies are made in place: the request's buffer becomes the reply (type changed,
/// checksum updated by RFC 1624, addresses swapped by the IPv4 header written in front),
/// so answering a ping allocates and copies nothing.
///
/// A received error is believed only when the datagram it quotes could be ours: a valid
/// IPv4 header whose source is our address and at least the 8 bytes of transport header
/// RFC 792 promises (the ports, and TCP's sequence number, which TCP itself checks
/// against its window as RFC 5927 asks). Fragmentation-needed first lowers the path MTU
/// (<see cref="PathMtuCache"/>), then tells TCP with the new value. Source quench is
/// ignored (RFC 6633), redirects are ignored (a host on one link with one gateway has no
/// better route to learn, and redirects are a classic spoofing vector), timestamp
/// requests are not answered (RFC 1122 3.2.2.8 makes them optional).
///
/// The errors we send follow RFC 1122 3.2.2's "MUST NOT" list (never about an ICMP error,
/// a broadcast or multicast datagram, a non-initial fragment, or a source that is not one
/// host) and a token bucket (<see cref="IcmpConfig.ErrorsPerSecond"/>, <see cref="IcmpConfig.ErrorBurst"/>).
/// They quote as much of the offending datagram as fits in 576 bytes (RFC 1812 4.3.2.3).
/// </remarks>
public sealed class IcmpLayer
{
    /// <summary>The largest ICMP error we send, IP header included (RFC 1812 4.3.2.3).</summary>
    public const int MaxErrorDatagram = 576;

    private readonly Interface _iface;
    private readonly IcmpConfig _config;
    private readonly Dictionary<ushort, IcmpEchoSocket> _echo = new();
    private double _tokens;
    private Instant _refilled;
    private bool _bucketStarted;

    internal IcmpLayer(Interface iface, IcmpConfig config)
    {
        _iface = iface;
        _config = config;
        _tokens = config.ErrorBurst;
    }

    internal Interface Interface => _iface;

    internal int HeldBuffers
    {
        get
        {
            int n = 0;
            foreach (var s in _echo.Values) n += s.QueuedCount;
            return n;
        }
    }

    /// <summary>
    /// Opens an echo socket: echo requests sent through it carry <paramref name="identifier"/>
    /// (a free random one when null), and replies and errors with that identifier come back to it.
    /// </summary>
    public IcmpEchoSocket OpenEchoSocket(ushort? identifier = null)
    {
        ushort id;
        if (identifier is { } wanted)
        {
            if (_echo.ContainsKey(wanted)) throw new InvalidOperationException($"ICMP echo identifier {wanted} is already in use; open the socket without one to get a free identifier.");
            id = wanted;
        }
        else
        {
            int tries = 0;
            do
            {
                id = (ushort)_iface.Config.Random.NextUInt32();
                if (++tries > 65536) throw new InvalidOperationException("every ICMP echo identifier is in use; close an echo socket first.");
            }
            while (_echo.ContainsKey(id));
        }
        var s = new IcmpEchoSocket(this, id, _config.EchoQueueCapacity);
        _echo.Add(id, s);
        return s;
    }

    internal void Remove(IcmpEchoSocket socket) => _echo.Remove(socket.Identifier);

    /// <summary>An ICMP message (IP header trimmed); ownership passes in.</summary>
    internal void Receive(PacketBuffer buffer, in IpReceiveInfo info, Instant now)
    {
        if (!IcmpPacket.TryCreate(buffer.Data, out var icmp)) { _iface.DropRx(buffer, RxDrop.IcmpTooShort); return; }
        if (!icmp.IsChecksumValid) { _iface.DropRx(buffer, RxDrop.IcmpBadChecksum); return; }
        byte type = icmp.TypeValue;
        switch (type)
        {
            case (byte)IcmpType.EchoRequest:
                // RFC 1122 3.2.2.6: "An ICMP Echo Request destined to an IP broadcast or IP
                // multicast address MAY be silently discarded."
                if (info.IsBroadcast) { _iface.DropRx(buffer, RxDrop.IcmpBroadcastEcho); return; }
                _iface.Counters.IcmpIn(type);
                Reply(buffer, info, now);
                return;

            case (byte)IcmpType.EchoReply:
                if (!_echo.TryGetValue(icmp.Identifier, out var socket)) { _iface.DropRx(buffer, RxDrop.IcmpNoEchoSocket); return; }
                var reply = new IcmpEchoReply(info.Source, icmp.Identifier, icmp.Sequence, IcmpType.EchoReply, 0, null, now);
                buffer.TrimFront(IcmpPacket.HeaderLength);
                if (!socket.Enqueue(reply with { Payload = buffer })) { _iface.DropRx(buffer, RxDrop.IcmpEchoQueueFull); return; }
                _iface.Counters.IcmpIn(type);
                return;

            case (byte)IcmpType.DestinationUnreachable:
            case (byte)IcmpType.TimeExceeded:
            case (byte)IcmpType.ParameterProblem:
                int mtu = type == (byte)IcmpType.DestinationUnreachable && icmp.Code == (byte)IcmpUnreachableCode.FragmentationNeeded ? icmp.NextHopMtu : 0;
                if (!DeliverError(type, icmp.Code, mtu, icmp.Body, now)) { _iface.DropRx(buffer, RxDrop.IcmpErrorNotOurs); return; }
                _iface.Counters.IcmpIn(type);
                buffer.Release();
                return;

            case (byte)IcmpType.SourceQuench:     // RFC 6633: deprecated, ignored
            case (byte)IcmpType.Redirect:         // ignored: see the remarks
            case (byte)IcmpType.Timestamp:        // optional (RFC 1122 3.2.2.8), not answered
            case (byte)IcmpType.TimestampReply:
                _iface.Counters.IcmpIn(type);
                buffer.Release();
                return;

            default:
                // RFC 1122 3.2.2: "If an ICMP message of unknown type is received, it MUST be silently discarded."
                _iface.DropRx(buffer, RxDrop.IcmpUnknownType);
                return;
        }
    }

    /// <summary>Turns an echo request into its reply in the same buffer and sends it.</summary>
    private void Reply(PacketBuffer buffer, in IpReceiveInfo info, Instant now)
    {
        IcmpPacket.TryCreate(buffer.Data, out var icmp);
        ushort oldWord = (ushort)(icmp.TypeValue << 8 | icmp.Code);
        icmp.Type = IcmpType.EchoReply;
        icmp.Code = 0;
        // RFC 1624: only the type/code word changed.
        icmp.MessageChecksum = Checksum.Update(icmp.MessageChecksum, oldWord, 0);
        _iface.Counters.IcmpOut((byte)IcmpType.EchoReply);
        // RFC 1122 3.2.2.6: the reply's source is the request's (unicast) destination.
        _iface.Ip.Send(info.Destination, info.Source, IpProtocol.Icmp, buffer, new IpSendOptions(64, 0, false), now);
    }

    /// <summary>
    /// Sends an error about <paramref name="datagram"/> (a whole received IPv4 datagram, header
    /// included) to its source, unless RFC 1122 3.2.2 forbids it or the rate limit holds it back.
    /// The caller keeps the datagram's buffer.
    /// </summary>
    internal void SendErrorForDatagram(IcmpType type, byte code, uint restOfHeader, ReadOnlySpan<byte> datagram, bool isBroadcast, Instant now)
    {
        if (!Ipv4Header.TryParse(datagram, out var ip, out int ihl)) return;
        if (isBroadcast || ip.Destination.IsBroadcast || ip.Destination.IsMulticast) return;
        if (ip.FragmentOffset != 0) return;
        if (ip.Source.IsUnspecified || ip.Source.IsBroadcast || ip.Source.IsMulticast || ip.Source.IsLoopback) return;
        if (ip.Protocol == (byte)IpProtocol.Icmp && (datagram.Length <= ihl || IcmpPacket.IsError(datagram[ihl]))) return;
        if (!TakeToken(now))
        {
            _iface.Counters.Drop(TxDrop.IcmpRateLimited);
            return;
        }
        int quote = Math.Min(Math.Min(datagram.Length, ip.TotalLength), MaxErrorDatagram - Ipv4Packet.MinHeaderLength - IcmpPacket.HeaderLength);
        var b = _iface.Pool.Rent(IIpOutput.HeaderRoom, IcmpPacket.HeaderLength + quote);
        if (b is null)
        {
            _iface.Counters.Drop(TxDrop.NoBuffer);
            return;
        }
        var msg = b.Append(IcmpPacket.HeaderLength + quote);
        datagram[..quote].CopyTo(msg[IcmpPacket.HeaderLength..]);
        new IcmpHeader(type, code, restOfHeader).WriteTo(msg);
        _iface.Counters.IcmpOut((byte)type);
        var dst = ip.Source;
        _iface.Ip.Send(_iface.Address, dst, IpProtocol.Icmp, b, new IpSendOptions(64, 0, false), now);
    }

    /// <summary>
    /// A failure found locally (ARP got no answer) about a datagram we meant to send:
    /// told to its transport exactly as a router's ICMP error would be.
    /// </summary>
    internal void DeliverLocalError(IcmpType type, byte code, ReadOnlySpan<byte> datagram, Instant now) =>
        DeliverError((byte)type, code, 0, datagram, now);

    /// <summary>Hands an error quoting <paramref name="quoted"/> to the transport that sent it; false when it is not ours.</summary>
    private bool DeliverError(byte type, byte code, int nextHopMtu, ReadOnlySpan<byte> quoted, Instant now)
    {
        if (quoted.Length < Ipv4Packet.MinHeaderLength || quoted[0] >> 4 != 4) return false;
        int ihl = (quoted[0] & 0xF) * 4;
        if (ihl < Ipv4Packet.MinHeaderLength || quoted.Length < ihl + 8) return false;
        var local = Ipv4Address.Read(quoted[12..]);
        var remote = Ipv4Address.Read(quoted[16..]);
        if (!_iface.Ip.IsLocal(local)) return false;
        byte protocol = quoted[9];
        int quotedTotal = BinaryPrimitives.ReadUInt16BigEndian(quoted[2..]);
        var transport = quoted[ihl..];

        IcmpErrorKind kind;
        if (type == (byte)IcmpType.DestinationUnreachable)
        {
            kind = code switch
            {
                (byte)IcmpUnreachableCode.Port => IcmpErrorKind.PortUnreachable,
                (byte)IcmpUnreachableCode.FragmentationNeeded => IcmpErrorKind.FragmentationNeeded,
                _ => IcmpErrorKind.Unreachable,
            };
        }
        else kind = IcmpErrorKind.Soft;

        if (kind == IcmpErrorKind.FragmentationNeeded)
        {
            // RFC 1191: only a datagram we sent with DF can have caused it.
            if ((BinaryPrimitives.ReadUInt16BigEndian(quoted[6..]) & Ipv4Packet.DontFragmentFlag) == 0) return false;
            _iface.Ip.LowerPathMtu(remote, nextHopMtu, quotedTotal, now);
            nextHopMtu = _iface.Ip.PathMtu(remote);
        }

        var error = new IcmpError(kind, type, code, local, remote,
            BinaryPrimitives.ReadUInt16BigEndian(transport), BinaryPrimitives.ReadUInt16BigEndian(transport[2..]),
            protocol == (byte)IpProtocol.Tcp ? BinaryPrimitives.ReadUInt32BigEndian(transport[4..]) : 0,
            nextHopMtu);

        switch (protocol)
        {
            case (byte)IpProtocol.Udp:
                return _iface.Udp.ReceiveIcmpError(error);
            case (byte)IpProtocol.Tcp when _iface.Tcp is { } tcp:
                tcp.ReceiveIcmpError(error, now);
                return true;
            case (byte)IpProtocol.Icmp:
                if (transport[0] != (byte)IcmpType.EchoRequest) return false;
                ushort id = BinaryPrimitives.ReadUInt16BigEndian(transport[4..]);
                if (!_echo.TryGetValue(id, out var socket)) return false;
                socket.Enqueue(new IcmpEchoReply(remote, id, BinaryPrimitives.ReadUInt16BigEndian(transport[6..]), (IcmpType)type, code, null, now));
                return true;
            default:
                return false;
        }
    }

    private bool TakeToken(Instant now)
    {
        if (!_bucketStarted)
        {
            _bucketStarted = true;
            _refilled = now;
        }
        else if (now > _refilled)
        {
            _tokens = Math.Min(_config.ErrorBurst, _tokens + (now - _refilled).TotalSeconds * _config.ErrorsPerSecond);
            _refilled = now;
        }
        if (_tokens < 1) return false;
        _tokens -= 1;
        return true;
    }

    /// <summary>Sends an echo request from an echo socket.</summary>
    internal IpSendStatus SendEcho(ushort identifier, Ipv4Address destination, ushort sequence, ReadOnlySpan<byte> payload, Instant now)
    {
        var b = _iface.Pool.Rent(IIpOutput.HeaderRoom, IcmpPacket.HeaderLength + payload.Length);
        if (b is null)
        {
            _iface.Counters.Drop(TxDrop.NoBuffer);
            return IpSendStatus.Dropped;
        }
        var msg = b.Append(IcmpPacket.HeaderLength + payload.Length);
        payload.CopyTo(msg[IcmpPacket.HeaderLength..]);
        IcmpHeader.Echo(IcmpType.EchoRequest, identifier, sequence).WriteTo(msg);
        _iface.Counters.IcmpOut((byte)IcmpType.EchoRequest);
        return _iface.Ip.Send(_iface.Address, destination, IpProtocol.Icmp, b, new IpSendOptions(64, 0, false), now);
    }
}
