// The socket calls: what an app (through AntHost.Client) asks of the inet server.
//
// Every call is a request on the app's channel to `inet` with a control ICA whose
// top frame holds SocketArgs (one layout for all calls; each call reads the fields
// it names) and whose result area holds SocketResult on the way back. The reply's
// word is an InetStatus. A socket is a 64-bit handle the inet server made for the
// process that asked; a handle that is unknown, stale (its socket closed and the
// slot reused) or another process's is refused with InvalidSocket and counted.
//
// Waiting happens in the server, not in the app: a blocking Connect, Accept, Send
// or Receive is held by inet until it can be answered (the request and its ICAs
// wait in the socket's queue), so an app thread that calls synchronously sleeps on
// its doorbell and costs nothing. With InetSocketFlags.NonBlocking the answer is
// immediate (WouldBlock or InProgress). A held request can be ended with Cancel
// (its reply then has status Canceled); Poll waits on many sockets at once.
//
// Data:
//   Send     1..3 data ICAs, payload i at [DataOffset(i), +DataLength(i)) of ICA i.
//            They pass to inet whatever the answer (it frees what it refuses). TCP keeps
//            each ICA until its bytes are acknowledged; a payload of at most one segment
//            with SendHeadroom bytes in front of it goes to the wire in place (no copy),
//            and its reply may then come from the NIC driver by direct return. The
//            result's Value is the bytes accepted: all of them, or 0 with a status.
//   Receive  the reply carries 0..3 data ICAs (the frames the payload arrived in),
//            payload i at result DataOffset(i), DataLength(i); they belong to the app.
//            Status Ok with no data is the end of the stream (the peer's FIN).
//   SendTo / ReceiveFrom: one datagram in data ICA 0, the remote end in the args / result.
using System.Buffers.Binary;

namespace AntHost.Inet.Abi;

/// <summary>Socket types.</summary>
public enum AbiSocketType : byte
{
    Stream = 1,
    Datagram = 2,
}

/// <summary>Flags of a socket call.</summary>
[Flags]
public enum InetSocketFlags : ushort
{
    None = 0,
    /// <summary>Answer at once (WouldBlock / InProgress) rather than hold the request.</summary>
    NonBlocking = 1,
    /// <summary>Close: reset the connection (RST) and drop unsent data.</summary>
    Abort = 2,
}

/// <summary>Which direction Shutdown ends.</summary>
public enum AbiShutdown : byte
{
    Receive = 0,
    Send = 1,
    Both = 2,
}

/// <summary>Options of SetOption / GetOption (the value is an i64).</summary>
public enum AbiSocketOption : ushort
{
    NoDelay = 1,
    KeepAlive = 2,
    SendBuffer = 3,
    ReceiveBuffer = 4,
    ReuseAddress = 5,
    /// <summary>Seconds to wait in Close for unsent data; -1 off (close in the background), 0 abort.</summary>
    Linger = 6,
    KeepAliveIdleSeconds = 7,
    KeepAliveIntervalSeconds = 8,
    KeepAliveCount = 9,
    /// <summary>UDP: may send to the broadcast address.</summary>
    Broadcast = 10,
    /// <summary>Get only: the pending error (an InetStatus), cleared by reading.</summary>
    Error = 11,
    /// <summary>Get only: bytes (TCP) or the next datagram's bytes (UDP) ready to receive.</summary>
    Available = 12,
}

/// <summary>Readiness bits of Poll.</summary>
[Flags]
public enum PollEvents : ushort
{
    None = 0,
    /// <summary>Receive would not wait (data, end of stream, an error), or Accept would not wait.</summary>
    Readable = 1,
    /// <summary>Send would not wait.</summary>
    Writable = 2,
    /// <summary>The socket has a pending error (always reported).</summary>
    Error = 4,
    /// <summary>The peer ended its side, or the connection is gone (always reported).</summary>
    Hangup = 8,
}

