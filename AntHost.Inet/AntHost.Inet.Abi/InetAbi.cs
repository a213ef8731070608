// The inet server's ABI: what travels between the NIC driver, the inet server and
// (later) apps, down to the byte. The kernel carries a message as a ring slot
// (kind, opcode or status, request id, up to three data ICAs with a length each)
// plus an optional control ICA whose frame stack holds the arguments. This file
// fixes the opcodes, which message carries a control ICA, and the layout of each
// frame's 104 argument bytes and of each result. Every integer is little-endian
// (shared memory between processes of one machine), except addresses and MACs,
// which keep network order so they can be copied to and from headers as they are.
//
// Driver -> inet:
//   IfAttach  sync, control ICA, frame args = IfAttachArgs; reply status InetStatus,
//             result area = IfAttachResult. Registers the MAC, MTU and link; the inet
//             server configures the interface with its own address, prefix and gateway.
//   EthInput  async, NO control ICA, 1..3 data ICAs, each one received frame at offset 0
//             whose length is the data ICA's length. Ownership passes to inet; no reply.
//   IfLink    async, control ICA, frame args = IfLinkArgs; no reply (inet frees it).
//   EthInputList  async, NO control ICA, 1..3 data ICAs, each a frame list (FrameList.cs):
//             many header-only TCP frames in one ICA. Ownership passes to inet; no reply.
// Anyone -> inet:
//   Stats     sync, control ICA; the reply's inline area holds InetStats.
//   SocketTable, ArpTable  sync, control ICA; frame args: cursor; rows in the reply's
//             inline area (TableAbi.cs).
// Inet -> driver:
//   Transmit  async, control ICA whose top frame (pushed by inet) is TransmitArgs, 1..3
//             data ICAs lent for transmission, frame i at [offset_i, offset_i + length_i).
//             The driver writes each frame's TransmitResult into the args and completes:
//             - normally with a Reply on the same channel carrying the control ICA and every
//               data ICA back (the batched TX completion: one per request of up to 3 frames);
//             - when frame 0 asks for direct return and its original requester is not inet,
//               with ReplyDirect of the control ICA to that requester and a Notify
//               (NicNotify.TxDataBack, request id of the transmit) giving the data ICAs back
//               to inet, which keeps sent TCP data until it is acknowledged.
using System.Buffers.Binary;

namespace AntHost.Inet.Abi;

/// <summary>Service names and limits.</summary>
public static class InetService
{
    /// <summary>The name the inet server registers.</summary>
    public const string Name = "inet";

    /// <summary>Frames (data ICAs) one EthInput or Transmit message carries at most (the kernel's slot holds three).</summary>
    public const int MaxFramesPerMessage = 3;

    /// <summary>Bytes of a control ICA frame's argument area.</summary>
    public const int ArgumentBytes = 104;

    /// <summary>
    /// Bytes an app leaves in front of a payload it sends so the headers (Ethernet, IPv4,
    /// TCP with options, or UDP) can be written in place: at least this much headroom lets
    /// a one-segment payload go to the wire from the app's own ICA.
    /// </summary>
    public const int SendHeadroom = 128;
}

/// <summary>Opcodes of requests to the inet server.</summary>
public enum InetOp : ushort
{
    IfAttach = 1,
    EthInput = 2,
    IfLink = 3,
    /// <summary>Received frames as frame lists (FrameList): header-only TCP segments, many per data ICA.</summary>
    EthInputList = 4,

    // Apps -> inet: the socket calls (SocketAbi.cs has their arguments and results).
    Socket = 16,
    Bind = 17,
    Listen = 18,
    Connect = 19,
    Accept = 20,
    Send = 21,
    Receive = 22,
    SendTo = 23,
    ReceiveFrom = 24,
    Shutdown = 25,
    Close = 26,
    SetOption = 27,
    GetOption = 28,
    Poll = 29,
    Cancel = 30,
    GetInfo = 31,
    /// <summary>ICMP echo: args Address and Value (timeout in ms), data ICA 0 the payload at DataOffset(0) (SendHeadroom or more); result Value = RTT in µs.</summary>
    Ping = 32,

