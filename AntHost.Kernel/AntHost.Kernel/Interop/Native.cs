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

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int fd);

    [LibraryImport("libc", EntryPoint = "mmap", SetLastError = true)]
    private static partial void* Mmap(void* addr, nuint length, int prot, int flags, int fd, long offset);

    [LibraryImport("libc", EntryPoint = "munmap", SetLastError = true)]
    private static partial int Munmap(void* addr, nuint length);

    [LibraryImport("libc", EntryPoint = "getpid")]
    public static partial int GetPid();

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
