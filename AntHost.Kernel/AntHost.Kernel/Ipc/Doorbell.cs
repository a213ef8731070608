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
// short timer because journals are not empty (journal writers need not wake
// it), 2 when it sleeps with nothing pending (the first journal record wakes it).
using System.Diagnostics;
using System.Runtime.CompilerServices;
using AntHost.Kernel.Interop;

namespace AntHost.Kernel.Ipc;

internal readonly unsafe struct Doorbell
{
    public const int Awake = 0;
    public const int Sleeping = 1;
    public const int DeepSleeping = 2;

    private readonly int* _word;

    public Doorbell(int* word) => _word = word;

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

    /// <summary>Wakes the owner only if it sleeps without a timer (the broker's journal rule).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void RingIfDeepSleeping()
    {
        Interlocked.MemoryBarrier();
        if (Volatile.Read(ref *SleepFlag) == DeepSleeping) Wake();
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    public void Wake()
    {
        Interlocked.Increment(ref *Sequence);
        Native.FutexWakeShared(Sequence, int.MaxValue);
    }

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
            int slice;
            if (timeoutMs < 0) slice = ct.CanBeCanceled ? 50 : -1;
            else
            {
                long left = deadline - Stopwatch.GetTimestamp();
                if (left <= 0)
                {
                    Volatile.Write(ref *SleepFlag, Awake);
                    return false;
                }
                slice = (int)Math.Max(1, left * 1000 / Stopwatch.Frequency);
                if (ct.CanBeCanceled) slice = Math.Min(slice, 50);
            }
            Native.FutexWaitShared(Sequence, seq, slice);
            Volatile.Write(ref *SleepFlag, Awake);
            if (hasWork.HasWork()) return true;
        }
    }
}

/// <summary>A check, made often, of whether any ring towards this process holds a message.</summary>
internal interface IWorkProbe
{
    bool HasWork();
}