    Stats = 64,
    /// <summary>The socket table, from a cursor (TableAbi.cs).</summary>
    SocketTable = 65,
    /// <summary>The ARP cache, from a cursor (TableAbi.cs).</summary>
    ArpTable = 66,
}

/// <summary>Opcodes of requests to a NIC driver.</summary>
public enum NicOp : ushort
{
    Transmit = 1,
}

/// <summary>Codes of Notify messages from a NIC driver.</summary>
public enum NicNotify : ushort
{
    /// <summary>Data ICAs of a transmit whose result went straight to the original requester.</summary>
    TxDataBack = 1,

    /// <summary>
    /// The completions of several transmits in one message (<see cref="TxCompletions"/>): whole
    /// completions only, in the order they were made. The ICAs are lent frames (inet's own
    /// requests' and direct returns') and the control ICAs of inet's requests among them: one
    /// in the control slot, more in data slots flagged in the request id, which also holds
    /// each frame's result.
    /// </summary>
    TxCompletions = 2,
}

/// <summary>
/// The request id of a <see cref="NicNotify.TxCompletions"/> message: byte i (0..2) is the
/// <see cref="TransmitResult"/> of data ICA i (0, Sent, for a frame whose result went to its
/// app by direct return); bit i of byte 3 says data ICA i is a transmit request's control ICA
/// (its results are in its frame), the other bits are 0.
/// </summary>
public static class TxCompletions
{
    private const int ControlShift = 24;

    /// <summary>Sets the result of data ICA <paramref name="index"/> in <paramref name="word"/>.</summary>
    public static uint With(uint word, int index, TransmitResult result) =>
        (word & ~(0xFFu << (8 * index))) | ((uint)(byte)result << (8 * index));

    /// <summary>Marks data ICA <paramref name="index"/> as a transmit request's control ICA.</summary>
    public static uint WithControl(uint word, int index) => word | (1u << (ControlShift + index));

    /// <summary>True when data ICA <paramref name="index"/> is marked as a control ICA.</summary>
    public static bool IsControl(uint word, int index) => (word >> (ControlShift + index) & 1) != 0;

    /// <summary>
    /// Checks a word for a message of <paramref name="dataCount"/> data ICAs: every mark names
    /// one of them, every frame's result is one a driver writes.
    /// </summary>
    public static bool IsValid(uint word, int dataCount)
    {
        if (word >> ControlShift >> dataCount != 0) return false;
        for (int i = 0; i < dataCount; i++)
            if (!IsControl(word, i) && (byte)(word >> (8 * i)) > (byte)TransmitResult.BadDescriptor) return false;
        return true;
    }

    /// <summary>The result of frame <paramref name="index"/> (<see cref="TransmitResult.Error"/> when the byte is not one).</summary>
    public static TransmitResult Result(uint word, int index)
    {
        byte b = (byte)(word >> (8 * index));
        return b <= (byte)TransmitResult.BadDescriptor ? (TransmitResult)b : TransmitResult.Error;
    }
}

