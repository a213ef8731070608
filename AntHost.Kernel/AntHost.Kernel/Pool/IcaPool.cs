// One process's mapping of an instance: the tables file (META: header, process,
// service, channel and ownership tables) and the pool file (RINGS and DATA). The
// broker maps both read-write. Every other process maps the pool file read-write
// and the tables read-only, from a descriptor the broker handed it over its socket
// opened O_RDONLY: the kernel refuses a writable shared mapping of such a
// descriptor, and the file itself is the broker's (0600), so no process but the
// broker can write the tables, by mistake or on purpose (a root process excepted:
// root can do anything to any process). Both mappings are MAP_SHARED; pointers
// into them are stable for the life of this object and never leave the process.
using System.IO.MemoryMappedFiles;
using System.Runtime.CompilerServices;
using System.Text;
using AntHost.Kernel.Interop;
using Microsoft.Win32.SafeHandles;

namespace AntHost.Kernel.Pool;

/// <summary>A mapped ICA pool: typed access to the header, tables, rings, doorbells and data pages.</summary>
public sealed unsafe class IcaPool : IDisposable
{
    private readonly MemoryMappedFile _tablesFile;
    private readonly MemoryMappedFile _poolFile;
    private readonly MemoryMappedViewAccessor _metaView;
    private readonly MemoryMappedViewAccessor _rwView;
    private readonly byte* _meta;
    private readonly byte* _rw;
    private int _disposed;

    public PoolLayout Layout { get; }
    public string Path { get; }
    public bool IsBrokerView { get; }

    /// <summary>The pool file of an instance (rings and data pages; root and the instance's group).</summary>
    public static string PathFor(string instance) => $"/dev/shm/anthost-{instance}.pool";

    /// <summary>The tables file of an instance (header, process, service, channel and ownership tables; the broker's alone).</summary>
    public static string TablesPathFor(string instance) => $"/dev/shm/anthost-{instance}.tables";

    /// <summary>The tables file beside a pool file.</summary>
    public static string TablesPathOf(string poolPath) =>
        poolPath.EndsWith(".pool", StringComparison.Ordinal) ? poolPath[..^".pool".Length] + ".tables" : poolPath + ".tables";

    /// <summary>
    /// The wake socket path of process slot <paramref name="slot"/> (see Doorbell): beside the
    /// broker's socket, named after the pool file, so that every process of an instance derives
    /// the same path, whichever network namespace it runs in.
    /// </summary>
    public string WakePath(int slot)
    {
        string stem = System.IO.Path.GetFileNameWithoutExtension(Path);
        if (stem.StartsWith("anthost-", StringComparison.Ordinal)) stem = stem["anthost-".Length..];
        return $"{Protocol.ControlProtocol.SocketDirectory}/{stem}.wake.{slot}";
    }

    private IcaPool(string path, MemoryMappedFile tables, MemoryMappedFile pool, PoolLayout layout, bool broker)
    {
        Path = path;
        _tablesFile = tables;
        _poolFile = pool;
        Layout = layout;
        IsBrokerView = broker;
        var metaAccess = broker ? MemoryMappedFileAccess.ReadWrite : MemoryMappedFileAccess.Read;
        _metaView = tables.CreateViewAccessor(0, layout.TablesFileSize, metaAccess);
        _meta = Acquire(_metaView);
        _rwView = pool.CreateViewAccessor(0, layout.FileSize, MemoryMappedFileAccess.ReadWrite);
        _rw = Acquire(_rwView);
    }

    private static byte* Acquire(MemoryMappedViewAccessor view)
    {
        byte* p = null;
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
        return p + view.PointerOffset;
    }

