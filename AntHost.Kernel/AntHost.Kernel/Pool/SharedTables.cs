// The shared records of the META region (the tables file). They are laid out
// explicitly (fixed offsets, little-endian host order: every process runs on the
// same machine) and only ever reached through a pointer into the mapping. The
// broker is their only writer: every other process maps them from a read-only
// descriptor the broker hands it, so it cannot map them writable at all.
using System.Runtime.InteropServices;

namespace AntHost.Kernel.Pool;

/// <summary>How processes hand ICAs to each other; chosen per instance at broker start.</summary>
public enum TransferMode : uint
{
    /// <summary>Message goes on the peer's ring after a transfer record in the sender's journal; the broker commits journals in batches.</summary>
    Direct = 1,
    /// <summary>Message goes to the broker, which checks and re-assigns the ICAs before forwarding it.</summary>
    Mediated = 2,
}

/// <summary>Counters the broker keeps in the pool header, readable by every process.</summary>
public enum BrokerCounter
{
    FreePages = 0,
    Allocations,
    Frees,
    TransfersCommitted,
    MediatedForwarded,
    Refused,
    CutOffs,
    BadMessages,
    BadSocketRequests,
    Deaths,
    PagesReclaimed,
    JournalBatches,
    DuplicateRegistrations,
    UnknownServices,
    /// <summary>Pages of lent ICAs given back to their lender when the borrower died.</summary>
    LoansReturned,
    /// <summary>Connections refused: their peer is neither root nor a member of the instance's group.</summary>
    PermissionDenied,
    /// <summary>Allocations refused at an app's page limit (--app-pages).</summary>
    QuotaPages,
    /// <summary>Allocations refused at an app's ICA limit (--app-icas).</summary>
    QuotaIcas,
    /// <summary>Allocations refused because only the servers' reserve was left (--server-reserve).</summary>
    QuotaReserve,
    /// <summary>Channels refused at an app's channel limit (--app-channels).</summary>
    QuotaChannels,
    /// <summary>Services refused at an app's service limit (--app-services).</summary>
    QuotaServices,
    /// <summary>Registrations refused at the per-uid limit (--registrations-per-uid).</summary>
    QuotaRegistrations,
    /// <summary>Connections to the broker's socket closed at once: their uid had --connections-per-uid open.</summary>
    QuotaConnections,
    Count,
}

[StructLayout(LayoutKind.Explicit, Size = PoolLayout.HeaderSize)]
internal struct PoolHeader
{
    public const ulong MagicValue = 0x4C4F4F5048544E41; // "ANTHPOOL"
    public const uint CurrentVersion = 3;

    [FieldOffset(0)] public ulong Magic;
    [FieldOffset(8)] public uint Version;
    [FieldOffset(12)] public uint PageSize;
    [FieldOffset(16)] public int DataPages;
    [FieldOffset(20)] public int MaxProcesses;
    [FieldOffset(24)] public int MaxServices;
    [FieldOffset(28)] public int MaxChannels;
    [FieldOffset(32)] public int RingCapacity;
    [FieldOffset(36)] public uint TransferMode;
    [FieldOffset(40)] public uint Strict;
    [FieldOffset(44)] public int BrokerPid;
    [FieldOffset(48)] public int Ready;
    [FieldOffset(52)] public int JournalCommitMicros;
    [FieldOffset(256)] public long CountersStart;

    public static int CounterOffset(BrokerCounter c) => 256 + 8 * (int)c;
}

internal enum ProcessState : uint
{
    Free = 0,
    Alive = 1,
    /// <summary>Transfers of this process are no longer honoured; the broker is ending it.</summary>
    CutOff = 2,
    /// <summary>Dead; the broker is reclaiming what it owned.</summary>
    Dead = 3,
}

[StructLayout(LayoutKind.Explicit, Size = PoolLayout.ProcessEntrySize)]
internal unsafe struct ProcessEntry
{
    public const int NameBytes = 64;
    public const uint FlagStrict = 1;
    /// <summary>Registered as a server (root only): the broker's per-app limits do not apply.</summary>
    public const uint FlagServer = 2;
    [FieldOffset(0)] public uint State;
    [FieldOffset(4)] public uint ProcessId;
    [FieldOffset(8)] public int Pid;
    [FieldOffset(12)] public uint Flags;
    [FieldOffset(16)] public int NameLength;
    /// <summary>The registering process's uid (SO_PEERCRED).</summary>
    [FieldOffset(20)] public uint Uid;
    [FieldOffset(32)] public fixed byte Name[NameBytes];
}

[StructLayout(LayoutKind.Explicit, Size = PoolLayout.ServiceEntrySize)]
internal unsafe struct ServiceEntry
{
    public const int NameBytes = 48;
    [FieldOffset(0)] public uint State;
    [FieldOffset(4)] public uint OwnerProcessId;
    [FieldOffset(8)] public int NameLength;
    [FieldOffset(16)] public fixed byte Name[NameBytes];
}

internal enum ChannelState : uint
{
    Free = 0,
    Open = 1,
    /// <summary>One side died or closed it: nothing more may be sent on it.</summary>
    Closed = 2,
}

[StructLayout(LayoutKind.Explicit, Size = PoolLayout.ChannelEntrySize)]
internal struct ChannelEntry
{
    [FieldOffset(0)] public uint State;
    [FieldOffset(4)] public uint ChannelId;
    [FieldOffset(8)] public uint ClientProcessId;
    [FieldOffset(12)] public uint ServerProcessId;
    [FieldOffset(16)] public uint ServiceId;
}

/// <summary>
/// Ownership of one data page. Only a head page describes an ICA. The owner and the transfer
/// count share one aligned 32-bit word (<see cref="OwnerAndCount"/>): the broker changes both
/// with one store and a receiver reads both with one load, so a receiver checking a handle
/// while the broker commits a transfer never sees the new owner with the old count (or the
/// reverse), which would make it refuse a valid handle.
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = PoolLayout.OwnershipEntrySize)]
internal struct OwnershipEntry
{
    public const ushort FlagAllocated = 1;
    public const ushort FlagHead = 2;

    /// <summary>Bumped each time an ICA is allocated with this page at its head.</summary>
    [FieldOffset(0)] public uint Generation;
    /// <summary>Owning process slot + 1; 0 when free.</summary>
    [FieldOffset(4)] public ushort Owner;
    /// <summary>Transfers of this ICA committed so far (head page).</summary>
    [FieldOffset(6)] public ushort TransferCount;
    /// <summary><see cref="Owner"/> (low half) and <see cref="TransferCount"/> (high half) as one word.</summary>
    [FieldOffset(4)] public uint OwnerAndCount;
    /// <summary>Head page: the ICA's page count. Other pages of an ICA: the head's index.</summary>
    [FieldOffset(8)] public uint PagesOrHead;
    [FieldOffset(12)] public ushort Flags;
    /// <summary>
    /// Head page: the owner tag of the process that lent the ICA to its owner (0: not lent).
    /// A lent ICA goes back to its lender, not to the free list, when the borrower dies.
    /// </summary>
    [FieldOffset(14)] public ushort Lender;

    public static uint Pack(ushort owner, ushort transferCount) => owner | ((uint)transferCount << 16);
}
