namespace AntHost.Inet.Core.Tcp;

/// <summary>Which congestion control a new connection uses.</summary>
public enum CongestionControlKind
{
    /// <summary>RFC 5681 with RFC 6582's NewReno fast recovery.</summary>
    NewReno,
    /// <summary>RFC 9438.</summary>
    Cubic,
}

/// <summary>
/// The TCP layer's settings. Defaults follow the RFCs and what Linux does where the
/// RFCs leave a choice; each says which.
/// </summary>
public sealed record TcpConfig
{
    /// <summary>Default send buffer limit per socket, bytes of buffer capacity held.</summary>
    public int SendBufferSize { get; init; } = 256 * 1024;

    /// <summary>
    /// Default receive buffer limit per socket: the largest window advertised, in payload bytes.
    /// 1 MiB: through loss the window must hold what arrives above a hole for the round trip
    /// the retransmission takes, and a window that closes waits on a window update that may
    /// be lost too (the peer's persist timer, 200 ms or more); Linux's autotuning goes to
    /// 6 MiB. The pool's pressure (<see cref="TcpMemory"/>) shrinks it when pages run short.
    /// </summary>
    public int ReceiveBufferSize { get; init; } = 1024 * 1024;

    /// <summary>
    /// Receive memory may reach this multiple of <see cref="ReceiveBufferSize"/> in buffer
    /// capacity (a small segment in a page-sized buffer costs the page) before in-window
    /// data is dropped unacknowledged.
    /// </summary>
    public int ReceiveMemoryFactor { get; init; } = 3;

    /// <summary>
    /// Under memory pressure (<see cref="TcpMemory"/>), the least buffer capacity a connection
    /// may hold each way, whatever its share: enough for a few segments, so every connection
    /// keeps moving (Linux keeps a few segments' worth, tcp_rmem[0] / tcp_wmem[0]).
    /// </summary>
    public int PressureFloorBytes { get; init; } = 32 * 1024;

    /// <summary>MSS assumed when the peer sends no MSS option (RFC 9293 3.7.1: 536).</summary>
    public int DefaultMss { get; init; } = 536;

    /// <summary>Smallest MSS accepted from the peer or from path MTU discovery (Linux: 88; RFC 9293 requires room for 536 by default).</summary>
    public int MinimumMss { get; init; } = 88;

    /// <summary>Delayed-ACK timeout (RFC 9293 3.8.6.3 / RFC 1122: at most 500 ms).</summary>
    public TimeSpan DelayedAckTimeout { get; init; } = TimeSpan.FromMilliseconds(40);

