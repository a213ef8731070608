namespace AntHost.Inet.Core.Counters;

/// <summary>
/// Why a received frame (or a datagram it became) was dropped. Every received frame ends
/// in exactly one place: one of these, or one of the "consumed" counters
/// (<see cref="Counter.ArpIn"/>, <see cref="Counter.IcmpIn"/>, <see cref="Counter.UdpIn"/>,
/// <see cref="Counter.TcpIn"/>, <see cref="Counter.IpFragmentsHeld"/>); see
/// <see cref="CountersSnapshot.ReceiveAccountingBalances"/>.
/// </summary>
public enum RxDrop
{
    /// <summary>The interface is not up.</summary>
    LinkDown,
    /// <summary>Shorter than an Ethernet header.</summary>
    FrameTooShort,
    /// <summary>Destination MAC neither ours nor broadcast (multicast included: the stack joins no group).</summary>
    NotOurMac,
    /// <summary>Source MAC is our own (a reflected frame) or a group address.</summary>
    BadSourceMac,
    /// <summary>Neither IPv4 nor ARP (VLAN tags, IPv6, 802.3 lengths).</summary>
    UnsupportedEtherType,

    ArpMalformed,
    ArpBadOperation,
    /// <summary>Sender hardware or protocol address unusable (group MAC, broadcast or multicast IP).</summary>
    ArpBadSender,
    /// <summary>Another station claims our IPv4 address.</summary>
    ArpAddressConflict,
    /// <summary>The sender hardware address differs from the frame's source MAC (damaged or forged).</summary>
    ArpSenderMismatch,

    IpTooShort,
    IpBadVersion,
    IpBadHeaderLength,
    IpBadTotalLength,
    IpBadChecksum,
    IpBadOptions,
    /// <summary>Loose or strict source routing: not honoured, dropped (as Linux's default accept_source_route=0).</summary>
    IpSourceRouted,
    /// <summary>Source broadcast, multicast, loopback, unspecified or our own (RFC 1122 3.2.1.3).</summary>
    IpBadSource,
    /// <summary>Not addressed to us: hosts do not forward (RFC 1122 3.3.1).</summary>
    IpNotForUs,
    IpMulticast,
    /// <summary>A protocol with no handler (protocol unreachable sent where allowed).</summary>
    IpUnknownProtocol,
    /// <summary>TCP to a broadcast address (RFC 1122 4.2.3.10).</summary>
    IpTcpToBroadcast,

    /// <summary>A fragment that cannot be part of a valid datagram (length not a multiple of 8, beyond 65535, inconsistent end).</summary>
    FragmentInvalid,
    /// <summary>An exact duplicate of a fragment already held.</summary>
    FragmentDuplicate,
    /// <summary>A fragment that overlaps another: the whole datagram is discarded (as RFC 5722 decides for IPv6).</summary>
    FragmentOverlap,
    /// <summary>Reassembly memory or slots exhausted.</summary>
    FragmentNoRoom,

    IcmpTooShort,
    IcmpBadChecksum,
    /// <summary>Echo request to a broadcast address (ignored, as Linux's icmp_echo_ignore_broadcasts).</summary>
    IcmpBroadcastEcho,
    /// <summary>An echo reply no echo socket waits for.</summary>
    IcmpNoEchoSocket,
    /// <summary>An ICMP error whose quoted datagram is malformed or was not sent by us.</summary>
    IcmpErrorNotOurs,
    /// <summary>Unknown types are silently discarded (RFC 1122 3.2.2).</summary>
    IcmpUnknownType,
    /// <summary>An echo socket's reply queue was full.</summary>
    IcmpEchoQueueFull,

    UdpMalformed,
    UdpBadChecksum,
    /// <summary>No socket on the destination port (port unreachable sent where allowed).</summary>
    UdpNoPort,
    UdpQueueFull,
    /// <summary>A datagram for a connected socket from another address or port.</summary>
    UdpNotFromPeer,
}

