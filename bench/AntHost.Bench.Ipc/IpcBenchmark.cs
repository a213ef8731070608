// The IPC benchmark. For each transfer path and each tuning it starts a broker
// and two servers (the inet server's and the NIC driver's shapes) and sends
// one request at a time from this process through the chain
//   app --sync, data ICA--> inet --async, data ICA--> nic --direct return--> app
// Every stage stamps the control ICA's trace (one monotonic clock for all
// processes), so one request yields the three hops of the paper's table (one
// way each) and the whole chain. In the same run, the same payloads go over a
// Unix domain socket between two processes: one way (stamped the same way)
// and the round trip. Warm-up first: tiered JIT stalls of 25-40 ms land in the
// first seconds of each process.
using System.Buffers.Binary;
using System.Diagnostics;
using System.Net.Sockets;
using System.Reflection;
using AntHost.Kernel;
using AntHost.Kernel.Ipc;
using AntHost.Kernel.Pool;

namespace AntHost.Bench.Ipc;

/// <summary>What to measure.</summary>
public sealed record IpcBenchOptions
{
    public int[] Sizes { get; init; } = [64, 256, 1024, 4096, 16384, 65536];
    public TransferMode[] Paths { get; init; } = [TransferMode.Direct, TransferMode.Mediated];
    /// <summary>Spin budget of the "spinning" tuning (the other tuning sleeps at once).</summary>
    public int SpinUs { get; init; } = 20;
    public int Iterations { get; init; } = 4000;
    public int SleepIterations { get; init; } = 1500;
    public TimeSpan WarmUp { get; init; } = TimeSpan.FromSeconds(2);
    public Action<string>? Log { get; init; }

    public static IpcBenchOptions Quick => new() { Iterations = 500, SleepIterations = 300, WarmUp = TimeSpan.FromMilliseconds(700) };
}

/// <summary>Median and 99th percentile of a set of samples, in microseconds.</summary>
public readonly record struct Percentiles(double MedianUs, double P99Us, int Samples)
{
    public static Percentiles Of(List<long> ticks)
    {
        if (ticks.Count == 0) return default;
        ticks.Sort();
        double us(long t) => t * 1_000_000.0 / Stopwatch.Frequency;
        return new Percentiles(us(ticks[ticks.Count / 2]), us(ticks[Math.Min(ticks.Count - 1, (int)(ticks.Count * 0.99))]), ticks.Count);
    }

    public override string ToString() => $"{MedianUs:F2} / {P99Us:F2}";
}

public sealed record ChainResult(string Path, string Tuning, int PayloadBytes,
    Percentiles AppToInet, Percentiles InetToNic, Percentiles NicToApp, Percentiles Chain);

public sealed record UdsResult(int PayloadBytes, Percentiles OneWay, Percentiles RoundTrip);

public sealed record IpcBenchReport(string Machine, DateTime StartedUtc, double Seconds, IReadOnlyList<ChainResult> Chains, IReadOnlyList<UdsResult> UnixSocket);

/// <summary>Runs the IPC benchmark; usable as a library (the `anthost bench ipc` command) and by its own exe.</summary>
public static class IpcBenchmark
{
    public static IpcBenchReport Run(IpcBenchOptions o)
    {
        var started = DateTime.UtcNow;
        var sw = Stopwatch.StartNew();
        var chains = new List<ChainResult>();
        foreach (var path in o.Paths)
            foreach (bool spin in new[] { true, false })
                chains.AddRange(RunChain(o, path, spin));
        var uds = RunUnixSocket(o);
        return new IpcBenchReport(MachineDescription(), started, sw.Elapsed.TotalSeconds, chains, uds);
    }

    private static string MachineDescription() =>
        $"{Environment.ProcessorCount} CPUs, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}, .NET {Environment.Version}";

    // ---- child processes -------------------------------------------------------

    private static string DotnetHost()
    {
        var env = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        if (!string.IsNullOrEmpty(env) && File.Exists(env)) return env;
        var self = Environment.ProcessPath;
        if (self is not null && Path.GetFileNameWithoutExtension(self) == "dotnet") return self;
        return "dotnet";
    }

    private sealed class Child : IDisposable
    {
        private readonly Process _p;
        private readonly System.Collections.Concurrent.BlockingCollection<string> _lines = new();
        public string Name { get; }

