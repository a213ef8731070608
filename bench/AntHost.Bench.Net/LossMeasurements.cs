using System.Globalization;
using System.Text;

namespace AntHost.Bench.Net;

/// <summary>
/// One transfer of the loss benchmark: a stack, a direction, a loss rate, what went through
/// and what the sender retransmitted meanwhile, by cause where the sender's counters say.
/// </summary>
public sealed record LossResult
{
    public required double LossPercent { get; init; }
    public required string Stack { get; init; }
    public required string Direction { get; init; }
    /// <summary>Who sent the data (and whose retransmissions these are): "host kernel", "AntHost" or "peer kernel".</summary>
    public required string Sender { get; init; }
    /// <summary>The row the other stacks' ratios are taken against (the host kernel with the first algorithm asked for).</summary>
    public bool Baseline { get; init; }
    public required long Bytes { get; init; }
    public required double Seconds { get; init; }
    public double Mbps => Seconds > 0 ? Bytes * 8 / Seconds / 1e6 : 0;
    /// <summary>Retransmitted segments in all (null: the sender does not say).</summary>
    public long? Retransmits { get; init; }
    /// <summary>Retransmission timer expiries (Linux TCPTimeouts), when known.</summary>
    public long? Timeouts { get; init; }
    /// <summary>Retransmissions by cause, named as the sender counts them.</summary>
    public Dictionary<string, long> ByCause { get; init; } = new();
    /// <summary>Packets the loss rules dropped during this transfer (into the peer, out of it).</summary>
    public (long In, long Out) Dropped { get; init; }
}

/// <summary>Linux's TCP counters of one network namespace (/proc/net/snmp and /proc/net/netstat), and their differences.</summary>
public static class LinuxTcpCounters
{
    /// <summary>Parses the "Tcp:" and "TcpExt:" header/value line pairs of /proc/net/snmp and /proc/net/netstat.</summary>
    public static Dictionary<string, long> Parse(string snmp, string netstat)
    {
        var d = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var text in new[] { snmp, netstat })
        {
            var lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            for (int i = 0; i + 1 < lines.Length; i++)
            {
                var names = lines[i].Split(' ', StringSplitOptions.RemoveEmptyEntries);
                var values = lines[i + 1].Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (names.Length != values.Length || names.Length == 0 || names[0] != values[0] || names[0] is not ("Tcp:" or "TcpExt:")) continue;
                for (int k = 1; k < names.Length; k++)
                    if (long.TryParse(values[k], NumberStyles.Integer, CultureInfo.InvariantCulture, out long v)) d[names[0] + names[k]] = v;
                i++;
            }
        }
        return d;
    }

    /// <summary>after - before for one counter (0 when either lacks it).</summary>
    public static long Delta(Dictionary<string, long> before, Dictionary<string, long> after, string name) =>
        after.TryGetValue(name, out long a) && before.TryGetValue(name, out long b) ? a - b : 0;

    /// <summary>The retransmission figures of a Linux sender between two readings.</summary>
    public static (long Retransmits, long Timeouts, Dictionary<string, long> ByCause) Retransmissions(Dictionary<string, long> before, Dictionary<string, long> after)
    {
        long D(string n) => Delta(before, after, n);
        var by = new Dictionary<string, long>
        {
            // TCPLossProbes counts probes sent, new data or not; TCPSlowStartRetrans the
            // retransmissions in the Loss state (after a timeout); TCPFastRetrans the ones in
            // Recovery (RACK or DupThresh: Linux does not split them); TCPLostRetransmit the
            // retransmissions RACK found lost again.
            ["TLP probes"] = D("TcpExt:TCPLossProbes"),
            ["recovery (RACK/DupThresh)"] = D("TcpExt:TCPFastRetrans"),
            ["after a timeout"] = D("TcpExt:TCPSlowStartRetrans"),
            ["lost retransmissions found"] = D("TcpExt:TCPLostRetransmit"),
        };
        return (D("Tcp:RetransSegs"), D("TcpExt:TCPTimeouts"), by);
    }
}

/// <summary>The loss benchmark's report as Markdown.</summary>
public static class LossReport
{
    /// <summary>The table and its notes; with <paramref name="heading"/> (a page of its own, as docs/eval/loss.md), a title and how the run was made first.</summary>
    public static string ToMarkdown(IReadOnlyList<LossResult> results, IReadOnlyList<string> notes, string? heading = null)
    {
        var ci = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        if (heading is not null)
        {
            sb.AppendLine("# Bulk TCP through random loss: AntHost and the host kernel");
            sb.AppendLine();
            sb.AppendLine(heading);
            sb.AppendLine();
        }
        sb.AppendLine("| loss | stack | direction | sender | MiB | s | Mbit/s | vs baseline | retransmitted | timeouts | by cause | dropped in/out |");
        sb.AppendLine("|---|---|---|---|---|---|---|---|---|---|---|---|");
        foreach (var r in results)
        {
            var baseline = results.FirstOrDefault(k => k.Baseline && k.LossPercent == r.LossPercent && k.Direction == r.Direction);
            string ratio = !r.Baseline && baseline is { Mbps: > 0 } ? (r.Mbps / baseline.Mbps).ToString("F2", ci) + "x" : "";
            string causes = string.Join(", ", r.ByCause.Where(kv => kv.Value != 0).Select(kv => $"{kv.Key} {kv.Value}"));
            sb.AppendLine(string.Create(ci, $"| {r.LossPercent}% | {r.Stack} | {r.Direction} | {r.Sender} | {r.Bytes / 1048576.0:F1} | {r.Seconds:F1} | {r.Mbps:F1} | {ratio} | {r.Retransmits?.ToString(ci) ?? "?"} | {r.Timeouts?.ToString(ci) ?? "?"} | {causes} | {r.Dropped.In}/{r.Dropped.Out} |"));
        }
        foreach (var n in notes) sb.AppendLine().Append("- ").AppendLine(n);
        return sb.ToString();
    }
}