/// <summary>Why a frame or datagram the stack meant to send was dropped.</summary>
public enum TxDrop
{
    /// <summary>The adapter's queue (<see cref="Iface.InterfaceConfig.TransmitQueueCapacity"/>) was full.</summary>
    QueueFull,
    /// <summary>Too many packets wait for the same ARP resolution.</summary>
    ArpQueueFull,
    /// <summary>Too many packets wait for ARP resolutions altogether (<see cref="Iface.ArpConfig.PendingTotal"/>).</summary>
    ArpPendingFull,
    /// <summary>No ARP reply came: the waiting packets were dropped and the transports told.</summary>
    ArpFailed,
    /// <summary>ARP table full of entries that may not be evicted.</summary>
    ArpTableFull,
    /// <summary>The buffer pool was exhausted.</summary>
    NoBuffer,
    NoRoute,
    /// <summary>Larger than the path MTU with DF set.</summary>
    TooBig,
    /// <summary>A transport handed a buffer with too little headroom or an address not ours.</summary>
    BadRequest,
    /// <summary>An ICMP error suppressed by the rate limit.</summary>
    IcmpRateLimited,
    /// <summary>The loopback queue was full.</summary>
    LoopbackFull,
    LinkDown,
}

/// <summary>Event counters of the interface.</summary>
public enum Counter
{
    FramesIn,
    FramesOut,
    BytesIn,
    BytesOut,
    /// <summary>ARP packets processed (requests and replies, for us or not).</summary>
    ArpIn,
    ArpRequestsIn,
    ArpRepliesIn,
    ArpRequestsOut,
    ArpRepliesOut,
    /// <summary>Resolutions that ended without a reply.</summary>
    ArpFailures,
    /// <summary>Gratuitous announcements sent.</summary>
    ArpAnnouncements,
    /// <summary>A reply for our address that answered no request of ours: it confirms and teaches nothing.</summary>
    ArpRefusedUnsolicited,
    /// <summary>Another MAC for an address set or confirmed within <see cref="Iface.ArpConfig.LockTime"/>.</summary>
    ArpRefusedLocked,
    /// <summary>A gratuitous ARP that would have changed the cache, with <see cref="Iface.ArpConfig.AcceptGratuitous"/> off.</summary>
    ArpRefusedGratuitous,
    /// <summary>A changed MAC whose old owner answered the probe sent to check it.</summary>
    ArpRefusedChange,
    /// <summary>Unicast probes of an entry's old MAC started because another MAC claimed its address.</summary>
    ArpChangeProbes,
    /// <summary>Changed MACs taken into the cache (the old owner stayed silent, or a gratuitous ARP was accepted).</summary>
    ArpChangesAccepted,
    IpDatagramsIn,
    IpDatagramsOut,
    /// <summary>Fragments accepted and held for reassembly.</summary>
    IpFragmentsHeld,
    IpFragmentsOut,
    IpReassembled,
    IpReassemblyTimeouts,
    /// <summary>Datagrams under reassembly discarded (overlap, inconsistency, memory).</summary>
    IpReassemblyDiscarded,
    /// <summary>Datagrams sent to our own address and delivered through the loopback queue.</summary>
    IpLoopback,
    /// <summary>ICMP messages consumed (by type: <see cref="CountersSnapshot.IcmpInByType"/>).</summary>
    IcmpIn,
    IcmpOut,
    UdpIn,
    UdpOut,
    /// <summary>Segments handed to the TCP layer (which counts its own drops).</summary>
    TcpIn,
    TcpOut,
    PathMtuDecreases,
}

/// <summary>
/// The interface's counters, written by the layers on the packet path (plain increments:
/// the core is single-threaded) and read through <see cref="Snapshot"/>.
/// </summary>
public sealed class StackCounters
{
    private readonly long[] _counters = new long[Enum.GetValues<Counter>().Length];
    private readonly long[] _rxDrops = new long[Enum.GetValues<RxDrop>().Length];
    private readonly long[] _txDrops = new long[Enum.GetValues<TxDrop>().Length];
    private readonly long[] _icmpIn = new long[256];
    private readonly long[] _icmpOut = new long[256];

