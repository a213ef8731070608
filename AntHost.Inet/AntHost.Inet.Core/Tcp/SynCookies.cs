using System.Buffers.Binary;
using AntHost.Inet.Core.Randomness;
using AntHost.Inet.Core.Tcp.Isn;
using AntHost.Inet.Core.Time;
using AntHost.Inet.Core.Wire;

namespace AntHost.Inet.Core.Tcp;

/// <summary>
/// SYN cookies (RFC 4987 3.6): when a listener's SYN queue is full, the SYN-ACK's sequence
/// number carries, authenticated, what the connection needs to be rebuilt from the ACK that
/// answers it, and nothing is kept.
/// </summary>
/// <remarks>
/// The cookie (our ISS), as Linux lays out its own (net/ipv4/syncookies.c), in a simpler form:
/// <code>
///  31                                  3   2   1  0
/// +--------------------------------------+---+------+
/// | SipHash-2-4(key, 4-tuple, peer ISN)  | g | MSS  |
/// |            top 29 bits               |   | index|
/// +--------------------------------------+---+------+
/// </code>
/// MSS index: Linux's table for IPv4, {536, 1300, 1440, 1460}; the peer's MSS is rounded down
/// to the nearest entry (below 536, 536 as Linux does). g: the parity of the key's period. The
/// key is 128 bits from the injected <see cref="IRandomSource"/>, a new one every
/// <see cref="KeyLifetime"/> (drawn when first needed in a period); a cookie is checked with
/// the key of its period, the current or the one before, so it is good for one to two key
/// lifetimes, then refused. The hash covers the peer's ISN (the ACK's SEG.SEQ - 1), so a cookie
/// fits only the SYN it answered; a forged ACK passes with a chance of 2^-29.
///
/// Options (RFC 7323, RFC 2018) do not fit in 32 bits; as Linux does, they ride in the low
/// <see cref="TimestampBits"/> bits of the SYN-ACK's TSval, which the peer echoes in the
/// ACK's TSecr: bits 0-3 the peer's window scale (15: none), bit 4 SACK-permitted, bit 5 unused
/// (Linux's ECN; this stack has none). The TSval is the timestamp clock with those bits
/// replaced, moved back by 64 ticks when that would put it ahead of the clock, so the
/// connection's later TSvals never go backwards. These bits are not authenticated (Linux's
/// are not either): a forger can only choose the options of a connection it could open anyway.
/// Without timestamps nothing can carry them: the cookie SYN-ACK then offers neither window
/// scaling nor SACK, and the connection runs without both.
///
/// What a cookie connection loses: the peer's MSS is rounded down to the table; without
/// timestamps, window scaling and SACK; the peer's SYN window (the ACK's, scaled, is used);
/// data on the SYN; retransmission of the SYN-ACK (none is kept to retransmit: a lost SYN-ACK
/// is the peer's SYN timeout, as a lost SYN would be); its first RTT sample is up to 63 ms
/// long (the TSval it measures from was moved back). Pure: time comes in as <c>now</c>.
/// </remarks>
internal sealed class SynCookies
{
    /// <summary>How long a key is the current one; a cookie is refused one to two lifetimes after it was made.</summary>
    public static readonly TimeSpan KeyLifetime = TimeSpan.FromSeconds(64);

    /// <summary>Low bits of the SYN-ACK's TSval that carry the peer's window scale and SACK-permitted.</summary>
    public const int TimestampBits = 6;

    private const uint TimestampMask = (1u << TimestampBits) - 1;
    private const uint NoWindowScale = 0xF;
    private const uint SackBit = 1u << 4;
    private const uint MssIndexMask = 3;
    private const uint PeriodBit = 4;
    private const uint MacMask = ~7u;

    /// <summary>net/ipv4/syncookies.c's msstab: the MSS values a cookie can carry.</summary>
    private static ReadOnlySpan<ushort> MssTable => [536, 1300, 1440, 1460];

    private readonly IRandomSource _random;
    private readonly long _lifetimeUs = KeyLifetime.Ticks / TimeSpan.TicksPerMicrosecond;
    private SipHash _current;
    private SipHash _previous;
    private long _period = long.MinValue;   // the period the current key belongs to
    private bool _hasPrevious;

