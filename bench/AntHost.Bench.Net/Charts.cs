// The charts, drawn with ScottPlot from a run's report: RTT over payload size per stack and
// tuning (as the paper's figure 9), the send time stacked stage by stage beside the host
// kernel's send() (figure 8), and throughput per direction beside the kernel and the raw
// libpcap injection rate.
using ScottPlot;

namespace AntHost.Bench.Net;

public static class Charts
{
    private const int Width = 900, Height = 520;

    /// <summary>Writes the charts a report has data for; returns their paths.</summary>
    public static List<string> WriteAll(NetBenchReport r, string dir)
    {
        var files = new List<string>();
        if (r.Rtt.Count > 0) files.Add(Rtt(r, Path.Combine(dir, "rtt.png")));
        // The paper's sizes on a chart of their own (its figure 8): beside 64 KiB they would not show.
        if (r.Send.Any(p => p.PayloadBytes <= 1024)) files.Add(Send(r, Path.Combine(dir, "send.png"), p => p.PayloadBytes <= 1024, "256-1024 B, the paper's sizes"));
        if (r.Send.Any(p => p.PayloadBytes > 1024)) files.Add(Send(r, Path.Combine(dir, "send-large.png"), p => p.PayloadBytes > 1024, "4-64 KiB"));
        if (r.Throughput.Count > 0) files.Add(Throughput(r, Path.Combine(dir, "throughput.png")));
        return files;
    }

    private static void SizeTicks(Plot plt, IReadOnlyList<int> sizes)
    {
        double[] pos = Enumerable.Range(0, sizes.Count).Select(i => (double)i).ToArray();
        string[] labels = sizes.Select(NetBenchReportWriter.Size).ToArray();
        plt.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(pos, labels);
    }

    public static string Rtt(NetBenchReport r, string path)
    {
        var plt = new Plot();
        var sizes = r.Rtt.Select(p => p.PayloadBytes).Distinct().Order().ToList();
        foreach (var g in r.Rtt.GroupBy(p => (p.Stack, p.Tuning)))
        {
            var pts = g.OrderBy(p => p.PayloadBytes).ToList();
            double[] xs = pts.Select(p => (double)sizes.IndexOf(p.PayloadBytes)).ToArray();
            double[] ys = pts.Select(p => Math.Log10(Math.Max(0.1, p.Rtt.MedianUs))).ToArray();
            var s = plt.Add.Scatter(xs, ys);
            s.LegendText = $"{g.Key.Stack}, {g.Key.Tuning}";
            s.MarkerSize = 7;
            s.LineWidth = 2;
            if (g.Key.Tuning == "frugal") s.LinePattern = LinePattern.Dashed;
        }
        SizeTicks(plt, sizes);
        // A log scale: the kernel's tens of microseconds and AntHost's larger figures on one chart.
        var ticks = new ScottPlot.TickGenerators.NumericAutomatic
        {
            MinorTickGenerator = new ScottPlot.TickGenerators.LogMinorTickGenerator(),
            IntegerTicksOnly = true,
            LabelFormatter = y => Math.Pow(10, y).ToString("N0", System.Globalization.CultureInfo.InvariantCulture),
        };
        plt.Axes.Left.TickGenerator = ticks;
        plt.Title("RTT: N bytes out, 1 byte back (median, log scale)");
        plt.XLabel("payload N");
        plt.YLabel("round trip (µs)");
        plt.Axes.SetLimitsY(Math.Floor(Math.Log10(Math.Max(0.1, r.Rtt.Min(p => p.Rtt.MedianUs)))), Math.Ceiling(Math.Log10(Math.Max(1, r.Rtt.Max(p => p.Rtt.MedianUs)))) + 0.05);
        plt.ShowLegend(Alignment.UpperLeft);
        plt.SavePng(path, Width, Height);
        return path;
    }