    internal void Add(Counter c, long n = 1) => _counters[(int)c] += n;
    internal void Drop(RxDrop r) => _rxDrops[(int)r]++;
    internal void Drop(TxDrop r) => _txDrops[(int)r]++;

    internal void IcmpIn(byte type)
    {
        _counters[(int)Counter.IcmpIn]++;
        _icmpIn[type]++;
    }

    internal void IcmpOut(byte type)
    {
        _counters[(int)Counter.IcmpOut]++;
        _icmpOut[type]++;
    }

    public long this[Counter c] => _counters[(int)c];
    public long this[RxDrop r] => _rxDrops[(int)r];
    public long this[TxDrop r] => _txDrops[(int)r];

    /// <summary>A copy of every counter at this moment, for the server to show.</summary>
    public CountersSnapshot Snapshot() =>
        new((long[])_counters.Clone(), (long[])_rxDrops.Clone(), (long[])_txDrops.Clone(), (long[])_icmpIn.Clone(), (long[])_icmpOut.Clone());
}

/// <summary>A frozen copy of <see cref="StackCounters"/>.</summary>
public sealed class CountersSnapshot
{
    private readonly long[] _counters, _rxDrops, _txDrops, _icmpIn, _icmpOut;

    internal CountersSnapshot(long[] counters, long[] rxDrops, long[] txDrops, long[] icmpIn, long[] icmpOut)
    {
        _counters = counters;
        _rxDrops = rxDrops;
        _txDrops = txDrops;
        _icmpIn = icmpIn;
        _icmpOut = icmpOut;
    }

    public long this[Counter c] => _counters[(int)c];
    public long this[RxDrop r] => _rxDrops[(int)r];
    public long this[TxDrop r] => _txDrops[(int)r];

    public long IcmpInByType(byte type) => _icmpIn[type];
    public long IcmpOutByType(byte type) => _icmpOut[type];

    public long RxDropsTotal => _rxDrops.Sum();
    public long TxDropsTotal => _txDrops.Sum();

    /// <summary>Checksum failures of every layer below TCP (IPv4 header, ICMP, UDP).</summary>
    public long ChecksumFailures => this[RxDrop.IpBadChecksum] + this[RxDrop.IcmpBadChecksum] + this[RxDrop.UdpBadChecksum];

    /// <summary>
    /// True when every input is accounted for: frames in, plus datagrams that reassembly
    /// or the loopback produced, equal the drops plus what each protocol consumed.
    /// </summary>
    public bool ReceiveAccountingBalances =>
        this[Counter.FramesIn] + this[Counter.IpReassembled] + this[Counter.IpLoopback]
        == RxDropsTotal + this[Counter.ArpIn] + this[Counter.IcmpIn] + this[Counter.UdpIn] + this[Counter.TcpIn] + this[Counter.IpFragmentsHeld];

    /// <summary>Every non-zero counter as (name, value), for display.</summary>
    public IEnumerable<(string Name, long Value)> NonZero()
    {
        foreach (var c in Enum.GetValues<Counter>()) if (this[c] != 0) yield return (c.ToString(), this[c]);
        foreach (var r in Enum.GetValues<RxDrop>()) if (this[r] != 0) yield return ("RxDrop." + r, this[r]);
        foreach (var r in Enum.GetValues<TxDrop>()) if (this[r] != 0) yield return ("TxDrop." + r, this[r]);
        for (int t = 0; t < 256; t++) if (_icmpIn[t] != 0) yield return ($"IcmpIn.Type{t}", _icmpIn[t]);
        for (int t = 0; t < 256; t++) if (_icmpOut[t] != 0) yield return ($"IcmpOut.Type{t}", _icmpOut[t]);
    }

    public override string ToString() => string.Join(", ", NonZero().Select(p => $"{p.Name}={p.Value}"));
}
