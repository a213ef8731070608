using AntHost.Inet.Core.Arp;
using AntHost.Inet.Core.Buffers;
using AntHost.Inet.Core.Counters;
using AntHost.Inet.Core.Iface;
using AntHost.Inet.Core.Time;
using AntHost.Inet.Core.Wire;

namespace AntHost.Inet.Core.Ip;

/// <summary>
/// IPv4 for one interface (RFC 791, RFC 1122 3.2-3.3): validation of received datagrams,
/// reassembly, delivery to ICMP, UDP and TCP; on the way out, routing (on-link by prefix,
/// otherwise the default gateway), the header written in place, fragmentation when DF is
/// clear, path MTU, and the hand-off to ARP. A host: nothing is forwarded.
/// </summary>
/// <remarks>
/// Receive checks, in order, each failure a counted drop (<see cref="RxDrop"/>): length,
/// version, IHL, total length against the bytes (Ethernet padding is trimmed by the total
/// length), header checksum, options well-formed (source routes refused), source address
/// (RFC 1122 3.2.1.3: not broadcast, multicast, loopback, unspecified or ours), destination
/// (ours, limited or directed broadcast; else not for us). TTL is not checked on receipt
/// (RFC 1122 3.2.1.7: "MUST NOT discard a datagram just because it was received with TTL
/// less than 2"); the reserved flag is ignored, as the robustness principle asks.
///
/// Send: the transport's buffer has at least <see cref="IIpOutput.HeaderRoom"/> in front;
/// the 20-byte header (no options) is prepended there, so the payload never moves. A
/// datagram over the path MTU is fragmented into freshly rented buffers when DF is clear,
/// and refused (<see cref="IpSendStatus.Dropped"/>, counted as too big) when it is set;
/// TCP sets DF (RFC 1191 path MTU discovery). Datagrams to our own address go through a
/// loopback queue that the next <see cref="Interface.Poll"/> delivers, so a transport is
/// never re-entered from its own send.
/// </remarks>
public sealed class Ipv4Layer : IIpOutput
{
    private readonly Interface _iface;
    private readonly Reassembler _reassembler;
    private readonly PathMtuCache _pmtu;
    private readonly PacketBuffer?[] _loopback;
    private readonly Ipv4Address _address;
    private readonly int _prefix;
    private readonly Ipv4Address _subnetBroadcast;
    private int _loopHead, _loopCount;
    private ushort _nextId;
    private Instant _lastNow;

    internal Ipv4Layer(Interface iface)
    {
        _iface = iface;
        var c = iface.Config;
        _address = c.Address;
        _prefix = c.PrefixLength;
        // RFC 3021: a /31 (or /32) has no directed broadcast address.
        _subnetBroadcast = _prefix < 31 ? _address.SubnetBroadcast(_prefix) : Ipv4Address.Broadcast;
        _reassembler = new Reassembler(iface, c.Reassembly);
        _pmtu = new PathMtuCache(c.Icmp.PathMtuCapacity, c.Mtu, c.Icmp.MinPathMtu, c.Icmp.PathMtuAge);
        _loopback = new PacketBuffer?[Math.Max(1, c.LoopbackQueueCapacity)];
        _nextId = (ushort)c.Random.NextUInt32();
    }

    /// <summary>The link MTU.</summary>
    public int LinkMtu => _iface.Config.Mtu;

    internal int HeldBuffers => _reassembler.HeldBuffers + _loopCount;

    /// <summary>Bytes of buffer capacity held by fragments under reassembly.</summary>
    public int ReassemblyMemory => _reassembler.MemoryInUse;

    // ---------------------------------------------------------------- IIpOutput

    public int PathMtu(Ipv4Address destination) => _pmtu.Get(destination, _lastNow, out _);

    public Ipv4Address SourceFor(Ipv4Address destination) =>
        destination == _address || TryRoute(destination, out _, out _) ? _address : Ipv4Address.Any;

    public bool IsLocal(Ipv4Address address) => address == _address;