/// <summary>
/// Trace stages stamped into a control ICA's trace area as a request passes (the rows of
/// the paper's send-time breakdown). Each process stamps its own; the client library
/// stamps the app's, the inet server its own, the driver its own.
/// </summary>
public static class InetTraceStage
{
    /// <summary>The app entered the send call (before its pre-request work).</summary>
    public const ushort AppStart = 0x01;
    /// <summary>The app's request is built and about to go to inet.</summary>
    public const ushort AppRequest = 0x02;
    /// <summary>The app took the reply (after the return).</summary>
    public const ushort AppReturned = 0x03;
    /// <summary>Inet took the request off its channel.</summary>
    public const ushort InetReceived = 0x10;
    /// <summary>The socket manager found the socket and checked the call.</summary>
    public const ushort InetSocket = 0x11;
    /// <summary>TCP (or UDP) built the segment.</summary>
    public const ushort InetTransport = 0x12;
    /// <summary>IPv4 wrote its header.</summary>
    public const ushort InetIp = 0x13;
    /// <summary>Ethernet wrote its header (the frame is queued for the driver).</summary>
    public const ushort InetEthernet = 0x14;
    /// <summary>Inet posts the transmit to the driver.</summary>
    public const ushort InetTransmit = 0x20;
    public const ushort NicReceived = 0x30;
    public const ushort NicTransmitted = 0x31;
    /// <summary>The driver returns the result (directly to the app, or to inet).</summary>
    public const ushort NicReturn = 0x32;
}

/// <summary>Status of a reply from the inet server (the reply's word).</summary>
public enum InetStatus
{
    Ok = 0,
    /// <summary>The arguments did not parse (length, MAC, MTU out of range).</summary>
    BadArguments = 1,
    /// <summary>Another driver is attached and alive.</summary>
    AlreadyAttached = 2,
    /// <summary>The request came from a process that may not make it (e.g. EthInput from a non-driver).</summary>
    NotAllowed = 3,
    UnknownOpcode = 4,
    /// <summary>The control ICA is missing or not one.</summary>
    NoControl = 5,
}

/// <summary>Link state as the driver reports it.</summary>
public enum AbiLinkState : byte
{
    Unknown = 0,
    Up = 1,
    Down = 2,
}

/// <summary>What became of one frame of a Transmit (the NIC device's result, plus refusals).</summary>
public enum TransmitResult : byte
{
    Sent = 0,
    LinkDown = 1,
    TooShort = 2,
    TooLong = 3,
    Error = 4,
    /// <summary>The frame's offset and length do not fit its data ICA, or the ICA is missing.</summary>
    BadDescriptor = 5,
    /// <summary>Not yet transmitted (the value inet writes before sending).</summary>
    Pending = 0xFF,
}

/// <summary>
/// IfAttach arguments (frame args, 104 B):
/// <code>
///  0  MAC (6, network order) | 6 reserved (2)
///  8  MTU (u32, the IP MTU)
/// 12  link (u8, AbiLinkState) | 13 reserved (3)
/// 16  driver's OS process id (u32)
/// 20  adapter name length (u8) | 21 adapter name (UTF-8, at most 32 bytes)
/// </code>
/// </summary>
public readonly record struct IfAttachArgs(ulong Mac, int Mtu, AbiLinkState Link, int DriverPid, string Adapter)
{
    public const int MaxAdapterBytes = 32;

    public void WriteTo(Span<byte> args)
    {
        if (args.Length < InetService.ArgumentBytes) throw new ArgumentException("the argument area has 104 bytes", nameof(args));
        args[..InetService.ArgumentBytes].Clear();
        WriteMac(args, Mac);
        BinaryPrimitives.WriteUInt32LittleEndian(args[8..], (uint)Mtu);
        args[12] = (byte)Link;
        BinaryPrimitives.WriteUInt32LittleEndian(args[16..], (uint)DriverPid);
        int n = System.Text.Encoding.UTF8.GetBytes(Adapter.AsSpan(), args.Slice(21, MaxAdapterBytes));
        args[20] = (byte)n;
    }

    /// <summary>Parses the arguments; false when they are malformed (never throws).</summary>
    public static bool TryRead(ReadOnlySpan<byte> args, out IfAttachArgs value)
    {
        value = default;
        if (args.Length < InetService.ArgumentBytes) return false;
        int n = args[20];
        if (n > MaxAdapterBytes) return false;
        string adapter;
        try { adapter = System.Text.Encoding.UTF8.GetString(args.Slice(21, n)); }
        catch (ArgumentException) { return false; }
        value = new IfAttachArgs(ReadMac(args), (int)BinaryPrimitives.ReadUInt32LittleEndian(args[8..]), (AbiLinkState)args[12],
            (int)BinaryPrimitives.ReadUInt32LittleEndian(args[16..]), adapter);
        return true;
    }

    internal static void WriteMac(Span<byte> six, ulong mac)
    {
        BinaryPrimitives.WriteUInt16BigEndian(six, (ushort)(mac >> 32));
        BinaryPrimitives.WriteUInt32BigEndian(six[2..], (uint)mac);
    }

    internal static ulong ReadMac(ReadOnlySpan<byte> six) =>
        ((ulong)BinaryPrimitives.ReadUInt16BigEndian(six) << 32) | BinaryPrimitives.ReadUInt32BigEndian(six[2..]);
}