    public SynCookies(IRandomSource random) => _random = random;

    /// <summary>The cookie for a SYN from (remote, remotePort) with ISN <paramref name="peerIsn"/> and MSS <paramref name="peerMss"/>; <paramref name="mss"/> is the MSS it carries.</summary>
    public SeqNumber Make(Ipv4Address local, ushort localPort, Ipv4Address remote, ushort remotePort, SeqNumber peerIsn, int peerMss, Instant now, out int mss)
    {
        Rotate(now);
        uint index = (uint)MssTable.Length - 1;
        while (index > 0 && peerMss < MssTable[(int)index]) index--;
        mss = MssTable[(int)index];
        uint mac = Mac(in _current, local, localPort, remote, remotePort, peerIsn);
        uint period = (_period & 1) != 0 ? PeriodBit : 0;
        return new SeqNumber((mac & MacMask) | period | index);
    }

    /// <summary>True when <paramref name="cookie"/> (SEG.ACK - 1) is one this layer made recently for that SYN; <paramref name="mss"/> is the MSS it carries.</summary>
    public bool Check(Ipv4Address local, ushort localPort, Ipv4Address remote, ushort remotePort, SeqNumber peerIsn, SeqNumber cookie, Instant now, out int mss)
    {
        Rotate(now);
        mss = 0;
        uint v = cookie.Value;
        bool currentParity = ((v & PeriodBit) != 0) == ((_period & 1) != 0);
        if (!currentParity && !_hasPrevious) return false;
        uint mac = currentParity ? Mac(in _current, local, localPort, remote, remotePort, peerIsn) : Mac(in _previous, local, localPort, remote, remotePort, peerIsn);
        if (((mac ^ v) & MacMask) != 0) return false;
        mss = MssTable[(int)(v & MssIndexMask)];
        return true;
    }

    /// <summary>The SYN-ACK's TSval: the clock's <paramref name="tsVal"/> with the options in its low bits, never ahead of it.</summary>
    public static uint EncodeTsVal(uint tsVal, byte? peerWindowScale, bool peerSack)
    {
        uint options = (peerWindowScale is { } ws ? Math.Min(ws, TcpOptions.MaxWindowScale) : NoWindowScale) | (peerSack ? SackBit : 0);
        uint ts = (tsVal & ~TimestampMask) | options;
        if (TimestampClock.IsBefore(tsVal, ts)) ts = unchecked(ts - (1u << TimestampBits));
        return ts;
    }

    /// <summary>The options a cookie ACK's TSecr carries back (see <see cref="EncodeTsVal"/>).</summary>
    public static void DecodeTsEcr(uint tsEcr, out byte? peerWindowScale, out bool peerSack)
    {
        uint ws = tsEcr & 0xF;
        peerWindowScale = ws == NoWindowScale ? null : (byte)ws;
        peerSack = (tsEcr & SackBit) != 0;
    }

    /// <summary>Keys change with the period of <paramref name="now"/>: the one just ended stays for checking, an older one goes.</summary>
    private void Rotate(Instant now)
    {
        long period = Math.DivRem(now.Microseconds, _lifetimeUs, out long rem);
        if (rem < 0) period--;
        if (period == _period) return;
        _hasPrevious = period == _period + 1;
        _previous = _current;
        Span<byte> key = stackalloc byte[16];
        _random.NextBytes(key);
        _current = new SipHash(key);
        key.Clear();
        _period = period;
    }

    private static uint Mac(in SipHash key, Ipv4Address local, ushort localPort, Ipv4Address remote, ushort remotePort, SeqNumber peerIsn)
    {
        Span<byte> input = stackalloc byte[16];
        BinaryPrimitives.WriteUInt32BigEndian(input, local.Value);
        BinaryPrimitives.WriteUInt16BigEndian(input[4..], localPort);
        BinaryPrimitives.WriteUInt32BigEndian(input[6..], remote.Value);
        BinaryPrimitives.WriteUInt16BigEndian(input[10..], remotePort);
        BinaryPrimitives.WriteUInt32BigEndian(input[12..], peerIsn.Value);
        return unchecked((uint)key.Hash(input));
    }
}
