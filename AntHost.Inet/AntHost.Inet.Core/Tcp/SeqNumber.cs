namespace AntHost.Inet.Core.Tcp;

/// <summary>
/// A TCP sequence number: 32-bit, wrapping, compared modulo 2^32 (RFC 9293 3.4).
/// There is no &lt; on purpose: a comparison only means something within half the
/// sequence space, and <see cref="IsBefore"/> / <see cref="IsAfter"/> say so.
/// </summary>
public readonly record struct SeqNumber(uint Value)
{
    /// <summary>True when this number comes strictly before <paramref name="other"/>.</summary>
    public bool IsBefore(SeqNumber other) => (int)(Value - other.Value) < 0;

    /// <summary>True when this number comes strictly after <paramref name="other"/>.</summary>
    public bool IsAfter(SeqNumber other) => (int)(Value - other.Value) > 0;

    public bool IsBeforeOrEqual(SeqNumber other) => (int)(Value - other.Value) <= 0;

    public bool IsAfterOrEqual(SeqNumber other) => (int)(Value - other.Value) >= 0;

    /// <summary>True when <paramref name="start"/> &lt;= this &lt; <paramref name="end"/>, modulo 2^32.</summary>
    public bool IsInRange(SeqNumber start, SeqNumber end) => Value - start.Value < end.Value - start.Value;

    public static SeqNumber operator +(SeqNumber s, int n) => new(unchecked(s.Value + (uint)n));

    public static SeqNumber operator +(SeqNumber s, uint n) => new(unchecked(s.Value + n));

    public static SeqNumber operator -(SeqNumber s, int n) => new(unchecked(s.Value - (uint)n));

    /// <summary>The signed distance from <paramref name="b"/> to <paramref name="a"/>.</summary>
    public static int operator -(SeqNumber a, SeqNumber b) => unchecked((int)(a.Value - b.Value));

    public static SeqNumber Max(SeqNumber a, SeqNumber b) => a.IsAfter(b) ? a : b;

    public static SeqNumber Min(SeqNumber a, SeqNumber b) => a.IsBefore(b) ? a : b;

    public override string ToString() => Value.ToString(System.Globalization.CultureInfo.InvariantCulture);
}