/// <summary>
/// IfAttach result (the control ICA's result area):
/// <code>
///  0  our IPv4 address (4, network order) | 4 prefix length (u8) | 5 has gateway (u8) | 6 reserved (2)
///  8  gateway (4, network order) | 12 attachment number (u32, 1 for the first attach since inet started)
/// </code>
/// </summary>
public readonly record struct IfAttachResult(uint Address, int PrefixLength, uint? Gateway, uint Attachment)
{
    public const int Length = 16;

    public void WriteTo(Span<byte> result)
    {
        result[..Length].Clear();
        BinaryPrimitives.WriteUInt32BigEndian(result, Address);
        result[4] = (byte)PrefixLength;
        result[5] = Gateway is null ? (byte)0 : (byte)1;
        BinaryPrimitives.WriteUInt32BigEndian(result[8..], Gateway ?? 0);
        BinaryPrimitives.WriteUInt32LittleEndian(result[12..], Attachment);
    }

    public static bool TryRead(ReadOnlySpan<byte> result, out IfAttachResult value)
    {
        value = default;
        if (result.Length < Length) return false;
        value = new IfAttachResult(BinaryPrimitives.ReadUInt32BigEndian(result), result[4],
            result[5] != 0 ? BinaryPrimitives.ReadUInt32BigEndian(result[8..]) : null, BinaryPrimitives.ReadUInt32LittleEndian(result[12..]));
        return true;
    }
}

/// <summary>IfLink arguments: <c>0 link (u8, AbiLinkState)</c>.</summary>
public static class IfLinkArgs
{
    public static void Write(Span<byte> args, AbiLinkState link)
    {
        args[..InetService.ArgumentBytes].Clear();
        args[0] = (byte)link;
    }

    public static AbiLinkState Read(ReadOnlySpan<byte> args) => args.Length > 0 ? (AbiLinkState)args[0] : AbiLinkState.Unknown;
}

/// <summary>
/// Transmit arguments (the frame inet pushes on the control ICA):
/// <code>
///  0  frame count (u8, 1..3) | 1 reserved (3)
///  4  frame i at 4 + 8*i: offset in its data ICA (u16) | length (u16) | result (u8, TransmitResult)
///     | header length (u8) | segment size (u16)
/// </code>
/// Frame i travels in data ICA i. A header length of 0 is a whole frame at the offset. A
/// header length above 0 is a segmentation-offload frame: its Ethernet, IPv4 and TCP
/// headers (a template) are in the control ICA's inline area at <see cref="HeaderSlot"/> x i,
/// the offset and length give the TCP payload in the data ICA, and the driver cuts it into
/// frames of segment-size payload bytes each (AntHost.Inet.Core's TcpSegmentation).
/// </summary>
public static class TransmitArgs
{
    private const int Entry = 8;

    /// <summary>Bytes of the control ICA's inline area given to each frame's header template.</summary>
    public const int HeaderSlot = 160;

    public static void Begin(Span<byte> args, int count)
    {
        args[..InetService.ArgumentBytes].Clear();
        args[0] = (byte)count;
    }