    public IpSendStatus Send(Ipv4Address source, Ipv4Address destination, IpProtocol protocol, PacketBuffer packet, in IpSendOptions options, Instant now)
    {
        _lastNow = now;
        var counters = _iface.Counters;
        if (!_iface.IsUp) return Refuse(packet, TxDrop.LinkDown, IpSendStatus.Dropped);
        if (source.IsUnspecified) source = _address;
        if (source != _address || packet.Headroom < IIpOutput.HeaderRoom || packet.WireLength > Ipv4Packet.MaxTotalLength - Ipv4Packet.MinHeaderLength)
            return Refuse(packet, TxDrop.BadRequest, IpSendStatus.Dropped);

        // RFC 1122 3.2.1.7: "A host MUST NOT send a datagram with a Time-to-Live (TTL) value of zero."
        byte ttl = options.Ttl == 0 ? (byte)64 : options.Ttl;
        int total = Ipv4Packet.MinHeaderLength + packet.WireLength;
        // A segmentation-offload buffer goes on the wire as frames of one segment each: those must fit.
        bool offload = packet.Fragment is not null;
        int onWire = offload ? Ipv4Packet.MinHeaderLength + packet.Length + packet.SegmentSize : total;

        if (destination == _address)
            return Loop(source, destination, protocol, packet, options, ttl);

        if (!TryRoute(destination, out var nextHop, out bool broadcast))
            return Refuse(packet, TxDrop.NoRoute, IpSendStatus.NoRoute);

        bool allowFragmentation = false;
        int mtu = broadcast ? LinkMtu : _pmtu.Get(destination, now, out allowFragmentation);
        // TCP always runs path MTU discovery (RFC 1191 6.5), so its segments carry DF whatever
        // the options say; a path whose MTU was reported below the floor may fragment: DF is
        // cleared on it.
        bool df = (options.DontFragment || protocol == IpProtocol.Tcp) && !allowFragmentation;
        if (onWire > mtu)
        {
            if (df || offload) return Refuse(packet, TxDrop.TooBig, IpSendStatus.Dropped);
            return Fragment(source, destination, protocol, packet, options.Tos, ttl, mtu, nextHop, broadcast, now);
        }

        var h = packet.Prepend(Ipv4Packet.MinHeaderLength);
        new Ipv4Header(source, destination, (byte)protocol, (ushort)total, _nextId, ttl, options.Tos, df).WriteTo(h);
        // Each frame an offload buffer is cut into takes the next identification.
        _nextId += (ushort)(offload ? TcpSegmentation.FrameCount(packet.FragmentLength, packet.SegmentSize) : 1);
        _iface.Config.TransmitTrace?.Invoke(TransmitBoundary.IpHeaderWritten, packet);
        counters.Add(Counter.IpDatagramsOut);
        if (protocol == IpProtocol.Tcp) counters.Add(Counter.TcpOut);
        return Transmit(packet, nextHop, broadcast, now);
    }

    private IpSendStatus Refuse(PacketBuffer packet, TxDrop reason, IpSendStatus status)
    {
        _iface.Counters.Drop(reason);
        packet.FinishTransmit();
        return status;
    }

    private IpSendStatus Transmit(PacketBuffer datagram, Ipv4Address nextHop, bool broadcast, Instant now)
    {
        if (broadcast)
        {
            _iface.SendFrame(datagram, MacAddress.Broadcast, EtherType.Ipv4);
            return IpSendStatus.Sent;
        }
        switch (_iface.Arp.Resolve(nextHop, datagram, now, out var mac))
        {
            case ResolveResult.Resolved:
                _iface.SendFrame(datagram, mac, EtherType.Ipv4);
                return IpSendStatus.Sent;
            case ResolveResult.Queued:
                return IpSendStatus.AwaitingResolution;
            default:
                return IpSendStatus.Dropped;
        }
    }

    /// <summary>RFC 791 3.2 fragmentation: each fragment a new buffer, payload split on 8-byte boundaries.</summary>
    private IpSendStatus Fragment(Ipv4Address source, Ipv4Address destination, IpProtocol protocol, PacketBuffer packet,
        byte tos, byte ttl, int mtu, Ipv4Address nextHop, bool broadcast, Instant now)
    {
        var counters = _iface.Counters;
        var payload = packet.Data;
        int maxData = (mtu - Ipv4Packet.MinHeaderLength) & ~7;
        ushort id = _nextId++;
        var status = IpSendStatus.Sent;
        for (int offset = 0; offset < payload.Length; offset += maxData)
        {
            int len = Math.Min(maxData, payload.Length - offset);
            bool more = offset + len < payload.Length;
            var f = _iface.Pool.Rent(IIpOutput.HeaderRoom, len);
            if (f is null)
            {
                counters.Drop(TxDrop.NoBuffer);
                status = IpSendStatus.Dropped;
                break;
            }
            payload.Slice(offset, len).CopyTo(f.Append(len));
            var h = f.Prepend(Ipv4Packet.MinHeaderLength);
            new Ipv4Header(source, destination, (byte)protocol, (ushort)(Ipv4Packet.MinHeaderLength + len), id, ttl, tos,
                DontFragment: false, MoreFragments: more, FragmentOffset: offset).WriteTo(h);
            counters.Add(Counter.IpFragmentsOut);
            var s = Transmit(f, nextHop, broadcast, now);
            if (s != IpSendStatus.Sent) status = s;
        }
        counters.Add(Counter.IpDatagramsOut);
        if (protocol == IpProtocol.Tcp) counters.Add(Counter.TcpOut);
        packet.FinishTransmit();
        return status;
    }

