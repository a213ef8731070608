using AntHost.Inet.Core.Buffers;
using AntHost.Inet.Core.Ip;
using AntHost.Inet.Core.Time;
using AntHost.Inet.Core.Wire;

namespace AntHost.Inet.Core.Icmp;

/// <summary>
/// What came back for an echo request: a reply (<see cref="Type"/> = EchoReply, with the
/// payload) or an ICMP error that quotes the request (destination unreachable, time
/// exceeded..., or a local ARP failure as host unreachable; no payload).
/// </summary>
/// <param name="Payload">The reply's data (the echoed bytes, zero-copy), owned by the receiver, who releases it; null for an error.</param>
/// <param name="ReceivedAt">The <c>now</c> it arrived at, for round-trip times.</param>
public readonly record struct IcmpEchoReply(
    Ipv4Address Source,
    ushort Identifier,
    ushort Sequence,
    IcmpType Type,
    byte Code,
    PacketBuffer? Payload,
    Instant ReceivedAt)
{
    public bool IsError => Type != IcmpType.EchoReply;
}

/// <summary>
/// An ICMP echo endpoint (what a ping program needs): sends echo requests with its
/// identifier and queues what comes back (bounded; when full, replies are dropped and counted).
/// </summary>
public sealed class IcmpEchoSocket : IDisposable
{
    private readonly IcmpLayer _layer;
    private readonly IcmpEchoReply[] _queue;
    private int _head, _count;

    internal IcmpEchoSocket(IcmpLayer layer, ushort identifier, int capacity)
    {
        _layer = layer;
        Identifier = identifier;
        _queue = new IcmpEchoReply[Math.Max(1, capacity)];
    }

    public ushort Identifier { get; }

    public bool IsClosed { get; private set; }

    /// <summary>True when <see cref="TryReceive"/> has something.</summary>
    public bool IsReadable => _count > 0;

    internal int QueuedCount => _count;

    /// <summary>Sends an echo request carrying <paramref name="payload"/> to <paramref name="destination"/>.</summary>
    public IpSendStatus Send(Ipv4Address destination, ushort sequence, ReadOnlySpan<byte> payload, Instant now)
    {
        ObjectDisposedException.ThrowIf(IsClosed, this);
        if (payload.Length > Ipv4Packet.MaxTotalLength - Ipv4Packet.MinHeaderLength - IcmpPacket.HeaderLength)
            throw new ArgumentOutOfRangeException(nameof(payload), "an echo payload is at most 65507 bytes");
        return _layer.SendEcho(Identifier, destination, sequence, payload, now);
    }

    /// <summary>The oldest reply or error; the caller owns (and releases) its payload.</summary>
    public bool TryReceive(out IcmpEchoReply reply)
    {
        if (_count == 0)
        {
            reply = default;
            return false;
        }
        reply = _queue[_head];
        _queue[_head] = default;
        _head = (_head + 1) % _queue.Length;
        _count--;
        return true;
    }

    internal bool Enqueue(in IcmpEchoReply reply)
    {
        if (IsClosed || _count == _queue.Length) return false;
        _queue[(_head + _count) % _queue.Length] = reply;
        _count++;
        return true;
    }

    /// <summary>Closes the socket; queued payloads are released.</summary>
    public void Dispose()
    {
        if (IsClosed) return;
        while (TryReceive(out var r)) r.Payload?.Release();
        IsClosed = true;
        _layer.Remove(this);
    }
}
