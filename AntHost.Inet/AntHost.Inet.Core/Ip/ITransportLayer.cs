using AntHost.Inet.Core.Buffers;
using AntHost.Inet.Core.Time;
using AntHost.Inet.Core.Wire;

namespace AntHost.Inet.Core.Ip;

/// <summary>
/// What the IPv4 layer calls on a transport that has its own timers (TCP): every
/// segment for it, every ICMP error that concerns it, and its poll.
/// </summary>
public interface ITransportLayer
{
    /// <summary>
    /// A received segment: <paramref name="segment"/>'s data is the transport header and
    /// payload (the IPv4 header already validated and trimmed). Ownership passes in.
    /// </summary>
    void Receive(Ipv4Address source, Ipv4Address destination, PacketBuffer segment, Instant now);

    /// <summary>An ICMP error whose quoted datagram was one of this transport's.</summary>
    void ReceiveIcmpError(in IcmpError error, Instant now);

    /// <summary>Runs whatever is due at <paramref name="now"/> (retransmissions, delayed ACKs, keepalives, TIME-WAIT).</summary>
    void Poll(Instant now);

    /// <summary>The next instant <see cref="Poll"/> has something to do, or null for none.</summary>
    Instant? PollAt { get; }

    /// <summary>
    /// Several segments arrive together (a driver's batch): until <see cref="EndReceiveBatch"/>
    /// the transport may hold back what in-order segments would make it send, and send it
    /// once, for all of them.
    /// </summary>
    void BeginReceiveBatch() { }

    /// <summary>The batch is over: sends what was held back.</summary>
    void EndReceiveBatch(Instant now) { }
}
