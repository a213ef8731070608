using AntHost.Inet.Core.Wire;

namespace AntHost.Inet.Core.Tcp;

/// <summary>
/// A handle to a TCP socket in a <see cref="TcpLayer"/>: a slot index and a
/// generation, so that a handle to a closed and reused slot is refused
/// (<see cref="TcpError.InvalidHandle"/>) rather than acting on someone else's
/// socket. It is a plain value the server can put in an IPC message; the layer
/// never hands out object references.
/// </summary>
public readonly record struct TcpSocket(int Index, int Generation)
{
    /// <summary>No socket.</summary>
    public static TcpSocket None => default;

    /// <summary>The handle packed into one 64-bit value (for IPC messages).</summary>
    public long Value => (long)Generation << 32 | (uint)Index;

    public static TcpSocket FromValue(long value) => new((int)(uint)value, (int)(value >> 32));

    public override string ToString() => $"tcp#{Index}.{Generation}";
}

/// <summary>An IPv4 address and a port.</summary>
public readonly record struct TcpEndPoint(Ipv4Address Address, ushort Port)
{
    public override string ToString() => $"{Address}:{Port}";
}

/// <summary>The connection states of RFC 9293 3.3.2.</summary>
public enum TcpState : byte
{
    Closed,
    Listen,
    SynSent,
    SynReceived,
    Established,
    FinWait1,
    FinWait2,
    CloseWait,
    Closing,
    LastAck,
    TimeWait,
}

/// <summary>
/// The result of a socket call, and the error a connection ended with. Values are
/// stable (the server puts them in IPC replies).
/// </summary>
public enum TcpError
{
    /// <summary>Success.</summary>
    None = 0,
    /// <summary>Nothing to do now: no data to read, no room to send, no connection to accept. Wait for readiness.</summary>
    WouldBlock = 1,
    /// <summary>The handle names no open socket (closed, or never opened).</summary>
    InvalidHandle = 2,
    /// <summary>The call does not fit the socket's state (e.g. send on a listener, listen on a connected socket).</summary>
    InvalidState = 3,
    /// <summary>An argument is out of range (port 0 to connect to, a negative size...).</summary>
    InvalidArgument = 4,
    /// <summary>The local address and port are taken (and ReuseAddress does not allow sharing).</summary>
    AddressInUse = 5,
    /// <summary>The local address is not one of this host's.</summary>
    AddressNotAvailable = 6,
    /// <summary>The socket is already connected or connecting.</summary>
    AlreadyConnected = 7,
    /// <summary>The socket is not connected.</summary>
    NotConnected = 8,
    /// <summary>The sending direction was shut down.</summary>
    Shutdown = 9,
    /// <summary>No buffer could be had from the pool, or the socket's buffer limit is reached.</summary>
    NoBufferSpace = 10,
    /// <summary>The peer answered the SYN with a reset (nothing listens there).</summary>
    ConnectionRefused = 11,
    /// <summary>The peer reset an established connection.</summary>
    ConnectionReset = 12,
    /// <summary>Retransmissions (or keepalives) went unanswered for too long.</summary>
    TimedOut = 13,
    /// <summary>An ICMP error said the host (or net, or port) cannot be reached.</summary>
    HostUnreachable = 14,
    /// <summary>No route to the destination.</summary>
    NetworkUnreachable = 15,
    /// <summary>The connection was aborted locally (abort, or linger 0 on close).</summary>
    ConnectionAborted = 16,
    /// <summary>No ephemeral port is free.</summary>
    NoPortsAvailable = 17,
    /// <summary>The socket table is full.</summary>
    TooManySockets = 18,
}

/// <summary>What a socket is ready for, as the server reports it to apps (like epoll's flags).</summary>
[Flags]
public enum TcpReadiness : byte
{
    None = 0,
    /// <summary>Data can be read, or the peer has finished sending (a read returns end of stream).</summary>
    Readable = 1,
    /// <summary>There is room in the send buffer.</summary>
    Writable = 2,
    /// <summary>A listener has a connection waiting in its accept queue.</summary>
    AcceptReady = 4,
    /// <summary>The peer has closed its direction (end of stream after the queued data).</summary>
    PeerClosed = 8,
    /// <summary>The connection is fully closed (CLOSED or TIME-WAIT); the handle only needs closing.</summary>
    Closed = 16,
    /// <summary>The connection ended with an error (<see cref="TcpLayer.GetError"/>).</summary>
    Error = 32,
    /// <summary>An active open completed (SYN-SENT to ESTABLISHED).</summary>
    Connected = 64,
}

/// <summary>Per-socket options (<see cref="TcpLayer.SetOption"/>).</summary>
public enum TcpOption
{
    /// <summary>1 disables Nagle's algorithm (RFC 9293 3.7.4); 0 enables it (the default).</summary>
    NoDelay,
    /// <summary>1 turns keepalive probes on (RFC 9293 3.8.4; off by default).</summary>
    KeepAlive,
    /// <summary>Idle time before the first keepalive probe, in milliseconds.</summary>
    KeepAliveIdleMs,
    /// <summary>Time between unanswered keepalive probes, in milliseconds.</summary>
    KeepAliveIntervalMs,
    /// <summary>Unanswered probes before the connection is dropped.</summary>
    KeepAliveCount,
    /// <summary>Send buffer limit in bytes (capacity of the buffers held, not only payload).</summary>
    SendBufferSize,
    /// <summary>Receive buffer limit in bytes (the advertised window follows it).</summary>
    ReceiveBufferSize,
    /// <summary>-1: off (close is graceful, in the background). 0: close aborts with a RST. &gt;0: seconds (graceful; the value is kept for the server, which may wait for it).</summary>
    LingerSeconds,
    /// <summary>1 allows binding a local port that has connections in TIME-WAIT (SO_REUSEADDR).</summary>
    ReuseAddress,
}

