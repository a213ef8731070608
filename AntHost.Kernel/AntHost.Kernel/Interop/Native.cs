// The few system calls .NET does not expose. Each exists for one reason:
//  - futex (syscall 202): the cross-process doorbell. The shared (non-PRIVATE)
//    operations, because the word lives in a MAP_SHARED file mapping that every
//    process maps at a different address.
//  - madvise(MADV_POPULATE_*): fault the pool in at start; a first touch costs
//    20-45 us a page on these machines and must never land on the packet path.
//  - mprotect: strict mode only (pages a process does not own are PROT_NONE).
//  - kill: liveness of a registered pid (second signal besides the socket) and
//    ending a process the broker cuts off.
//  - fcntl(FD_CLOEXEC): descriptors made here must not leak into children.
//  - close: a descriptor received over a socket that nobody wanted.
//  - mmap: tests show which mappings of the tables the kernel refuses.
//  - poll, eventfd, pidfd_open: the broker watch sleeps in one poll(2) until the broker's
//    socket hangs up or its process ends (no periodic check).
//  - socket/bind/sendto/recv (AF_UNIX datagrams): the wake socket of a process that sleeps
//    in poll(2) over descriptors of its own besides its doorbell (the NIC driver: the pcap
//    descriptor). A futex cannot be polled; a datagram can.
using System.Runtime.InteropServices;

namespace AntHost.Kernel.Interop;

internal static unsafe partial class Native
{
    private const long SysFutex = 202;
    private const int FutexWait = 0;
    private const int FutexWake = 1;

    public const int ProtNone = 0;
    public const int ProtRead = 1;
    public const int ProtWrite = 2;

    private const int MadvPopulateRead = 22;
    private const int MadvPopulateWrite = 23;

