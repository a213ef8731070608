using System.Globalization;
using System.Text;
using System.Text.Json;

namespace AntHost.Bench.Ipc;

/// <summary>The benchmark's Markdown table (for people) and JSON (for machines).</summary>
public static class IpcBenchReportWriter
{
    public static string ToJson(IpcBenchReport r) =>
        JsonSerializer.Serialize(r, new JsonSerializerOptions { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase });

    public static string ToMarkdown(IpcBenchReport r)
    {
        var ci = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.AppendLine(ci, $"# IPC benchmark ({r.StartedUtc:yyyy-MM-dd HH:mm} UTC, {r.Seconds:F0} s)");
        sb.AppendLine();
        sb.AppendLine(ci, $"Machine: {r.Machine}. Times in microseconds, median / p99. One request at a time: app -(sync, data ICA)-> inet -(async, data ICA)-> nic -(direct return, no data ICA)-> app.");
        sb.AppendLine("Each hop is one way, from the sender's stamp before it sends to the receiver's stamp when it has the message. The Unix socket carries the same payload between two processes in the same run.");
        sb.AppendLine();
        sb.AppendLine("| path | tuning | payload | app→inet (sync+data) | inet→nic (async+data) | nic→app (direct return) | whole chain | Unix socket one way | Unix socket round trip | UDS RTT ÷ slowest hop |");
        sb.AppendLine("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var c in r.Chains)
        {
            var u = r.UnixSocket.FirstOrDefault(x => x.PayloadBytes == c.PayloadBytes);
            double worst = Math.Max(c.AppToInet.MedianUs, Math.Max(c.InetToNic.MedianUs, c.NicToApp.MedianUs));
            string ratio = u is null || worst <= 0 ? "" : (u.RoundTrip.MedianUs / worst).ToString("F1", ci) + "x";
            sb.AppendLine(ci, $"| {c.Path} | {c.Tuning} | {Size(c.PayloadBytes)} | {c.AppToInet} | {c.InetToNic} | {c.NicToApp} | {c.Chain} | {u?.OneWay} | {u?.RoundTrip} | {ratio} |");
        }
        sb.AppendLine();
        sb.AppendLine("Flatness (largest median ÷ smallest median over payload sizes, per hop):");
        sb.AppendLine();
        sb.AppendLine("| path | tuning | app→inet | inet→nic | nic→app | chain |");
        sb.AppendLine("|---|---|---:|---:|---:|---:|");
        foreach (var g in r.Chains.GroupBy(c => (c.Path, c.Tuning)))
        {
            string f(Func<ChainResult, double> sel) => (g.Max(sel) / Math.Max(1e-9, g.Min(sel))).ToString("F2", ci);
            sb.AppendLine(ci, $"| {g.Key.Path} | {g.Key.Tuning} | {f(c => c.AppToInet.MedianUs)} | {f(c => c.InetToNic.MedianUs)} | {f(c => c.NicToApp.MedianUs)} | {f(c => c.Chain.MedianUs)} |");
        }
        return sb.ToString();
    }

    private static string Size(int b) => b >= 1024 ? $"{b / 1024} KiB" : $"{b} B";
}
