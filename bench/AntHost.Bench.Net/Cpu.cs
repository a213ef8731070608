// CPU used by the processes of a run, from /proc/PID/stat (utime + stime, fields 14 and 15,
// in clock ticks of 10 ms): every thread of the process, its system calls included. The
// kernel's own softirq work on behalf of a socket is not charged to any process, so the
// host kernel's figure is a lower bound; AntHost's work is all in its processes.
using System.Globalization;

namespace AntHost.Bench.Net;

/// <summary>A process whose CPU a run reports.</summary>
public sealed record WatchedProcess(string Name, int Pid);

/// <summary>CPU seconds used by one process over a measurement, and the share of one core.</summary>
public sealed record CpuUse(string Process, double Seconds, double CorePercent);

/// <summary>Samples the CPU of a set of processes before and after a measurement.</summary>
public sealed class CpuMeter
{
    private const double TicksPerSecond = 100.0; // sysconf(_SC_CLK_TCK) on Linux
    private readonly IReadOnlyList<WatchedProcess> _processes;
    private readonly long[] _start;
    private readonly long _t0;

    private CpuMeter(IReadOnlyList<WatchedProcess> processes)
    {
        _processes = processes;
        _start = processes.Select(p => Ticks(p.Pid)).ToArray();
        _t0 = System.Diagnostics.Stopwatch.GetTimestamp();
    }

    public static CpuMeter Start(IReadOnlyList<WatchedProcess> processes) => new(processes);

    public List<CpuUse> Stop()
    {
        double wall = System.Diagnostics.Stopwatch.GetElapsedTime(_t0).TotalSeconds;
        var r = new List<CpuUse>();
        for (int i = 0; i < _processes.Count; i++)
        {
            long end = Ticks(_processes[i].Pid);
            if (end < 0 || _start[i] < 0) continue;
            double s = (end - _start[i]) / TicksPerSecond;
            r.Add(new CpuUse(_processes[i].Name, s, wall > 0 ? 100 * s / wall : 0));
        }
        return r;
    }

    /// <summary>utime + stime of a process in clock ticks, or -1 when it is gone.</summary>
    public static long Ticks(int pid)
    {
        string text;
        try { text = File.ReadAllText($"/proc/{pid}/stat"); }
        catch (IOException) { return -1; }
        // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
        var rest = text[(text.LastIndexOf(')') + 2)..].Split(' ');
        // rest[0] is field 3 (state): utime is field 14, stime 15.
        return long.Parse(rest[11], CultureInfo.InvariantCulture) + long.Parse(rest[12], CultureInfo.InvariantCulture);
    }
}
