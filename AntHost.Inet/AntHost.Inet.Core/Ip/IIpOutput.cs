using AntHost.Inet.Core.Buffers;
using AntHost.Inet.Core.Wire;

namespace AntHost.Inet.Core.Ip;

/// <summary>IP protocol numbers the stack knows (RFC 790 / IANA).</summary>
public enum IpProtocol : byte
{
    Icmp = 1,
    Tcp = 6,
    Udp = 17,
}

/// <summary>The outcome of handing a transport segment to the IP layer.</summary>
public enum IpSendStatus
{
    /// <summary>Framed and queued for the adapter.</summary>
    Sent,
    /// <summary>Held until ARP resolves the next hop; it is sent or dropped later.</summary>
    AwaitingResolution,
    /// <summary>No route to the destination; the packet was given back (released or its lend ended).</summary>
    NoRoute,
    /// <summary>Dropped (a full resolution queue, no buffer, link down); counted.</summary>
    Dropped,
}

/// <summary>Per-packet options a transport may set.</summary>
public readonly record struct IpSendOptions(byte Ttl = 64, byte Tos = 0, bool DontFragment = true)
{
    /// <summary>
    /// The defaults (TTL 64, DF set). Declared because a struct's <c>new()</c> would otherwise
    /// zero every field (TTL 0, DF clear) instead of taking the primary constructor's defaults.
    /// </summary>
    public IpSendOptions() : this(64, 0, true) { }
}

/// <summary>
/// The seam between the transports (TCP, UDP, ICMP) and IPv4. A transport writes its
/// own header with <see cref="PacketBuffer.Prepend"/> in front of its payload, leaving
/// at least <see cref="HeaderRoom"/> bytes in front for IPv4 and Ethernet, and hands
/// the buffer here; the IP layer writes its header in place, resolves the next hop
/// and queues the frame for the adapter.
/// </summary>
/// <remarks>
/// Ownership: a buffer that is not lent passes to the IP layer. A transport that
/// keeps the buffer (TCP's unacknowledged data) calls <see cref="PacketBuffer.Lend"/>
/// before sending; the lend ends when the frame has left or was dropped, whatever the
/// returned status. A transport never writes into a buffer while it is lent.
/// </remarks>
public interface IIpOutput
{
    /// <summary>Bytes every transport leaves in front of its header: Ethernet II (14) + IPv4 without options (20).</summary>
    const int HeaderRoom = 14 + 20;

    /// <summary>The largest IPv4 datagram towards <paramref name="destination"/> (path MTU: the link MTU, lowered by ICMP fragmentation-needed).</summary>
    int PathMtu(Ipv4Address destination);

    /// <summary>The local address to send from towards <paramref name="destination"/>, or <see cref="Ipv4Address.Any"/> when there is no route.</summary>
    Ipv4Address SourceFor(Ipv4Address destination);

    /// <summary>True when <paramref name="address"/> is one of this interface's own (unicast) addresses.</summary>
    bool IsLocal(Ipv4Address address);

    /// <summary>Sends a transport segment whose <see cref="PacketBuffer.Data"/> is the transport header and payload.</summary>
    IpSendStatus Send(Ipv4Address source, Ipv4Address destination, IpProtocol protocol, PacketBuffer packet, in IpSendOptions options, Time.Instant now);
}

/// <summary>The kind of an ICMP error as it concerns a transport (RFC 1122 4.2.3.9, RFC 5927).</summary>
public enum IcmpErrorKind
{
    /// <summary>Net, host or protocol unreachable, or admin-prohibited: soft for TCP in a synchronised state, hard in SYN-SENT.</summary>
    Unreachable,
    /// <summary>Port unreachable: hard (RFC 1122 4.2.3.9).</summary>
    PortUnreachable,
    /// <summary>Fragmentation needed and DF set: the path MTU is <see cref="IcmpError.NextHopMtu"/>.</summary>
    FragmentationNeeded,
    /// <summary>Time exceeded, parameter problem: soft.</summary>
    Soft,
}

/// <summary>
/// An ICMP error delivered to a transport, with the addresses and the first 8 bytes of
/// the transport header of the datagram that caused it (enough for the ports and, for
/// TCP, the sequence number, which a transport checks before believing it: RFC 5927).
/// </summary>
public readonly record struct IcmpError(
    IcmpErrorKind Kind,
    byte Type,
    byte Code,
    Ipv4Address LocalAddress,
    Ipv4Address RemoteAddress,
    ushort LocalPort,
    ushort RemotePort,
    uint TcpSequence,
    int NextHopMtu);
