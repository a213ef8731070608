// One ring slot: 64 bytes, one cache line. A message that does not fit in a slot
// lives in its control ICA, which the slot names; a slot never continues into
// the next one, so a reader can check every slot on its own.
//
//   0      1      2         3      4              8
//  +------+------+---------+------+--------------+------------------------------+
//  | kind | flags| ndata   | rsvd | request id   | control ICA handle           |
//  +------+------+---------+------+--------------+------------------------------+
//  16 data ICA 0 handle | 24 data ICA 1 handle | 32 data ICA 2 handle            |
//  40 length 0 | 44 length 1 | 48 length 2 | 52 channel | 56 word | 60 source   |
//
// "word" is the opcode of a request, the status of a reply. "source" is the
// sending process; on the mediated path the broker writes it (so it is true),
// on the direct path the sender does and the receiver checks it against the
// channel it read the slot from.
//
// Journal records (uplink to the broker only) reuse the slot:
//   0 kind (JournalTransfer/JournalFree) | 1 flags (Lend) | 2 count (1..6) | 4 destination process
//   8..55 up to six handles, as the sender held them (before the transfer).
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace AntHost.Kernel.Ipc;

/// <summary>What a ring slot carries.</summary>
public enum MessageKind : byte
{
    None = 0,
    /// <summary>A request to a server (sync when <see cref="MessageFlags.Sync"/> is set, else async).</summary>
    Request = 1,
    /// <summary>The result of a request, matched by request id (also the completion of an async request).</summary>
    Reply = 2,
    /// <summary>A one-way hand-over of ICAs (e.g. a data ICA given back to an intermediate server).</summary>
    Notify = 3,
    /// <summary>Broker: a client opened a channel to one of this process's services (or a return channel).</summary>
    ChannelOpened = 16,
    /// <summary>Broker: the process at the other end of a channel died or was cut off.</summary>
    PeerDied = 17,
    /// <summary>Broker: a message sent on the mediated path was refused; word = error, request id as sent.</summary>
    Refused = 18,
    /// <summary>Uplink only: ownership transfer records for the broker to commit.</summary>
    JournalTransfer = 32,
    /// <summary>Uplink only: frees for the broker to apply at commit.</summary>
    JournalFree = 33,
}

[Flags]
public enum MessageFlags : byte
{
    None = 0,
    /// <summary>The sender waits for the reply (a sync call).</summary>
    Sync = 1,
    /// <summary>A reply that skips intermediate servers and goes straight to the original requester.</summary>
    DirectReturn = 2,
    /// <summary>
    /// The message's ICAs are lent, not given: if the receiver dies holding them, the broker
    /// gives them back to the sender instead of freeing them (a frame lent to a NIC driver
    /// that crashes is still the sender's unacknowledged TCP data). Any later transfer by
    /// the receiver ends the loan. On a journal record: the handles it names are lent.
    /// </summary>
    Lend = 4,
    /// <summary>
    /// Publish without waking a receiver that waits only for its own calls' replies: the
    /// message is taken with its next wake-up. A receiver that waits for anything (Receive,
    /// a dispatcher, an app waiting for a posted send) is woken as usual. For completions
    /// nobody waits for now (a posted send's result).
    /// </summary>
    Quiet = 8,
}

/// <summary>The 64-byte layout of a ring slot.</summary>
[StructLayout(LayoutKind.Explicit, Size = 64)]
public struct RingMessage
{
    public const int MaxData = 3;
    public const int MaxJournalHandles = 6;

    [FieldOffset(0)] public MessageKind Kind;
    [FieldOffset(1)] public MessageFlags Flags;
    [FieldOffset(2)] public byte DataCount;
    [FieldOffset(4)] public uint RequestId;
    [FieldOffset(8)] public ulong Control;
    [FieldOffset(16)] public ulong Data0;
    [FieldOffset(24)] public ulong Data1;
    [FieldOffset(32)] public ulong Data2;
    [FieldOffset(40)] public uint Length0;
    [FieldOffset(44)] public uint Length1;
    [FieldOffset(48)] public uint Length2;
    [FieldOffset(52)] public uint Channel;
    [FieldOffset(56)] public int Word;
    [FieldOffset(60)] public uint Source;

    // Journal view.
    [FieldOffset(2)] public byte JournalCount;
    [FieldOffset(4)] public uint JournalDestination;

    public ulong GetData(int i) => i switch { 0 => Data0, 1 => Data1, 2 => Data2, _ => 0 };

    public void SetData(int i, ulong handle, uint length)
    {
        switch (i)
        {
            case 0: Data0 = handle; Length0 = length; break;
            case 1: Data1 = handle; Length1 = length; break;
            case 2: Data2 = handle; Length2 = length; break;
            default: throw new ArgumentOutOfRangeException(nameof(i));
        }
    }

    public uint GetLength(int i) => i switch { 0 => Length0, 1 => Length1, 2 => Length2, _ => 0 };

    /// <summary>Journal handle i (0..5), stored over bytes 8..55.</summary>
    public ulong GetJournalHandle(int i) => Unsafe.Add(ref Control, i);

    public void SetJournalHandle(int i, ulong handle) => Unsafe.Add(ref Control, i) = handle;
}
