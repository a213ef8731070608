using AntHost.Inet.Core.Time;

namespace AntHost.Inet.Core.Tcp.Congestion;

/// <summary>
/// A congestion-window algorithm (RFC 5681's Reno/NewReno, or RFC 9438's CUBIC): it owns
/// cwnd and ssthresh and decides how they grow on ACKs and shrink on loss. It does not
/// decide <em>what</em> to retransmit or when loss has happened: that is
/// <see cref="Recovery.LossRecovery"/>'s job (RFC 6675 with SACK, RFC 5681/6582 without),
/// which calls this interface. The engine normally talks to <see cref="Recovery.LossRecovery"/>
/// only and reads <see cref="Cwnd"/>/<see cref="Ssthresh"/> for statistics.
/// </summary>
/// <remarks>
/// Units are bytes, as in RFC 5681. Calls, all with <c>now</c> passed in:
/// <list type="bullet">
/// <item><see cref="OnAck"/>: an ACK advanced SND.UNA by <c>bytesAcked</c> while not in loss
/// recovery (slow start or congestion avoidance).</item>
/// <item><see cref="OnCongestionEvent"/>: loss detected by duplicate ACKs or SACK (entering fast
/// recovery): ssthresh and cwnd drop once per window of data.</item>
/// <item><see cref="OnRecoveryEnd"/>: a full ACK ended fast recovery.</item>
/// <item><see cref="OnRetransmitTimeout"/>: the retransmission timer expired (first expiry of a
/// series: RFC 5681 3.1 eq. 4 says ssthresh must not be reduced again on the backed-off
/// expiries of the same segment, and <see cref="Recovery.LossRecovery"/> takes care of that).</item>
/// <item><see cref="OnRestartAfterIdle"/>: the sender sends after an idle period longer than an RTO (RFC 5681 4.1).</item>
/// <item><see cref="SetMss"/>: the SMSS changed (path MTU).</item>
/// </list>
/// </remarks>
public interface ICongestionControl
{
    /// <summary>The algorithm's name ("newreno", "cubic").</summary>
    string Name { get; }

    /// <summary>Sender maximum segment size in bytes (RFC 5681's SMSS).</summary>
    int Smss { get; }

    /// <summary>The congestion window, in bytes (never below one SMSS).</summary>
    int Cwnd { get; }

    /// <summary>The slow-start threshold, in bytes (<see cref="int.MaxValue"/> until the first loss: RFC 5681 3.1 "arbitrarily high").</summary>
    int Ssthresh { get; }

    /// <summary>True while cwnd &lt; ssthresh (RFC 5681 3.1).</summary>
    bool InSlowStart { get; }

    /// <summary>
    /// New data was cumulatively acknowledged outside loss recovery. <paramref name="rtt"/> is
    /// the current smoothed RTT (zero when there is no estimate yet); CUBIC uses it.
    /// </summary>
    void OnAck(int bytesAcked, TimeSpan rtt, Instant now);

    /// <summary>
    /// Loss was detected by duplicate ACKs or SACK and fast recovery begins
    /// (RFC 5681 3.2 step 2 / RFC 6675 4.2 / RFC 9438 4.6): sets ssthresh and cwnd = ssthresh.
    /// <paramref name="flightSize"/> is SND.MAX - SND.UNA.
    /// </summary>
    void OnCongestionEvent(int flightSize, Instant now);

    /// <summary>
    /// A full ACK ended fast recovery (RFC 6582 3.2 step 3: cwnd = min(ssthresh, max(FlightSize, SMSS) + SMSS)).
    /// <paramref name="flightSize"/> is the data still outstanding after the ACK.
    /// </summary>
    void OnRecoveryEnd(int flightSize, Instant now);

    /// <summary>
    /// The retransmission timer expired for the first time on this data (RFC 5681 3.1 eq. 4,
    /// RFC 9438 4.8): ssthresh drops and cwnd becomes the loss window (one SMSS).
    /// </summary>
    void OnRetransmitTimeout(int flightSize, Instant now);

    /// <summary>The sender has been idle longer than an RTO: cwnd = min(RW, cwnd) (RFC 5681 4.1).</summary>
    void OnRestartAfterIdle(Instant now);

    /// <summary>The SMSS changed (MSS negotiated or lowered by path MTU discovery). cwnd keeps its size in segments.</summary>
    void SetMss(int smss);

    /// <summary>
    /// A reduction (<see cref="OnCongestionEvent"/> or <see cref="OnRetransmitTimeout"/>) is
    /// about to happen: remember the state it changes, for <see cref="Undo"/>.
    /// </summary>
    void SaveForUndo();

    /// <summary>
    /// The last reduction was spurious (RFC 3522, RFC 5682, RFC 9438 4.9): cwnd and ssthresh go
    /// back to at least what they were before it, with the algorithm's own state.
    /// </summary>
    void Undo();
}
