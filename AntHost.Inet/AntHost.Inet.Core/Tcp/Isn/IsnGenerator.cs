using System.Buffers.Binary;
using AntHost.Inet.Core.Randomness;
using AntHost.Inet.Core.Time;
using AntHost.Inet.Core.Wire;

namespace AntHost.Inet.Core.Tcp.Isn;

/// <summary>
/// Initial sequence numbers per RFC 6528, and per-connection timestamp offsets per RFC 7323
/// section 5.4, both from keyed hashes of the connection's 4-tuple.
/// </summary>
/// <remarks>
/// RFC 6528 section 3: ISN = M + F(localip, localport, remoteip, remoteport, secretkey), where
/// M is a timer that ticks every 4 microseconds and F a keyed pseudo-random function. F here is
/// SipHash-2-4 with a 128-bit secret drawn once from the injected <see cref="IRandomSource"/>
/// (so a simulation replays exactly; the server passes the system CSPRNG). Successive
/// connections of one 4-tuple thus get increasing ISNs (the old-duplicate protection of RFC
/// 9293 3.4.1), while an off-path attacker, not knowing the key, cannot predict another
/// 4-tuple's. The secret never changes during the layer's life; RFC 6528 allows re-keying but
/// it would break that monotonicity.
///
/// The timestamp offset uses a second, independent key (so it reveals nothing about the ISN
/// hash): TSval = the 1 ms clock + offset, which hides the host's uptime and makes TSvals of
/// different connections unrelated (RFC 7323 5.4, 7.1), while one 4-tuple keeps the same
/// offset across incarnations, so TIME-WAIT's timestamps check (RFC 6191) stays meaningful.
///
/// The layer makes one generator (its key lives as long as the layer). A connection calls
/// <see cref="Generate"/> and <see cref="TimestampOffset"/> once, when its 4-tuple is known:
/// at an active open before the SYN, and for a passive open when the SYN arrives, before the
/// SYN-ACK.
/// </remarks>
public sealed class IsnGenerator
{
    private readonly SipHash _isnKey;
    private readonly SipHash _tsKey;

    public IsnGenerator(IRandomSource random)
    {
        ArgumentNullException.ThrowIfNull(random);
        Span<byte> key = stackalloc byte[16];
        random.NextBytes(key);
        _isnKey = new SipHash(key);
        random.NextBytes(key);
        _tsKey = new SipHash(key);
        key.Clear();
    }

    /// <summary>RFC 6528's M: <paramref name="now"/> in units of 4 microseconds, modulo 2^32.</summary>
    public static uint ClockComponent(Instant now) => unchecked((uint)(now.Microseconds >> 2));

    /// <summary>RFC 6528's F: the keyed hash of the 4-tuple (the part of the ISN the clock does not give).</summary>
    public uint HashComponent(Ipv4Address localAddress, ushort localPort, Ipv4Address remoteAddress, ushort remotePort) =>
        unchecked((uint)Hash(_isnKey, localAddress, localPort, remoteAddress, remotePort));

    /// <summary>The ISN for a new connection on this 4-tuple at <paramref name="now"/>: M + F (RFC 6528 3).</summary>
    public SeqNumber Generate(Ipv4Address localAddress, ushort localPort, Ipv4Address remoteAddress, ushort remotePort, Instant now) =>
        new(unchecked(ClockComponent(now) + HashComponent(localAddress, localPort, remoteAddress, remotePort)));

    /// <summary>The offset added to the timestamp clock for this 4-tuple's TSvals (RFC 7323 5.4).</summary>
    public uint TimestampOffset(Ipv4Address localAddress, ushort localPort, Ipv4Address remoteAddress, ushort remotePort) =>
        unchecked((uint)Hash(_tsKey, localAddress, localPort, remoteAddress, remotePort));

    private static ulong Hash(in SipHash key, Ipv4Address la, ushort lp, Ipv4Address ra, ushort rp)
    {
        Span<byte> tuple = stackalloc byte[12];
        BinaryPrimitives.WriteUInt32BigEndian(tuple, la.Value);
        BinaryPrimitives.WriteUInt16BigEndian(tuple[4..], lp);
        BinaryPrimitives.WriteUInt32BigEndian(tuple[6..], ra.Value);
        BinaryPrimitives.WriteUInt16BigEndian(tuple[10..], rp);
        return key.Hash(tuple);
    }
}
