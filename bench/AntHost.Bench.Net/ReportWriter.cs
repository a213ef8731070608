// Writes a run as JSON (for machines), Markdown (for people: tables laid out like the
// paper's table 3 and the data of its figures 8 and 9) and PNG charts, and as the
// evaluation page (docs/evaluation.md) with its charts under docs/eval/. Nothing in them
// is typed in: every figure is read from the report of the run.
using System.Globalization;
using System.Text;
using System.Text.Json;
using AntHost.Bench.Ipc;

namespace AntHost.Bench.Net;

public static class NetBenchReportWriter
{
    private static readonly CultureInfo Ci = CultureInfo.InvariantCulture;

    private static string Opt(double? v, string format) => v is { } x ? x.ToString(format, Ci) : "-";

    public static string ToJson(NetBenchReport r) => JsonSerializer.Serialize(new
    {
        r.Machine,
        r.StartedUtc,
        r.Seconds,
        r.LoadAtStart,
        r.LoadAtEnd,
        r.Quick,
        r.Peer,
        r.Baseline,
        r.Placement,
        r.Tunings,
        r.Rtt,
        r.Cpu,
        r.Send,
        r.StampCostNs,
        Throughput = r.Throughput.Select(t => new { t.Stack, t.Direction, t.Bytes, t.Seconds, t.Gbps, t.CpuMsPerMb, t.MachineCpuMsPerMb, t.SleepsPerMb, t.MessagesPerMb, t.MessageKinds, t.BusiestThread, t.BusiestThreadShare }),
        Injection = r.Injection is null ? null : new { r.Injection.FrameBytes, r.Injection.FramesPerSecond, r.Injection.Seconds, r.Injection.Gbps },
        r.Ipc,
        r.Idle,
        r.Notes,
        Targets = Targets.Judge(r),
    }, new JsonSerializerOptions { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase });

    /// <summary>Reads a report written by <see cref="ToJson"/> (to render it again, or with a newer writer); throws <see cref="JsonException"/> when it is not one.</summary>
    public static NetBenchReport FromJson(string json) =>
        JsonSerializer.Deserialize<NetBenchReport>(json, new JsonSerializerOptions
        {
            PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
            PreferredObjectCreationHandling = System.Text.Json.Serialization.JsonObjectCreationHandling.Populate,
        }) ?? throw new JsonException("the file holds no report");

    public static string Size(int b) => b >= 1024 ? $"{b / 1024} KiB" : $"{b} B";