/// <summary>
/// The statuses of socket calls, continuing <see cref="InetStatus"/> (the reply's word). The
/// client library maps each to its System.Net.Sockets.SocketError namesake.
/// </summary>
public static class SocketStatus
{
    public const InetStatus WouldBlock = (InetStatus)16;
    public const InetStatus InProgress = (InetStatus)17;
    /// <summary>Unknown, stale or another process's socket handle.</summary>
    public const InetStatus InvalidSocket = (InetStatus)18;
    public const InetStatus AddressInUse = (InetStatus)19;
    public const InetStatus AddressNotAvailable = (InetStatus)20;
    public const InetStatus NotConnected = (InetStatus)21;
    public const InetStatus AlreadyConnected = (InetStatus)22;
    public const InetStatus ConnectionRefused = (InetStatus)23;
    public const InetStatus ConnectionReset = (InetStatus)24;
    public const InetStatus ConnectionAborted = (InetStatus)25;
    public const InetStatus TimedOut = (InetStatus)26;
    public const InetStatus HostUnreachable = (InetStatus)27;
    public const InetStatus NetworkUnreachable = (InetStatus)28;
    /// <summary>The socket's sending side was shut down.</summary>
    public const InetStatus Shutdown = (InetStatus)29;
    public const InetStatus MessageTooLong = (InetStatus)30;
    public const InetStatus NoBufferSpace = (InetStatus)31;
    public const InetStatus Canceled = (InetStatus)32;
    /// <summary>The call does not fit the socket's state (listen on a connected socket, ...).</summary>
    public const InetStatus InvalidArgument = (InetStatus)33;
    /// <summary>No NIC driver is attached.</summary>
    public const InetStatus NetworkDown = (InetStatus)34;
    public const InetStatus OperationNotSupported = (InetStatus)35;
    public const InetStatus TooManySockets = (InetStatus)36;
    /// <summary>A UDP socket's earlier datagram drew an ICMP port unreachable.</summary>
    public const InetStatus PortUnreachable = (InetStatus)37;

    public static string Describe(InetStatus s) => s switch
    {
        InetStatus.Ok => "ok",
        InetStatus.BadArguments => "the request's arguments did not parse",
        InetStatus.NotAllowed => "not allowed",
        InetStatus.UnknownOpcode => "unknown call",
        InetStatus.NoControl => "the request has no control ICA",
        WouldBlock => "the call would block",
        InProgress => "the connection is in progress",
        InvalidSocket => "no such socket (closed, stale or another process's)",
        AddressInUse => "the address is in use",
        AddressNotAvailable => "the address is not this host's",
        NotConnected => "the socket is not connected",
        AlreadyConnected => "the socket is already connected",
        ConnectionRefused => "the connection was refused",
        ConnectionReset => "the connection was reset by the peer",
        ConnectionAborted => "the connection was aborted",
        TimedOut => "the connection timed out",
        HostUnreachable => "the host is unreachable",
        NetworkUnreachable => "the network is unreachable",
        Shutdown => "the socket's sending side is shut down",
        MessageTooLong => "the datagram is too long",
        NoBufferSpace => "the inet server is out of buffers",
        Canceled => "the call was canceled",
        InvalidArgument => "the call does not fit the socket's state",
        NetworkDown => "no NIC driver is attached",
        OperationNotSupported => "the socket type does not support the call",
        TooManySockets => "too many sockets",
        PortUnreachable => "the remote port is unreachable",
        _ => $"status {(int)s}",
    };
}

/// <summary>
/// The arguments of every socket call (the top frame's 104 bytes). Each call reads the
/// fields it names:
/// <code>
///  0  socket (u64)                     every call but Socket
///  8  flags (u16, InetSocketFlags)
/// 10  small (u8): the type for Socket, the direction for Shutdown, the data count for Send
/// 12  address (4, network order)       Bind, Connect, SendTo (0: any)
/// 16  port (u16)                       Bind, Connect, SendTo (0: any / ephemeral)
/// 18  option (u16, AbiSocketOption)    SetOption, GetOption
/// 24  value (i64)                      SetOption's value, Listen's backlog, Receive's byte limit (0: no limit),
///                                      Poll's timeout in ms (-1: none), Cancel's request id (0: every held call)
/// 32  data i at 32 + 8*i (i &lt; 3): offset (u32) | length (u32)   Send, SendTo (i = 0)
/// </code>
/// </summary>
public readonly ref struct SocketArgs
{
    private readonly Span<byte> _b;

    private SocketArgs(Span<byte> b) => _b = b;

    /// <summary>Views a frame's argument area; false when it is too short.</summary>
    public static bool TryOpen(Span<byte> args, out SocketArgs view)
    {
        view = args.Length >= InetService.ArgumentBytes ? new SocketArgs(args) : default;
        return args.Length >= InetService.ArgumentBytes;
    }

    /// <summary>Clears the area and returns a view on it (the writer's start).</summary>
    public static SocketArgs Begin(Span<byte> args)
    {
        if (args.Length < InetService.ArgumentBytes) throw new ArgumentException("the argument area has 104 bytes", nameof(args));
        args[..InetService.ArgumentBytes].Clear();
        return new SocketArgs(args);
    }

    public ulong Socket { get => BinaryPrimitives.ReadUInt64LittleEndian(_b); set => BinaryPrimitives.WriteUInt64LittleEndian(_b, value); }

    public InetSocketFlags Flags { get => (InetSocketFlags)BinaryPrimitives.ReadUInt16LittleEndian(_b[8..]); set => BinaryPrimitives.WriteUInt16LittleEndian(_b[8..], (ushort)value); }

    public byte Small { get => _b[10]; set => _b[10] = value; }

    /// <summary>IPv4 address in network order as a host integer (a.b.c.d = 0xaabbccdd).</summary>
    public uint Address { get => BinaryPrimitives.ReadUInt32BigEndian(_b[12..]); set => BinaryPrimitives.WriteUInt32BigEndian(_b[12..], value); }

    public ushort Port { get => BinaryPrimitives.ReadUInt16LittleEndian(_b[16..]); set => BinaryPrimitives.WriteUInt16LittleEndian(_b[16..], value); }

    public AbiSocketOption Option { get => (AbiSocketOption)BinaryPrimitives.ReadUInt16LittleEndian(_b[18..]); set => BinaryPrimitives.WriteUInt16LittleEndian(_b[18..], (ushort)value); }

    public long Value { get => BinaryPrimitives.ReadInt64LittleEndian(_b[24..]); set => BinaryPrimitives.WriteInt64LittleEndian(_b[24..], value); }

    public uint DataOffset(int i) => BinaryPrimitives.ReadUInt32LittleEndian(_b[DataEntry(i)..]);

    public uint DataLength(int i) => BinaryPrimitives.ReadUInt32LittleEndian(_b[(DataEntry(i) + 4)..]);

    public void SetData(int i, int offset, int length)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(_b[DataEntry(i)..], (uint)offset);
        BinaryPrimitives.WriteUInt32LittleEndian(_b[(DataEntry(i) + 4)..], (uint)length);
    }

    private static int DataEntry(int i) =>
        (uint)i < InetService.MaxFramesPerMessage ? 32 + 8 * i : throw new ArgumentOutOfRangeException(nameof(i));
}

