using System.Text.Json;
using AntHost.Bench.Ipc;
using AntHost.Bench.Net;

namespace AntHost.Cli.Tests;

/// <summary>The benchmarks' report writers and target verdicts, on a report made here: every figure they print is the report's.</summary>
public sealed class ReportWriterTests
{
    private static Percentiles P(double median, double p99) => new(median, p99, 100);

    private static NetBenchReport Sample()
    {
        var r = new NetBenchReport { Peer = "a test peer", Baseline = "a test kernel", Seconds = 12, Machine = new MachineInfo("a test CPU", 2, "6.0", "Linux", ".NET") };
        r.Tunings.Add(new TuningInfo("latency", "spinning", 50, 0));
        r.Tunings.Add(new TuningInfo("frugal", "sleeping", 0, 1000));
        foreach (int size in new[] { 256, 512, 768, 1024 })
        {
            r.Rtt.Add(new RttPoint("latency", "host kernel", size, P(20, 30)));
            r.Rtt.Add(new RttPoint("latency", "AntHost", size, P(40, 50)));
            r.Rtt.Add(new RttPoint("frugal", "host kernel", size, P(100, 130)));
            r.Rtt.Add(new RttPoint("frugal", "AntHost", size, P(120, 160)));
            r.Send.Add(new SendPoint("host kernel", size, P(10, 12), []));
            r.Send.Add(new SendPoint("AntHost", size, P(9, 11),
            [
                new StageResult("AppStart", "AppRequest", Measure.Row(0x01, 0x02), P(1.25, 2)),
                new StageResult("AppRequest", "InetReceived", Measure.Row(0x02, 0x10), P(3.5, 4)),
                new StageResult("NicReturn", "AppReturned", Measure.Row(0x32, 0x03), P(4.5, 5)),
            ]));
        }
        r.Cpu.Add(new CpuResult("latency", "AntHost", 1000, 2, [new CpuUse("inet", 0.5, 25) { Sleeps = 2000 }, new CpuUse("app", 0.25, 12.5) { Sleeps = 1000 }]) { Sizes = "256 B-1 KiB" });
        r.Cpu.Add(new CpuResult("latency", "host kernel", 1000, 1, [new CpuUse("app", 0.1, 10) { Sleeps = 1000 }]) { Sizes = "256 B-1 KiB" });
        r.Idle.Add(new IdleResult("latency", 20, [new CpuUse("broker", 0, 0), new CpuUse("inet", 0.004, 0.02) { Sleeps = 200, Threads = [new ThreadUse("inet request ma", 0.004, 200, 0)] }]));
        r.Throughput.Add(new ThroughputResult("host kernel", "out (to the peer)", 1_000_000_000, 2) { CpuMsPerMb = 1, MachineCpuMsPerMb = 2 });
        r.Throughput.Add(new ThroughputResult("AntHost", "out (to the peer)", 750_000_000, 2) { MessagesPerMb = 40, CpuMsPerMb = 4, MachineCpuMsPerMb = 5 });
        r.Throughput.Add(new ThroughputResult("host kernel", "in (from the peer)", 1_000_000_000, 2) { CpuMsPerMb = 1, MachineCpuMsPerMb = 2 });
        r.Throughput.Add(new ThroughputResult("AntHost", "in (from the peer)", 250_000_000, 2) { MachineCpuMsPerMb = 4 }
            .WithCpu([new CpuUse("nic", 1.5, 75) { Threads = [new ThreadUse("anthost-nic", 1.5, 10, 0)] }, new CpuUse("inet", 0.5, 25) { Threads = [new ThreadUse("inet request ma", 0.5, 10, 0)] }], 2.0));
        r.Injection = new InjectionResult(1514, 300_000, 2);
        r.StampCostNs = 31;
        return r;
    }

    [Fact]
    public void The_markdown_tables_carry_the_reports_figures_and_ratios()
    {
        string md = NetBenchReportWriter.ToMarkdown(Sample());
        Assert.Contains("| latency | 256 B | 20.00 / 30.00 | 40.00 / 50.00 | 2.00x |", md, StringComparison.Ordinal);
        Assert.Contains("| frugal | 1 KiB | 100.00 / 130.00 | 120.00 / 160.00 | 1.20x |", md, StringComparison.Ordinal);
        Assert.Contains("| app: pre-request | 1.25 / 2.00 | 1.25 / 2.00 | 1.25 / 2.00 | 1.25 / 2.00 |", md, StringComparison.Ordinal);
        Assert.Contains("| IPC NIC→app (direct return) | 4.50 / 5.00 |", md, StringComparison.Ordinal);
        Assert.Contains("| AntHost ÷ kernel (median) | 0.90x |", md, StringComparison.Ordinal);
        Assert.Contains("costs 31 ns", md, StringComparison.Ordinal);
        Assert.Contains("| AntHost | out (to the peer) | 750,000,000 | 2.00 | 3.00 | 4.0 | 5.0 |", md, StringComparison.Ordinal);
        Assert.Contains("inet 0.50 (25%, 2.00 sleeps), app 0.25 (12%, 1.00 sleeps)", md, StringComparison.Ordinal);
        Assert.Contains("| latency | 256 B-1 KiB | AntHost | 1000 | 2.0 | 750.0 | 3.00 |", md, StringComparison.Ordinal);
        // The cost of a round trip judged from the paper's sizes: 750 us against 100 us, 3 cycles.
        Assert.Contains("| P3c | cost of a round trip, latency tuning |", md, StringComparison.Ordinal);
        Assert.Contains("AntHost 750 us CPU, 3.00 cycles | CPU 7.50x | **not met** | CPU 7.5x the kernel's |", md, StringComparison.Ordinal);
        // Idle: 200 wake-ups in 20 s is 10 a second, above the limit, and the thread is named.
        Assert.Contains("| latency | inet | 20 | 10.0 | 0.020 | inet request ma 200 |", md, StringComparison.Ordinal);
        Assert.Contains("**not met** | inet: inet request ma 10.0/s |", md, StringComparison.Ordinal);
    }