    /// <summary>The Markdown report. <paramref name="headingLevel"/> 1 for a file of its own, 2 inside the evaluation page.</summary>
    public static string ToMarkdown(NetBenchReport r, int headingLevel = 1)
    {
        string h1 = new('#', headingLevel), h2 = new('#', headingLevel + 1);
        var sb = new StringBuilder();
        sb.AppendLine(Ci, $"{h1} AntHost benchmarks ({r.StartedUtc:yyyy-MM-dd HH:mm} UTC, {r.Seconds:F0} s{(r.Quick ? ", quick run: few iterations" : "")})");
        sb.AppendLine();
        sb.AppendLine(Ci, $"Machine: {r.Machine}. Far end: {r.Peer}. Host kernel baseline: {r.Baseline}. CPU placement: {(r.Placement.Length > 0 ? r.Placement : "none")}. Load average {r.LoadAtStart} at the start, {r.LoadAtEnd} at the end (the machine is shared). Times in microseconds, median / p99.");
        sb.AppendLine();
        if (r.Notes.Count > 0)
        {
            foreach (var n in r.Notes) sb.AppendLine(Ci, $"- {n}");
            sb.AppendLine();
        }

        if (r.Rtt.Count > 0)
        {
            sb.AppendLine(Ci, $"{h2} RTT: N bytes out, 1 byte back (the paper's figure 9)");
            sb.AppendLine();
            foreach (var t in r.Tunings) sb.AppendLine(Ci, $"- **{t.Name}**: {t.Description}");
            sb.AppendLine();
            sb.AppendLine("| tuning | payload | host kernel | AntHost | AntHost ÷ kernel (median) |");
            sb.AppendLine("|---|---:|---:|---:|---:|");
            foreach (var g in r.Rtt.GroupBy(p => (p.Tuning, p.PayloadBytes)))
            {
                var k = g.FirstOrDefault(p => p.Stack == "host kernel");
                var a = g.FirstOrDefault(p => p.Stack == "AntHost");
                string ratio = k is null || a is null ? "" : (a.Rtt.MedianUs / Math.Max(1e-9, k.Rtt.MedianUs)).ToString("F2", Ci) + "x";
                sb.AppendLine(Ci, $"| {g.Key.Tuning} | {Size(g.Key.PayloadBytes)} | {k?.Rtt.ToString() ?? "-"} | {a?.Rtt.ToString() ?? "-"} | {ratio} |");
            }
            sb.AppendLine();
        }
        if (r.Cpu.Count > 0)
        {
            sb.AppendLine(Ci, $"{h2} CPU and sleep/wake cycles during the RTT runs (per thread, /proc/PID/task/TID: schedstat, voluntary context switches)");
            sb.AppendLine();
            sb.AppendLine("| tuning | sizes | stack | round trips | wall s | CPU us per round trip | sleep/wake cycles per round trip | app GCs (pause ms) | per process: CPU s (% of one core, sleeps per round trip) |");
            sb.AppendLine("|---|---|---|---:|---:|---:|---:|---:|---|");
            foreach (var c in r.Cpu)
                sb.AppendLine(Ci, $"| {c.Tuning} | {c.Sizes} | {c.Stack} | {c.Rounds} | {c.WallSeconds:F1} | {c.MicrosecondsPerRound:F1} | {c.SleepsPerRound:F2} | {c.AppCollections} ({c.AppGcPauseMs:F1}) | {string.Join(", ", c.Processes.Select(p => string.Create(Ci, $"{p.Process} {p.Seconds:F2} ({p.CorePercent:F0}%, {c.SleepsPerRoundOf(p.Process):F2} sleeps)")))} |");
            sb.AppendLine();
            sb.AppendLine("A sleep/wake cycle is a voluntary context switch: the thread slept and something woke it; the frugal tuning's own pause between round trips (one sleep of the app each) is left out. The host kernel's own protocol work in softirq context is charged to no process, so its CPU is a lower bound. Every thread of each process is counted (report.json lists them): the app's includes its JIT and GC threads.");
            sb.AppendLine();
        }
        if (r.Send.Count > 0) AppendSend(sb, r, h2);
        if (r.Throughput.Count > 0 || r.Injection is not null)
        {
            sb.AppendLine(Ci, $"{h2} Bulk TCP throughput, one connection");
            sb.AppendLine();
            sb.AppendLine("| stack | direction | bytes | seconds | Gbit/s | CPU ms per MB | machine CPU ms per MB | sleep/wake cycles per MB | IPC messages per MB |");
            sb.AppendLine("|---|---|---:|---:|---:|---:|---:|---:|---:|");
            foreach (var t in r.Throughput)
                sb.AppendLine(Ci, $"| {t.Stack} | {t.Direction} | {t.Bytes:N0} | {t.Seconds:F2} | {t.Gbps:F2} | {Opt(t.CpuMsPerMb, "F1")} | {Opt(t.MachineCpuMsPerMb, "F1")} | {Opt(t.SleepsPerMb, "F0")} | {Opt(t.MessagesPerMb, "F0")} |");
            if (r.Injection is { } inj) sb.AppendLine(Ci, $"| libpcap injection (raw frames, one thread) | out | {inj.FrameBytes} B frames | {inj.Seconds:F1} | {inj.Gbps:F2} ({inj.FramesPerSecond:N0} frames/s) | | | | |");
            foreach (var reference in r.Throughput.Select(t => t.Stack).Where(s => s.StartsWith("host kernel (", StringComparison.Ordinal)).Distinct())
                sb.AppendLine().AppendLine(Ci, $"{reference}: the host kernel with that congestion control (AntHost's), one connection each way, for reference; the verdicts compare AntHost with \"host kernel\", the kernel's own default algorithm (net.ipv4.tcp_congestion_control).");
            sb.AppendLine();
            sb.AppendLine("CPU and sleep/wake cycles of our side only: the app (and for AntHost the broker, inet server and NIC driver), not the peer. Machine CPU: every CPU of this machine busy during the transfer (/proc/stat: user, system, irq, softirq), both ends: the peer, the kernel's interrupt work, and background load alike. The kernel runs a veth receiver's protocol work in the sender's softirq, on the sender's thread, so \"our side\" leaves out the host kernel's own receive processing (the peer's sender pays it) and charges AntHost's NIC driver with the peer's sending that its ACKs set off; the machine figure counts both ends the same way. IPC messages per MB, as counted where they travel (the inet server's counters): each app call, each answer to an app (inet's, and the driver's direct returns), each ethinput, each transmit request, and each message that brought completions back (several completions share one, TxCompletions).");
            sb.AppendLine();
        }
        if (r.Idle.Count > 0)
        {
            sb.AppendLine(Ci, $"{h2} Idle: the servers with nothing to do");
            sb.AppendLine();
            sb.AppendLine("| tuning | process | seconds | wake-ups per second | CPU (% of one core) | threads that woke (wake-ups) |");
            sb.AppendLine("|---|---|---:|---:|---:|---|");
            foreach (var i in r.Idle)
                foreach (var p in i.Processes)
                    sb.AppendLine(Ci, $"| {i.Tuning} | {p.Process} | {i.Seconds:F0} | {i.WakeupsPerSecond(p):F1} | {p.CorePercent:F3} | {string.Join(", ", p.Threads.Where(t => t.Sleeps > 0).OrderByDescending(t => t.Sleeps).Take(4).Select(t => string.Create(Ci, $"{t.Thread} {t.Sleeps}")))} |");
            sb.AppendLine();
        }
        if (r.Ipc is not null)
        {
            sb.AppendLine(Ci, $"{h2} IPC");
            sb.AppendLine();
            sb.AppendLine(IpcBenchReportWriter.ToMarkdown(r.Ipc).Replace("# IPC benchmark", h2 + "# IPC benchmark", StringComparison.Ordinal));
        }
        sb.AppendLine(Ci, $"{h2} Targets (docs/targets.md)");
        sb.AppendLine();
        sb.AppendLine("| id | figure | target | baseline (same run) | measured | ratio | verdict | why |");
        sb.AppendLine("|---|---|---|---|---|---|---|---|");
        foreach (var v in Targets.Judge(r)) sb.AppendLine(Ci, $"| {v.Id} | {v.Figure} | {v.Target} | {v.Baseline} | {v.Measured} | {v.Ratio} | **{v.Verdict}** | {v.Why} |");
        sb.AppendLine();
        return sb.ToString();
    }

