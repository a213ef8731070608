// What one evaluation run measured, as it is written to JSON, Markdown, the charts and
// docs/evaluation.md. Every number in those comes from an instance of this record; the
// targets (docs/targets.md P1-P5) are judged from it by Targets.Judge.
using System.Globalization;
using AntHost.Bench.Ipc;

namespace AntHost.Bench.Net;

/// <summary>The machine a run was made on.</summary>
public sealed record MachineInfo(string Cpu, int Cores, string Kernel, string Os, string Dotnet)
{
    public static MachineInfo Here()
    {
        string cpu = "unknown CPU";
        try
        {
            cpu = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? cpu;
        }
        catch (IOException) { }
        string kernel = "";
        try { kernel = File.ReadAllText("/proc/sys/kernel/osrelease").Trim(); }
        catch (IOException) { }
        return new MachineInfo(cpu, Environment.ProcessorCount, kernel, System.Runtime.InteropServices.RuntimeInformation.OSDescription,
            System.Runtime.InteropServices.RuntimeInformation.FrameworkDescription);
    }

    public override string ToString() => $"{Cpu}, {Cores} CPUs, Linux {Kernel}, {Dotnet}";
}

/// <summary>A tuning of the stack's processes for a run of the RTT test.</summary>
public sealed record TuningInfo(string Name, string Description, int SpinUs, int GapUs);

/// <summary>Everything one evaluation run measured.</summary>
public sealed class NetBenchReport
{
    public MachineInfo Machine { get; init; } = MachineInfo.Here();
    public DateTime StartedUtc { get; init; } = DateTime.UtcNow;
    public double Seconds { get; set; }
    /// <summary>The machine's load average (1, 5, 15 min) when the run started, and when it ended: the machine is shared.</summary>
    public string LoadAtStart { get; init; } = LoadAverage();
    public string LoadAtEnd { get; set; } = "";

    public static string LoadAverage()
    {
        try { return string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)); }
        catch (IOException) { return ""; }
    }
    public bool Quick { get; init; }
    /// <summary>Where the far end was: "the sandbox peer (Linux kernel, 198.18.0.1)" or a remote host.</summary>
    public string Peer { get; init; } = "";
    /// <summary>Where the host kernel's baseline ran from.</summary>
    public string Baseline { get; init; } = "";
    /// <summary>CPU placement of the processes (anthost up --cpus), or none.</summary>
    public string Placement { get; init; } = "";
    public List<TuningInfo> Tunings { get; } = [];
    public List<RttPoint> Rtt { get; } = [];
    public List<CpuResult> Cpu { get; } = [];
    public List<SendPoint> Send { get; } = [];
    public double? StampCostNs { get; set; }
    public List<ThroughputResult> Throughput { get; } = [];
    public InjectionResult? Injection { get; set; }
    public List<IdleResult> Idle { get; } = [];
    public IpcBenchReport? Ipc { get; set; }
    /// <summary>What was not measured and why, and anything that went wrong on the way.</summary>
    public List<string> Notes { get; } = [];
}

/// <summary>One of the targets of docs/targets.md judged from a run.</summary>
public sealed record TargetVerdict(string Id, string Figure, string Target, string Baseline, string Measured, string Ratio, string Verdict, string Why);

public static class Targets
{
    private static readonly CultureInfo Ci = CultureInfo.InvariantCulture;
    private static readonly int[] PaperSizes = [256, 512, 768, 1024];

    public static List<TargetVerdict> Judge(NetBenchReport r)
    {
        var v = new List<TargetVerdict> { P1(r), P2(r), P3(r, "latency", 1.0), P3(r, "frugal", 1.3), P3c(r, "latency"), P3c(r, "frugal"), P4(r), P4Apps(r), P4Http(r), P5Idle(r) };
        return v;
    }