    [StructLayout(LayoutKind.Sequential)]
    private struct Timespec
    {
        public long Sec;
        public long Nsec;
    }

    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true)]
    private static partial long SyscallFutex(long number, int* addr, int op, int val, Timespec* timeout, int* addr2, int val3);

    [LibraryImport("libc", EntryPoint = "madvise", SetLastError = true)]
    private static partial int Madvise(void* addr, nuint length, int advice);

    [LibraryImport("libc", EntryPoint = "mprotect", SetLastError = true)]
    private static partial int Mprotect(void* addr, nuint length, int prot);

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int sig);

    [LibraryImport("libc", EntryPoint = "mmap", SetLastError = true)]
    private static partial void* Mmap(void* addr, nuint length, int prot, int flags, int fd, long offset);

    [LibraryImport("libc", EntryPoint = "munmap", SetLastError = true)]
    private static partial int Munmap(void* addr, nuint length);

    [LibraryImport("libc", EntryPoint = "getpid")]
    public static partial int GetPid();

    public const short PollIn = 0x1;
    public const short PollErr = 0x8;
    public const short PollHup = 0x10;
    public const short PollNval = 0x20;
    public const short PollRdHup = 0x2000;
    private const int AfUnix = 1;
    private const int SockDgram = 2;
    private const int SockNonblock = 0x800;
    private const int SockCloexec = 0x80000;
    private const int MsgDontwait = 0x40;
    private const int EfdCloexec = 0x80000;
    private const long SysPidfdOpen = 434;

    [StructLayout(LayoutKind.Sequential)]
    public struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }

    [LibraryImport("libc", EntryPoint = "poll", SetLastError = true)]
    public static partial int Poll(PollFd* fds, nuint count, int timeoutMs);

    [LibraryImport("libc", EntryPoint = "eventfd", SetLastError = true)]
    private static partial int EventFdRaw(uint initial, int flags);

    /// <summary>An eventfd (close-on-exec), or -1.</summary>
    public static int EventFd() => EventFdRaw(0, EfdCloexec);

    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true)]
    private static partial long SyscallPidfdOpen(long number, int pid, uint flags);

    /// <summary>A descriptor that polls readable once <paramref name="pid"/> has ended (close-on-exec by default), or -1.</summary>
    public static int PidfdOpen(int pid) => (int)SyscallPidfdOpen(SysPidfdOpen, pid, 0);

    [LibraryImport("libc", EntryPoint = "write", SetLastError = true)]
    public static partial nint Write(int fd, void* buffer, nuint count);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);

    [LibraryImport("libc", EntryPoint = "socket", SetLastError = true)]
    private static partial int Socket(int domain, int type, int protocol);

    [LibraryImport("libc", EntryPoint = "bind", SetLastError = true)]
    private static partial int Bind(int fd, byte* addr, uint length);

    [LibraryImport("libc", EntryPoint = "sendto", SetLastError = true)]
    private static partial nint SendTo(int fd, void* buffer, nuint length, int flags, byte* addr, uint addrLength);

    [LibraryImport("libc", EntryPoint = "recv", SetLastError = true)]
    private static partial nint Recv(int fd, void* buffer, nuint length, int flags);

    [LibraryImport("libc", EntryPoint = "chmod", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int Chmod(string path, uint mode);

    /// <summary>A <c>struct sockaddr_un</c> for a path (family + NUL-terminated path), ready for bind or sendto.</summary>
    public static byte[] UnixAddress(string path)
    {
        var bytes = System.Text.Encoding.UTF8.GetBytes(path);
        if (bytes.Length > 107) throw new ArgumentException($"socket path too long: {path}", nameof(path));
        var a = new byte[2 + bytes.Length + 1];
        a[0] = AfUnix;
        bytes.CopyTo(a, 2);
        return a;
    }

    /// <summary>A non-blocking datagram socket bound at <paramref name="path"/> (a stale file there is replaced), mode 0660; -1 with errno on failure.</summary>
    public static int BoundDatagramSocket(string path)
    {
        int fd = Socket(AfUnix, SockDgram | SockNonblock | SockCloexec, 0);
        if (fd < 0) return -1;
        try { File.Delete(path); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        var a = UnixAddress(path);
        fixed (byte* p = a)
        {
            if (Bind(fd, p, (uint)a.Length) != 0)
            {
                int e = Marshal.GetLastPInvokeError();
                Close(fd);
                Marshal.SetLastPInvokeError(e);
                return -1;
            }
        }
        Chmod(path, 0x1B0 /* 0660 */);
        return fd;
    }

    /// <summary>An unbound non-blocking datagram socket to send from, or -1.</summary>
    public static int DatagramSocket() => Socket(AfUnix, SockDgram | SockNonblock | SockCloexec, 0);

    /// <summary>Sends one empty datagram to <paramref name="address"/> (a sockaddr_un); failures are the caller's to ignore.</summary>
    public static bool SendEmpty(int fd, byte[] address)
    {
        byte b = 0;
        fixed (byte* p = address) return SendTo(fd, &b, 1, MsgDontwait, p, (uint)address.Length) >= 0;
    }

    /// <summary>Reads and discards every datagram queued on a non-blocking socket.</summary>
    public static void DrainDatagrams(int fd)
    {
        byte b;
        while (Recv(fd, &b, 1, MsgDontwait) >= 0) { }
    }

    /// <summary>
    /// Sleeps while <paramref name="addr"/> still holds <paramref name="expected"/>,
    /// at most <paramref name="timeoutMs"/> (negative: no limit). Spurious returns are
    /// fine: every caller re-checks its condition.
    /// </summary>
    public static void FutexWaitShared(int* addr, int expected, int timeoutMs)
    {
        if (timeoutMs < 0)
        {
            SyscallFutex(SysFutex, addr, FutexWait, expected, null, null, 0);
            return;
        }
        var ts = new Timespec { Sec = timeoutMs / 1000, Nsec = (timeoutMs % 1000) * 1_000_000L };
        SyscallFutex(SysFutex, addr, FutexWait, expected, &ts, null, 0);
    }

    /// <summary>Wakes up to <paramref name="count"/> sleepers on the word.</summary>
    public static void FutexWakeShared(int* addr, int count) =>
        SyscallFutex(SysFutex, addr, FutexWake, count, null, null, 0);

    /// <summary>Faults a range in; falls back to touching one byte a page on old kernels.</summary>
    public static void Populate(byte* addr, long length, bool writable)
    {
        if (length <= 0) return;
        if (Madvise(addr, (nuint)length, writable ? MadvPopulateWrite : MadvPopulateRead) == 0) return;
        byte sink = 0;
        for (long off = 0; off < length; off += 4096)
        {
            if (writable) Volatile.Write(ref addr[off], Volatile.Read(ref addr[off]));
            else sink ^= Volatile.Read(ref addr[off]);
        }
        GC.KeepAlive(sink);
    }

    public static bool Protect(byte* addr, long length, int prot) => Mprotect(addr, (nuint)length, prot) == 0;

    /// <summary>True when a process with this pid exists (kill(pid, 0)).</summary>
    public static bool ProcessExists(int pid) => pid > 0 && (Kill(pid, 0) == 0 || Marshal.GetLastPInvokeError() == 1 /* EPERM */);

    public static bool SendKill(int pid) => pid > 0 && Kill(pid, 9) == 0;

    public static void CloseDescriptor(int fd) => Close(fd);

    /// <summary>
    /// Tries a shared mapping of <paramref name="fd"/> with <paramref name="prot"/> and unmaps it
    /// again; returns 0 when the kernel allowed it, else the errno (tests show what a process
    /// can and cannot map).
    /// </summary>
    public static int TryMapShared(int fd, long length, int prot)
    {
        void* p = Mmap(null, (nuint)length, prot, 1 /* MAP_SHARED */, fd, 0);
        if (p == (void*)-1) return Marshal.GetLastPInvokeError();
        Munmap(p, (nuint)length);
        return 0;
    }
}
