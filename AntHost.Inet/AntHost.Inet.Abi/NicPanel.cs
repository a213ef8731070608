// The NIC driver's panel: one small file in shared memory per running driver,
// /dev/shm/anthost-INSTANCE.nic-ADAPTER (0600, root), that the driver maps at start and
// removes at a clean stop. It carries two things to tools, with no IPC and no wake-up of
// the driver:
//
// - Live counters. The driver copies its counters into the panel with plain stores under a
//   sequence lock (odd while writing) before its loop sleeps and at most every 100 ms while
//   busy; `anthost ps` reads them (retrying while the sequence is odd or changes). A request
//   on the driver's service would wake a loop that sleeps, and the driver has no service a
//   tool can reach (it serves inet's channel only); the panel costs the loop ~40 stores
//   per sleep and nothing when no one reads.
// - The capture ring. `anthost capture` takes the capture (CAS of its pid into the owner
//   word, then the active flag); the driver checks the flag (one load) for every frame it
//   receives and transmits and, while it is set, copies the frame with its direction and a
//   timestamp of its own clock into a byte ring of RingBytes (one producer lock, taken only
//   while capturing). A ring without room for the frame drops it and counts it: the driver
//   never waits for the reader. The reader advances the read position as it consumes.
//
// Layout (little-endian):
//   0    magic u64 "ANTHNIC1"   8 version i32   12 driver pid i32
//   16   sequence u64 (odd while the counters are being written)   24 published at, Unix ns
//   32   counter count i32      36 capture offered i32 (0: the driver runs with --no-capture)
//   64..  counters i64 x count (NicStat order)
//   512  capture owner pid i32  516 active i32   520 ring bytes i64
//   576  write position i64 (producer's line)   584 frames dropped i64   592 frames captured i64
//   640  read position i64 (consumer's line)
//   704  clock base: Unix ns i64, Stopwatch ticks i64, Stopwatch frequency i64
//   4096 ring: records [length u32 (multiple of 8, whole record) | wire length u32 |
//        ticks i64 | direction u8 | pad 3 | captured u32 | bytes], a record of direction
//        0xFF pads to the ring's end.
using System.Buffers.Binary;
using System.Diagnostics;
using System.IO.MemoryMappedFiles;

namespace AntHost.Inet.Abi;

/// <summary>The NIC driver's live counters in the panel, in this order.</summary>
public enum NicStat
{
    // the device (libpcap)
    RxFrames, RxBytes, RxDelivered, RxOversize, RxTruncated, RxRunt, RxNotForUs, RxHandlerErrors,
    /// <summary>pcap_stats ps_drop / ps_ifdrop as of the last refresh (at most 1 s old while frames flow).</summary>
    KernelDrops, InterfaceDrops,
    TxFrames, TxBytes, TxErrors, TxRejected, TxLinkDown, LinkDownEvents, Reopens,
    // the IPC to inet
    FramesPosted, EthInputs, SegmentsCoalesced, CoalescedFrames, RxNoInet, RxNoIca, RxPostFailed,
    TransmitRequests, FramesTransmitted, FramesNotSent, BadRequests, Attaches, InetDeaths, CompletionsRiding, CompletionsAlone,
    // the fault injector, both directions summed
    FaultsDropped, FaultsDuplicated, FaultsCorrupted, FaultsReordered, FaultsDelayed,
    /// <summary>1 while the link is up.</summary>
    LinkUp,
    /// <summary>Pages of the pool the ownership table gives the driver (cache included).</summary>
    PagesOwned,
    Count,
}

/// <summary>Direction of a captured frame.</summary>
public enum CaptureDirection : byte
{
    In = 1,
    Out = 2,
}

/// <summary>The driver's panel (see the file comment): counters and the capture ring.</summary>
public sealed unsafe class NicPanel : IDisposable
{
    public const ulong Magic = 0x3143494E48544E41UL; // "ANTHNIC1"
    public const int HeaderBytes = 4096;
    public const int DefaultRingBytes = 4 << 20;
    public const int RecordHeader = 24;
    private const byte Padding = 0xFF;

