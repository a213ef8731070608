using System.Text.Json;
using AntHost.TestSupport;
using Xunit.Abstractions;

namespace AntHost.Cli.Tests;

/// <summary>
/// The network benchmarks as a user runs them: wrong command lines, and a --quick run of
/// every benchmark end to end on a real veth (a stack brought up per tuning, the host
/// kernel's baseline beside it, the report in Markdown, JSON and PNG, the evaluation page),
/// leaving nothing behind. A benchmark asserts no speed: only that each figure was
/// measured and reported as measured.
/// </summary>
public sealed class BenchTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData("--peer 'nowhere' is not an IPv4 address", "bench", "rtt", "--peer", "nowhere")]
    [InlineData("--iterations takes 1..1000000", "bench", "send", "--iterations", "0")]
    [InlineData("--spin-us takes 1..100000", "bench", "rtt", "--spin-us", "0")]
    [InlineData("sandbox prefix", "bench", "throughput", "--prefix", "Bad_Prefix")]
    [InlineData("instance name", "bench", "all", "--instance", "../x")]
    [InlineData("Unrecognized command or argument '--docs'", "bench", "rtt", "--docs", "docs")]
    [InlineData("Unrecognized command or argument 'latency'", "bench", "latency")]
    [InlineData("--baseline-netns goes with --peer", "bench", "rtt", "--baseline-netns", "x")]
    [InlineData("Option '--from' is required", "bench", "report")]
    [InlineData("no such network namespace", "bench", "rtt", "--peer", "198.18.0.1", "--baseline-netns", "aht-e-nosuch")]
    public void A_wrong_bench_command_line_exits_2_saying_what_is_wrong(string expected, params string[] args)
    {
        var r = Cli.Run(output, args);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains(expected, r.StandardError, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", r.All, StringComparison.Ordinal);
    }

    [Fact]
    public void Bench_help_lists_every_benchmark()
    {
        var r = Cli.Run(output, "bench", "--help");
        Assert.Equal(0, r.ExitCode);
        foreach (var b in new[] { "ipc", "rtt", "send", "throughput", "all" }) Assert.Contains(b, r.StandardOutput, StringComparison.Ordinal);
    }

    [PcapFact]
    public void A_quick_run_of_every_benchmark_reports_both_stacks_from_one_run_and_leaves_nothing()
    {
        int n = Random.Shared.Next(10000, 100000);
        string instance = $"test-eval-{n}", prefix = $"aht-e{n}";
        string dir = Path.Combine(Path.GetTempPath(), $"anthost-bench-test-{n}");
        string docs = Path.Combine(dir, "docs");
        try
        {
            var r = Cli.Run(output, "bench", "all", "--quick", "--iterations", "40", "--instance", instance, "--prefix", prefix,
                "--out", dir, "--docs", docs, "--log-dir", Path.Combine(dir, "logs"));
            Assert.True(r.ExitCode == 0, r.ToString());

            using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "report.json")));
            var root = json.RootElement;
            var notes = root.GetProperty("notes").EnumerateArray().Select(x => x.GetString()!).ToList();
            Assert.Empty(notes); // nothing left unmeasured
            string[] stacks = ["host kernel", "AntHost"];
            int[] sizes = [256, 512, 768, 1024, 4096, 16384, 65536];

            var rtt = root.GetProperty("rtt").EnumerateArray().ToList();
            foreach (var tuning in new[] { "latency", "frugal" })
                foreach (var stack in stacks)
                    foreach (int size in sizes)
                    {
                        var p = rtt.Single(x => x.GetProperty("tuning").GetString() == tuning && x.GetProperty("stack").GetString() == stack && x.GetProperty("payloadBytes").GetInt32() == size);
                        Assert.True(p.GetProperty("rtt").GetProperty("samples").GetInt32() >= 20);
                        Assert.True(p.GetProperty("rtt").GetProperty("medianUs").GetDouble() > 0);
                    }
            var cpu = root.GetProperty("cpu").EnumerateArray().ToList();
            // Per tuning and stack: the paper's sizes and the larger ones, measured apart.
            Assert.Equal(2 * 2 * stacks.Length, cpu.Count);
            Assert.All(cpu, c => Assert.Contains(c.GetProperty("processes").EnumerateArray(), p => p.GetProperty("process").GetString() == "app"));
            // Sleeping between requests, every AntHost server sleeps and is woken in each round trip.
            var frugal = cpu.Single(c => c.GetProperty("tuning").GetString() == "frugal" && c.GetProperty("stack").GetString() == "AntHost" && c.GetProperty("sizes").GetString() == "256 B-1 KiB");
            foreach (var server in new[] { "inet", "nic", "app" })
                Assert.True(frugal.GetProperty("processes").EnumerateArray().Single(p => p.GetProperty("process").GetString() == server).GetProperty("sleeps").GetInt64() > 0, server);
            Assert.Contains(cpu.Where(c => c.GetProperty("stack").GetString() == "host kernel").SelectMany(c => c.GetProperty("processes").EnumerateArray()),
                p => p.GetProperty("process").GetString() == "peer");

            var send = root.GetProperty("send").EnumerateArray().ToList();
            foreach (var stack in stacks)
                Assert.Equal(sizes, send.Where(x => x.GetProperty("stack").GetString() == stack).Select(x => x.GetProperty("payloadBytes").GetInt32()).Order());
            Assert.True(root.GetProperty("stampCostNs").GetDouble() > 0);
            // AntHost's sends carry their timeline: the app's, inet's (the core's layers too) and,
            // on the direct-return path that small sends take when their segment leaves at once,
            // the driver's.
            var small = send.Where(x => x.GetProperty("stack").GetString() == "AntHost" && x.GetProperty("payloadBytes").GetInt32() <= 1024)
                .Select(x => x.GetProperty("stages").EnumerateArray().Select(y => y.GetProperty("to").GetString()).ToList()).ToList();
            foreach (var stages in small)
                foreach (var stage in new[] { "AppRequest", "InetReceived", "InetSocket", "InetTransport", "AppReturned" }) Assert.Contains(stage, stages);
            // The core's IP and Ethernet stamps come when the segment leaves within the call, and
            // the driver's on the direct-return path: required of some small size's common path,
            // not of every size's (on a loaded machine a size's sends may mostly wait for the
            // peer's ACK, and inet answers them itself).
            Assert.Contains(small, stages => new[] { "InetIp", "InetEthernet" }.All(stages.Contains));
            Assert.Contains(small, stages => new[] { "InetTransmit", "NicReceived", "NicTransmitted", "NicReturn" }.All(stages.Contains));

            var tp = root.GetProperty("throughput").EnumerateArray().ToList();
            // One connection each way, 8 connections from 4 app processes each way, and
            // HttpClient's GET, per stack; and the kernel with AntHost's congestion control, one
            // connection each way, for reference.
            Assert.Equal(5 * stacks.Length + 2, tp.Count);
            Assert.Equal(2, tp.Count(t => t.GetProperty("stack").GetString() == "host kernel (cubic)"));
            Assert.Equal(stacks.Length, tp.Count(t => t.GetProperty("direction").GetString()!.StartsWith("HttpClient GET", StringComparison.Ordinal)));
            Assert.Equal(2 * stacks.Length, tp.Count(t => t.GetProperty("direction").GetString()!.Contains("connections from 4 apps", StringComparison.Ordinal)));
            Assert.All(tp, t => Assert.True(t.GetProperty("bytes").GetInt64() > 0));
            Assert.True(root.GetProperty("injection").GetProperty("framesPerSecond").GetDouble() > 0);
            Assert.True(root.GetProperty("ipc").GetProperty("chains").GetArrayLength() > 0);
            Assert.Equal(10, root.GetProperty("targets").GetArrayLength());
            var idle = root.GetProperty("idle").EnumerateArray().Single();
            Assert.Equal(["broker", "dns", "inet", "nic", "supervisor"], idle.GetProperty("processes").EnumerateArray().Select(p => p.GetProperty("process").GetString()).Order());

            // The Markdown and the evaluation page carry the run's own figures.
            var k256 = rtt.First(x => x.GetProperty("tuning").GetString() == "latency" && x.GetProperty("stack").GetString() == "host kernel" && x.GetProperty("payloadBytes").GetInt32() == 256);
            string figure = k256.GetProperty("rtt").GetProperty("medianUs").GetDouble().ToString("F2", System.Globalization.CultureInfo.InvariantCulture);
            Assert.Contains(figure, File.ReadAllText(Path.Combine(dir, "report.md")), StringComparison.Ordinal);
            string page = File.ReadAllText(Path.Combine(docs, "evaluation.md"));
            Assert.Contains(figure, page, StringComparison.Ordinal);
            foreach (var png in new[] { "rtt.png", "send.png", "send-large.png", "throughput.png" })
            {
                Assert.Contains($"eval/{png}", page, StringComparison.Ordinal);
                foreach (var folder in new[] { dir, Path.Combine(docs, "eval") })
                {
                    var bytes = File.ReadAllBytes(Path.Combine(folder, png));
                    Assert.True(bytes.Length > 1000);
                    Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, bytes[..4]);
                }
            }

            // The report renders again from its JSON, the same.
            string again = Path.Combine(dir, "again");
            var rr = Cli.Run(output, "bench", "report", "--from", Path.Combine(dir, "report.json"), "--out", again);
            Assert.True(rr.ExitCode == 0, rr.ToString());
            Assert.Equal(File.ReadAllText(Path.Combine(dir, "report.md")), File.ReadAllText(Path.Combine(again, "report.md")));
            var bad = Cli.Run(output, "bench", "report", "--from", Path.Combine(dir, "report.md"));
            Assert.Equal(1, bad.ExitCode);
            Assert.Contains("cannot read the report", bad.StandardError, StringComparison.Ordinal);

            // Nothing left: both tunings' instances are down, their sandboxes gone.
            foreach (var suffix in new[] { "-lat", "-fru" })
            {
                Assert.False(File.Exists($"/run/anthost/{instance}{suffix}/state.json"));
                Assert.False(File.Exists($"/dev/shm/anthost-{instance}{suffix}.pool"));
                Assert.False(File.Exists($"/dev/shm/anthost-{instance}{suffix}.tables"));
            }
            Assert.Empty(AntHost.Sandbox.SandboxNetwork.Namespaces(prefix));
        }
        finally
        {
            foreach (var suffix in new[] { "-lat", "-fru" })
                if (File.Exists($"/run/anthost/{instance}{suffix}/state.json")) Cli.Run(output, "down", "--instance", instance + suffix);
            AntHost.Sandbox.SandboxNetwork.Sweep(prefix);
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
        }
    }

    [PcapFact]
    public void With_peer_the_running_instance_and_the_given_namespace_are_measured_against_that_host()
    {
        using var t = new TestInstance(output, "eval");
        string dir = Path.Combine(Path.GetTempPath(), $"anthost-bench-peer-{t.Name}");
        try
        {
            var up = t.Up();
            Assert.True(up.ExitCode == 0, up.ToString());
            // The baseline's kernel gets an address on the veth of the instance, as the sandbox's
            // HostKernelAddress gives it (answering ARP only for what it holds).
            string hostNs = t.Namespaces[0];
            Assert.True(AntHost.Sandbox.CommandRunner.RunIn(hostNs, "sysctl", ["-q", "-w", "net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf.anthost0.arp_ignore=1"]).Succeeded);
            Assert.True(AntHost.Sandbox.CommandRunner.Run("ip", ["-n", hostNs, "addr", "add", "198.18.0.3/24", "dev", "anthost0"]).Succeeded);

            var r = Cli.Run(output, "bench", "rtt", "--quick", "--iterations", "20", "--instance", t.Name, "--peer", "198.18.0.1", "--baseline-netns", hostNs, "--out", dir);
            Assert.True(r.ExitCode == 0, r.ToString());
            using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "report.json")));
            var root = json.RootElement;
            Assert.Empty(root.GetProperty("notes").EnumerateArray());
            Assert.Contains("198.18.0.1", root.GetProperty("peer").GetString(), StringComparison.Ordinal);
            Assert.Contains(hostNs, root.GetProperty("baseline").GetString(), StringComparison.Ordinal);
            var rtt = root.GetProperty("rtt").EnumerateArray().ToList();
            // One tuning, the running instance's (up's default spin: latency), both stacks, every size.
            Assert.All(rtt, p => Assert.Equal("latency", p.GetProperty("tuning").GetString()));
            Assert.Equal(14, rtt.Count);
            Assert.Equal(7, rtt.Count(p => p.GetProperty("stack").GetString() == "AntHost"));
            // The instance was the user's: still up after the benchmark.
            Assert.True(File.Exists(t.StatePath));
            Assert.All(t.RecordedProcesses(), p => Assert.True(t.IsRunning(p.Pid), $"{p.Name} stopped"));
        }
        finally
        {
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
        }
    }
}