    private static TargetVerdict P1(NetBenchReport r)
    {
        const string target = "median < 1 us when tuned for latency, flat within 10% over 64 B-64 KiB, >= 10x faster than the Unix socket round trip";
        if (r.Ipc is null || r.Ipc.Chains.Count == 0)
            return new("P1", "IPC hop", target, "-", "not run", "-", "not measured", "run `anthost bench ipc` or `anthost bench all`");
        var spinning = r.Ipc.Chains.Where(c => c.Tuning.Contains("spin", StringComparison.OrdinalIgnoreCase)).ToList();
        if (spinning.Count == 0) spinning = r.Ipc.Chains.ToList();
        double worst = spinning.Max(c => Math.Max(c.AppToInet.MedianUs, Math.Max(c.InetToNic.MedianUs, c.NicToApp.MedianUs)));
        double flat = spinning.GroupBy(c => c.Path).Max(g => new Func<ChainResult, double>[] { c => c.AppToInet.MedianUs, c => c.InetToNic.MedianUs, c => c.NicToApp.MedianUs }
            .Max(sel => g.Max(sel) / Math.Max(1e-9, g.Min(sel))));
        double minUdsRatio = double.MaxValue;
        foreach (var c in spinning)
        {
            var u = r.Ipc.UnixSocket.FirstOrDefault(x => x.PayloadBytes == c.PayloadBytes);
            if (u is null) continue;
            double hop = Math.Max(c.AppToInet.MedianUs, Math.Max(c.InetToNic.MedianUs, c.NicToApp.MedianUs));
            minUdsRatio = Math.Min(minUdsRatio, u.RoundTrip.MedianUs / Math.Max(1e-9, hop));
        }
        var uds = r.Ipc.UnixSocket.Select(u => u.RoundTrip.MedianUs).DefaultIfEmpty().ToList();
        bool met = worst < 1 && flat <= 1.10 && minUdsRatio >= 10;
        var why = new List<string>();
        if (worst >= 1) why.Add($"the slowest hop's median is {worst:F2} us");
        if (flat > 1.10) why.Add($"a hop varies {flat:F2}x over payload sizes");
        if (minUdsRatio < 10) why.Add($"the Unix socket is only {minUdsRatio:F1}x slower at some size");
        return new("P1", "IPC hop (spinning tunings)", target, string.Create(Ci, $"Unix socket round trip {uds.Min():F1}-{uds.Max():F1} us"),
            string.Create(Ci, $"slowest hop median {worst:F2} us ({string.Join(", ", spinning.GroupBy(c => c.Path).Select(g => string.Create(Ci, $"{g.Key}: {g.Max(c => Math.Max(c.AppToInet.MedianUs, Math.Max(c.InetToNic.MedianUs, c.NicToApp.MedianUs))):F2} us")))}); flatness {flat:F2}x"), string.Create(Ci, $"UDS ÷ hop >= {minUdsRatio:F1}x"),
            met ? "met" : "not met", met ? "" : string.Join("; ", why));
    }

    private static TargetVerdict P2(NetBenchReport r)
    {
        const string target = "AntHost's send processing time no slower than the host kernel's send(), 256-1024 B";
        var rows = PaperSizes.Select(s => (s, a: r.Send.FirstOrDefault(p => p.Stack == "AntHost" && p.PayloadBytes == s), k: r.Send.FirstOrDefault(p => p.Stack == "host kernel" && p.PayloadBytes == s)))
            .Where(x => x.a is not null && x.k is not null).ToList();
        if (rows.Count == 0) return new("P2", "send processing time", target, Kernel(r.Send, PaperSizes), "not measured", "-", "not measured", NotMeasuredWhy(r));
        var ratios = rows.Select(x => x.a!.Total.MedianUs / Math.Max(1e-9, x.k!.Total.MedianUs)).ToList();
        bool met = ratios.All(x => x <= 1.0);
        return new("P2", "send processing time, 256-1024 B", target,
            string.Join(", ", rows.Select(x => string.Create(Ci, $"{x.s} B {x.k!.Total.MedianUs:F1} us"))),
            string.Join(", ", rows.Select(x => string.Create(Ci, $"{x.s} B {x.a!.Total.MedianUs:F1} us"))),
            string.Join(", ", ratios.Select(x => x.ToString("F2", Ci) + "x")), met ? "met" : "not met",
            met ? "" : LargestStages(r, 256) + "; the kernel's send() is one system call, while AntHost's send is answered by another process, here by direct return to an app that sleeps for it (the latency tuning spins only in the two servers)");
    }