    private IpSendStatus Loop(Ipv4Address source, Ipv4Address destination, IpProtocol protocol, PacketBuffer packet, in IpSendOptions options, byte ttl)
    {
        if (_loopCount == _loopback.Length) return Refuse(packet, TxDrop.LoopbackFull, IpSendStatus.Dropped);
        PacketBuffer copy = packet;
        if (packet.IsLent || packet.Fragment is not null)
        {
            // The receiver will own and trim what it gets; a lent buffer stays its owner's, and
            // an offload buffer becomes one segment (nobody cuts it on the way to ourselves).
            var c = _iface.Pool.Rent(IIpOutput.HeaderRoom, packet.WireLength);
            if (c is null) return Refuse(packet, TxDrop.NoBuffer, IpSendStatus.Dropped);
            packet.Data.CopyTo(c.Append(packet.Length));
            packet.FragmentData.CopyTo(c.Append(packet.FragmentLength));
            if (packet.Fragment is not null && protocol == IpProtocol.Tcp) TcpHeaderFields.FillChecksum(c.Data, source, destination);
            packet.FinishTransmit();
            copy = c;
        }
        var h = copy.Prepend(Ipv4Packet.MinHeaderLength);
        new Ipv4Header(source, destination, (byte)protocol, (ushort)copy.Length, _nextId++, ttl, options.Tos, options.DontFragment).WriteTo(h);
        _loopback[(_loopHead + _loopCount) % _loopback.Length] = copy;
        _loopCount++;
        _iface.Counters.Add(Counter.IpDatagramsOut);
        if (protocol == IpProtocol.Tcp) _iface.Counters.Add(Counter.TcpOut);
        return IpSendStatus.Sent;
    }

    /// <summary>
    /// The next hop towards <paramref name="destination"/>: itself when on-link, else the
    /// default gateway; broadcast destinations go to the Ethernet broadcast address.
    /// </summary>
    public bool TryRoute(Ipv4Address destination, out Ipv4Address nextHop, out bool broadcast)
    {
        nextHop = default;
        broadcast = false;
        if (destination.IsBroadcast || destination == _subnetBroadcast)
        {
            broadcast = true;
            nextHop = destination;
            return true;
        }
        if (destination.IsUnspecified || destination.IsMulticast || destination.IsLoopback || destination == _address) return false;
        if (_prefix > 0 && destination.IsInSubnet(_address, _prefix))
        {
            nextHop = destination;
            return true;
        }
        if (_iface.Config.Gateway is { } g)
        {
            nextHop = g;
            return true;
        }
        return false;
    }

    // ---------------------------------------------------------------- receive

    /// <summary>A datagram from the link (Ethernet header trimmed); ownership passes in.</summary>
    internal void Receive(PacketBuffer buffer, bool linkBroadcast, Instant now)
    {
        _lastNow = now;
        Process(buffer, linkBroadcast, fromLoopback: false, now);
    }