    private static void AppendSend(StringBuilder sb, NetBenchReport r, string h2)
    {
        var sizes = r.Send.Select(p => p.PayloadBytes).Distinct().Order().ToList();
        sb.AppendLine(Ci, $"{h2} Send processing time and its stages (the paper's table 3)");
        sb.AppendLine();
        sb.AppendLine("From the app's send call until the frame is handed to the adapter and the result is back in the app. AntHost's stages come from the control ICA's trace area, stamped by each process as the send passes (one monotonic clock).");
        if (r.StampCostNs is { } ns) sb.AppendLine(Ci, $"One stamp (clock read and a 16-byte write into the trace area) costs {ns:F0} ns, measured in the same run; a send carries up to 12.");
        sb.AppendLine();
        sb.Append("| stage |");
        foreach (var s in sizes) sb.Append(Ci, $" {Size(s)} |");
        sb.AppendLine();
        sb.Append("|---|");
        foreach (var _ in sizes) sb.Append("---:|");
        sb.AppendLine();
        var rows = r.Send.Where(p => p.Stack == "AntHost").SelectMany(p => p.Stages.Select(s => s.Row)).Distinct().ToList();
        foreach (var row in rows)
        {
            sb.Append(Ci, $"| {row} |");
            foreach (var s in sizes)
            {
                var st = r.Send.FirstOrDefault(p => p.Stack == "AntHost" && p.PayloadBytes == s)?.Stages.Where(x => x.Row == row).ToList();
                sb.Append(st is null || st.Count == 0 ? " - |" : string.Create(Ci, $" {st.Sum(x => x.Time.MedianUs):F2} / {st.Sum(x => x.Time.P99Us):F2} |"));
            }
            sb.AppendLine();
        }
        sb.Append("| *sends on the path the stages show* |");
        foreach (var s in sizes)
        {
            var p = r.Send.FirstOrDefault(x => x.Stack == "AntHost" && x.PayloadBytes == s);
            sb.Append(p?.TimelineShare is { } share ? string.Create(Ci, $" *{100 * share:F0}%* |") : " - |");
        }
        sb.AppendLine();
        foreach (var stack in new[] { "AntHost", "host kernel" })
        {
            sb.Append(Ci, $"| **{(stack == "AntHost" ? "AntHost: packet send time" : "host kernel: send()")}** |");
            foreach (var s in sizes)
            {
                var p = r.Send.FirstOrDefault(x => x.Stack == stack && x.PayloadBytes == s);
                sb.Append(p is null ? " - |" : $" **{p.Total}** |");
            }
            sb.AppendLine();
        }
        sb.Append("| AntHost ÷ kernel (median) |");
        foreach (var s in sizes)
        {
            var a = r.Send.FirstOrDefault(x => x.Stack == "AntHost" && x.PayloadBytes == s);
            var k = r.Send.FirstOrDefault(x => x.Stack == "host kernel" && x.PayloadBytes == s);
            sb.Append(a is null || k is null ? " - |" : string.Create(Ci, $" {a.Total.MedianUs / Math.Max(1e-9, k.Total.MedianUs):F2}x |"));
        }
        sb.AppendLine();
        sb.AppendLine();
        sb.AppendLine("The stages are those of the sends that took the most common path (their share is in italics: a send whose segment leaves at once gets its result straight from the driver; one that must wait is answered by inet); the total is over every send. Per-stage medians need not add up to the median total (each is taken on its own); the p99 figures are each stage's own p99.");
        sb.AppendLine();
    }

    /// <summary>Writes report.json, report.md and the charts into <paramref name="dir"/>; returns the files written.</summary>
    public static List<string> WriteAll(NetBenchReport r, string dir)
    {
        Directory.CreateDirectory(dir);
        var files = new List<string>();
        string json = Path.Combine(dir, "report.json"), md = Path.Combine(dir, "report.md");
        File.WriteAllText(json, ToJson(r));
        File.WriteAllText(md, ToMarkdown(r));
        files.Add(json);
        files.Add(md);
        files.AddRange(Charts.WriteAll(r, dir));
        return files;
    }
}
