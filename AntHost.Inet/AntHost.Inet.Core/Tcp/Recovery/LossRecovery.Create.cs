using AntHost.Inet.Core.Tcp.Congestion;

namespace AntHost.Inet.Core.Tcp.Recovery;

public sealed partial class LossRecovery
{
    /// <summary>Makes the loss recovery of a new connection, with the congestion control <paramref name="kind"/>.</summary>
    /// <param name="kind">NewReno (RFC 5681 + RFC 6582) or CUBIC (RFC 9438).</param>
    /// <param name="smss">The sender MSS (payload bytes per full segment).</param>
    /// <param name="initialWindowSegments">Initial window in segments (RFC 6928: 10); 0 or less for RFC 5681 3.1's.</param>
    /// <param name="sackPermitted">Both sides sent SACK-permitted.</param>
    /// <param name="iss">The connection's initial send sequence number.</param>
    public static LossRecovery Create(CongestionControlKind kind, int smss, int initialWindowSegments, bool sackPermitted, SeqNumber iss) =>
        new(kind switch
        {
            CongestionControlKind.NewReno => new NewRenoCongestionControl(smss, initialWindowSegments),
            CongestionControlKind.Cubic => new CubicCongestionControl(smss, initialWindowSegments),
            _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "unknown congestion control"),
        }, sackPermitted, iss);
}
