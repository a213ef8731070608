// Bulk TCP from several app processes at once: `anthost bench throughput` starts four app
// processes (this command's hidden `bench worker`), each with two connections to the peer,
// lets them connect, then starts them together and times the whole from the start to the
// last connection's end (for the outbound direction: until the peer has read everything).
// The same four processes with the host kernel's sockets are the baseline. The CPU of the
// app processes and, for AntHost, of the servers is measured over the same interval.
using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using AntHost.Bench.Net;

namespace AntHost.Cli;

internal static class AggregateBench
{
    public const int Apps = 4;
    public const int ConnectionsPerApp = 2;

    public static string Direction(bool outbound) =>
        $"{(outbound ? "out" : "in")}, {Apps * ConnectionsPerApp} connections from {Apps} apps";

    /// <summary>The worker: one app process of the aggregate measurement (not for users: `bench throughput` runs it).</summary>
    public static Command WorkerCommand()
    {
        var stackName = new Option<string>("--stack") { Required = true };
        var instance = new Option<string?>("--instance");
        var netns = new Option<string?>("--netns");
        var bind = new Option<string?>("--bind");
        var peer = new Option<string>("--peer") { Required = true };
        var port = new Option<int>("--port") { Required = true };
        var outbound = new Option<bool>("--out");
        var connections = new Option<int>("--connections") { DefaultValueFactory = _ => ConnectionsPerApp };
        var seconds = new Option<double>("--seconds") { DefaultValueFactory = _ => 2 };
        var cmd = new Command("worker", "one app process of the aggregate throughput measurement (run by `bench throughput`)") { Hidden = true };
        foreach (Option o in new Option[] { stackName, instance, netns, bind, peer, port, outbound, connections, seconds }) cmd.Options.Add(o);
        cmd.SetAction(r =>
        {
            IBenchStack stack = r.GetValue(stackName) == "anthost"
                ? AntHostStack.TryCreate(r.GetValue(instance) ?? throw new CliException("--instance is needed with --stack anthost"), 0, [])
                    ?? throw new CliException($"cannot join instance '{r.GetValue(instance)}'")
                : new KernelStack(r.GetValue(netns), r.GetValue(bind) is { } b ? IPAddress.Parse(b) : null, AntHost.Sandbox.NamespaceThread.Run);
            var remote = new IPEndPoint(IPAddress.Parse(r.GetValue(peer)!), r.GetValue(port));
            bool isOut = r.GetValue(outbound);
            double s = r.GetValue(seconds);
            var conns = Enumerable.Range(0, r.GetValue(connections)).Select(_ => stack.Connect(remote)).ToList();
            // The transfer threads exist before "ready" and live until standard input closes: the
            // benchmark reads each thread's CPU from /proc when it starts and stops its meter, and
            // a thread born after the start or dead before the stop would not be counted.
            var results = new ThroughputResult[conns.Count];
            using var go = new ManualResetEventSlim();
            using var release = new ManualResetEventSlim();
            using var finished = new CountdownEvent(conns.Count);
            var threads = conns.Select((c, i) => new Thread(() =>
            {
                go.Wait();
                try { results[i] = isOut ? Measure.Outbound(c, s) : Measure.Inbound(c, s); }
                finally { finished.Signal(); }
                release.Wait();
            })
            { IsBackground = true }).ToList();
            threads.ForEach(t => t.Start());
            Console.WriteLine("ready");
            if (Console.ReadLine() != "go") return 2;
            go.Set();
            finished.Wait();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"bytes {results.Sum(x => x?.Bytes ?? 0)}"));
            // Stays until the benchmark closes standard input, so that it can read this process's CPU.
            while (Console.ReadLine() is not null) { }
            release.Set();
            threads.ForEach(t => t.Join());
            conns.ForEach(c => c.Dispose());
            (stack as IDisposable)?.Dispose();
            return 0;
        });
        return cmd;
    }

    /// <summary>
    /// Runs the four apps against <paramref name="stack"/> in one direction; returns the
    /// aggregate, with the CPU and wake-ups of <paramref name="servers"/> and the apps.
    /// </summary>
    public static ThroughputResult Run(IBenchStack stack, string[] stackArguments, IPEndPoint remote, bool outbound, double seconds,
        IReadOnlyList<WatchedProcess> servers, Func<long>? messages)
    {
        string self = Path.Combine(AppContext.BaseDirectory, "anthost.dll");
        var apps = new List<Process>();
        try
        {
            for (int i = 0; i < Apps; i++)
            {
                var psi = new ProcessStartInfo("dotnet") { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
                foreach (var a in (string[])[self, "bench", "worker", .. stackArguments, "--peer", remote.Address.ToString(),
                    "--port", remote.Port.ToString(CultureInfo.InvariantCulture), "--connections", ConnectionsPerApp.ToString(CultureInfo.InvariantCulture),
                    "--seconds", seconds.ToString(CultureInfo.InvariantCulture), .. outbound ? ["--out"] : Array.Empty<string>()])
                    psi.ArgumentList.Add(a);
                apps.Add(Process.Start(psi) ?? throw new IOException("could not start a benchmark app process"));
            }
            foreach (var p in apps)
            {
                var line = ReadLine(p, TimeSpan.FromSeconds(30));
                if (line != "ready") throw new IOException($"a benchmark app did not connect: {line ?? "no answer"}; {p.StandardError.ReadToEnd().Trim()}");
            }
            var watched = servers.Concat(apps.Select((p, i) => new WatchedProcess($"app{i}", p.Id))).ToList();
            long before = messages?.Invoke() ?? 0;
            var meter = CpuMeter.Start(watched);
            var sw = Stopwatch.StartNew();
            foreach (var p in apps) p.StandardInput.WriteLine("go");
            long bytes = 0;
            foreach (var p in apps)
            {
                var line = ReadLine(p, TimeSpan.FromSeconds(seconds + 60));
                if (line is null || !line.StartsWith("bytes ", StringComparison.Ordinal))
                    throw new IOException($"a benchmark app failed: {line ?? "no answer"}; {p.StandardError.ReadToEnd().Trim()}");
                bytes += long.Parse(line.AsSpan(6), CultureInfo.InvariantCulture);
            }
            double elapsed = sw.Elapsed.TotalSeconds;
            // The apps' CPU is read while they still exist: each waits for its standard input to close.
            var use = meter.Stop();
            long after = messages?.Invoke() ?? 0;
            double mb = bytes / 1e6;
            return new ThroughputResult(stack.Name, Direction(outbound), bytes, elapsed).WithCpu(use, meter.MachineSeconds) with
            {
                MessagesPerMb = messages is not null && mb > 0 ? (after - before) / mb : null,
            };
        }
        finally
        {
            foreach (var p in apps)
            {
                try
                {
                    p.StandardInput.Close();
                    if (!p.WaitForExit(5000)) p.Kill(entireProcessTree: true);
                }
                catch (InvalidOperationException)
                {
                }
                p.Dispose();
            }
        }
    }

    private static string? ReadLine(Process p, TimeSpan patience)
    {
        var t = p.StandardOutput.ReadLineAsync();
        return t.Wait(patience) ? t.Result : null;
    }
}