    /// <summary>Initial retransmission timeout (RFC 6298 2.1: 1 s).</summary>
    public TimeSpan InitialRto { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Lower bound of the RTO (RFC 6298 2.4: 1 s; Linux uses 200 ms).</summary>
    public TimeSpan MinimumRto { get; init; } = TimeSpan.FromMilliseconds(200);

    /// <summary>Upper bound of the RTO (RFC 6298 2.5: at least 60 s).</summary>
    public TimeSpan MaximumRto { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Retransmissions of a SYN before connect fails (RFC 9293 3.8.3 R2 for SYN: at least 3 minutes; Linux tcp_syn_retries = 6).</summary>
    public int SynRetries { get; init; } = 6;

    /// <summary>Retransmissions of a SYN-ACK before a half-open connection is dropped (Linux tcp_synack_retries = 5).</summary>
    public int SynAckRetries { get; init; } = 5;

    /// <summary>Retransmissions of data before the connection is dropped (RFC 9293 3.8.3 R2: at least 100 s; Linux tcp_retries2 = 15).</summary>
    public int DataRetries { get; init; } = 15;

    /// <summary>Maximum segment lifetime; TIME-WAIT lasts 2*MSL (RFC 9293 3.4.2 suggests 2 minutes; Linux holds TIME-WAIT 60 s).</summary>
    public TimeSpan Msl { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>How long an orphaned connection (closed by the app) may sit in FIN-WAIT-2 (Linux tcp_fin_timeout = 60 s).</summary>
    public TimeSpan FinWait2Timeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Keepalive defaults (RFC 1122 4.2.3.6: idle no less than two hours by default).</summary>
    public TimeSpan KeepAliveIdle { get; init; } = TimeSpan.FromHours(2);

    public TimeSpan KeepAliveInterval { get; init; } = TimeSpan.FromSeconds(75);

    public int KeepAliveCount { get; init; } = 9;

    /// <summary>Persist timer bounds (zero-window probes back off between these).</summary>
    public TimeSpan MinimumPersist { get; init; } = TimeSpan.FromMilliseconds(200);

    public TimeSpan MaximumPersist { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Largest listen backlog honoured (an app's larger value is clamped; Linux somaxconn = 4096).</summary>
    public int MaximumBacklog { get; init; } = 4096;

    /// <summary>Congestion control for new connections.</summary>
    public CongestionControlKind CongestionControl { get; init; } = CongestionControlKind.Cubic;

    /// <summary>RFC 7323 window scaling offered and accepted.</summary>
    public bool WindowScaling { get; init; } = true;

    /// <summary>RFC 7323 timestamps (and with them PAWS and RTTM) offered and accepted.</summary>
    public bool Timestamps { get; init; } = true;

    /// <summary>RFC 2018 SACK offered and accepted.</summary>
    public bool Sack { get; init; } = true;

    /// <summary>
    /// How a connection with SACK detects loss: RACK-TLP (RFC 8985, as Linux since 4.18) or
    /// RFC 6675's DupThresh counting. Without SACK, RFC 5681/6582 apply either way.
    /// </summary>
    public Recovery.LossDetection LossDetection { get; init; } = Recovery.LossDetection.Rack;

    /// <summary>RFC 8985 7: the tail loss probe, with RACK.</summary>
    public bool TailLossProbe { get; init; } = true;

    /// <summary>
    /// RFC 8985 7.3: the probe is a previously unsent segment when there is one (true, the
    /// default, as the RFC prefers), or always the last segment sent, again (false). A
    /// retransmission below RCV.NXT makes every receiver answer at once (a duplicate ACK with a
    /// D-SACK); new data is answered under the receiver's ACK policy, which may hold the ACK
    /// back (Linux does while its app has not read and the window would shrink). True is the
    /// default, as Linux has it. (With false, the stack's pool-pressure test once stalled: the
    /// probe then retransmitted the first segment of the last offloaded send, not the last;
    /// since that was fixed it passes with either.)
    /// </summary>
    public bool TailLossProbeNewData { get; init; } = true;

    /// <summary>RFC 6937 Proportional Rate Reduction during SACK-based recovery (off: cwnd drops to ssthresh at once).</summary>
    public bool ProportionalRateReduction { get; init; } = true;

    /// <summary>
    /// Spurious retransmissions detected and their window reduction undone: by timestamps
    /// (RFC 3522), by D-SACK (RFC 2883/3708), and after a timeout without timestamps by F-RTO (RFC 5682).
    /// </summary>
    public bool SpuriousRetransmissionUndo { get; init; } = true;

    /// <summary>
    /// RFC 5961 7 ACK throttling per connection: a bare ACK that is out of window (or fails
    /// PAWS) is answered at most once per this interval (Linux tcp_invalid_ratelimit = 500 ms).
    /// </summary>
    public TimeSpan OutOfWindowAckInterval { get; init; } = TimeSpan.FromMilliseconds(500);

    /// <summary>
    /// RFC 4987 3.6 SYN cookies: a SYN that finds its listener's SYN queue full is answered with
    /// a cookie instead of being dropped (Linux tcp_syncookies = 1). What a cookie connection
    /// keeps and loses is on <see cref="SynCookies"/>.
    /// </summary>
    public bool SynCookies { get; init; } = true;

    /// <summary>RFC 5961 challenge ACKs per second, for the whole layer (Linux tcp_challenge_ack_limit = 1000).</summary>
    public int ChallengeAckLimitPerSecond { get; init; } = 1000;

    /// <summary>Most segments held out of order per connection (each in its own buffer).</summary>
    public int MaximumOutOfOrderSegments { get; init; } = 256;

    /// <summary>Ephemeral port range for connect without bind (IANA 49152-65535).</summary>
    public ushort EphemeralPortFirst { get; init; } = 49152;

    public ushort EphemeralPortLast { get; init; } = 65535;

    /// <summary>Most sockets open at once.</summary>
    public int MaximumSockets { get; init; } = 1 << 20;

    /// <summary>
    /// Segmentation offload (as a NIC's TSO): the most new payload one send hands to the layer
    /// below as a single buffer, the headers with the payload attached in place as a
    /// <see cref="Buffers.PacketBuffer.Fragment"/>, for the transmitter to cut into MSS-sized
    /// frames (<see cref="Wire.TcpSegmentation"/>). 0 sends one segment per buffer. Only a
    /// transmitter that cuts may turn it on (the NIC driver does; so do the simulations).
    /// </summary>
    public int SegmentationOffloadBytes { get; init; }

    /// <summary>
    /// In a receive batch (<see cref="Ip.ITransportLayer.BeginReceiveBatch"/>), what in-order
    /// segments make a connection send (its ACK, and data the ACKs let go) goes once at the
    /// batch's end; false answers every segment as it is processed.
    /// </summary>
    public bool OutputPerReceiveBatch { get; init; } = true;

    /// <summary>The largest <see cref="SegmentationOffloadBytes"/>: the IP total length field's limit with room for the headers.</summary>
    public const int MaximumSegmentationOffloadBytes = 65535 - 60 - 60;

    /// <summary>Initial congestion window in segments (RFC 6928: 10).</summary>
    public int InitialWindowSegments { get; init; } = 10;

    /// <summary>
    /// Validates the settings and says what is wrong, so that the server refuses a bad
    /// configuration at start rather than misbehaving later.
    /// </summary>
    public void Validate()
    {
        static void Check(bool ok, string message)
        {
            if (!ok) throw new ArgumentException(message);
        }
        Check(SendBufferSize >= 4096, "SendBufferSize must be at least 4096 bytes");
        Check(ReceiveBufferSize is >= 1024 and <= (1 << 30), "ReceiveBufferSize must be between 1 KiB and 1 GiB (RFC 7323 limits the window to 2^30)");
        Check(ReceiveMemoryFactor >= 1, "ReceiveMemoryFactor must be at least 1");
        Check(DefaultMss >= MinimumMss && MinimumMss >= 64, "DefaultMss must be at least MinimumMss, which must be at least 64");
        Check(DelayedAckTimeout > TimeSpan.Zero && DelayedAckTimeout <= TimeSpan.FromMilliseconds(500), "DelayedAckTimeout must be in (0, 500 ms] (RFC 9293 3.8.6.3)");
        Check(MinimumRto > TimeSpan.Zero && MinimumRto <= InitialRto && InitialRto <= MaximumRto, "RTO bounds must satisfy 0 < MinimumRto <= InitialRto <= MaximumRto");
        Check(Msl > TimeSpan.Zero, "Msl must be positive");
        Check(EphemeralPortFirst > 0 && EphemeralPortFirst <= EphemeralPortLast, "the ephemeral port range is empty");
        Check(MaximumBacklog >= 1, "MaximumBacklog must be at least 1");
        Check(MaximumSockets >= 1, "MaximumSockets must be at least 1");
        Check(PressureFloorBytes >= 4096, "PressureFloorBytes must be at least one page (4096)");
        Check(InitialWindowSegments >= 1, "InitialWindowSegments must be at least 1");
        Check(MaximumOutOfOrderSegments >= 0, "MaximumOutOfOrderSegments must not be negative");
        Check(OutOfWindowAckInterval >= TimeSpan.Zero, "OutOfWindowAckInterval must not be negative (0 turns the throttle off)");
        Check(Enum.IsDefined(LossDetection), "LossDetection must be Rack or Rfc6675");
        Check(SegmentationOffloadBytes is >= 0 and <= MaximumSegmentationOffloadBytes, $"SegmentationOffloadBytes must be 0 (off) to {MaximumSegmentationOffloadBytes}");
    }
}