    public static void SetFrame(Span<byte> args, int i, int offset, int length)
    {
        var e = args.Slice(4 + i * Entry, Entry);
        BinaryPrimitives.WriteUInt16LittleEndian(e, (ushort)offset);
        BinaryPrimitives.WriteUInt16LittleEndian(e[2..], (ushort)length);
        e[4] = (byte)TransmitResult.Pending;
    }

    public static int Count(ReadOnlySpan<byte> args) => args.Length >= InetService.ArgumentBytes ? args[0] : 0;

    public static bool TryGetFrame(ReadOnlySpan<byte> args, int i, out int offset, out int length)
    {
        offset = length = 0;
        if ((uint)i >= InetService.MaxFramesPerMessage || args.Length < InetService.ArgumentBytes) return false;
        var e = args.Slice(4 + i * Entry, Entry);
        offset = BinaryPrimitives.ReadUInt16LittleEndian(e);
        length = BinaryPrimitives.ReadUInt16LittleEndian(e[2..]);
        return true;
    }

    public static void SetResult(Span<byte> args, int i, TransmitResult result) => args[4 + i * Entry + 4] = (byte)result;

    /// <summary>Makes frame <paramref name="i"/> a segmentation-offload frame (after <see cref="SetFrame"/>): its header template is in the inline area's slot i.</summary>
    public static void SetOffload(Span<byte> args, int i, int headerLength, int segmentSize)
    {
        var e = args.Slice(4 + i * Entry, Entry);
        e[5] = (byte)headerLength;
        BinaryPrimitives.WriteUInt16LittleEndian(e[6..], (ushort)segmentSize);
    }

    /// <summary>Frame <paramref name="i"/>'s header length and segment size; false for a whole frame.</summary>
    public static bool TryGetOffload(ReadOnlySpan<byte> args, int i, out int headerLength, out int segmentSize)
    {
        headerLength = segmentSize = 0;
        if ((uint)i >= InetService.MaxFramesPerMessage || args.Length < InetService.ArgumentBytes) return false;
        var e = args.Slice(4 + i * Entry, Entry);
        headerLength = e[5];
        segmentSize = BinaryPrimitives.ReadUInt16LittleEndian(e[6..]);
        return headerLength > 0;
    }

    /// <summary>Frame <paramref name="i"/>'s header template slot in the control ICA's inline area.</summary>
    public static Span<byte> HeaderTemplate(Span<byte> inline, int i, int headerLength) => inline.Slice(i * HeaderSlot, headerLength);

    public static TransmitResult GetResult(ReadOnlySpan<byte> args, int i) =>
        (uint)i < InetService.MaxFramesPerMessage && args.Length >= InetService.ArgumentBytes ? (TransmitResult)args[4 + i * Entry + 4] : TransmitResult.BadDescriptor;
}

