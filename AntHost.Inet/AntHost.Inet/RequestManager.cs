// The request manager: the inet server's one thread, and the shell around its core
// (InetCore). It alone talks to the kernel connection and reads the clock: it waits on the
// process's doorbell (one wait across every channel) with a timeout equal to the core's next
// deadline, so a timer and a message wake it the same way, hands each message to the core,
// then lets the core run its round (timers, held calls, the flush to the driver). One thread
// means the core needs no lock, and a request's whole path through the server (receive,
// protocol, transmit) runs without a context switch.
using System.Diagnostics;
using AntHost.Inet.Core.Time;
using AntHost.Kernel;

namespace AntHost.Inet;

/// <summary>The inet server's request loop (see the file comment).</summary>
public sealed class RequestManager(KernelConnection kernel, InetCore core)
{
    private readonly long _epoch = Stopwatch.GetTimestamp();

    /// <summary>Monotonic microseconds since the server started: the core's clock.</summary>
    public Instant Now => new((long)Stopwatch.GetElapsedTime(_epoch).TotalMicroseconds);

    /// <summary>Runs until <paramref name="stop"/> is cancelled.</summary>
    public void Run(CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            var now = Now;
            core.Round(now);
            // No deadline: sleep until a message comes (a stop wakes the doorbell too).
            TimeSpan wait = Timeout.InfiniteTimeSpan;
            if (core.PollAt is { } at)
            {
                var left = at - now;
                wait = left <= TimeSpan.Zero ? TimeSpan.Zero : left;
            }
            if (!kernel.Receive(out var m, wait, stop)) continue;
            core.Handle(m, Now);
            // Take what else is waiting before the next round, up to a bound.
            for (int i = 0; i < 63 && kernel.TryReceive(out m); i++) core.Handle(m, Now);
        }
    }
}