/// <summary>
/// The result of every socket call (the control ICA's result area, 96 bytes):
/// <code>
///  0  socket (u64)                   Socket, Accept (the new connection)
///  8  value (i64)                    Send/SendTo: bytes accepted; GetOption: the value; Poll: sockets ready
/// 16  local address (4, net order) | 20 local port (u16) | 22 type (u8) | 23 state (u8, TCP state)
/// 24  remote address (4, net order) | 28 remote port (u16) | 30 reserved (2)
///                                    Bind, Connect, Accept, ReceiveFrom (remote), GetInfo
/// 32  data count (u8) | 33 reserved (3)
/// 36  data i at 36 + 8*i (i &lt; 3): offset (u32) | length (u32)   Receive, ReceiveFrom
/// 60  GetInfo: available (u32) | 64 send queued (u32) | 68 send space (u32)
///     72 smoothed RTT in µs (u32) | 76 congestion window in bytes (u32) | 80 MSS (u32)
///     84 retransmissions (u32) | 88 segment payload: the data one full segment carries, the MSS
///     less the options every segment carries (the timestamp option's 12 bytes) (u32)
/// </code>
/// </summary>
public readonly ref struct SocketResult
{
    public const int Length = 96;

    private readonly Span<byte> _b;

    private SocketResult(Span<byte> b) => _b = b;

    public static bool TryOpen(Span<byte> result, out SocketResult view)
    {
        view = result.Length >= Length ? new SocketResult(result) : default;
        return result.Length >= Length;
    }

    public static SocketResult Begin(Span<byte> result)
    {
        if (result.Length < Length) throw new ArgumentException($"the result area needs {Length} bytes", nameof(result));
        result[..Length].Clear();
        return new SocketResult(result);
    }

    public ulong Socket { get => BinaryPrimitives.ReadUInt64LittleEndian(_b); set => BinaryPrimitives.WriteUInt64LittleEndian(_b, value); }

    public long Value { get => BinaryPrimitives.ReadInt64LittleEndian(_b[8..]); set => BinaryPrimitives.WriteInt64LittleEndian(_b[8..], value); }

    public uint LocalAddress { get => BinaryPrimitives.ReadUInt32BigEndian(_b[16..]); set => BinaryPrimitives.WriteUInt32BigEndian(_b[16..], value); }

    public ushort LocalPort { get => BinaryPrimitives.ReadUInt16LittleEndian(_b[20..]); set => BinaryPrimitives.WriteUInt16LittleEndian(_b[20..], value); }

    public AbiSocketType Type { get => (AbiSocketType)_b[22]; set => _b[22] = (byte)value; }

    /// <summary>The TCP state (RFC 9293 order: 0 Closed, 1 Listen, 2 SynSent, ...) as the protocol core numbers it.</summary>
    public byte State { get => _b[23]; set => _b[23] = value; }

    public uint RemoteAddress { get => BinaryPrimitives.ReadUInt32BigEndian(_b[24..]); set => BinaryPrimitives.WriteUInt32BigEndian(_b[24..], value); }

    public ushort RemotePort { get => BinaryPrimitives.ReadUInt16LittleEndian(_b[28..]); set => BinaryPrimitives.WriteUInt16LittleEndian(_b[28..], value); }

    public int DataCount { get => Math.Min((int)_b[32], InetService.MaxFramesPerMessage); set => _b[32] = (byte)value; }

    public uint DataOffset(int i) => BinaryPrimitives.ReadUInt32LittleEndian(_b[DataEntry(i)..]);

    public uint DataLength(int i) => BinaryPrimitives.ReadUInt32LittleEndian(_b[(DataEntry(i) + 4)..]);

    public void SetData(int i, int offset, int length)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(_b[DataEntry(i)..], (uint)offset);
        BinaryPrimitives.WriteUInt32LittleEndian(_b[(DataEntry(i) + 4)..], (uint)length);
    }

    public uint Available { get => U32(60); set => U32(60, value); }
    public uint SendQueued { get => U32(64); set => U32(64, value); }
    public uint SendSpace { get => U32(68); set => U32(68, value); }
    public uint SmoothedRttMicros { get => U32(72); set => U32(72, value); }
    public uint CongestionWindow { get => U32(76); set => U32(76, value); }
    public uint Mss { get => U32(80); set => U32(80, value); }
    public uint Retransmissions { get => U32(84); set => U32(84, value); }
    public uint SegmentPayload { get => U32(88); set => U32(88, value); }
    /// <summary>Segments one send ICA may carry and still go to the wire in place (segmentation offload; 1 without).</summary>
    public uint OffloadSegments { get => U32(92); set => U32(92, value); }

    private uint U32(int at) => BinaryPrimitives.ReadUInt32LittleEndian(_b[at..]);

    private void U32(int at, uint v) => BinaryPrimitives.WriteUInt32LittleEndian(_b[at..], v);

    private static int DataEntry(int i) =>
        (uint)i < InetService.MaxFramesPerMessage ? 36 + 8 * i : throw new ArgumentOutOfRangeException(nameof(i));
}

