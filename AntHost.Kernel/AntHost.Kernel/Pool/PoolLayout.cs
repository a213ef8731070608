// Where everything lives. An instance has two files, each addressed by offsets
// from its own start (never a pointer: each process maps them at its own address):
//
//   tables file /dev/shm/anthost-NAME.tables (0600, the broker's; others get it
//   only as a read-only descriptor over the broker's socket, so none can map it
//   writable)
//   +-------------------------------------------------------------+ 0
//   | META: header page | process table | service table |         |
//   |   channel table | ownership table (16 B per data page)      |
//   +-------------------------------------------------------------+ MetaSize
//
//   pool file /dev/shm/anthost-NAME.pool (0660, root and the instance's group)
//   +-------------------------------------------------------------+ 0 (RwOffset)
//   | RINGS (read-write)                                          |
//   |   doorbells (64 B per process + one for the broker)         |
//   |   ring blocks: uplink+downlink per process slot,            |
//   |   two per channel (one each way)                            |
//   +-------------------------------------------------------------+ DataOffset
//   | DATA (read-write; PROT_NONE where not owned in strict mode) |
//   |   page 0 .. DataPages-1, the ICAs                           |
//   +-------------------------------------------------------------+ FileSize
//
// The broker computes the layout at start and writes it in the tables' header; a
// process that maps the pool reads it from there, so the two always agree.
namespace AntHost.Kernel.Pool;

/// <summary>Sizes and offsets of the regions of one pool file.</summary>
public sealed record PoolLayout
{
    public const int PageSize = 4096;
    public const int HeaderSize = PageSize;
    public const int ProcessEntrySize = 128;
    public const int ServiceEntrySize = 64;
    public const int ChannelEntrySize = 64;
    public const int OwnershipEntrySize = 16;
    public const int DoorbellSize = 64;
    public const int RingHeaderSize = 128;
    public const int SlotSize = 64;

    public required int DataPages { get; init; }
    public required int MaxProcesses { get; init; }
    public required int MaxServices { get; init; }
    public required int MaxChannels { get; init; }
    public required int RingCapacity { get; init; }

    public long ProcessTableOffset => HeaderSize;
    public long ServiceTableOffset => ProcessTableOffset + (long)MaxProcesses * ProcessEntrySize;
    public long ChannelTableOffset => ServiceTableOffset + (long)MaxServices * ServiceEntrySize;
    public long OwnershipOffset => Align(ChannelTableOffset + (long)MaxChannels * ChannelEntrySize, 64);
    public long MetaSize => Align(OwnershipOffset + (long)DataPages * OwnershipEntrySize, PageSize);

    /// <summary>Size of the tables file (META).</summary>
    public long TablesFileSize => MetaSize;

    /// <summary>RINGS start the pool file; META lives in the tables file.</summary>
    public long RwOffset => 0;
    /// <summary>Doorbell of process slot i at DoorbellOffset + i*64; the broker's is slot MaxProcesses.</summary>
    public long DoorbellOffset => RwOffset;
    public long RingsOffset => DoorbellOffset + (long)(MaxProcesses + 1) * DoorbellSize;
    public int RingBytes => RingHeaderSize + RingCapacity * SlotSize;
    /// <summary>Ring blocks: uplink of slot i = 2i, downlink = 2i+1, channel c (0-based): 2*MaxProcesses + 2c (to server), +1 (to client).</summary>
    public int RingCount => 2 * MaxProcesses + 2 * MaxChannels;
    public long RwSize => Align(RingsOffset - RwOffset + (long)RingCount * RingBytes, PageSize);

    public long DataOffset => RwOffset + RwSize;
    /// <summary>Size of the pool file (RINGS and DATA).</summary>
    public long FileSize => DataOffset + (long)DataPages * PageSize;

    public int UplinkRing(int slot) => 2 * slot;
    public int DownlinkRing(int slot) => 2 * slot + 1;
    public int ChannelRingToServer(int channelIndex) => 2 * MaxProcesses + 2 * channelIndex;
    public int ChannelRingToClient(int channelIndex) => 2 * MaxProcesses + 2 * channelIndex + 1;
    public long RingOffset(int ring) => RingsOffset + (long)ring * RingBytes;
    public long DoorbellOffsetOf(int slot) => DoorbellOffset + (long)slot * DoorbellSize;

    public static PoolLayout ForDataBytes(long dataBytes, int maxProcesses = 64, int maxServices = 64, int maxChannels = 128, int ringCapacity = 256)
    {
        if (dataBytes < PageSize * 16L) throw new ArgumentOutOfRangeException(nameof(dataBytes), "the pool needs at least 16 pages");
        long pages = dataBytes / PageSize;
        if (pages > IcaHandle.MaxPage) throw new ArgumentOutOfRangeException(nameof(dataBytes), $"at most {IcaHandle.MaxPage} pages");
        if (maxProcesses is < 2 or > 1000) throw new ArgumentOutOfRangeException(nameof(maxProcesses));
        if (ringCapacity < 8 || (ringCapacity & (ringCapacity - 1)) != 0) throw new ArgumentOutOfRangeException(nameof(ringCapacity), "a power of two, at least 8");
        return new PoolLayout { DataPages = (int)pages, MaxProcesses = maxProcesses, MaxServices = maxServices, MaxChannels = maxChannels, RingCapacity = ringCapacity };
    }

    private static long Align(long v, long a) => (v + a - 1) / a * a;
}
