using System.Runtime.InteropServices;

namespace AntHost.Nic8139.Pcap;

/// <summary>
/// The libpcap calls that SharpPcap 6.3 lacks or gets wrong on Linux, and nothing else.
/// SharpPcap opens the adapter (pcap_create, snaplen, promiscuous, buffer size, immediate
/// mode, activate) and compiles the filter; everything on the packet path comes here:
/// <list type="bullet">
/// <item><c>pcap_next_ex</c>: SharpPcap's <c>GetNextPacket</c> polls with a fixed 500 ms and
/// allocates a <c>RawCapture</c> per frame; through pointers it costs neither.</item>
/// <item><c>pcap_inject</c>: <c>SendPacket</c> throws (and formats a string) on every failure;
/// the driver counts a failed transmit instead.</item>
/// <item><c>pcap_stats</c>: <c>Statistics.DroppedPackets</c> reads 0 on Linux x64 whatever
/// libpcap counted (SharpPcap marshals <c>struct pcap_stat</c> wrongly there).</item>
/// <item><c>pcap_setdirection</c>: no SharpPcap API; <c>PCAP_D_IN</c> keeps the driver from
/// receiving the frames it transmitted itself.</item>
/// <item><c>pcap_setnonblock</c>, <c>pcap_get_selectable_fd</c>: the receive loop drains the
/// ring without blocking and waits in its own <c>poll</c>, beside a wake-up eventfd, so that
/// stop, link checks and fault-injector deadlines never wait for a frame (in immediate mode a
/// blocking <c>pcap_next_ex</c> ignores the read timeout and waits for a frame forever).</item>
/// </list>
/// The <c>pcap_t*</c> is passed as a raw pointer: the device owns the SharpPcap handle and
/// guarantees it outlives every call, so the per-call SafeHandle reference count is avoided.
/// </summary>
internal static unsafe partial class LibPcap
{
    private const string Library = "pcap";

    /// <summary><c>PCAP_D_IN</c>: only frames received by the adapter, not those it sent.</summary>
    public const int DirectionIn = 1;

    /// <summary>Linux x86-64 <c>struct pcap_pkthdr</c>: a 16-byte timeval, then caplen and len.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct PacketHeader
    {
        public long Seconds;
        public long Microseconds;
        public uint CaptureLength;
        public uint Length;
    }

    /// <summary><c>struct pcap_stat</c> as libpcap defines it on Linux: three u_ints.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct Stat
    {
        public uint Received;
        public uint Dropped;
        public uint InterfaceDropped;
    }

    static LibPcap()
    {
        NativeLibrary.SetDllImportResolver(typeof(LibPcap).Assembly, Resolve);
    }

    /// <summary>Makes sure the resolver is installed before the first call.</summary>
    public static void EnsureLoaded() { }

    private static IntPtr Resolve(string name, System.Reflection.Assembly assembly, DllImportSearchPath? path)
    {
        if (name == Library)
        {
            foreach (var candidate in new[] { "libpcap.so.1", "libpcap.so.0.8", "libpcap.so", "libpcap.dylib" })
                if (NativeLibrary.TryLoad(candidate, out var h)) return h;
            throw new DllNotFoundException(
                "libpcap not found (tried libpcap.so.1, libpcap.so.0.8, libpcap.so); install libpcap0.8 (scripts/prereqs.sh)");
        }
        if (name == Linux.Library)
        {
            foreach (var candidate in new[] { "libc.so.6", "libc" })
                if (NativeLibrary.TryLoad(candidate, out var h)) return h;
        }
        return IntPtr.Zero;
    }

    /// <summary>1: a frame; 0: none ready (non-blocking); -1: error; -2: breakloop.</summary>
    [LibraryImport(Library, EntryPoint = "pcap_next_ex")]
    [UnmanagedCallConv(CallConvs = [typeof(System.Runtime.CompilerServices.CallConvCdecl)])]
    public static partial int NextEx(IntPtr pcap, out PacketHeader* header, out byte* data);

    /// <summary>Number of bytes written, or -1 (the message is in <see cref="GetError"/>).</summary>
    [LibraryImport(Library, EntryPoint = "pcap_inject")]
    public static partial int Inject(IntPtr pcap, byte* buffer, nuint size);

    [LibraryImport(Library, EntryPoint = "pcap_stats")]
    public static partial int Stats(IntPtr pcap, Stat* stat);

    [LibraryImport(Library, EntryPoint = "pcap_setdirection")]
    public static partial int SetDirection(IntPtr pcap, int direction);

    [LibraryImport(Library, EntryPoint = "pcap_setnonblock")]
    public static partial int SetNonBlock(IntPtr pcap, int nonBlock, byte* errorBuffer);

    [LibraryImport(Library, EntryPoint = "pcap_get_selectable_fd")]
    public static partial int GetSelectableFd(IntPtr pcap);

    [LibraryImport(Library, EntryPoint = "pcap_geterr")]
    private static partial IntPtr GetErrorPointer(IntPtr pcap);

    /// <summary>The last error of this handle, as text (allocates: error paths only).</summary>
    public static string GetError(IntPtr pcap) =>
        Marshal.PtrToStringUTF8(GetErrorPointer(pcap)) ?? "unknown libpcap error";
}