/// <summary>
/// The socket set of a Poll (the control ICA's inline area); inet writes the ready events
/// back in place:
/// <code>
///  0  count (u32, at most MaxEntries) | 4 reserved
///  8  entry i at 8 + 16*i: socket (u64) | events wanted (u16) | events ready (u16) | reserved (4)
/// </code>
/// Poll's timeout is the args' Value (ms, -1 none, 0 at once); the reply's Value is the
/// number of entries with any event ready (0 when the timeout passed).
/// </summary>
public readonly ref struct PollSet
{
    public const int MaxEntries = 128;
    private const int Entry = 16;

    private readonly Span<byte> _b;

    private PollSet(Span<byte> b) => _b = b;

    public static bool TryOpen(Span<byte> inline, out PollSet set)
    {
        set = default;
        if (inline.Length < 8) return false;
        uint n = BinaryPrimitives.ReadUInt32LittleEndian(inline);
        if (n > MaxEntries || inline.Length < 8 + (int)n * Entry) return false;
        set = new PollSet(inline);
        return true;
    }

    public static PollSet Begin(Span<byte> inline, int count)
    {
        if ((uint)count > MaxEntries) throw new ArgumentOutOfRangeException(nameof(count), $"at most {MaxEntries} sockets per poll");
        inline[..(8 + count * Entry)].Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(inline, (uint)count);
        return new PollSet(inline);
    }

    public int Count => (int)BinaryPrimitives.ReadUInt32LittleEndian(_b);

    public ulong Socket(int i) => BinaryPrimitives.ReadUInt64LittleEndian(_b[At(i)..]);

    public PollEvents Wanted(int i) => (PollEvents)BinaryPrimitives.ReadUInt16LittleEndian(_b[(At(i) + 8)..]);

    public PollEvents Ready(int i) => (PollEvents)BinaryPrimitives.ReadUInt16LittleEndian(_b[(At(i) + 10)..]);

    public void Set(int i, ulong socket, PollEvents wanted)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(_b[At(i)..], socket);
        BinaryPrimitives.WriteUInt16LittleEndian(_b[(At(i) + 8)..], (ushort)wanted);
        BinaryPrimitives.WriteUInt16LittleEndian(_b[(At(i) + 10)..], 0);
    }

    public void SetReady(int i, PollEvents ready) => BinaryPrimitives.WriteUInt16LittleEndian(_b[(At(i) + 10)..], (ushort)ready);

    private int At(int i) => (uint)i < (uint)Count ? 8 + i * Entry : throw new ArgumentOutOfRangeException(nameof(i));
}