        public Child(string name, string dll, IEnumerable<string> args)
        {
            Name = name;
            var psi = new ProcessStartInfo(DotnetHost()) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            psi.ArgumentList.Add(dll);
            foreach (var a in args) psi.ArgumentList.Add(a);
            psi.Environment["DOTNET_TC_CallCountingDelayMs"] = "0";
            _p = new Process { StartInfo = psi };
            bool echo = Environment.GetEnvironmentVariable("ANTHOST_BENCH_VERBOSE") == "1";
            _p.OutputDataReceived += (_, e) => { if (e.Data is not null) { _lines.Add(e.Data); if (echo) File.AppendAllText($"/tmp/anthost-bench-{name}.log", e.Data + "\n"); } };
            _p.ErrorDataReceived += (_, e) => { if (e.Data is not null) { _lines.Add("stderr: " + e.Data); Console.Error.WriteLine($"[{name}] {e.Data}"); } };
            _p.Start();
            _p.BeginOutputReadLine();
            _p.BeginErrorReadLine();
        }

        public void WaitFor(string text)
        {
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
            while (DateTime.UtcNow < deadline)
            {
                if (_lines.TryTake(out var l, TimeSpan.FromMilliseconds(100)) && l.Contains(text, StringComparison.Ordinal)) return;
                if (_p.HasExited) throw new InvalidOperationException($"{Name} exited before '{text}': {string.Join('\n', _lines)}");
            }
            throw new TimeoutException($"{Name} did not say '{text}'");
        }

        public void Stop(int signal)
        {
            if (_p.HasExited) return;
            _ = Kill(_p.Id, signal);
            if (!_p.WaitForExit(10_000)) { _ = Kill(_p.Id, 9); _p.WaitForExit(5_000); }
        }

        public void Dispose()
        {
            Stop(9);
            _p.Dispose();
        }

        [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill")]
        private static extern int Kill(int pid, int sig);
    }

    private static string SelfDll => typeof(IpcBenchmark).Assembly.Location;
    private static string BrokerDll => Path.Combine(Path.GetDirectoryName(SelfDll)!, "anthost-kernel.dll");

    // ---- the chain ---------------------------------------------------------------

    private static IEnumerable<ChainResult> RunChain(IpcBenchOptions o, TransferMode path, bool spin)
    {
        string instance = $"bench-{Environment.ProcessId}-{(path == TransferMode.Direct ? "d" : "m")}{(spin ? "s" : "z")}";
        string tuning = spin ? $"spin {o.SpinUs} us" : "sleep";
        int spinUs = spin ? o.SpinUs : 0;
        o.Log?.Invoke($"chain: {path.ToString().ToLowerInvariant()}, {tuning}");
        using var broker = new Child("broker", BrokerDll, ["--instance", instance, "--transfer", path == TransferMode.Direct ? "direct" : "mediated",
            "--pool-size", "64M", "--spin-us", path == TransferMode.Mediated && spin ? spinUs.ToString() : "0",
            ..(Environment.GetEnvironmentVariable("ANTHOST_BENCH_BROKER_ARGS") ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries)]);
        var results = new List<ChainResult>();
        try
        {
            broker.WaitFor("anthost-kernel ready");
            using var nic = new Child("nic", SelfDll, ["role-nic", "--instance", instance, "--spin-us", spinUs.ToString()]);
            nic.WaitFor("READY");
            using var inet = new Child("inet", SelfDll, ["role-inet", "--instance", instance, "--spin-us", spinUs.ToString()]);
            inet.WaitFor("READY");
            using (var k = KernelConnection.Connect(new KernelOptions { Instance = instance, ProcessName = "bench-app", SpinBudget = TimeSpan.FromMicroseconds(spinUs) }))
            {
                var ep = k.Open("inet");
                var warm = Stopwatch.StartNew();
                while (warm.Elapsed < o.WarmUp)
                    foreach (int size in o.Sizes) OneRequest(k, ep, size, null);
                int n = spin ? o.Iterations : o.SleepIterations;
                foreach (int size in o.Sizes)
                {
                    var samples = new Samples(n);
                    for (int i = 0; i < n; i++)
                    {
                        OneRequest(k, ep, size, samples);
                        if (!spin) Thread.Sleep(0);
                    }
                    var r = new ChainResult(path.ToString().ToLowerInvariant(), tuning, size,
                        Percentiles.Of(samples.Hop1), Percentiles.Of(samples.Hop2), Percentiles.Of(samples.Hop3), Percentiles.Of(samples.Chain));
                    o.Log?.Invoke($"  {size,6} B: app->inet {r.AppToInet}  inet->nic {r.InetToNic}  nic->app {r.NicToApp}  chain {r.Chain}  (median / p99 us)");
                    results.Add(r);
                }
            }
            inet.Stop(9);
            nic.Stop(9);
        }
        finally
        {
            broker.Stop(15);
        }
        return results;
    }

