// Every process has one doorbell in the pool, shared by all the rings towards
// it, so a server waits once for all its inputs.
//
//   +0  sequence (i32, the futex word)   +4  sleeping (i32)
//
// Waiting is spin-then-block. The waiter spins for its budget calling
// sched_yield (Thread.Yield) so that on two vCPUs it hands its CPU to the
// process that will send it something; then it reads the sequence, sets
// "sleeping", issues a full fence, re-checks its rings and only then sleeps on
// the futex. A sender publishes its slot, issues a full fence, and calls
// futex-wake only when the word says the receiver sleeps. The two full fences
// (Interlocked) are what make this safe: with Volatile alone x86 may reorder
// the store of one side past the load of the other, and a wake-up is lost.
//
// The broker's doorbell uses "sleeping" with two values: 1 when it sleeps on a
// timer because journals are not empty (journal writers need not wake it), 2
// when it sleeps with nothing pending (the first journal record wakes it).
//
// A process that must also wait on descriptors of its own (the NIC driver waits
// on the pcap descriptor and its doorbell in one poll(2)) cannot sleep on a
// futex. It sleeps in poll over its wake socket, an AF_UNIX datagram socket
// bound at a path derived from the instance and its slot, and says so with
// "sleeping" = 3; a sender then wakes it with one empty datagram instead of
// futex-wake. The same fences make it safe: the datagram queued before poll
// is entered makes poll return at once.
//
// Nobody sleeps in slices: a waiter whose cancellation token fires is woken by
// the token's registration (KernelConnection.Kick), not by a periodic timeout.
using System.Diagnostics;
using System.Runtime.CompilerServices;
using AntHost.Kernel.Interop;

namespace AntHost.Kernel.Ipc;

internal readonly unsafe struct Doorbell
{
    public const int Awake = 0;
    public const int Sleeping = 1;
    public const int DeepSleeping = 2;
    public const int PollSleeping = 3;

    private readonly int* _word;
    private readonly byte[]? _wakeAddress;

    /// <param name="word">The doorbell's words in the pool.</param>
    /// <param name="wakePath">The owner's wake socket path (null: the owner never sleeps in poll, e.g. the broker).</param>
    public Doorbell(int* word, string? wakePath = null)
    {
        _word = word;
        _wakeAddress = wakePath is null ? null : Native.UnixAddress(wakePath);
    }

    private int* Sequence => _word;
    private int* SleepFlag => _word + 1;

    public int SleepState => Volatile.Read(ref *SleepFlag);

    /// <summary>Called by a sender after it published a slot towards this doorbell's owner.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Ring()
    {
        Interlocked.MemoryBarrier();
        if (Volatile.Read(ref *SleepFlag) != Awake) Wake();
    }

    /// <summary>
    /// Wakes the owner only if it sleeps waiting for anything: the broker's journal rule (it
    /// sleeps "deep" only with nothing pending) and a quiet message's (it does not wake a
    /// process that waits for its own call's reply).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void RingIfDeepSleeping()
    {
        Interlocked.MemoryBarrier();
        if (Volatile.Read(ref *SleepFlag) is DeepSleeping or PollSleeping) Wake();
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    public void Wake()
    {
        Interlocked.Increment(ref *Sequence);
        if (_wakeAddress is not null && Volatile.Read(ref *SleepFlag) == PollSleeping) WakeSocket.Send(_wakeAddress);
        else Native.FutexWakeShared(Sequence, int.MaxValue);
    }

    /// <summary>
    /// The owner is about to sleep in poll(2) over its wake socket: says so, then checks once
    /// more. Returns false (and stays awake) when there is work already.
    /// </summary>
    public bool PrepareToPoll<TProbe>(ref TProbe hasWork) where TProbe : struct, IWorkProbe
    {
        Volatile.Write(ref *SleepFlag, PollSleeping);
        Interlocked.MemoryBarrier();
        if (!hasWork.HasWork()) return true;
        Volatile.Write(ref *SleepFlag, Awake);
        return false;
    }

    /// <summary>The owner is back from poll(2).</summary>
    public void AwakeFromPoll() => Volatile.Write(ref *SleepFlag, Awake);

    /// <summary>
    /// Waits until <paramref name="hasWork"/> says there is work, the timeout passes or the
    /// token is cancelled. Returns true when there is work.
    /// </summary>
    /// <param name="spinTicks">Spin budget in Stopwatch ticks (0 = sleep at once).</param>
    /// <param name="timeoutMs">Negative: no limit.</param>
    public bool Wait<TProbe>(ref TProbe hasWork, long spinTicks, int timeoutMs, CancellationToken ct, int sleepValue = Sleeping)
        where TProbe : struct, IWorkProbe
    {
        if (hasWork.HasWork()) return true;
        if (spinTicks > 0)
        {
            long start = Stopwatch.GetTimestamp();
            while (Stopwatch.GetTimestamp() - start < spinTicks)
            {
                Thread.Yield();
                if (hasWork.HasWork()) return true;
            }
        }
        long deadline = timeoutMs < 0 ? long.MaxValue : Stopwatch.GetTimestamp() + timeoutMs * Stopwatch.Frequency / 1000;
        while (true)
        {
            if (ct.IsCancellationRequested) return false;
            int seq = Volatile.Read(ref *Sequence);
            Volatile.Write(ref *SleepFlag, sleepValue);
            Interlocked.MemoryBarrier();
            if (hasWork.HasWork())
            {
                Volatile.Write(ref *SleepFlag, Awake);
                return true;
            }
            int slice = -1;
            if (timeoutMs >= 0)
            {
                long left = deadline - Stopwatch.GetTimestamp();
                if (left <= 0)
                {
                    Volatile.Write(ref *SleepFlag, Awake);
                    return false;
                }
                slice = (int)Math.Max(1, (left * 1000 + Stopwatch.Frequency - 1) / Stopwatch.Frequency);
            }
            Native.FutexWaitShared(Sequence, seq, slice);
            Volatile.Write(ref *SleepFlag, Awake);
            if (hasWork.HasWork()) return true;
        }
    }
}

/// <summary>The socket this process sends wake datagrams from (made on first use; shared by every thread).</summary>
internal static class WakeSocket
{
    private static int s_fd = -1;

    public static void Send(byte[] address)
    {
        int fd = Volatile.Read(ref s_fd);
        if (fd < 0)
        {
            int made = Native.DatagramSocket();
            if (made < 0) return;
            fd = Interlocked.CompareExchange(ref s_fd, made, -1);
            if (fd >= 0) Native.Close(made);
            else fd = made;
        }
        // A full socket buffer means a wake-up is pending already; a missing socket means the
        // owner is gone. Either way there is nothing more to do.
        Native.SendEmpty(fd, address);
    }
}

/// <summary>A check, made often, of whether any ring towards this process holds a message.</summary>
internal interface IWorkProbe
{
    bool HasWork();
}