    private void Process(PacketBuffer buffer, bool linkBroadcast, bool fromLoopback, Instant now)
    {
        var counters = _iface.Counters;
        switch (Ipv4Packet.Check(buffer.Data))
        {
            case Ipv4Malformation.TooShort: _iface.DropRx(buffer, RxDrop.IpTooShort); return;
            case Ipv4Malformation.BadVersion: _iface.DropRx(buffer, RxDrop.IpBadVersion); return;
            case Ipv4Malformation.BadHeaderLength: _iface.DropRx(buffer, RxDrop.IpBadHeaderLength); return;
            case Ipv4Malformation.BadTotalLength: _iface.DropRx(buffer, RxDrop.IpBadTotalLength); return;
        }
        Ipv4Packet.TryCreate(buffer.Data, out var ip);
        if (!ip.IsChecksumValid) { _iface.DropRx(buffer, RxDrop.IpBadChecksum); return; }
        if (ip.HeaderLength > Ipv4Packet.MinHeaderLength)
        {
            switch (Ipv4Packet.CheckOptions(ip.Options, out int badOffset))
            {
                case Ipv4OptionsCheck.Malformed:
                    // RFC 1122 3.2.2.5: a host SHOULD send parameter problem, the pointer at the bad option.
                    var from = ip.Source;
                    var to = ip.Destination;
                    if (from != _address && to == _address && !linkBroadcast)
                    {
                        buffer.Truncate(ip.TotalLength);
                        _iface.Icmp.SendErrorForDatagram(IcmpType.ParameterProblem, 0, (uint)(Ipv4Packet.MinHeaderLength + badOffset) << 24,
                            buffer.Data, isBroadcast: false, now);
                    }
                    _iface.DropRx(buffer, RxDrop.IpBadOptions);
                    return;
                case Ipv4OptionsCheck.SourceRoute: _iface.DropRx(buffer, RxDrop.IpSourceRouted); return;
            }
        }
        var src = ip.Source;
        if (src.IsBroadcast || src.IsMulticast || src.IsLoopback || src.IsUnspecified || src == _subnetBroadcast
            || (src == _address && !fromLoopback))
        {
            _iface.DropRx(buffer, RxDrop.IpBadSource);
            return;
        }
        var dst = ip.Destination;
        bool broadcast;
        if (dst == _address) broadcast = false;
        else if (dst.IsBroadcast || dst == _subnetBroadcast) broadcast = true;
        else if (dst.IsMulticast) { _iface.DropRx(buffer, RxDrop.IpMulticast); return; }
        else { _iface.DropRx(buffer, RxDrop.IpNotForUs); return; }

        buffer.Truncate(ip.TotalLength); // Ethernet padding
        counters.Add(Counter.IpDatagramsIn);

        if (ip.IsFragment)
        {
            var whole = _reassembler.Accept(buffer, now);
            if (whole is null) return;
            buffer = whole;
            Ipv4Packet.TryCreate(buffer.Data, out ip);
        }
        Deliver(buffer, ip.Source, ip.Destination, ip.Protocol, ip.HeaderLength, ip.TotalLength, broadcast || linkBroadcast, now);
    }

    private void Deliver(PacketBuffer buffer, Ipv4Address src, Ipv4Address dst, byte protocol, int ihl, int total, bool broadcast, Instant now)
    {
        var info = new IpReceiveInfo(src, dst, protocol, buffer.Start, ihl, total, broadcast);
        buffer.TrimFront(ihl);
        switch (protocol)
        {
            case (byte)IpProtocol.Icmp:
                _iface.Icmp.Receive(buffer, info, now);
                return;
            case (byte)IpProtocol.Udp:
                _iface.Udp.Receive(buffer, info, now);
                return;
            case (byte)IpProtocol.Tcp when _iface.Tcp is { } tcp:
                if (broadcast)
                {
                    _iface.DropRx(buffer, RxDrop.IpTcpToBroadcast);
                    return;
                }
                _iface.Counters.Add(Counter.TcpIn);
                tcp.Receive(src, dst, buffer, now);
                return;
            default:
                // RFC 1122 3.2.2.1: a host SHOULD generate protocol unreachable.
                info.Restore(buffer);
                _iface.Icmp.SendErrorForDatagram(IcmpType.DestinationUnreachable, (byte)IcmpUnreachableCode.Protocol, 0, buffer.Data, broadcast, now);
                _iface.DropRx(buffer, RxDrop.IpUnknownProtocol);
                return;
        }
    }

    /// <summary>Applies a fragmentation-needed report; true when the path MTU went down.</summary>
    internal bool LowerPathMtu(Ipv4Address destination, int reported, int quotedLength, Instant now)
    {
        _lastNow = now;
        if (!_pmtu.Lower(destination, reported, quotedLength, now)) return false;
        _iface.Counters.Add(Counter.PathMtuDecreases);
        return true;
    }

    /// <summary>
    /// Releases what the layer holds (fragments of unfinished datagrams, datagrams looped back
    /// and not yet taken): the interface goes down, and a server that stops must give back
    /// every buffer (fragments a flood left behind were kept until then: pages owned at stop).
    /// </summary>
    internal void DropHeld()
    {
        _reassembler.DiscardAll();
        while (_loopCount > 0)
        {
            var b = _loopback[_loopHead]!;
            _loopback[_loopHead] = null;
            _loopHead = (_loopHead + 1) % _loopback.Length;
            _loopCount--;
            b.Release();
        }
    }

    internal void Poll(Instant now)
    {
        _lastNow = now;
        _reassembler.Poll(now);
        // Only what is queued now: a datagram looped back in answer waits for the next poll.
        for (int n = _loopCount; n > 0; n--)
        {
            var b = _loopback[_loopHead]!;
            _loopback[_loopHead] = null;
            _loopHead = (_loopHead + 1) % _loopback.Length;
            _loopCount--;
            _iface.Counters.Add(Counter.IpLoopback);
            Process(b, linkBroadcast: false, fromLoopback: true, now);
        }
    }

    internal Instant? PollAt(Instant lastNow)
    {
        var at = _reassembler.PollAt;
        if (_loopCount > 0) at = Instant.Earliest(at, lastNow);
        return at;
    }
}