    private readonly MemoryMappedFile _map;
    private readonly MemoryMappedViewAccessor _view;
    private readonly byte* _base;
    private readonly long _ringBytes;
    private int _producerLock;
    private bool _disposed;

    private NicPanel(MemoryMappedFile map, MemoryMappedViewAccessor view, string path)
    {
        _map = map;
        _view = view;
        Path = path;
        byte* p = null;
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
        _base = p + view.PointerOffset;
        _ringBytes = Volatile.Read(ref *(long*)(_base + 520));
    }

    public string Path { get; }

    /// <summary>Where the panel of <paramref name="adapter"/>'s driver of kernel instance <paramref name="instance"/> is.</summary>
    public static string PathFor(string instance, string adapter) => $"/dev/shm/anthost-{instance}.nic-{adapter}";

    /// <summary>The driver's side: makes the panel anew (a stale one is replaced), owner-only.</summary>
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public static NicPanel Create(string path, int ringBytes = DefaultRingBytes)
    {
        if (ringBytes < 64 * 1024 || ringBytes % 8 != 0) throw new ArgumentOutOfRangeException(nameof(ringBytes));
        File.Delete(path);
        var fs = new FileStream(path, new FileStreamOptions
        {
            Mode = FileMode.CreateNew, Access = FileAccess.ReadWrite, Share = FileShare.ReadWrite,
            UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
        });
        fs.SetLength(HeaderBytes + (long)ringBytes);
        var map = MemoryMappedFile.CreateFromFile(fs, null, 0, MemoryMappedFileAccess.ReadWrite, HandleInheritability.None, leaveOpen: false);
        var view = map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.ReadWrite);
        byte* p = null;
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
        p += view.PointerOffset;
        *(int*)(p + 8) = 1;
        *(int*)(p + 12) = Environment.ProcessId;
        *(int*)(p + 32) = (int)NicStat.Count;
        *(long*)(p + 520) = ringBytes;
        *(long*)(p + 704) = (DateTime.UtcNow - DateTime.UnixEpoch).Ticks * 100;
        *(long*)(p + 712) = Stopwatch.GetTimestamp();
        *(long*)(p + 720) = Stopwatch.Frequency;
        Volatile.Write(ref *(ulong*)p, Magic);
        view.SafeMemoryMappedViewHandle.ReleasePointer();
        return new NicPanel(map, view, path);
    }

    /// <summary>A tool's side: opens a driver's panel; throws <see cref="IOException"/> or <see cref="InvalidDataException"/> saying why not.</summary>
    public static NicPanel Open(string path, bool writable)
    {
        var access = writable ? MemoryMappedFileAccess.ReadWrite : MemoryMappedFileAccess.Read;
        var fs = new FileStream(path, FileMode.Open, writable ? FileAccess.ReadWrite : FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        if (fs.Length < HeaderBytes)
        {
            fs.Dispose();
            throw new InvalidDataException($"{path} is not a NIC driver's panel (too short)");
        }
        var map = MemoryMappedFile.CreateFromFile(fs, null, 0, access, HandleInheritability.None, leaveOpen: false);
        var view = map.CreateViewAccessor(0, 0, access);
        var panel = new NicPanel(map, view, path);
        if (Volatile.Read(ref *(ulong*)panel._base) != Magic || panel._ringBytes <= 0 || HeaderBytes + panel._ringBytes > fs.Length)
        {
            panel.Dispose();
            throw new InvalidDataException($"{path} is not a NIC driver's panel");
        }
        return panel;
    }

    /// <summary>Whether the driver offers the capture (it copies frames into the ring while one runs); set by the driver.</summary>
    public bool CaptureOffered
    {
        get => Volatile.Read(ref *(int*)(_base + 36)) != 0;
        set => Volatile.Write(ref *(int*)(_base + 36), value ? 1 : 0);
    }

    /// <summary>The driver's pid as it wrote it.</summary>
    public int DriverPid => *(int*)(_base + 12);

    // ---- counters ------------------------------------------------------------------------

    /// <summary>The driver: copies its counters in (plain stores under the sequence lock).</summary>
    public void Publish(ReadOnlySpan<long> values)
    {
        ulong* seq = (ulong*)(_base + 16);
        ulong s = *seq;
        Volatile.Write(ref *seq, s + 1);
        long* c = (long*)(_base + 64);
        int n = Math.Min(values.Length, (int)NicStat.Count);
        for (int i = 0; i < n; i++) c[i] = values[i];
        *(long*)(_base + 24) = (DateTime.UtcNow - DateTime.UnixEpoch).Ticks * 100;
        Volatile.Write(ref *seq, s + 2);
    }

    /// <summary>A tool: a consistent copy of the counters and when they were published (Unix ns); false when the driver kept writing.</summary>
    public bool TryRead(Span<long> values, out long publishedUnixNs)
    {
        ulong* seq = (ulong*)(_base + 16);
        int n = Math.Min(Math.Min(values.Length, *(int*)(_base + 32)), (HeaderBytes / 2 - 64) / 8);
        for (int attempt = 0; attempt < 1000; attempt++)
        {
            ulong s1 = Volatile.Read(ref *seq);
            if ((s1 & 1) != 0) { Thread.SpinWait(20); continue; }
            long* c = (long*)(_base + 64);
            for (int i = 0; i < n; i++) values[i] = c[i];
            publishedUnixNs = *(long*)(_base + 24);
            Interlocked.MemoryBarrier();
            if (Volatile.Read(ref *seq) == s1) return true;
        }
        publishedUnixNs = 0;
        return false;
    }

    // ---- capture: the driver's side ------------------------------------------------------

    /// <summary>True while a capture runs (one load: the driver asks it for every frame).</summary>
    public bool Capturing => *(int*)(_base + 516) != 0;

    /// <summary>Frames captured into the ring.</summary>
    public long CapturedFrames => Volatile.Read(ref *(long*)(_base + 592));

    /// <summary>Frames the capture lost because the ring had no room (the reader was slow).</summary>
    public long CaptureDrops => Volatile.Read(ref *(long*)(_base + 584));

    /// <summary>The driver: copies one frame into the ring, or counts it dropped when there is no room. Never waits for the reader.</summary>
    public void Capture(ReadOnlySpan<byte> frame, CaptureDirection direction, long ticks)
    {
        long ring = _ringBytes;
        int record = (RecordHeader + frame.Length + 7) & ~7;
        if (record > ring / 4) record = (RecordHeader + (int)(ring / 4 - RecordHeader)) & ~7;
        int captured = Math.Min(frame.Length, record - RecordHeader);
        while (Interlocked.CompareExchange(ref _producerLock, 1, 0) != 0) Thread.SpinWait(1);
        try
        {
            long* write = (long*)(_base + 576);
            long w = *write;
            long r = Volatile.Read(ref *(long*)(_base + 640));
            long at = w % ring;
            long tail = ring - at;
            long need = record + (tail < record ? tail : 0);
            if (w - r + need > ring)
            {
                Interlocked.Increment(ref *(long*)(_base + 584));
                return;
            }
            byte* data = _base + HeaderBytes;
            if (tail < record)
            {
                // The record does not fit before the ring's end: a pad record fills it.
                *(uint*)(data + at) = (uint)tail;
                data[at + 16] = Padding;
                w += tail;
                at = 0;
            }
            byte* rec = data + at;
            *(uint*)rec = (uint)record;
            *(uint*)(rec + 4) = (uint)frame.Length;
            *(long*)(rec + 8) = ticks;
            rec[16] = (byte)direction;
            *(uint*)(rec + 20) = (uint)captured;
            frame[..captured].CopyTo(new Span<byte>(rec + RecordHeader, captured));
            Volatile.Write(ref *write, w + record);
            *(long*)(_base + 592) += 1;
        }
        finally
        {
            Volatile.Write(ref _producerLock, 0);
        }
    }

    // ---- capture: the reader's side ------------------------------------------------------

    /// <summary>The pid of the capture that holds the ring, 0 when none.</summary>
    public int CaptureOwner => Volatile.Read(ref *(int*)(_base + 512));

    /// <summary>
    /// Takes the capture for <paramref name="pid"/>: false (with the holder) when another live
    /// capture has it; a holder whose process is gone is replaced. The ring starts empty.
    /// </summary>
    public bool TryStartCapture(int pid, Func<int, bool> isAlive, out int holder)
    {
        int* owner = (int*)(_base + 512);
        while (true)
        {
            holder = Volatile.Read(ref *owner);
            if (holder != 0 && holder != pid && isAlive(holder)) return false;
            if (Interlocked.CompareExchange(ref *owner, pid, holder) == holder) break;
        }
        Volatile.Write(ref *(long*)(_base + 640), Volatile.Read(ref *(long*)(_base + 576)));
        Volatile.Write(ref *(int*)(_base + 516), 1);
        holder = pid;
        return true;
    }

    /// <summary>Ends the capture (the driver stops copying at its next frame).</summary>
    public void StopCapture(int pid)
    {
        int* owner = (int*)(_base + 512);
        if (Volatile.Read(ref *owner) != pid) return;
        Volatile.Write(ref *(int*)(_base + 516), 0);
        Interlocked.CompareExchange(ref *owner, 0, pid);
    }

    /// <summary>Converts the driver's Stopwatch ticks to Unix nanoseconds (the panel's clock base).</summary>
    public long ToUnixNs(long ticks)
    {
        long baseNs = *(long*)(_base + 704), baseTicks = *(long*)(_base + 712), freq = *(long*)(_base + 720);
        if (freq <= 0) return baseNs;
        long dt = ticks - baseTicks;
        return baseNs + (long)(dt * (1_000_000_000.0 / freq));
    }

    /// <summary>
    /// Takes the next captured frame, if any: copies its bytes into <paramref name="buffer"/>
    /// (at most its length) and advances the read position.
    /// </summary>
    public bool TryTake(Span<byte> buffer, out CapturedFrame frame)
    {
        long ring = _ringBytes;
        long* readPos = (long*)(_base + 640);
        byte* data = _base + HeaderBytes;
        while (true)
        {
            long r = *readPos;
            long w = Volatile.Read(ref *(long*)(_base + 576));
            if (r >= w)
            {
                frame = default;
                return false;
            }
            byte* rec = data + r % ring;
            uint length = *(uint*)rec;
            if (length < 8 || length > ring || r + length > w)
            {
                // Not a record: the driver was replaced under us. Start again from its write position.
                Volatile.Write(ref *readPos, w);
                frame = default;
                return false;
            }
            if (rec[16] == Padding)
            {
                Volatile.Write(ref *readPos, r + length);
                continue;
            }
            int captured = (int)Math.Min(*(uint*)(rec + 20), (uint)Math.Min(buffer.Length, length - RecordHeader));
            new ReadOnlySpan<byte>(rec + RecordHeader, captured).CopyTo(buffer);
            frame = new CapturedFrame((CaptureDirection)rec[16], *(long*)(rec + 8), (int)*(uint*)(rec + 4), captured);
            Volatile.Write(ref *readPos, r + length);
            return true;
        }
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _map.Dispose();
    }
}

/// <summary>One frame taken from the capture ring.</summary>
/// <param name="Direction">In (received) or out (transmitted).</param>
/// <param name="Ticks">The driver's Stopwatch timestamp (<see cref="NicPanel.ToUnixNs"/>).</param>
/// <param name="WireLength">The frame's length on the wire.</param>
/// <param name="Captured">Bytes kept (the frame, unless longer than a quarter of the ring).</param>
public readonly record struct CapturedFrame(CaptureDirection Direction, long Ticks, int WireLength, int Captured);