/// <summary>The counters a Stats reply carries, in this order.</summary>
public enum InetStat
{
    /// <summary>IfAttach requests accepted.</summary>
    Attaches,
    /// <summary>Attached drivers that died (peer-died notices).</summary>
    DriverDeaths,
    /// <summary>1 while a driver is attached.</summary>
    Attached,
    /// <summary>The interface's MAC (48 bits), 0 before the first attach.</summary>
    Mac,
    /// <summary>The interface's IPv4 address (host order).</summary>
    Address,
    EthInputMessages,
    /// <summary>Frames received from the driver and handed to the protocol core.</summary>
    FramesFromDriver,
    /// <summary>Frames or requests refused (not from the attached driver, malformed).</summary>
    BadRequests,
    TransmitRequests,
    /// <summary>Frames handed to the driver.</summary>
    FramesToDriver,
    /// <summary>Frames the driver reported sent.</summary>
    FramesSent,
    /// <summary>Frames the driver reported not sent (link down, refused).</summary>
    FramesNotSent,
    /// <summary>Frames dropped because no driver was attached.</summary>
    TxNoDriver,
    /// <summary>Frames that were with a driver when it died (their ICAs went with it).</summary>
    TxLostWithDriver,
    /// <summary>Transmit requests that could not be sent (ring full).</summary>
    TxSendFailures,
    /// <summary>Frames lent to the driver and not yet back.</summary>
    TxInFlight,
    /// <summary>Segmentation-offload frames handed to the driver (each cut into several on the wire; part of FramesToDriver).</summary>
    OffloadFrames,
    /// <summary>Packet buffers (ICAs) the protocol manager holds: the interface's plus in flight.</summary>
    BuffersOutstanding,
    /// <summary>Buffers the interface says it holds (queues, ARP, reassembly, sockets).</summary>
    InterfaceHeldBuffers,
    /// <summary>Pages of the pool the ownership table assigns to the inet server (cache included).</summary>
    PagesOwned,
    /// <summary>The interface's counters of interest.</summary>
    IfaceFramesIn,
    IfaceFramesOut,
    ArpRepliesOut,
    IcmpEchoRepliesOut,
    IcmpUnreachableOut,
    UdpNoPort,
    IfaceRxDrops,
    IfaceTxDrops,
    /// <summary>The link state the driver last reported (AbiLinkState).</summary>
    Link,
    /// <summary>Bytes the request manager's thread has allocated since it started, read as the Stats request is taken (allocation checks).</summary>
    RequestThreadAllocatedBytes,
    /// <summary>Ring slots the kernel connection dropped as garbage (unknown channel or kind).</summary>
    KernelGarbage,
    /// <summary>Messages the kernel connection refused for a bad handle.</summary>
    KernelRefusedHandles,