/// <summary>Why an incoming segment was dropped (counted in <see cref="TcpCounters"/>).</summary>
public enum TcpDropReason
{
    Malformed,
    BadChecksum,
    NoSocket,
    NotAcceptable,
    Paws,
    BacklogFull,
    BadAck,
    OutOfMemory,
    OutOfOrderQueueFull,
    BadRst,
    BadSyn,
    RateLimited,
    /// <summary>An ACK to a listener with SYN cookies outstanding that carries no valid cookie (forged, or older than two key lifetimes).</summary>
    BadCookie,
    /// <summary>A SYN to a listener while TCP's memory was at its limit (<see cref="TcpMemory.Exhausted"/>): a new connection does not take from established ones; the peer sends its SYN again.</summary>
    MemoryPressure,
    Count,
}

/// <summary>The TCP layer's counters (the server exposes them). Plain fields: the layer is single-threaded.</summary>
public sealed class TcpCounters
{
    public long SegmentsIn;
    public long SegmentsOut;
    public long BytesIn;
    public long BytesOut;
    /// <summary>Expiries of the retransmission timer with data outstanding (each a window collapse unless undone).</summary>
    public long RetransmissionTimeouts;
    /// <summary>Retransmissions after a retransmission timeout (RFC 6298), go-back-N included.</summary>
    public long RetransmitsTimeout;
    /// <summary>Retransmissions by DupThresh without SACK: fast retransmit and NewReno partial ACKs (RFC 5681, 6582).</summary>
    public long RetransmitsFast;
    /// <summary>Retransmissions by DupThresh with SACK: RFC 6675's holes and rescue.</summary>
    public long RetransmitsSack;
    /// <summary>Retransmissions of segments RACK marked lost (RFC 8985 6).</summary>
    public long RetransmitsRack;
    /// <summary>Tail loss probes that retransmitted the last segment (RFC 8985 7.3).</summary>
    public long RetransmitsTlp;
    /// <summary>Tail loss probes sent, of new data or retransmitted.</summary>
    public long TlpProbes;
    /// <summary>Probes whose ACK showed they repaired a loss (RFC 8985 7.4), each a cwnd reduction.</summary>
    public long TlpRepairs;
    /// <summary>Expiries of RACK's reordering timer.</summary>
    public long RackReorderTimeouts;
    /// <summary>Loss recoveries entered (dup ACKs, RFC 6675 or RACK).</summary>
    public long Recoveries;
    /// <summary>Of those, recoveries whose sending rate PRR set (RFC 6937).</summary>
    public long RecoveriesPrr;
    /// <summary>Window reductions undone as spurious: by timestamps (RFC 3522), D-SACK, F-RTO (RFC 5682).</summary>
    public long UndosTimestamp;
    public long UndosDsack;
    public long UndosFrto;
    /// <summary>Of those undos, ones of a retransmission timeout.</summary>
    public long SpuriousTimeouts;
    /// <summary>ACKs to out-of-window or PAWS-failing bare segments not sent (RFC 5961 7, per connection).</summary>
    public long OutOfWindowAcksSuppressed;

    /// <summary>Every retransmission, whatever its cause.</summary>
    public long Retransmits => RetransmitsTimeout + RetransmitsFast + RetransmitsSack + RetransmitsRack + RetransmitsTlp;
    public long ChecksumFailures;
    public long ResetsIn;
    public long ResetsOut;
    public long ActiveOpens;
    public long PassiveOpens;
    /// <summary>SYN-ACKs sent with a SYN cookie because the listener's SYN queue was full (RFC 4987 3.6).</summary>
    public long SynCookiesSent;
    /// <summary>Connections made from a valid cookie (also counted in <see cref="PassiveOpens"/>).</summary>
    public long SynCookiesAccepted;
    public long ChallengeAcks;
    public long ChallengeAcksSuppressed;
    public long ConnectionsTimedOut;
    public long ZeroWindowProbes;
    public long KeepAliveProbes;
    public long IcmpErrorsIn;
    public long IcmpErrorsIgnored;
    public long SendDropped;
    /// <summary>Sends of more than one segment handed down as one buffer for the transmitter to cut (segmentation offload), and the segments they carried.</summary>
    public long OffloadSends;
    public long OffloadSegments;
    /// <summary>Times offload could not be used because the send-buffer chunk was still lent to the transmitter (the segment went alone).</summary>
    public long OffloadChunkLent;
    /// <summary>Segments whose window the layer's memory pressure made smaller than the connection's own buffer would (<see cref="TcpMemory"/>).</summary>
    public long PressureWindowClamps;
    /// <summary>Sends refused (would block) that the connection's own send buffer would have taken: the pressure held them back.</summary>
    public long PressureSendRefusals;
    public readonly long[] Drops = new long[(int)TcpDropReason.Count];

    public long DropsTotal
    {
        get
        {
            long t = 0;
            foreach (var d in Drops) t += d;
            return t;
        }
    }

    public long Dropped(TcpDropReason reason) => Drops[(int)reason];
}
