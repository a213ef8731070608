using AntHost.Inet.Core.Arp;
using AntHost.Inet.Core.Buffers;
using AntHost.Inet.Core.Counters;
using AntHost.Inet.Core.Icmp;
using AntHost.Inet.Core.Ip;
using AntHost.Inet.Core.Time;
using AntHost.Inet.Core.Udp;
using AntHost.Inet.Core.Wire;

namespace AntHost.Inet.Core.Iface;

/// <summary>
/// One Ethernet interface with its IPv4 address: the protocol core as the server shell
/// sees it. Frames go in through <see cref="Receive"/>, frames to send come out of
/// <see cref="TryDequeueTransmit"/>, and <see cref="Poll"/> runs the timers that
/// <see cref="PollAt"/> announces. Nothing here reads a clock, starts a thread or does
/// I/O; the shell does, and calls in with <c>now</c>.
/// </summary>
/// <remarks>
/// The layers below TCP are plain objects owned by the interface: <see cref="ArpResolver"/>
/// resolves next hops and holds the packets waiting for them, <see cref="Ipv4Layer"/>
/// validates, reassembles, routes and frames datagrams (it is the <see cref="IIpOutput"/>
/// every transport sends through), <see cref="IcmpLayer"/> answers echoes and turns ICMP
/// errors into <see cref="IcmpError"/>s for the transports, <see cref="UdpLayer"/> holds the
/// UDP sockets, and the TCP layer comes from <see cref="InterfaceConfig.Tcp"/>.
///
/// Ownership: a frame passed to <see cref="Receive"/> belongs to the interface, which
/// releases it or hands it on (a UDP payload stays in it, trimmed, until the socket's
/// reader takes it). A frame from <see cref="TryDequeueTransmit"/> belongs to the shell
/// until it calls <see cref="PacketBuffer.FinishTransmit"/>, which either ends a
/// transport's lend (TCP keeps unacknowledged data) or releases the buffer.
///
/// Single-threaded: the shell calls every method from one thread (or under one lock).
/// </remarks>
public sealed class Interface
{
    private readonly PacketBuffer?[] _tx;
    private int _txHead, _txCount;
    private Instant _lastNow;
    private int _announcementsLeft;
    private Instant _nextAnnouncement;

    public Interface(InterfaceConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        Config = config;
        Pool = config.Pool;
        _tx = new PacketBuffer?[config.TransmitQueueCapacity];
        Arp = new ArpResolver(this, config.Arp);
        Ip = new Ipv4Layer(this);
        Icmp = new IcmpLayer(this, config.Icmp);
        Udp = new UdpLayer(this, config.Udp);
        Tcp = config.Tcp?.Invoke(Ip);
    }

    public InterfaceConfig Config { get; }

    public MacAddress Mac => Config.Mac;

    public Ipv4Address Address => Config.Address;

    public StackCounters Counters { get; } = new();

    public ArpResolver Arp { get; }

    /// <summary>The IPv4 layer: the <see cref="IIpOutput"/> transports send through.</summary>
    public Ipv4Layer Ip { get; }

    public IcmpLayer Icmp { get; }

    public UdpLayer Udp { get; }

    /// <summary>The TCP layer made by <see cref="InterfaceConfig.Tcp"/>, or null.</summary>
    public ITransportLayer? Tcp { get; }

    internal IPacketBufferPool Pool { get; }

    /// <summary>True after <see cref="Up"/>: frames are accepted and sent.</summary>
    public bool IsUp { get; private set; }

    /// <summary>Frames waiting in the transmit queue.</summary>
    public int TransmitQueueLength => _txCount;

    /// <summary>
    /// Brings the interface up and announces our address with gratuitous ARP (RFC 5227 2.3),
    /// so that neighbours with a stale entry for it learn our MAC.
    /// </summary>
    public void Up(Instant now)
    {
        _lastNow = now;
        if (IsUp) return;
        IsUp = true;
        _announcementsLeft = Config.Arp.Announcements;
        if (_announcementsLeft > 0)
        {
            Arp.SendAnnouncement();
            _announcementsLeft--;
            _nextAnnouncement = now + Config.Arp.AnnounceInterval;
        }
    }

    /// <summary>
    /// Takes the interface down: everything queued for transmission or resolution is dropped
    /// (the transports are told the host is unreachable), and frames are refused until <see cref="Up"/>.
    /// </summary>
    public void Down(Instant now)
    {
        _lastNow = now;
        IsUp = false;
        _announcementsLeft = 0;
        Arp.Flush(now);
        Ip.DropHeld();
        while (TryDequeueTransmit(out var f)) f.FinishTransmit();
    }

    /// <summary>
    /// Frames that arrived together follow, each through <see cref="Receive"/>; what TCP would
    /// send for in-order segments among them (ACKs, and new data the ACKs let go) is held until
    /// <see cref="EndReceiveBatch"/> and goes once for the batch, as one ACK per NAPI poll does.
    /// </summary>
    public void BeginReceiveBatch() => Tcp?.BeginReceiveBatch();

