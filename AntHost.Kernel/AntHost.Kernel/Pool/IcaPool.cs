// One process's mapping of the pool file. The broker maps the whole file
// read-write. Every other process maps it as two views of the same file: META
// read-only (so the ownership table can only be written by the broker: a stray
// write faults) and RINGS+DATA read-write. Both views are MAP_SHARED; pointers
// into them are stable for the life of this object and never leave the process.
using System.IO.MemoryMappedFiles;
using System.Runtime.CompilerServices;
using System.Text;
using AntHost.Kernel.Interop;

namespace AntHost.Kernel.Pool;

/// <summary>A mapped ICA pool: typed access to the header, tables, rings, doorbells and data pages.</summary>
public sealed unsafe class IcaPool : IDisposable
{
    private readonly MemoryMappedFile _file;
    private readonly MemoryMappedViewAccessor _metaView;
    private readonly MemoryMappedViewAccessor? _rwView;
    private readonly byte* _meta;
    private readonly byte* _rw;
    private int _disposed;

    public PoolLayout Layout { get; }
    public string Path { get; }
    public bool IsBrokerView { get; }

    /// <summary>The pool file of an instance.</summary>
    public static string PathFor(string instance) => $"/dev/shm/anthost-{instance}.pool";

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

    private IcaPool(string path, MemoryMappedFile file, PoolLayout layout, bool broker)
    {
        Path = path;
        _file = file;
        Layout = layout;
        IsBrokerView = broker;
        if (broker)
        {
            _metaView = file.CreateViewAccessor(0, layout.FileSize, MemoryMappedFileAccess.ReadWrite);
            _meta = Acquire(_metaView);
            _rw = _meta + layout.RwOffset;
        }
        else
        {
            _metaView = file.CreateViewAccessor(0, layout.MetaSize, MemoryMappedFileAccess.Read);
            _meta = Acquire(_metaView);
            _rwView = file.CreateViewAccessor(layout.RwOffset, layout.FileSize - layout.RwOffset, MemoryMappedFileAccess.ReadWrite);
            _rw = Acquire(_rwView);
        }
    }

    private static byte* Acquire(MemoryMappedViewAccessor view)
    {
        byte* p = null;
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
        return p + view.PointerOffset;
    }

    /// <summary>Creates (truncating) the pool file; broker only.</summary>
    internal static IcaPool Create(string path, PoolLayout layout)
    {
        using (var fs = new FileStream(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.ReadWrite))
            fs.SetLength(layout.FileSize);
        var mmf = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.ReadWrite);
        var pool = new IcaPool(path, mmf, layout, broker: true);
        Native.Populate(pool._meta, layout.FileSize, writable: true);
        return pool;
    }

    /// <summary>Maps an existing pool as an ordinary process (META read-only).</summary>
    public static IcaPool Open(string path)
    {
        PoolLayout layout;
        using (var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite))
        {
            Span<byte> head = stackalloc byte[64];
            if (fs.Read(head) < 64) throw new KernelException(KernelError.PoolUnavailable, $"pool file {path} is too short");
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
            if (fs.Length != layout.FileSize)
                throw new KernelException(KernelError.PoolUnavailable, $"pool {path} has {fs.Length} bytes, its header says {layout.FileSize}");
        }
        var mmf = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.ReadWrite);
        var pool = new IcaPool(path, mmf, layout, broker: false);
        Native.Populate(pool._meta, layout.MetaSize, writable: false);
        Native.Populate(pool._rw, layout.FileSize - layout.RwOffset, writable: true);
        return pool;
    }

    internal byte* MetaBase => _meta;
    internal byte* RwBase => _rw;
    internal byte* DataBase => _rw + (Layout.DataOffset - Layout.RwOffset);

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

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _metaView.SafeMemoryMappedViewHandle.ReleasePointer();
        _metaView.Dispose();
        if (_rwView is not null)
        {
            _rwView.SafeMemoryMappedViewHandle.ReleasePointer();
            _rwView.Dispose();
        }
        _file.Dispose();
    }
}