    private sealed class Samples(int n)
    {
        public readonly List<long> Hop1 = new(n), Hop2 = new(n), Hop3 = new(n), Chain = new(n);
    }

    private static void OneRequest(KernelConnection k, Endpoint inet, int size, Samples? samples)
    {
        var ctrl = k.AllocateControl();
        var data = k.AllocateBytes(size);
        var span = data.Span[..size];
        span[0] = (byte)size; span[^1] = (byte)size; // the payload is the app's to write; its cost is not a hop's
        Message reply;
        try { reply = k.Call(inet, ctrl, 1, [new DataIca(data, size)], TimeSpan.FromSeconds(30), Stage.AppSend); }
        catch (KernelException e)
        {
            throw new KernelException(e.Error, $"{e.Message} (refused {k.Counters.RefusedHandles}, garbage {k.Counters.Garbage}, orphans {k.Counters.OrphanReplies}; " +
                $"broker: bad {k.Pool.Counter(BrokerCounter.BadMessages)}, refused {k.Pool.Counter(BrokerCounter.Refused)}, cut off {k.Pool.Counter(BrokerCounter.CutOffs)})");
        }
        long end = Stopwatch.GetTimestamp();
        if (samples is not null && ControlIca.TryOpen(reply.Control.Span, out var c) && c.TraceCount >= 5)
        {
            Span<long> t = stackalloc long[6];
            for (int i = 0; i < 5; i++)
            {
                c.TryGetStamp(i, out long ts, out ushort stage, out _);
                if (stage is >= 1 and <= 5) t[stage] = ts;
            }
            samples.Hop1.Add(t[Stage.InetReceive] - t[Stage.AppSend]);
            samples.Hop2.Add(t[Stage.NicReceive] - t[Stage.InetSend]);
            samples.Hop3.Add(end - t[Stage.NicSend]);
            samples.Chain.Add(end - t[Stage.AppSend]);
        }
        k.Free(reply.Control);
    }

    // ---- the baseline ------------------------------------------------------------

    private static List<UdsResult> RunUnixSocket(IpcBenchOptions o)
    {
        o.Log?.Invoke("baseline: Unix domain socket between two processes");
        string path = Path.Combine(Path.GetTempPath(), $"anthost-bench-{Environment.ProcessId}.sock");
        File.Delete(path);
        var results = new List<UdsResult>();
        using var echo = new Child("uds-echo", SelfDll, ["role-uds", "--path", path]);
        try
        {
            echo.WaitFor("READY");
            using var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            s.Connect(new UnixDomainSocketEndPoint(path));
            var buf = new byte[12 + o.Sizes.Max()];
            var answer = new byte[8];
            var warm = Stopwatch.StartNew();
            while (warm.Elapsed < o.WarmUp)
                foreach (int size in o.Sizes) UdsOnce(s, buf, answer, size, out _, out _);
            foreach (int size in o.Sizes)
            {
                var oneWay = new List<long>(o.Iterations);
                var rtt = new List<long>(o.Iterations);
                for (int i = 0; i < o.Iterations; i++)
                {
                    UdsOnce(s, buf, answer, size, out long ow, out long rt);
                    oneWay.Add(ow);
                    rtt.Add(rt);
                }
                var r = new UdsResult(size, Percentiles.Of(oneWay), Percentiles.Of(rtt));
                o.Log?.Invoke($"  {size,6} B: one way {r.OneWay}  round trip {r.RoundTrip}  (median / p99 us)");
                results.Add(r);
            }
        }
        finally
        {
            echo.Stop(9);
            File.Delete(path);
        }
        return results;
    }

    private static void UdsOnce(Socket s, byte[] buf, byte[] answer, int size, out long oneWay, out long rtt)
    {
        BinaryPrimitives.WriteInt32LittleEndian(buf, size);
        buf[12] = (byte)size;
        long start = Stopwatch.GetTimestamp();
        BinaryPrimitives.WriteInt64LittleEndian(buf.AsSpan(4), start);
        s.Send(buf.AsSpan(0, 12 + size));
        if (!Roles.ReadExactly(s, answer)) throw new IOException("the Unix socket echo process went away");
        rtt = Stopwatch.GetTimestamp() - start;
        oneWay = BinaryPrimitives.ReadInt64LittleEndian(answer);
    }
}