    private static TargetVerdict P3(NetBenchReport r, string tuning, double limit)
    {
        string target = tuning == "latency" ? "RTT no slower than the host kernel when tuned for latency (256-1024 B)" : "RTT within 1.3x of the host kernel when every process sleeps between requests (256-1024 B)";
        var pts = PaperSizes.Select(s => (s, a: r.Rtt.FirstOrDefault(p => p.Tuning == tuning && p.Stack == "AntHost" && p.PayloadBytes == s), k: r.Rtt.FirstOrDefault(p => p.Tuning == tuning && p.Stack == "host kernel" && p.PayloadBytes == s)))
            .Where(x => x.k is not null).ToList();
        string baseline = string.Join(", ", pts.Select(x => string.Create(Ci, $"{x.s} B {x.k!.Rtt.MedianUs:F1} us")));
        var both = pts.Where(x => x.a is not null).ToList();
        if (both.Count == 0) return new("P3", $"RTT, {tuning}", target, baseline.Length > 0 ? baseline : "not measured", "not measured", "-", "not measured", NotMeasuredWhy(r));
        var ratios = both.Select(x => x.a!.Rtt.MedianUs / Math.Max(1e-9, x.k!.Rtt.MedianUs)).ToList();
        bool met = ratios.All(x => x <= limit);
        return new("P3", $"RTT, {tuning} tuning", target, baseline,
            string.Join(", ", both.Select(x => string.Create(Ci, $"{x.s} B {x.a!.Rtt.MedianUs:F1} us"))),
            string.Join(", ", ratios.Select(x => x.ToString("F2", Ci) + "x")), met ? "met" : "not met",
            met ? "" : RttWhy(r, tuning, limit));
    }

    /// <summary>What a round trip costs: CPU within 2x the kernel's, sleep/wake cycles at the structure's minimum.</summary>
    private static TargetVerdict P3c(NetBenchReport r, string tuning)
    {
        const string target = "CPU per round trip within 2x the host kernel's; sleep/wake cycles per round trip at the structural minimum (about 5)";
        var a = r.Cpu.FirstOrDefault(c => c.Tuning == tuning && c.Stack == "AntHost" && c.PaperSizes);
        var k = r.Cpu.FirstOrDefault(c => c.Tuning == tuning && c.Stack == "host kernel" && c.PaperSizes);
        if (a is null || k is null) return new("P3c", $"cost of a round trip, {tuning}", target, "-", "not measured", "-", "not measured", "run `anthost bench rtt`");
        double cpu = a.MicrosecondsPerRound / Math.Max(1e-9, k.MicrosecondsPerRound);
        bool met = cpu <= 2 && a.SleepsPerRound <= 5.5;
        var why = new List<string>();
        if (cpu > 2) why.Add(string.Create(Ci, $"CPU {cpu:F1}x the kernel's"));
        if (a.SleepsPerRound > 5.5) why.Add(string.Create(Ci, $"{a.SleepsPerRound:F1} cycles: {string.Join(", ", a.Processes.Select(p => string.Create(Ci, $"{p.Process} {a.SleepsPerRoundOf(p.Process):F2}")))}"));
        return new("P3c", $"cost of a round trip, {tuning} tuning", target,
            string.Create(Ci, $"kernel {k.MicrosecondsPerRound:F0} us CPU, {k.SleepsPerRound:F2} cycles"),
            string.Create(Ci, $"AntHost {a.MicrosecondsPerRound:F0} us CPU, {a.SleepsPerRound:F2} cycles"),
            string.Create(Ci, $"CPU {cpu:F2}x"), met ? "met" : "not met", string.Join("; ", why));
    }

    /// <summary>Idle: no server wakes more than a few times a second, none above 0.1% CPU.</summary>
    private static TargetVerdict P5Idle(NetBenchReport r)
    {
        const string target = "idle: no server wakes more than a few times a second (<= 5), none above 0.1% CPU";
        var i = r.Idle.FirstOrDefault();
        if (i is null) return new("P5", "idle servers", target, "-", "not measured", "-", "not measured", "run `anthost bench idle`");
        var bad = i.Processes.Where(p => i.WakeupsPerSecond(p) > 5 || p.CorePercent > 0.1).ToList();
        return new("P5", "idle servers", target, "-",
            string.Join(", ", i.Processes.Select(p => string.Create(Ci, $"{p.Process} {i.WakeupsPerSecond(p):F1}/s {p.CorePercent:F3}%"))), "-",
            bad.Count == 0 ? "met" : "not met",
            string.Join("; ", bad.Select(p => string.Create(Ci, $"{p.Process}: {string.Join(", ", p.Threads.Where(t => t.Sleeps > 0).OrderByDescending(t => t.Sleeps).Take(3).Select(t => $"{t.Thread} {t.Sleeps / i.Seconds:F1}/s"))}"))));
    }

