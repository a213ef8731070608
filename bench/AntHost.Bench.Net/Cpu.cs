// CPU and sleep/wake cycles of the processes of a run, per thread, from /proc:
//   /proc/PID/task/TID/schedstat  field 1: nanoseconds on a CPU (exact, unlike the 10 ms
//                                 ticks of stat's utime + stime);
//   /proc/PID/task/TID/status     voluntary_ctxt_switches (the thread went to sleep: one
//                                 sleep/wake cycle each) and nonvoluntary_ctxt_switches
//                                 (preempted, or a sched_yield that gave the CPU away).
// Every thread of the process is counted, its system calls included. A thread born during
// the measurement counts from zero; one that died is lost (measure steady state). The
// kernel's softirq work is charged to whichever thread was running when it ran (this kernel
// has no separate IRQ time accounting): over a veth, the far end's sender pays for the
// receiver's protocol work, and the sender of an ACK for the far end's next transmissions.
// So the machine's busy time (/proc/stat, every CPU, both ends) is measured beside it.
using System.Globalization;

namespace AntHost.Bench.Net;

/// <summary>A process whose CPU a run reports.</summary>
public sealed record WatchedProcess(string Name, int Pid);

/// <summary>One thread's share of a measurement.</summary>
public sealed record ThreadUse(string Thread, double Seconds, long Sleeps, long Preemptions);

/// <summary>
/// CPU seconds used by one process over a measurement, the share of one core, and how often
/// its threads went to sleep (each a wake-up later) or were preempted.
/// </summary>
public sealed record CpuUse(string Process, double Seconds, double CorePercent)
{
    /// <summary>Voluntary context switches of all its threads: sleep/wake cycles.</summary>
    public long Sleeps { get; init; }

    /// <summary>Involuntary context switches (preempted, or yielded the CPU to another).</summary>
    public long Preemptions { get; init; }

    /// <summary>The threads that used CPU or slept, busiest first.</summary>
    public IReadOnlyList<ThreadUse> Threads { get; init; } = [];
}

/// <summary>Samples per-thread CPU and context switches of a set of processes before and after a measurement.</summary>
public sealed class CpuMeter
{
    private readonly IReadOnlyList<WatchedProcess> _processes;
    private readonly Dictionary<int, ThreadSample>[] _start;
    private readonly long _t0;
    private readonly int _gcStart;
    private readonly TimeSpan _gcPauseStart;

    /// <summary>Garbage collections in this process (the app) between Start and Stop.</summary>
    public int AppCollections { get; private set; }

    /// <summary>Time this process (the app) spent paused for garbage collection between Start and Stop.</summary>
    public TimeSpan AppGcPause { get; private set; }

    /// <summary>CPU seconds the whole machine was busy between Start and Stop (every process, both ends, interrupts).</summary>
    public double MachineSeconds { get; private set; }

    private readonly long _machineStart;

    /// <summary>One thread's counters at one instant.</summary>
    public readonly record struct ThreadSample(string Name, long CpuNs, long Voluntary, long Involuntary);

    private CpuMeter(IReadOnlyList<WatchedProcess> processes)
    {
        _processes = processes;
        _start = processes.Select(p => Threads(p.Pid)).ToArray();
        _t0 = System.Diagnostics.Stopwatch.GetTimestamp();
        _gcStart = GC.CollectionCount(0);
        _gcPauseStart = GC.GetTotalPauseDuration();
        _machineStart = MachineBusyTicks();
    }

    public static CpuMeter Start(IReadOnlyList<WatchedProcess> processes) => new(processes);

    public List<CpuUse> Stop()
    {
        double wall = System.Diagnostics.Stopwatch.GetElapsedTime(_t0).TotalSeconds;
        AppCollections = GC.CollectionCount(0) - _gcStart;
        AppGcPause = GC.GetTotalPauseDuration() - _gcPauseStart;
        MachineSeconds = (MachineBusyTicks() - _machineStart) / (double)ClockTicksPerSecond;
        var r = new List<CpuUse>();
        for (int i = 0; i < _processes.Count; i++)
        {
            var end = Threads(_processes[i].Pid);
            if (end.Count == 0) continue;
            var threads = new List<ThreadUse>();
            foreach (var (tid, e) in end)
            {
                var s = _start[i].TryGetValue(tid, out var b) ? b : new ThreadSample(e.Name, 0, 0, 0);
                var t = new ThreadUse(e.Name, (e.CpuNs - s.CpuNs) / 1e9, e.Voluntary - s.Voluntary, e.Involuntary - s.Involuntary);
                if (t.Seconds > 0 || t.Sleeps > 0 || t.Preemptions > 0) threads.Add(t);
            }
            double seconds = threads.Sum(t => t.Seconds);
            r.Add(new CpuUse(_processes[i].Name, seconds, wall > 0 ? 100 * seconds / wall : 0)
            {
                Sleeps = threads.Sum(t => t.Sleeps),
                Preemptions = threads.Sum(t => t.Preemptions),
                Threads = threads.OrderByDescending(t => t.Seconds).ToList(),
            });
        }
        return r;
    }

    /// <summary>/proc/stat counts in USER_HZ, 100 per second on Linux whatever the kernel's own tick rate.</summary>
    private const int ClockTicksPerSecond = 100;

    /// <summary>
    /// The machine's busy time so far in clock ticks: user, nice, system, irq and softirq of
    /// every CPU (/proc/stat's first line; idle, iowait and steal are not busy). 0 without /proc.
    /// </summary>
    public static long MachineBusyTicks()
    {
        try
        {
            using var reader = new StreamReader("/proc/stat");
            var f = (reader.ReadLine() ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (f.Length < 8 || f[0] != "cpu") return 0;
            long T(int i) => long.Parse(f[i], CultureInfo.InvariantCulture);
            return T(1) + T(2) + T(3) + T(6) + T(7);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
        {
            return 0;
        }
    }

    /// <summary>Every thread of a process (empty when it is gone).</summary>
    public static Dictionary<int, ThreadSample> Threads(int pid)
    {
        var r = new Dictionary<int, ThreadSample>();
        string[] tids;
        try { tids = Directory.GetDirectories($"/proc/{pid}/task"); }
        catch (IOException) { return r; }
        catch (UnauthorizedAccessException) { return r; }
        foreach (var dir in tids)
        {
            try
            {
                int tid = int.Parse(Path.GetFileName(dir), CultureInfo.InvariantCulture);
                long ns = long.Parse(File.ReadAllText(Path.Combine(dir, "schedstat")).Split(' ')[0], CultureInfo.InvariantCulture);
                string name = File.ReadAllText(Path.Combine(dir, "comm")).TrimEnd('\n');
                long vol = 0, invol = 0;
                foreach (var line in File.ReadLines(Path.Combine(dir, "status")))
                {
                    if (line.StartsWith("voluntary_ctxt_switches:", StringComparison.Ordinal)) vol = long.Parse(line.AsSpan(24).Trim(), CultureInfo.InvariantCulture);
                    else if (line.StartsWith("nonvoluntary_ctxt_switches:", StringComparison.Ordinal)) invol = long.Parse(line.AsSpan(27).Trim(), CultureInfo.InvariantCulture);
                }
                r[tid] = new ThreadSample(name, ns, vol, invol);
            }
            catch (Exception e) when (e is IOException or FormatException or UnauthorizedAccessException)
            {
                // The thread ended between the listing and the read.
            }
        }
        return r;
    }
}
