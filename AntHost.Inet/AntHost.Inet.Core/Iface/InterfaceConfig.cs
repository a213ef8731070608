using AntHost.Inet.Core.Buffers;
using AntHost.Inet.Core.Ip;
using AntHost.Inet.Core.Randomness;
using AntHost.Inet.Core.Wire;

namespace AntHost.Inet.Core.Iface;

/// <summary>
/// Everything an <see cref="Interface"/> needs, given once at construction. The defaults
/// follow the RFCs' recommendations or, where those are silent, Linux's defaults.
/// </summary>
public sealed record InterfaceConfig
{
    /// <summary>Our Ethernet address (a unicast MAC).</summary>
    public required MacAddress Mac { get; init; }

    /// <summary>Our IPv4 address.</summary>
    public required Ipv4Address Address { get; init; }

    /// <summary>The on-link prefix length (0-32); destinations in it are reached directly.</summary>
    public required int PrefixLength { get; init; }

    /// <summary>The default gateway, on-link; null for none (then only on-link destinations route).</summary>
    public Ipv4Address? Gateway { get; init; }

    /// <summary>The link MTU: the largest IPv4 datagram on this link (1500 for Ethernet).</summary>
    public int Mtu { get; init; } = 1500;

    public required IPacketBufferPool Pool { get; init; }

    public required IRandomSource Random { get; init; }

    /// <summary>
    /// Makes the TCP layer, given the IPv4 layer it sends through (e.g.
    /// <c>ip =&gt; new TcpLayer(ip, pool, random, tcpConfig)</c>); null for an interface without TCP
    /// (TCP segments are then answered as an unknown protocol).
    /// </summary>
    public Func<IIpOutput, ITransportLayer>? Tcp { get; init; }

    /// <summary>
    /// Called as a packet being sent crosses a layer boundary (its IPv4 header written, its
    /// Ethernet header written), with the packet; null (the default) for none. The core has
    /// no clock: the server that provides the hook reads its own and stamps the send's
    /// timeline (the paper's TCP, IP and Ethernet rows). It runs inside the send, so it must
    /// be short, and it must not send or keep the packet.
    /// </summary>
    public TransmitTraceHook? TransmitTrace { get; init; }

    /// <summary>Frames the transmit queue holds before it drops (a counted <see cref="Counters.TxDrop.QueueFull"/>).</summary>
    public int TransmitQueueCapacity { get; init; } = 512;

    public ArpConfig Arp { get; init; } = new();

    public ReassemblyConfig Reassembly { get; init; } = new();

    public IcmpConfig Icmp { get; init; } = new();

    public UdpConfig Udp { get; init; } = new();

    /// <summary>Datagrams to our own address waiting for the next <see cref="Interface.Poll"/>.</summary>
    public int LoopbackQueueCapacity { get; init; } = 64;

    internal void Validate()
    {
        if (!Mac.IsUnicast || Mac == MacAddress.Zero)
            throw new ArgumentException($"the interface's MAC {Mac} must be a unicast, non-zero address", nameof(Mac));
        if (PrefixLength is < 0 or > 32)
            throw new ArgumentException($"prefix length {PrefixLength} is outside 0-32", nameof(PrefixLength));
        if (Address.IsUnspecified || Address.IsBroadcast || Address.IsMulticast || Address.IsLoopback)
            throw new ArgumentException($"{Address} cannot be an interface's unicast address", nameof(Address));
        if (Gateway is { } g && (PrefixLength == 0 || !g.IsInSubnet(Address, PrefixLength) || g == Address))
            throw new ArgumentException($"gateway {g} is not on the link {Address}/{PrefixLength}", nameof(Gateway));
        if (Mtu is < 576 or > 65535)
            throw new ArgumentException($"MTU {Mtu} is outside 576-65535 (RFC 1122 3.3.3: every host takes 576)", nameof(Mtu));
        if (TransmitQueueCapacity < 1) throw new ArgumentException("the transmit queue needs room for a frame", nameof(TransmitQueueCapacity));
        if (Arp.PendingTotal < 1) throw new ArgumentException("ARP needs room for at least one waiting packet", nameof(Arp));
        if (Arp.LockTime < TimeSpan.Zero) throw new ArgumentException($"ARP lock time {Arp.LockTime} is negative", nameof(Arp));
    }
}

/// <summary>The layer boundaries a packet being sent crosses, in order.</summary>
public enum TransmitBoundary
{
    /// <summary>IPv4 wrote its header in front of the transport's segment.</summary>
    IpHeaderWritten,
    /// <summary>Ethernet wrote its header; the frame goes to the transmit queue next.</summary>
    EthernetHeaderWritten,
}