    // ---- the socket manager (apps -> inet)
    /// <summary>Sockets open now (TCP and UDP, handles held by apps).</summary>
    SocketsOpen,
    /// <summary>Socket calls taken (every app request, whatever its outcome).</summary>
    SocketCalls,
    /// <summary>Calls naming an unknown, stale or another process's socket (refused with InvalidSocket).</summary>
    InvalidSocketHandles,
    /// <summary>Requests held now (blocking connect, accept, send, receive, close with linger, poll, ping).</summary>
    HeldRequests,
    /// <summary>App processes that died or closed their last channel to inet.</summary>
    AppDeaths,
    /// <summary>Sockets aborted (RST) because their app died.</summary>
    SocketsAbortedForDeadApps,
    /// <summary>The TCP layer's counters.</summary>
    TcpSegmentsIn,
    TcpSegmentsOut,
    /// <summary>Retransmissions (timeout, fast and SACK together).</summary>
    TcpRetransmits,
    TcpResetsIn,
    TcpResetsOut,
    /// <summary>TCP connections the demultiplexer knows (orphans in FIN-WAIT/TIME-WAIT included).</summary>
    TcpConnections,
    /// <summary>App requests refused as malformed: no control ICA, arguments that do not parse, data ICA offsets outside the ICA, a call that does not fit the socket type.</summary>
    BadSocketRequests,
    /// <summary>Sends whose result went to the app straight from the driver (direct return).</summary>
    DirectReturns,
    /// <summary>Sends answered by inet itself (queued, copied, or not sent at once).</summary>
    SendsAnsweredByInet,
    /// <summary>Received payload ICAs handed to apps (zero copy).</summary>
    ReceiveIcasToApps,
    /// <summary>Held requests ended by Cancel.</summary>
    Canceled,
    /// <summary>Echo requests sent for Ping calls.</summary>
    PingsSent,
    /// <summary>TCP retransmissions by cause (TcpRetransmits is their sum).</summary>
    TcpRetransmitsTimeout,
    TcpRetransmitsFast,
    TcpRetransmitsSack,
    /// <summary>TCP segments dropped on input (bad checksum, not acceptable, PAWS, no socket, ...).</summary>
    TcpDropsIn,
    /// <summary>TCP retransmissions by RACK (RFC 8985) and by the tail loss probe (part of TcpRetransmits).</summary>
    TcpRetransmitsRack,
    TcpRetransmitsTlp,
    /// <summary>Sockets refused (TooManySockets): the app had its --max-sockets-per-process, or inet its --max-sockets.</summary>
    SocketLimitRefusals,
    /// <summary>TCP segments that went in offload frames, and times a chunk still lent from an earlier send kept a send to one segment.</summary>
    TcpOffloadSegments,
    TcpOffloadChunkLent,
    /// <summary>
    /// TCP's memory under the pool's pressure: the limit set from the pool (bytes of buffer
    /// capacity; 0 = none), what TCP's buffers hold now and at most, and the connections holding some.
    /// </summary>
    TcpMemoryLimit,
    TcpMemoryUsed,
    TcpMemoryUsedPeak,
    TcpMemoryHolders,
    /// <summary>Segments whose window the pool's pressure made smaller, and sends it held back (would block).</summary>
    TcpPressureWindowClamps,
    TcpPressureSendRefusals,
    /// <summary>The fewest free pages of the pool inet saw (once per round).</summary>
    PoolFreePagesLow,
    /// <summary>Times inet gave its ICA cache back to the pool because fewer pages than the receive reserve were free.</summary>
    PoolCacheTrims,
    /// <summary>
    /// Replies to an app whose ring was full: parked (not waited for on inet's thread), parked
    /// now, and dropped (the ring stayed full past the patience, or too many were parked for one app).
    /// </summary>
    RepliesParked,
    RepliesParkedNow,
    RepliesDropped,
    /// <summary>Frames that came in frame lists (EthInputList; part of FramesFromDriver), and list frames refused (malformed list, or a frame a list may not carry).</summary>
    FramesFromLists,
    BadListFrames,
    /// <summary>Receive batches: the ethinputs of one round (or each ethinput with --batch-per-ethinput), each answered with one ACK per connection.</summary>
    ReceiveBatches,
    /// <summary>TCP's retransmission timer expiries (each a timeout, whatever it retransmitted; as Linux's TCPTimeouts).</summary>
    TcpTimeouts,
    /// <summary>Tail loss probes sent, of new data or not (RFC 8985 7.3; as Linux's TCPLossProbes).</summary>
    TcpTlpProbes,
    /// <summary>
    /// Messages in which the driver gave lent ICAs back (transmit replies, TxDataBack,
    /// TxCompletions); malformed TxCompletions (no ICA, a result no driver writes), counted and
    /// their ICAs taken all the same.
    /// </summary>
    CompletionMessages,
    BadCompletions,
    /// <summary>Answers inet sent to apps (the driver's direct returns are counted in DirectReturns).</summary>
    RepliesToApps,
    Count,
}

/// <summary>
/// Stats reply (the control ICA's inline area): <c>0 count (u32) | 4 reserved | 8 count x u64</c>
/// in <see cref="InetStat"/> order; a reader takes what it knows, so the list can grow.
/// </summary>
public static class InetStats
{
    public static int Size => 8 + (int)InetStat.Count * 8;

    public static void Write(Span<byte> inline, ReadOnlySpan<long> values)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(inline, (uint)values.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(inline[4..], 0);
        for (int i = 0; i < values.Length; i++) BinaryPrimitives.WriteInt64LittleEndian(inline[(8 + i * 8)..], values[i]);
    }

    /// <summary>Reads the values; missing ones are 0.</summary>
    public static long[] Read(ReadOnlySpan<byte> inline)
    {
        var values = new long[(int)InetStat.Count];
        if (inline.Length < 8) return values;
        int n = (int)Math.Min(BinaryPrimitives.ReadUInt32LittleEndian(inline), (uint)((inline.Length - 8) / 8));
        for (int i = 0; i < Math.Min(n, values.Length); i++) values[i] = BinaryPrimitives.ReadInt64LittleEndian(inline[(8 + i * 8)..]);
        return values;
    }
}
