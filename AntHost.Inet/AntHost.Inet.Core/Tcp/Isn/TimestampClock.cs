using AntHost.Inet.Core.Time;

namespace AntHost.Inet.Core.Tcp.Isn;

/// <summary>
/// The RFC 7323 timestamp clock: TSval = milliseconds of <c>now</c> + a per-connection offset
/// (<see cref="IsnGenerator.TimestampOffset"/>), and the RTT measurement (RTTM, RFC 7323 4)
/// from an echoed TSecr.
/// </summary>
/// <remarks>
/// One tick per millisecond: RFC 7323 5.4 asks for a clock "between 1 ms and 1 sec per tick";
/// 1 ms gives RTT samples with the granularity the RTO estimator assumes (G = 1 ms) and wraps
/// its sign bit only after 24.8 days, beyond any PAWS window. The clock is a pure function of
/// <c>now</c> (the core reads no clock), so it is monotonic whenever <c>now</c> is.
///
/// The engine calls <see cref="TsVal"/> for every segment it sends with the timestamps option
/// (SYN and SYN-ACK when offering it, every segment once negotiated), and
/// <see cref="RttFromEcho"/> for an ACK that advances SND.UNA and carries a non-zero TSecr;
/// the RTT goes to <see cref="Recovery.RtoEstimator.AddSample"/>.
/// </remarks>
public static class TimestampClock
{
    /// <summary>The clock's granularity (RFC 6298's G for RTTM samples).</summary>
    public static readonly TimeSpan Granularity = TimeSpan.FromMilliseconds(1);

    /// <summary>Ticks per second (RFC 7323 5.5: PAWS's 24-day limit is computed from it).</summary>
    public const int TicksPerSecond = 1000;

    /// <summary>TSval to send at <paramref name="now"/> on a connection with <paramref name="offset"/>.</summary>
    public static uint TsVal(Instant now, uint offset) => unchecked((uint)(now.Microseconds / 1000) + offset);

    /// <summary>
    /// The RTT an echoed <paramref name="tsEcr"/> measures at <paramref name="now"/> (RFC 7323 4.1),
    /// or null when the echo is from the future or implausibly old (more than 2^31 ticks: a
    /// bogus echo, which must not poison the estimator).
    /// </summary>
    public static TimeSpan? RttFromEcho(uint tsEcr, Instant now, uint offset)
    {
        int ticks = unchecked((int)(TsVal(now, offset) - tsEcr));
        if (ticks < 0) return null;
        return TimeSpan.FromMilliseconds(ticks);
    }

    /// <summary>RFC 7323 5.3 / 5.5's comparison: true when <paramref name="a"/> is older than <paramref name="b"/> modulo 2^32.</summary>
    public static bool IsBefore(uint a, uint b) => unchecked((int)(a - b)) < 0;
}
