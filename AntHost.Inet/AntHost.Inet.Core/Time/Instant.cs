namespace AntHost.Inet.Core.Time;

/// <summary>
/// A point in time, in microseconds since an arbitrary epoch chosen by the caller.
/// The protocol core never reads a clock: the process shell (or a test's virtual
/// clock) passes <c>now</c> in, and the core answers with its next deadline.
/// </summary>
public readonly record struct Instant(long Microseconds) : IComparable<Instant>
{
    public static Instant Zero => default;

    /// <summary>The latest representable instant: "no deadline".</summary>
    public static Instant MaxValue => new(long.MaxValue);

    public static Instant FromMilliseconds(long ms) => new(ms * 1000);

    public long Milliseconds => Microseconds / 1000;

    public int CompareTo(Instant other) => Microseconds.CompareTo(other.Microseconds);

    public static Instant operator +(Instant a, TimeSpan d) => new(a.Microseconds + d.Ticks / TimeSpan.TicksPerMicrosecond);
    public static Instant operator -(Instant a, TimeSpan d) => new(a.Microseconds - d.Ticks / TimeSpan.TicksPerMicrosecond);
    public static TimeSpan operator -(Instant a, Instant b) => TimeSpan.FromTicks((a.Microseconds - b.Microseconds) * TimeSpan.TicksPerMicrosecond);
    public static bool operator <(Instant a, Instant b) => a.Microseconds < b.Microseconds;
    public static bool operator >(Instant a, Instant b) => a.Microseconds > b.Microseconds;
    public static bool operator <=(Instant a, Instant b) => a.Microseconds <= b.Microseconds;
    public static bool operator >=(Instant a, Instant b) => a.Microseconds >= b.Microseconds;

    public static Instant Min(Instant a, Instant b) => a <= b ? a : b;

    /// <summary>The earlier of two optional deadlines (null means none).</summary>
    public static Instant? Earliest(Instant? a, Instant? b) =>
        a is null ? b : b is null ? a : Min(a.Value, b.Value);

    public override string ToString() => $"{Microseconds / 1_000_000}.{Microseconds % 1_000_000:D6}s";
}