    /// <summary>
    /// Creates the tables file (0600) and the pool file (<paramref name="poolMode"/>); broker
    /// only. Both must not exist.
    /// </summary>
    internal static IcaPool Create(string path, PoolLayout layout, UnixFileMode poolMode)
    {
        string tablesPath = TablesPathOf(path);
        using (var fs = new FileStream(tablesPath, new FileStreamOptions
        {
            Mode = FileMode.CreateNew,
            Access = FileAccess.ReadWrite,
            Share = FileShare.ReadWrite,
            UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
        }))
            fs.SetLength(layout.TablesFileSize);
        using (var fs = new FileStream(path, new FileStreamOptions
        {
            Mode = FileMode.CreateNew,
            Access = FileAccess.ReadWrite,
            Share = FileShare.ReadWrite,
            UnixCreateMode = poolMode,
        }))
            fs.SetLength(layout.FileSize);
        // The umask may have taken bits off the mode asked for at creation.
        File.SetUnixFileMode(path, poolMode);
        var tables = MemoryMappedFile.CreateFromFile(tablesPath, FileMode.Open, null, 0, MemoryMappedFileAccess.ReadWrite);
        var pool = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.ReadWrite);
        var p = new IcaPool(path, tables, pool, layout, broker: true);
        Native.Populate(p._meta, layout.TablesFileSize, writable: true);
        Native.Populate(p._rw, layout.FileSize, writable: true);
        return p;
    }

    /// <summary>
    /// Maps an existing pool as an observer or tool (tables read-only), opening the tables file
    /// by its path: only root (or the broker's user) may. Registered processes get the tables
    /// from the broker instead (<see cref="Open(string, SafeFileHandle)"/>).
    /// </summary>
    public static IcaPool Open(string path)
    {
        using var tables = File.OpenHandle(TablesPathOf(path), FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        return Open(path, tables);
    }

    /// <summary>
    /// Maps an existing pool as an ordinary process: the tables read-only from
    /// <paramref name="tables"/> (a read-only descriptor; it may be closed afterwards), the
    /// pool file read-write by its path.
    /// </summary>
    public static IcaPool Open(string path, SafeFileHandle tables)
    {
        ArgumentNullException.ThrowIfNull(tables);
        PoolLayout layout;
        Span<byte> head = stackalloc byte[64];
        if (RandomAccess.Read(tables, head, 0) < 64) throw new KernelException(KernelError.PoolUnavailable, $"the tables of {path} are too short");
        fixed (byte* h = head)
        {
            var hdr = (PoolHeader*)h;
            if (hdr->Magic != PoolHeader.MagicValue || hdr->Version != PoolHeader.CurrentVersion)
                throw new KernelException(KernelError.PoolUnavailable, $"{path} is not an AntHost pool of version {PoolHeader.CurrentVersion}");
            if (Volatile.Read(ref hdr->Ready) != 1)
                throw new KernelException(KernelError.PoolUnavailable, $"pool {path} is not ready (its broker is starting or died)");
            layout = new PoolLayout
            {
                DataPages = hdr->DataPages,
                MaxProcesses = hdr->MaxProcesses,
                MaxServices = hdr->MaxServices,
                MaxChannels = hdr->MaxChannels,
                RingCapacity = hdr->RingCapacity,
            };
        }
        if (RandomAccess.GetLength(tables) != layout.TablesFileSize)
            throw new KernelException(KernelError.PoolUnavailable, $"the tables of {path} have {RandomAccess.GetLength(tables)} bytes, their header says {layout.TablesFileSize}");
        long poolLength = new FileInfo(path).Length;
        if (poolLength != layout.FileSize)
            throw new KernelException(KernelError.PoolUnavailable, $"pool {path} has {poolLength} bytes, its header says {layout.FileSize}");
        var tablesMap = MemoryMappedFile.CreateFromFile(tables, null, 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: true);
        MemoryMappedFile poolMap;
        try { poolMap = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.ReadWrite); }
        catch
        {
            tablesMap.Dispose();
            throw;
        }
        var pool = new IcaPool(path, tablesMap, poolMap, layout, broker: false);
        Native.Populate(pool._meta, layout.TablesFileSize, writable: false);
        Native.Populate(pool._rw, layout.FileSize, writable: true);
        return pool;
    }

    internal byte* MetaBase => _meta;
    internal byte* RwBase => _rw;
    internal byte* DataBase => _rw + Layout.DataOffset;

    internal ref PoolHeader Header => ref Unsafe.AsRef<PoolHeader>(_meta);

    public TransferMode Mode => (TransferMode)Volatile.Read(ref Header.TransferMode);
    public bool StrictByDefault => Volatile.Read(ref Header.Strict) != 0;
    public int BrokerPid => Volatile.Read(ref Header.BrokerPid);
    public int DataPages => Layout.DataPages;

    /// <summary>A broker counter (see <see cref="BrokerCounter"/>).</summary>
    public long Counter(BrokerCounter c) => Volatile.Read(ref *(long*)(_meta + PoolHeader.CounterOffset(c)));

    internal ref long CounterRef(BrokerCounter c) => ref *(long*)(_meta + PoolHeader.CounterOffset(c));

    internal ref ProcessEntry Process(int slot) => ref Unsafe.AsRef<ProcessEntry>(_meta + Layout.ProcessTableOffset + (long)slot * PoolLayout.ProcessEntrySize);
    internal ref ServiceEntry Service(int index) => ref Unsafe.AsRef<ServiceEntry>(_meta + Layout.ServiceTableOffset + (long)index * PoolLayout.ServiceEntrySize);
    internal ref ChannelEntry Channel(int index) => ref Unsafe.AsRef<ChannelEntry>(_meta + Layout.ChannelTableOffset + (long)index * PoolLayout.ChannelEntrySize);
    internal ref OwnershipEntry Page(uint page) => ref Unsafe.AsRef<OwnershipEntry>(_meta + Layout.OwnershipOffset + (long)page * PoolLayout.OwnershipEntrySize);

    /// <summary>Address of the ownership table (tests use it to show it is read-only).</summary>
    internal byte* OwnershipTableAddress => _meta + Layout.OwnershipOffset;

    internal byte* Ring(int ring) => _rw + (Layout.RingOffset(ring) - Layout.RwOffset);
    internal int* Doorbell(int slot) => (int*)(_rw + (Layout.DoorbellOffsetOf(slot) - Layout.RwOffset));
    internal int* BrokerDoorbell => Doorbell(Layout.MaxProcesses);

    /// <summary>Address of a data page.</summary>
    internal byte* PageAddress(uint page) => DataBase + (long)page * PoolLayout.PageSize;

    /// <summary>Offset of a data page from the start of the pool file (the same in every process).</summary>
    public long PageFileOffset(uint page) => Layout.DataOffset + (long)page * PoolLayout.PageSize;

    internal static string ReadName(byte* name, int length, int max) =>
        length is > 0 && length <= max ? Encoding.UTF8.GetString(name, length) : "";

    public string ProcessName(ProcessId id)
    {
        if (id.Slot < 0 || id.Slot >= Layout.MaxProcesses) return "";
        ref var p = ref Process(id.Slot);
        fixed (byte* n = p.Name) return ReadName(n, p.NameLength, ProcessEntry.NameBytes);
    }

    /// <summary>The OS pid the process table records for <paramref name="id"/> (0 when the slot holds another process or none).</summary>
    public int ProcessPid(ProcessId id)
    {
        if (id.Slot < 0 || id.Slot >= Layout.MaxProcesses) return 0;
        ref var p = ref Process(id.Slot);
        int pid = Volatile.Read(ref p.Pid);
        return Volatile.Read(ref p.ProcessId) == id.Value ? pid : 0;
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _metaView.SafeMemoryMappedViewHandle.ReleasePointer();
        _metaView.Dispose();
        _rwView.SafeMemoryMappedViewHandle.ReleasePointer();
        _rwView.Dispose();
        _tablesFile.Dispose();
        _poolFile.Dispose();
    }
}