    private static TargetVerdict P4(NetBenchReport r)
    {
        const string target = "each way on one connection: the kernel's rate (>= 1.0x) at <= 1.5x the kernel's CPU per MB, with <= 16 IPC messages per MB";
        string inj = r.Injection is null ? "injection not measured" : string.Create(Ci, $"injection {r.Injection.FramesPerSecond:N0} frames/s = {r.Injection.Gbps:F2} Gbit/s");
        var k = r.Throughput.Where(t => t.Stack == "host kernel" && IsOneConnection(t)).ToList();
        string baseline = string.Join(", ", k.Select(t => string.Create(Ci, $"kernel {t.Direction} {t.Gbps:F2} Gbit/s{(t.CpuMsPerMb is { } c ? $" at {c:F1} ms CPU per MB" : "")}")).Append(inj));
        var a = r.Throughput.Where(t => t.Stack == "AntHost" && IsOneConnection(t)).ToList();
        if (a.Count == 0) return new("P4", "bulk TCP", target, baseline, "not measured", "-", "not measured", NotMeasuredWhy(r));
        var why = new List<string>();
        var ratios = new List<string>();
        foreach (var t in a)
        {
            var kk = k.FirstOrDefault(x => x.Direction == t.Direction);
            double rate = kk is null ? 0 : t.Gbps / Math.Max(1e-9, kk.Gbps);
            double? cpu = kk?.CpuMsPerMb is { } kc && t.CpuMsPerMb is { } ac ? ac / Math.Max(1e-9, kc) : null;
            double? machine = kk?.MachineCpuMsPerMb is { } km && t.MachineCpuMsPerMb is { } am ? am / Math.Max(1e-9, km) : null;
            ratios.Add(string.Create(Ci, $"{t.Direction}: {rate:F2}x rate{(cpu is { } c ? $", {c:F1}x CPU per MB" : "")}{(machine is { } m ? $" (the whole machine's: {m:F1}x)" : "")}"));
            if (rate < 1.0)
                why.Add(string.Create(Ci, $"{t.Direction}: {t.Gbps:F2} Gbit/s{(r.Injection is { } i ? $", {100 * t.Gbps / Math.Max(1e-9, i.Gbps):F0}% of what injection reached" : "")}"));
            if (cpu is > 1.5) why.Add(string.Create(Ci, $"{t.Direction}: {t.CpuMsPerMb:F1} ms CPU per MB"));
            if (t.MessagesPerMb is > 16) why.Add(string.Create(Ci, $"{t.Direction}: {t.MessagesPerMb:F0} IPC messages per MB{(t.MessageKinds is { } kinds ? $" ({kinds})" : "")}"));
        }
        bool met = a.Count >= 2 && why.Count == 0;
        return new("P4", "bulk TCP, one connection", target, baseline,
            string.Join(", ", a.Select(t => string.Create(Ci, $"{t.Direction} {t.Gbps:F2} Gbit/s{(t.MessagesPerMb is { } m ? $", {m:F0} messages per MB" : "")}"))),
            string.Join("; ", ratios), met ? "met" : "not met", met ? "" : string.Join("; ", why.Concat(CpuBound(r, a))));
    }

    /// <summary>A row of several apps' connections together (`AggregateBench`), not one connection's.</summary>
    private static bool IsAggregate(ThroughputResult t) => t.Direction.Contains("connections from", StringComparison.Ordinal);

    /// <summary>A row of HttpClient's GET (`Measure.HttpGet`).</summary>
    private static bool IsHttp(ThroughputResult t) => t.Direction.StartsWith("HttpClient", StringComparison.Ordinal);

    /// <summary>A row of one connection's bulk transfer, each way (P4's rows).</summary>
    private static bool IsOneConnection(ThroughputResult t) => !IsAggregate(t) && !IsHttp(t);

    private static TargetVerdict P4Http(NetBenchReport r)
    {
        const string target = "an HttpClient GET of 64 MiB from the peer's HTTP server: the kernel's HttpClient rate (>= 1.0x; bar of round 2: >= 0.5x)";
        var k = r.Throughput.FirstOrDefault(t => t.Stack == "host kernel" && IsHttp(t));
        var a = r.Throughput.FirstOrDefault(t => t.Stack == "AntHost" && IsHttp(t));
        string baseline = k is null ? "not measured" : string.Create(Ci, $"kernel {k.Gbps:F2} Gbit/s ({k.Seconds:F2} s) at {k.CpuMsPerMb:F1} ms CPU per MB");
        if (a is null || k is null) return new("P4h", "HttpClient GET", target, baseline, "not measured", "-", "not measured", NotMeasuredWhy(r));
        double rate = a.Gbps / Math.Max(1e-9, k.Gbps);
        string verdict = rate >= 1.0 ? "met" : rate >= 0.5 ? "bar met" : "not met";
        return new("P4h", "HttpClient GET", target, baseline,
            string.Create(Ci, $"{a.Gbps:F2} Gbit/s ({a.Seconds:F2} s) at {a.CpuMsPerMb:F1} ms CPU per MB{(a.MessagesPerMb is { } m ? $", {m:F0} messages per MB" : "")}"),
            string.Create(Ci, $"{rate:F2}x rate{(k.CpuMsPerMb is { } kc && a.CpuMsPerMb is { } ac ? $", {ac / Math.Max(1e-9, kc):F1}x CPU per MB" : "")}"),
            verdict, rate >= 1.0 ? "" : string.Create(Ci, $"{a.Gbps:F2} Gbit/s against the kernel's {k.Gbps:F2}"));
    }

    private static TargetVerdict P4Apps(NetBenchReport r)
    {
        const string target = "8 connections from 4 app processes, aggregate each way: the kernel's rate with the same four processes (>= 1.0x; bar of round 2: >= 0.5x)";
        var k = r.Throughput.Where(t => t.Stack == "host kernel" && IsAggregate(t)).ToList();
        var a = r.Throughput.Where(t => t.Stack == "AntHost" && IsAggregate(t)).ToList();
        string baseline = string.Join(", ", k.Select(t => string.Create(Ci, $"kernel {t.Direction} {t.Gbps:F2} Gbit/s")));
        if (a.Count == 0 || k.Count == 0) return new("P4m", "bulk TCP, several apps", target, baseline, "not measured", "-", "not measured", NotMeasuredWhy(r));
        var ratios = a.Select(t => (t, kk: k.FirstOrDefault(x => x.Direction == t.Direction)))
            .Select(p => (p.t, rate: p.kk is null ? 0 : p.t.Gbps / Math.Max(1e-9, p.kk.Gbps))).ToList();
        bool met = ratios.Count >= 2 && ratios.All(p => p.rate >= 1.0);
        bool bar = ratios.Count >= 2 && ratios.All(p => p.rate >= 0.5);
        return new("P4m", "bulk TCP, several apps", target, baseline,
            string.Join(", ", a.Select(t => string.Create(Ci, $"{t.Direction} {t.Gbps:F2} Gbit/s"))),
            string.Join("; ", ratios.Select(p => string.Create(Ci, $"{p.t.Direction}: {p.rate:F2}x"))),
            met ? "met" : bar ? "bar met" : "not met",
            met ? "" : string.Join("; ", ratios.Where(p => p.rate < 1.0).Select(p => string.Create(Ci, $"{p.t.Direction}: {p.t.Gbps:F2} Gbit/s at {p.t.CpuMsPerMb:F1} ms CPU per MB"))
                .Concat(CpuBound(r, ratios.Where(p => p.rate < 1.0).Select(p => p.t)))));
    }

    /// <summary>The send's three largest stages at <paramref name="size"/> (medians), from the run's timeline.</summary>
    public static string LargestStages(NetBenchReport r, int size)
    {
        var p = r.Send.FirstOrDefault(x => x.Stack == "AntHost" && x.PayloadBytes == size);
        if (p is null || p.Stages.Count == 0) return "no per-stage timeline in this run";
        var top = p.Stages.GroupBy(s => s.Row).Select(g => (Row: g.Key, Us: g.Sum(s => s.Time.MedianUs))).OrderByDescending(x => x.Us).Take(3);
        return string.Create(Ci, $"largest stages at {size} B: {string.Join(", ", top.Select(x => string.Create(Ci, $"{x.Row} {x.Us:F1} us")))}");
    }

    /// <summary>
    /// What bounded a row's rate: the machine, when 85% of its CPUs were busy (both ends; with
    /// its CPU per MB against the kernel's in the same direction), else its busiest thread.
    /// </summary>
    private static IEnumerable<string> CpuBound(NetBenchReport r, IEnumerable<ThroughputResult> rows)
    {
        foreach (var t in rows)
        {
            var k = r.Throughput.FirstOrDefault(x => x.Stack == "host kernel" && x.Direction == t.Direction);
            if (t.MachineCpuMsPerMb is not { } am || k?.MachineCpuMsPerMb is not { } km) continue;
            double busy = am * t.Gbps * 125 / 1000; // ms per MB x MB per s / 1000 = CPUs busy
            string thread = t.BusiestThread is { } name && t.BusiestThreadShare is { } share ? string.Create(Ci, $"; the busiest thread, {name}, {100 * share:F0}% of a CPU") : "";
            yield return busy >= 0.85 * r.Machine.Cores
                ? string.Create(Ci, $"{t.Direction}: CPU-bound: {busy:F2} of the machine's {r.Machine.Cores} CPUs busy, {am:F1} ms of machine CPU per MB (both ends) against the kernel's {km:F1} ({am / Math.Max(1e-9, km):F1}x){thread}")
                : string.Create(Ci, $"{t.Direction}: not CPU-bound: {busy:F2} of the machine's {r.Machine.Cores} CPUs busy{thread}");
        }
    }

    private static string RttWhy(NetBenchReport r, string tuning, double limit)
    {
        var why = new List<string> { string.Create(Ci, $"limit {limit:F1}x") };
        var ca = r.Cpu.FirstOrDefault(c => c.Tuning == tuning && c.Stack == "AntHost" && c.PaperSizes);
        var ck = r.Cpu.FirstOrDefault(c => c.Tuning == tuning && c.Stack == "host kernel" && c.PaperSizes);
        if (ca is not null && ck is not null)
        {
            why.Add(string.Create(Ci, $"CPU per round trip {ca.MicrosecondsPerRound:F0} us against the kernel's {ck.MicrosecondsPerRound:F0} us (AntHost's processes each woken in turn, against two system calls)"));
            if (ca.SleepsPerRound > ck.SleepsPerRound + 1)
                why.Add(string.Create(Ci, $"{ca.SleepsPerRound:F1} sleep/wake cycles per round trip against the kernel's {ck.SleepsPerRound:F1}, each a wake-up of a process asleep on an idle vCPU; only fewer handoffs between the processes remove it (the paper's structure needs five)"));
        }
        var t = r.Tunings.FirstOrDefault(x => x.Name == tuning);
        if (tuning == "latency" && t is not null && t.SpinUs > 0)
        {
            double lat = Median(r, "latency"), fru = Median(r, "frugal");
            if (lat > 0 && fru > 0 && lat > fru)
                why.Add(string.Create(Ci, $"spinning made AntHost slower here ({lat:F0} us against {fru:F0} us sleeping, median over 256-1024 B): the spinning servers take the CPUs from the process that holds the message ({r.Machine.Cores} CPUs)"));
        }
        why.Add(LargestStages(r, 256));
        return string.Join("; ", why);
    }

    private static double Median(NetBenchReport r, string tuning)
    {
        var v = r.Rtt.Where(p => p.Stack == "AntHost" && p.Tuning == tuning && PaperSizes.Contains(p.PayloadBytes)).Select(p => p.Rtt.MedianUs).Order().ToList();
        return v.Count == 0 ? 0 : v[v.Count / 2];
    }

    private static string Kernel(List<SendPoint> send, int[] sizes) =>
        string.Join(", ", send.Where(p => p.Stack == "host kernel" && sizes.Contains(p.PayloadBytes)).Select(p => string.Create(Ci, $"{p.PayloadBytes} B {p.Total.MedianUs:F1} us")));

    private static string NotMeasuredWhy(NetBenchReport r) => r.Notes.FirstOrDefault(n => n.Contains("AntHost", StringComparison.Ordinal)) ?? "the AntHost side did not run";
}