    /// <summary>Ends a batch begun with <see cref="BeginReceiveBatch"/>.</summary>
    public void EndReceiveBatch(Instant now) => Tcp?.EndReceiveBatch(now);

    /// <summary>
    /// A received Ethernet frame (no FCS): <paramref name="frame"/>'s data is the frame, and
    /// ownership passes in. Never throws for any content; every frame is counted either as
    /// consumed by a protocol or as a drop with its reason.
    /// </summary>
    public void Receive(PacketBuffer frame, Instant now)
    {
        _lastNow = now;
        Counters.Add(Counter.FramesIn);
        Counters.Add(Counter.BytesIn, frame.Length);
        if (!IsUp) { DropRx(frame, RxDrop.LinkDown); return; }
        if (!EthernetFrame.TryCreate(frame.Data, out var eth)) { DropRx(frame, RxDrop.FrameTooShort); return; }
        var dst = eth.Destination;
        bool linkBroadcast = dst.IsBroadcast;
        if (dst != Mac && !linkBroadcast) { DropRx(frame, RxDrop.NotOurMac); return; }
        var src = eth.Source;
        if (src == Mac || src.IsMulticast) { DropRx(frame, RxDrop.BadSourceMac); return; }
        ushort type = eth.EtherTypeValue;
        frame.TrimFront(EthernetFrame.HeaderLength);
        switch (type)
        {
            case (ushort)EtherType.Ipv4:
                Ip.Receive(frame, linkBroadcast, now);
                break;
            case (ushort)EtherType.Arp:
                Arp.Receive(frame, src, now);
                break;
            default:
                DropRx(frame, RxDrop.UnsupportedEtherType);
                break;
        }
    }

    /// <summary>The next frame to transmit; the shell calls <see cref="PacketBuffer.FinishTransmit"/> once the adapter took it.</summary>
    public bool TryDequeueTransmit(out PacketBuffer frame)
    {
        if (_txCount == 0)
        {
            frame = null!;
            return false;
        }
        frame = _tx[_txHead]!;
        _tx[_txHead] = null;
        _txHead = (_txHead + 1) % _tx.Length;
        _txCount--;
        return true;
    }

    /// <summary>Runs whatever is due at <paramref name="now"/>: ARP retries and aging, reassembly timeouts, announcements, the loopback queue and TCP's timers.</summary>
    public void Poll(Instant now)
    {
        _lastNow = now;
        if (IsUp && _announcementsLeft > 0 && now >= _nextAnnouncement)
        {
            Arp.SendAnnouncement();
            _announcementsLeft--;
            _nextAnnouncement = now + Config.Arp.AnnounceInterval;
        }
        Arp.Poll(now);
        Ip.Poll(now);
        Tcp?.Poll(now);
    }

    /// <summary>The next instant <see cref="Poll"/> has work, or null for none.</summary>
    public Instant? PollAt
    {
        get
        {
            Instant? at = Instant.Earliest(Arp.PollAt, Ip.PollAt(_lastNow));
            if (IsUp && _announcementsLeft > 0) at = Instant.Earliest(at, _nextAnnouncement);
            if (Tcp is not null) at = Instant.Earliest(at, Tcp.PollAt);
            return at;
        }
    }

    /// <summary>Buffers the interface holds right now (transmit queue, ARP queues, reassembly, loopback, UDP and echo queues), for leak checks.</summary>
    public int HeldBuffers => _txCount + Arp.HeldBuffers + Ip.HeldBuffers + Udp.HeldBuffers + Icmp.HeldBuffers;

    /// <summary>Prepends an Ethernet header to <paramref name="packet"/> and queues it for the adapter.</summary>
    internal void SendFrame(PacketBuffer packet, MacAddress destination, EtherType type)
    {
        if (packet.Headroom < EthernetFrame.HeaderLength)
        {
            Counters.Drop(TxDrop.BadRequest);
            packet.FinishTransmit();
            return;
        }
        var h = packet.Prepend(EthernetFrame.HeaderLength);
        new EthernetHeader(destination, Mac, type).WriteTo(h);
        Config.TransmitTrace?.Invoke(TransmitBoundary.EthernetHeaderWritten, packet);
        Enqueue(packet);
    }

    private void Enqueue(PacketBuffer frame)
    {
        if (!IsUp)
        {
            Counters.Drop(TxDrop.LinkDown);
            frame.FinishTransmit();
            return;
        }
        if (_txCount == _tx.Length)
        {
            Counters.Drop(TxDrop.QueueFull);
            frame.FinishTransmit();
            return;
        }
        _tx[(_txHead + _txCount) % _tx.Length] = frame;
        _txCount++;
        Counters.Add(Counter.FramesOut);
        Counters.Add(Counter.BytesOut, frame.Length);
    }

    internal void DropRx(PacketBuffer buffer, RxDrop reason)
    {
        Counters.Drop(reason);
        buffer.Release();
    }
}
