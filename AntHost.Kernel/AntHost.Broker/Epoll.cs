// epoll and eventfd for the broker's control loop: .NET's own socket engine
// serves async operations from a thread pool, and the broker wants one thread
// that owns every connection's state, wakes only when a socket has something,
// and costs nothing per idle connection. Used by ControlServer alone.
using System.Runtime.InteropServices;

namespace AntHost.Broker;

internal static unsafe partial class Epoll
{
    public const uint In = 0x001;
    public const uint Out = 0x004;
    public const uint Err = 0x008;
    public const uint Hup = 0x010;
    public const uint RdHup = 0x2000;

    private const int CtlAdd = 1;
    private const int CtlDel = 2;
    private const int CtlMod = 3;
    private const int Cloexec = 0x80000;
    private const int EfdNonBlock = 0x800;

    /// <summary>struct epoll_event is packed on x86-64 (12 bytes), not on arm64 (16).</summary>
    [StructLayout(LayoutKind.Sequential, Pack = 4)]
    public struct Event
    {
        public uint Events;
        public ulong Data;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct EventAligned
    {
        public uint Events;
        public ulong Data;
    }

    private static readonly bool Packed = RuntimeInformation.ProcessArchitecture == Architecture.X64;

    [LibraryImport("libc", EntryPoint = "epoll_create1", SetLastError = true)]
    private static partial int Create1(int flags);

    [LibraryImport("libc", EntryPoint = "epoll_ctl", SetLastError = true)]
    private static partial int Ctl(int epfd, int op, int fd, void* ev);

    [LibraryImport("libc", EntryPoint = "epoll_wait", SetLastError = true)]
    private static partial int Wait(int epfd, void* events, int max, int timeout);

    [LibraryImport("libc", EntryPoint = "eventfd", SetLastError = true)]
    private static partial int EventFd(uint initval, int flags);

    [LibraryImport("libc", EntryPoint = "write", SetLastError = true)]
    private static partial nint Write(int fd, void* buf, nuint count);

    [LibraryImport("libc", EntryPoint = "read", SetLastError = true)]
    private static partial nint Read(int fd, void* buf, nuint count);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);

    public static int Create()
    {
        int fd = Create1(Cloexec);
        if (fd < 0) throw new IOException($"epoll_create1 failed: errno {Marshal.GetLastPInvokeError()}");
        return fd;
    }

    public static int CreateWakeup()
    {
        int fd = EventFd(0, Cloexec | EfdNonBlock);
        if (fd < 0) throw new IOException($"eventfd failed: errno {Marshal.GetLastPInvokeError()}");
        return fd;
    }

    public static void Signal(int eventFd)
    {
        ulong one = 1;
        Write(eventFd, &one, 8);
    }

    public static void Drain(int eventFd)
    {
        ulong v;
        Read(eventFd, &v, 8);
    }

    private static int Control(int epfd, int op, int fd, uint events, ulong data)
    {
        if (Packed)
        {
            var e = new Event { Events = events, Data = data };
            return Ctl(epfd, op, fd, &e);
        }
        var a = new EventAligned { Events = events, Data = data };
        return Ctl(epfd, op, fd, &a);
    }

    public static bool Add(int epfd, int fd, uint events, ulong data) => Control(epfd, CtlAdd, fd, events, data) == 0;
    public static bool Modify(int epfd, int fd, uint events, ulong data) => Control(epfd, CtlMod, fd, events, data) == 0;
    public static void Remove(int epfd, int fd) => Control(epfd, CtlDel, fd, 0, 0);

    /// <summary>Waits for events; fills <paramref name="events"/> and <paramref name="data"/>, returns how many (0 on EINTR).</summary>
    public static int WaitFor(int epfd, Span<uint> events, Span<ulong> data, int timeoutMs)
    {
        int max = events.Length;
        if (Packed)
        {
            var buf = stackalloc Event[max];
            int n = Wait(epfd, buf, max, timeoutMs);
            for (int i = 0; i < n; i++) { events[i] = buf[i].Events; data[i] = buf[i].Data; }
            return Math.Max(n, 0);
        }
        var abuf = stackalloc EventAligned[max];
        int m = Wait(epfd, abuf, max, timeoutMs);
        for (int i = 0; i < m; i++) { events[i] = abuf[i].Events; data[i] = abuf[i].Data; }
        return Math.Max(m, 0);
    }
}