    public static string Send(NetBenchReport r, string path, Func<SendPoint, bool> which, string what)
    {
        var plt = new Plot();
        var points = r.Send.Where(which).ToList();
        var sizes = points.Select(p => p.PayloadBytes).Distinct().Order().ToList();
        var rows = points.Where(p => p.Stack == "AntHost").SelectMany(p => p.Stages.Select(s => s.Row)).Distinct().ToList();
        var palette = new ScottPlot.Palettes.Category20();
        for (int i = 0; i < sizes.Count; i++)
        {
            double x = i;
            var a = points.FirstOrDefault(p => p.Stack == "AntHost" && p.PayloadBytes == sizes[i]);
            if (a is not null)
            {
                double bottom = 0;
                for (int k = 0; k < rows.Count; k++)
                {
                    double v = a.Stages.Where(s => s.Row == rows[k]).Sum(s => s.Time.MedianUs);
                    if (v <= 0) continue;
                    plt.Add.Bar(new Bar { Position = x - 0.18, ValueBase = bottom, Value = bottom + v, FillColor = palette.GetColor(k), Size = 0.34 });
                    bottom += v;
                }
                if (a.Stages.Count == 0) plt.Add.Bar(new Bar { Position = x - 0.18, Value = a.Total.MedianUs, FillColor = Colors.SteelBlue, Size = 0.34 });
            }
            var kpt = points.FirstOrDefault(p => p.Stack == "host kernel" && p.PayloadBytes == sizes[i]);
            if (kpt is not null) plt.Add.Bar(new Bar { Position = x + 0.18, Value = kpt.Total.MedianUs, FillColor = Colors.Gray, Size = 0.34 });
        }
        for (int k = 0; k < rows.Count; k++) plt.Legend.ManualItems.Add(new LegendItem { LabelText = "AntHost: " + rows[k], FillColor = palette.GetColor(k) });
        plt.Legend.ManualItems.Add(new LegendItem { LabelText = "host kernel send()", FillColor = Colors.Gray });
        SizeTicks(plt, sizes);
        plt.Title($"Send processing time by stage, {what} (median)");
        plt.XLabel("payload");
        plt.YLabel("µs");
        plt.Axes.Margins(bottom: 0);
        plt.ShowLegend(Edge.Right);
        plt.SavePng(path, Width + 420, Height + 80);
        return path;
    }

    public static string Throughput(NetBenchReport r, string path)
    {
        var plt = new Plot();
        var dirs = r.Throughput.Select(t => t.Direction).Distinct().ToList();
        var stacks = r.Throughput.Select(t => t.Stack).Distinct().ToList();
        var palette = new ScottPlot.Palettes.Category10();
        for (int d = 0; d < dirs.Count; d++)
            for (int s = 0; s < stacks.Count; s++)
                if (r.Throughput.FirstOrDefault(t => t.Direction == dirs[d] && t.Stack == stacks[s]) is { } t)
                    plt.Add.Bar(new Bar { Position = d + (s - (stacks.Count - 1) / 2.0) * 0.3, Value = t.Gbps, FillColor = palette.GetColor(s), Size = 0.28 });
        for (int s = 0; s < stacks.Count; s++) plt.Legend.ManualItems.Add(new LegendItem { LabelText = stacks[s], FillColor = palette.GetColor(s) });
        if (r.Injection is { } inj)
        {
            var line = plt.Add.HorizontalLine(inj.Gbps);
            line.LinePattern = LinePattern.Dashed;
            line.LegendText = $"libpcap injection, {inj.FrameBytes} B frames";
        }
        plt.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(Enumerable.Range(0, dirs.Count).Select(i => (double)i).ToArray(), dirs.ToArray());
        plt.Title("Bulk TCP, one connection");
        plt.YLabel("Gbit/s");
        plt.Axes.Margins(bottom: 0);
        plt.ShowLegend(Alignment.UpperRight);
        plt.SavePng(path, Width, Height);
        return path;
    }
}