    [Fact]
    public void Targets_are_judged_from_the_figures()
    {
        var v = Targets.Judge(Sample()).ToDictionary(x => x.Id + " " + x.Figure);
        var p2 = v.Values.Single(x => x.Id == "P2");
        Assert.Equal("met", p2.Verdict);                                     // 9 us against 10 us
        Assert.Contains("0.90x", p2.Ratio, StringComparison.Ordinal);
        var latency = v.Values.Single(x => x.Id == "P3" && x.Figure.Contains("latency", StringComparison.Ordinal));
        Assert.Equal("not met", latency.Verdict);                            // 2x, limit 1x
        Assert.Contains("IPC NIC→app (direct return) 4.5 us", latency.Why, StringComparison.Ordinal); // the largest stage named
        var frugal = v.Values.Single(x => x.Id == "P3" && x.Figure.Contains("frugal", StringComparison.Ordinal));
        Assert.Equal("met", frugal.Verdict);                                 // 1.2x, limit 1.3x
        var p4 = v.Values.Single(x => x.Id == "P4");
        Assert.Equal("not met", p4.Verdict);                                 // out 0.75x, in: 1 Gbit/s against no kernel figure
        Assert.Contains("in (from the peer): 1.00 Gbit/s, 28% of what injection reached", p4.Why, StringComparison.Ordinal);
        Assert.Contains("out (to the peer): 3.00 Gbit/s, 83% of what injection reached", p4.Why, StringComparison.Ordinal); // 0.75x the kernel's 4
        Assert.Contains("out (to the peer): 40 IPC messages per MB", p4.Why, StringComparison.Ordinal);
        Assert.Contains("out (to the peer): 0.75x rate, 4.0x CPU per MB (the whole machine's: 2.5x)", p4.Ratio, StringComparison.Ordinal);
        // 375 MB/s at 5 ms per MB: 1.88 of the 2 CPUs busy
        Assert.Contains("out (to the peer): CPU-bound: 1.88 of the machine's 2 CPUs busy, 5.0 ms of machine CPU per MB (both ends) against the kernel's 2.0 (2.5x)", p4.Why, StringComparison.Ordinal);
        // 125 MB/s at 8 ms of machine CPU per MB (2 s busy over 250 MB): 1.00 CPU busy, the driver's thread 75% of one
        Assert.Contains("in (from the peer): not CPU-bound: 1.00 of the machine's 2 CPUs busy; the busiest thread, nic/anthost-nic, 75% of a CPU", p4.Why, StringComparison.Ordinal);
        Assert.Equal("not measured", v.Values.Single(x => x.Id == "P1").Verdict); // no IPC run in this report
    }

    [Fact]
    public void Json_png_and_the_evaluation_page_are_written_from_the_report()
    {
        var r = Sample();
        string dir = Directory.CreateTempSubdirectory("anthost-report-").FullName;
        try
        {
            var files = NetBenchReportWriter.WriteAll(r, dir);
            Assert.Equal(["report.json", "report.md", "rtt.png", "send.png", "throughput.png"], files.Select(Path.GetFileName).Order());
            foreach (var png in files.Where(f => f.EndsWith(".png", StringComparison.Ordinal)))
                Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, File.ReadAllBytes(png)[..4]);
            using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "report.json")));
            Assert.Equal(40, json.RootElement.GetProperty("rtt").EnumerateArray()
                .Single(p => p.GetProperty("stack").GetString() == "AntHost" && p.GetProperty("tuning").GetString() == "latency" && p.GetProperty("payloadBytes").GetInt32() == 256)
                .GetProperty("rtt").GetProperty("medianUs").GetDouble());
            Assert.Equal(3.0, json.RootElement.GetProperty("throughput")[1].GetProperty("gbps").GetDouble(), 6);

            string docs = Path.Combine(dir, "docs");
            var written = EvaluationPage.Write(r, docs);
            string page = File.ReadAllText(Path.Combine(docs, "evaluation.md"));
            Assert.Contains("![rtt](eval/rtt.png)", page, StringComparison.Ordinal);
            Assert.Contains("Send, 256 B: AntHost 9.00 us against the host kernel's 10.00 us, 0.90x (the paper: 4.05x)", page, StringComparison.Ordinal);
            Assert.Contains("RTT, 256 B, frugal: AntHost 120.0 us against the host kernel's 100.0 us, 1.20x (the paper: 1.25x)", page, StringComparison.Ordinal);
            Assert.True(File.Exists(Path.Combine(docs, "eval", "send.png")));
            Assert.Contains(Path.Combine(docs, "eval", "report.json"), written);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void A_report_read_back_from_its_json_renders_the_same()
    {
        var r = Sample();
        r.Notes.Add("a note");
        var back = NetBenchReportWriter.FromJson(NetBenchReportWriter.ToJson(r));
        Assert.Equal(NetBenchReportWriter.ToMarkdown(r), NetBenchReportWriter.ToMarkdown(back));
        Assert.Equal(NetBenchReportWriter.ToJson(r), NetBenchReportWriter.ToJson(back));
        Assert.Throws<JsonException>(() => NetBenchReportWriter.FromJson("[1, 2]"));
    }
}