/// <summary>See <see cref="InterfaceConfig.TransmitTrace"/>.</summary>
public delegate void TransmitTraceHook(TransmitBoundary boundary, PacketBuffer packet);

/// <summary>ARP (RFC 826, with the timing of RFC 1122 2.3.2 and RFC 5227's announcements).</summary>
public sealed record ArpConfig
{
    /// <summary>Entries the cache holds.</summary>
    public int CacheCapacity { get; init; } = 256;

    /// <summary>Packets that may wait for one address to resolve (RFC 1122 2.3.2.2: at least one).</summary>
    public int PendingPerAddress { get; init; } = 16;

    /// <summary>Broadcast requests sent before a resolution fails (the first included).</summary>
    public int MaxRequests { get; init; } = 3;

    /// <summary>Between requests for the same address (RFC 1122 2.3.2.1: at most one a second).</summary>
    public TimeSpan RetransmitInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>How long a confirmed entry is reachable before it goes stale.</summary>
    public TimeSpan ReachableTime { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>How long an unused stale entry is kept.</summary>
    public TimeSpan StaleTime { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Unicast probes of a stale entry in use before it is flushed.</summary>
    public int MaxProbes { get; init; } = 3;

    /// <summary>Gratuitous announcements sent by <see cref="Interface.Up"/> (RFC 5227 2.3: two, two seconds apart).</summary>
    public int Announcements { get; init; } = 2;

    public TimeSpan AnnounceInterval { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>Packets waiting for resolution across all addresses (each holds a buffer): a flood towards addresses nobody owns cannot take the pool.</summary>
    public int PendingTotal { get; init; } = 256;

    /// <summary>
    /// How long after an entry's MAC was set or confirmed no other MAC is considered for its
    /// address (Linux's <c>locktime</c>, 1 s): of several answers to one request the first
    /// wins, and a forged answer racing the real one changes nothing.
    /// </summary>
    public TimeSpan LockTime { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Whether a gratuitous ARP (sender and target address equal, RFC 5227's announcement) may
    /// change the cache. Off (the default): it is ignored and counted, and a host that changed
    /// its MAC is learned through the checked paths (its request to us, or the entry's
    /// probes going unanswered). On: a gratuitous ARP is believed at once, lock time and old
    /// owner's probe skipped, and adds an unknown address of the link (as Linux's
    /// <c>arp_accept=1</c>), for links where addresses move between hosts (failover pairs).
    /// </summary>
    public bool AcceptGratuitous { get; init; }
}

/// <summary>IPv4 reassembly limits (RFC 791 3.2, RFC 1122 3.3.2).</summary>
public sealed record ReassemblyConfig
{
    /// <summary>Datagrams under reassembly at once.</summary>
    public int MaxDatagrams { get; init; } = 32;

    /// <summary>Fragments one datagram may have.</summary>
    public int MaxFragmentsPerDatagram { get; init; } = 64;

    /// <summary>Buffer bytes (capacity, not payload) all held fragments may take together.</summary>
    public int MemoryLimit { get; init; } = 1 << 20;

    /// <summary>How long a datagram may take to complete, from its first fragment.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(30);
}

/// <summary>ICMP and path MTU behaviour.</summary>
public sealed record IcmpConfig
{
    /// <summary>Token bucket rate for the errors we send (RFC 1812 4.3.2.8; Linux's icmp_msgs_per_sec).</summary>
    public int ErrorsPerSecond { get; init; } = 1000;

    /// <summary>Token bucket depth (Linux's icmp_msgs_burst).</summary>
    public int ErrorBurst { get; init; } = 50;

    /// <summary>Replies an echo socket queues before it drops.</summary>
    public int EchoQueueCapacity { get; init; } = 64;

    /// <summary>
    /// The lowest path MTU fragmentation-needed can set (Linux's min_pmtu). A lower report
    /// sets this value and lets the path fragment (DF is then cleared for it).
    /// </summary>
    public int MinPathMtu { get; init; } = 552;

    /// <summary>How long a lowered path MTU holds before it is tried at the link MTU again (RFC 1191 6.3: ten minutes).</summary>
    public TimeSpan PathMtuAge { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>Destinations the path MTU cache holds.</summary>
    public int PathMtuCapacity { get; init; } = 256;
}

/// <summary>UDP sockets.</summary>
public sealed record UdpConfig
{
    /// <summary>Datagrams a socket's receive queue holds before it drops.</summary>
    public int ReceiveQueueCapacity { get; init; } = 256;

    /// <summary>The ephemeral port range (RFC 6056 / IANA: 49152-65535).</summary>
    public ushort EphemeralFirst { get; init; } = 49152;
    public ushort EphemeralLast { get; init; } = 65535;
}
