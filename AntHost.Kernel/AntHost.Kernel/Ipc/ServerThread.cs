// The scheduling policy of a server's data-path thread. A message to a sleeping server wakes
// it, and when the server last ran on the sender's CPU, Linux's wake-up preemption switches
// to it at once, in the middle of the sender's work: an app that posts a send and then its
// receive has the server run between the two, take the send, and go back to sleep a few
// microseconds before the receive arrives, which wakes it again. Under SCHED_BATCH a woken
// thread does not preempt the thread that woke it; it runs when that one sleeps (or on
// another CPU at once), and then finds both messages. No privilege is needed: it only lowers
// the thread's claim.
using System.Runtime.InteropServices;

namespace AntHost.Kernel.Ipc;

public static partial class ServerThread
{
    private const int SchedBatch = 3;

    [LibraryImport("libc", EntryPoint = "sched_setscheduler", SetLastError = true)]
    private static partial int SchedSetScheduler(int pid, int policy, ref int param);

    /// <summary>Puts the calling thread under SCHED_BATCH (see the file comment); false when the kernel refused.</summary>
    public static bool WaitForWakerToSleep()
    {
        int priority = 0;
        return SchedSetScheduler(0, SchedBatch, ref priority) == 0;
    }
}
