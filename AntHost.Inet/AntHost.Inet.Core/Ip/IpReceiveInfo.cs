using AntHost.Inet.Core.Wire;

namespace AntHost.Inet.Core.Ip;

/// <summary>
/// What the IPv4 layer tells a protocol about a received datagram besides its payload:
/// the addresses, and where the IP header still sits in the buffer (in front of the
/// payload, trimmed but not overwritten) so that an ICMP error can quote the datagram
/// without a copy having been kept.
/// </summary>
internal readonly record struct IpReceiveInfo(
    Ipv4Address Source,
    Ipv4Address Destination,
    byte Protocol,
    int HeaderStart,
    int HeaderLength,
    int TotalLength,
    bool IsBroadcast)
{
    /// <summary>Sets the buffer's data back to the whole IP datagram (header included).</summary>
    public void Restore(Buffers.PacketBuffer buffer) => buffer.SetData(HeaderStart, TotalLength);
}
