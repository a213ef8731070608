// `anthost bench rtt|send|throughput|all`: brings a stack up on a sandbox of its own (or
// uses a running instance on a real adapter, with --peer), measures AntHost and the host
// kernel against the same far end in the same run, and writes the report (Markdown, JSON,
// PNG charts; with --docs also docs/evaluation.md and docs/eval/).
//
// The baseline: the host namespace's own kernel gets 198.18.0.3 on the very veth that
// AntHost's NIC driver uses (SandboxOptions.HostKernelAddress); its sockets are made on a
// thread inside that namespace. AntHost's address (198.18.0.2) and MAC stay the driver's:
// the kernel answers ARP only for what it holds there, and frames for the driver's MAC are
// "other host" to it even while the driver holds the veth promiscuous (tested in the
// sandbox's tests). So both stacks share one wire, one peer kernel and one run.
//
// The RTT test runs in two tunings, each on a stack brought up for it:
//   latency: inet and the driver spin SpinUs before they sleep, and the app sends the next
//            request at once (the path stays hot); the app itself sleeps for its answers:
//            two spinners on this kind of two-CPU machine, never more spinners than CPUs (a
//            third took the CPU from the process holding the message: measured slower);
//   frugal:  nobody spins (spin 0), and the app waits a millisecond between requests, so
//            every process is asleep when the next one comes (the CPU is left idle).
// The CPU and sleep/wake cycles of each thread are read from /proc around each measurement.
using System.Diagnostics;
using System.Globalization;
using System.Net;
using AntHost.Bench.Ipc;
using AntHost.Bench.Net;
using AntHost.Sandbox;
using Spectre.Console;

namespace AntHost.Cli;

/// <summary>What a bench command was asked for.</summary>
internal sealed record BenchOptions
{
    public bool Rtt { get; init; }
    public bool Send { get; init; }
    public bool Throughput { get; init; }
    public bool Ipc { get; init; }
    public bool Idle { get; init; }
    public bool Quick { get; init; }
    public string Instance { get; init; } = "bench";
    public string Prefix { get; init; } = "anthost-bench";
    /// <summary>A remote host to aim at instead of the sandbox peer (AntHost's side then uses the running instance).</summary>
    public IPAddress? Peer { get; init; }
    /// <summary>With <see cref="Peer"/>: the network namespace the host kernel's baseline sockets are made in (null: this one).</summary>
    public string? BaselineNetns { get; init; }
    public string Out { get; init; } = "anthost-bench";
    /// <summary>The repository's docs folder: write evaluation.md and eval/*.png there.</summary>
    public string? Docs { get; init; }
    public int? Iterations { get; init; }
    public int LatencySpinUs { get; init; } = 50;
    public string? LogDirectory { get; init; }
    /// <summary>CPUs the stacks' servers and this process (the app of both stacks) are confined to; null: no placement.</summary>
    public string? Cpus { get; init; }
    /// <summary>AntHost's TCP send buffer per socket (null: the inet server's default).</summary>
    public int? TcpSendBuffer { get; init; }
    /// <summary>Throughput: the one-connection rows only.</summary>
    public bool OneConnection { get; init; }
}

internal static class BenchRun
{
    private static readonly CultureInfo Ci = CultureInfo.InvariantCulture;
    public const string HostKernelAddress = "198.18.0.3/24";
    public static readonly int[] Sizes = [256, 512, 768, 1024, 4096, 16384, 65536];

    /// <summary>The HttpClient row's GET: 64 MiB from the sandbox peer's HTTP server.</summary>
    private const long HttpGetBytes = 64L << 20;

    public static int Run(BenchOptions o)
    {
        Instance.RequireRoot("anthost bench");
        using var interruption = new Interruption();
        var sw = Stopwatch.StartNew();
        var tunings = new List<TuningInfo>
        {
            new("latency", $"inet and the NIC driver spin {o.LatencySpinUs} us (yielding) before they sleep, the app sleeps for its answers (two spinners, never more than the machine's CPUs); the next request follows at once; the broker, off the direct transfer path, sleeps (its journal commits are not on the request's way)", o.LatencySpinUs, 0),
            new("frugal", "nobody spins (spin 0): every process sleeps on its futex as soon as it has nothing to do, and the app waits 1 ms between requests so all are asleep when the next comes", 0, 1000),
        };
        if (o.Peer is not null)
        {
            // A running instance has the spin budget it was brought up with: one tuning, named by it.
            int spin = InstanceState.Load(o.Instance)?.SpinUs ?? 0;
            tunings = spin > 0
                ? [new("latency", $"the running instance's inet and NIC driver spin {spin} us (its `up --spin-us`), the app sleeps for its answers; the next request follows at once", spin, 0)]
                : [tunings[1]];
        }
        if (o.Cpus is not null) Instance.PinThisProcess(o.Cpus);
        var report = new NetBenchReport
        {
            Placement = o.Cpus is null ? "none: the scheduler places every process" : $"the broker, inet server, NIC driver and the app (both stacks' client side) confined to CPU {o.Cpus}; the peer unconfined",
            Quick = o.Quick,
            Peer = o.Peer is null ? "the sandbox peer: the Linux kernel in its own namespace at 198.18.0.1, over a veth (offloads off, MTU 1500)" : $"the remote host {o.Peer}",
            Baseline = o.Peer is null ? $"the host namespace's own kernel TCP at {HostKernelAddress.Split('/')[0]} on the same veth as AntHost's NIC driver"
                : o.BaselineNetns is null ? "this machine's kernel TCP, from its own namespace" : $"the kernel TCP of network namespace {o.BaselineNetns}",
        };
        int warm = o.Quick ? 30 : 300, iters = o.Iterations ?? (o.Quick ? 100 : 2000);
        double seconds = o.Quick ? 0.5 : 3;
        try
        {
            Commands.Progress("benchmarks", step =>
            {
                if (o.Ipc)
                {
                    step("IPC benchmark (the paper's three hops, beside a Unix socket)");
                    var io = (o.Quick ? IpcBenchOptions.Quick : new IpcBenchOptions()) with { Log = line => step(line.Trim()) };
                    report.Ipc = IpcBenchmark.Run(io);
                }
                if (o.Rtt || o.Send || o.Throughput || o.Idle)
                {
                    report.Tunings.AddRange(o.Rtt ? tunings : tunings.Take(1));
                    report.StampCostNs = o.Send ? Measure.StampCostNanoseconds() : null;
                    foreach (var tuning in o.Rtt ? tunings : tunings.Take(1))
                    {
                        interruption.Token.ThrowIfCancellationRequested();
                        bool first = tuning == tunings[0];
                        WithStack(o, tuning, report, step, interruption.Token, (kernel, anthost, peer, processes) =>
                        {
                            var ends = new[] { kernel, anthost }.Where(s => s is not null).Cast<IBenchStack>().ToList();
                            var broken = new HashSet<IBenchStack>();
                            // A stack that fails (an error from its sockets) is noted and left out of
                            // the rest of this run; the other stack's figures still stand.
                            void Guard(IBenchStack stack, string what, Action measure)
                            {
                                if (broken.Contains(stack)) return;
                                try { measure(); }
                                catch (Exception e) when (e is System.Net.Sockets.SocketException or IOException or TimeoutException or AntHost.Kernel.KernelException or InvalidOperationException
                                    or HttpRequestException or TaskCanceledException)
                                {
                                    broken.Add(stack);
                                    string note = $"{stack.Name} side not measured from {what} on ({tuning.Name} tuning): {e.GetType().Name}: {e.Message}";
                                    report.Notes.Add(note);
                                    step(note);
                                }
                            }
                            if (o.Rtt)
                                foreach (var stack in ends)
                                {
                                    var watched = stack == kernel ? processes.Where(p => p.Name is "app" or "peer").ToList() : processes;
                                    // CPU and wake-ups are measured apart for the paper's sizes (one segment each
                                    // way) and for the larger ones (several segments, the client's pipelined sends).
                                    foreach (var group in new[] { Sizes.Where(s => s <= 1024).ToArray(), Sizes.Where(s => s > 1024).ToArray() })
                                    {
                                        var meter = CpuMeter.Start(watched);
                                        var t0 = Stopwatch.GetTimestamp();
                                        int rounds = 0;
                                        foreach (int size in group)
                                        {
                                            interruption.Token.ThrowIfCancellationRequested();
                                            int n = size >= 16384 ? Math.Max(20, iters / 4) : iters;
                                            Guard(stack, $"RTT {NetBenchReportWriter.Size(size)}", () =>
                                            {
                                                step($"RTT {tuning.Name}, {stack.Name}, {NetBenchReportWriter.Size(size)} x {n}");
                                                var p = Measure.Rtt(stack, new IPEndPoint(peer, new PeerPorts().Rtt), size, warm, n, TimeSpan.FromMicroseconds(tuning.GapUs));
                                                rounds += warm + n;
                                                report.Rtt.Add(new RttPoint(tuning.Name, stack.Name, size, p));
                                                step($"  median {p.MedianUs:F1} us, p99 {p.P99Us:F1} us");
                                            });
                                        }
                                        if (rounds > 0)
                                            report.Cpu.Add(new CpuResult(tuning.Name, stack.Name, rounds, Stopwatch.GetElapsedTime(t0).TotalSeconds, meter.Stop())
                                            {
                                                BenchSleeps = tuning.GapUs > 0 ? rounds : 0,
                                                AppCollections = meter.AppCollections,
                                                AppGcPauseMs = meter.AppGcPause.TotalMilliseconds,
                                                Sizes = $"{NetBenchReportWriter.Size(group[0])}-{NetBenchReportWriter.Size(group[^1])}",
                                            });
                                    }
                                }
                            if (o.Send && first)
                                foreach (var stack in ends)
                                    foreach (int size in Sizes)
                                    {
                                        interruption.Token.ThrowIfCancellationRequested();
                                        int n = size >= 16384 ? Math.Max(20, iters / 4) : iters;
                                        Guard(stack, $"send {NetBenchReportWriter.Size(size)}", () =>
                                        {
                                            step($"send {stack.Name}, {NetBenchReportWriter.Size(size)} x {n}");
                                            var p = Measure.Send(stack, new IPEndPoint(peer, new PeerPorts().Discard), size, warm, n);
                                            report.Send.Add(p);
                                            step($"  median {p.Total.MedianUs:F1} us, p99 {p.Total.P99Us:F1} us{(p.Stages.Count > 0 ? $", {p.Stages.Count} stages" : "")}");
                                        });
                                    }
                            if (o.Throughput && first)
                            {
                                // CPU and wake-ups of our side only (the app and, for AntHost, the servers):
                                // the peer's kernel is the same far end for both.
                                ThroughputResult Costed(IBenchStack stack, Func<ThroughputResult> transfer)
                                {
                                    var watched = processes.Where(p => p.Name != "peer" && (stack == anthost || p.Name == "app")).ToList();
                                    long[]? before = stack == anthost ? TryInetStats(o, tuning) : null;
                                    var meter = CpuMeter.Start(watched);
                                    var t = transfer();
                                    var use = meter.Stop();
                                    long[]? after = before is null ? null : TryInetStats(o, tuning);
                                    double mb = t.Bytes / 1e6;
                                    return t.WithCpu(use, meter.MachineSeconds) with
                                    {
                                        MessagesPerMb = before is not null && after is not null && mb > 0 ? IpcMessages(after, before) / mb : null,
                                        MessageKinds = before is not null && after is not null && mb > 0 ? MessageKinds(after, before, mb) : null,
                                    };
                                }
                                foreach (var stack in ends)
                                {
                                    interruption.Token.ThrowIfCancellationRequested();
                                    Guard(stack, "throughput to the peer", () =>
                                    {
                                        step($"throughput {stack.Name} to the peer, {seconds} s");
                                        var tout = Costed(stack, () => Measure.Outbound(stack, new IPEndPoint(peer, new PeerPorts().Discard), seconds));
                                        report.Throughput.Add(tout);
                                        step($"  {tout.Gbps:F2} Gbit/s, {tout.CpuMsPerMb:F1} ms CPU per MB{(tout.MessagesPerMb is { } mo ? $", {mo:F0} IPC messages per MB ({tout.MessageKinds})" : "")}");
                                    });
                                    Guard(stack, "throughput from the peer", () =>
                                    {
                                        step($"throughput {stack.Name} from the peer, {seconds} s");
                                        var tin = Costed(stack, () => Measure.Inbound(stack, new IPEndPoint(peer, new PeerPorts().Source), seconds));
                                        report.Throughput.Add(tin);
                                        step($"  {tin.Gbps:F2} Gbit/s, {tin.CpuMsPerMb:F1} ms CPU per MB{(tin.MessagesPerMb is { } mi ? $", {mi:F0} IPC messages per MB ({tin.MessageKinds})" : "")}");
                                    });
                                }
                                // The kernel once more with AntHost's congestion control, for reference (the
                                // verdicts keep the kernel's own default): BBR, this machine's default, paces
                                // its sends, CUBIC fills its window, and that shows even without loss.
                                if (ends.OfType<KernelStack>().FirstOrDefault() is { CongestionControl: null } own)
                                {
                                    var cubic = own.WithCongestionControl("cubic");
                                    foreach (bool outbound in new[] { true, false })
                                        Guard(cubic, outbound ? "throughput to the peer" : "throughput from the peer", () =>
                                        {
                                            step($"throughput {cubic.Name} {(outbound ? "to" : "from")} the peer, {seconds} s");
                                            var t = Costed(cubic, () => outbound
                                                ? Measure.Outbound(cubic, new IPEndPoint(peer, new PeerPorts().Discard), seconds)
                                                : Measure.Inbound(cubic, new IPEndPoint(peer, new PeerPorts().Source), seconds));
                                            report.Throughput.Add(t);
                                            step($"  {t.Gbps:F2} Gbit/s, {t.CpuMsPerMb:F1} ms CPU per MB");
                                        });
                                }
                                // What an app sees: HttpClient's GET of 64 MiB from the peer's HTTP server.
                                if (o.Peer is not null) report.Notes.Add("HttpClient GET not measured: a remote peer (anthost-rpeer) serves no HTTP");
                                else if (!o.OneConnection) foreach (var stack in ends)
                                {
                                    interruption.Token.ThrowIfCancellationRequested();
                                    Guard(stack, "HttpClient GET", () =>
                                    {
                                        step($"{Measure.HttpDirection(HttpGetBytes)} {stack.Name}");
                                        var t = Costed(stack, () => Measure.HttpGet(stack, new IPEndPoint(peer, new PeerPorts().Http), HttpGetBytes));
                                        report.Throughput.Add(t);
                                        step($"  {t.Gbps:F2} Gbit/s, {t.CpuMsPerMb:F1} ms CPU per MB{(t.MessagesPerMb is { } m ? $", {m:F0} IPC messages per MB" : "")}");
                                    });
                                }
                                // Several apps at once: four processes, two connections each, each way.
                                foreach (var stack in o.OneConnection ? [] : ends)
                                    foreach (bool outbound in new[] { true, false })
                                    {
                                        interruption.Token.ThrowIfCancellationRequested();
                                        string what = AggregateBench.Direction(outbound);
                                        Guard(stack, what, () =>
                                        {
                                            step($"throughput {stack.Name}, {what}, {seconds} s");
                                            string[] workerArgs = stack switch
                                            {
                                                KernelStack k => k.WorkerArguments,
                                                AntHostStack a => a.WorkerArguments,
                                                _ => throw new InvalidOperationException($"no app processes for {stack.Name}"),
                                            };
                                            var servers = processes.Where(p => p.Name is not ("app" or "peer") && stack == anthost).ToList();
                                            Func<long>? messages = stack == anthost
                                                ? () => TryInetStats(o, tuning) is { } st ? (long)IpcMessages(st, new long[st.Length]) : 0
                                                : null;
                                            var remote = new IPEndPoint(peer, outbound ? new PeerPorts().Discard : new PeerPorts().Source);
                                            var t = AggregateBench.Run(stack, workerArgs, remote, outbound, seconds, servers, messages);
                                            report.Throughput.Add(t);
                                            step($"  {t.Gbps:F2} Gbit/s, {t.CpuMsPerMb:F1} ms CPU per MB{(t.MessagesPerMb is { } m ? $", {m:F0} IPC messages per MB" : "")}");
                                        });
                                    }
                                if (o.Peer is null && !o.OneConnection) report.Injection = Inject(o, step, o.Quick ? 1 : 2);
                                else if (o.Peer is not null) report.Notes.Add("libpcap injection rate not measured: on a real adapter it would flood the network with raw frames");
                            }
                            if (o.Idle && first)
                            {
                                // Last, so nothing the other figures did is still settling; the app's own
                                // connection stays open and quiet, as an idle app's would.
                                double idleSeconds = o.Quick ? 5 : 20;
                                step($"idle: settling 2 s, then {idleSeconds} s with nothing to do");
                                Thread.Sleep(2000);
                                var servers = processes.Where(p => p.Name is not ("app" or "peer")).ToList();
                                var meter = CpuMeter.Start(servers);
                                Thread.Sleep(TimeSpan.FromSeconds(idleSeconds));
                                var idle = new IdleResult(tuning.Name, idleSeconds, meter.Stop());
                                report.Idle.Add(idle);
                                foreach (var p in idle.Processes) step(string.Create(Ci, $"  {p.Process}: {p.Sleeps / idleSeconds:F1} wake-ups/s, {p.CorePercent:F3}% CPU"));
                            }
                        });
                    }
                }
                return 0;
            });
        }
        catch (OperationCanceledException)
        {
            AnsiConsole.MarkupLine("[red]interrupted[/]: what was brought up was taken down; the report holds what was measured so far");
            report.Notes.Add("interrupted: the run was cut short");
        }
        report.Seconds = sw.Elapsed.TotalSeconds;
        report.LoadAtEnd = NetBenchReport.LoadAverage();
        var files = NetBenchReportWriter.WriteAll(report, o.Out);
        Console.WriteLine(NetBenchReportWriter.ToMarkdown(report));
        if (o.Docs is not null) files.AddRange(EvaluationPage.Write(report, o.Docs));
        AnsiConsole.MarkupLineInterpolated($"written: {string.Join(", ", files)}");
        return report.Notes.Any(n => n.StartsWith("interrupted", StringComparison.Ordinal)) ? 1 : 0;
    }

    /// <summary>Brings a stack up for one tuning (or takes the running instance with --peer), runs <paramref name="work"/>, takes it down.</summary>
    private static void WithStack(BenchOptions o, TuningInfo tuning, NetBenchReport report, Action<string> step, CancellationToken ct,
        Action<IBenchStack, IBenchStack?, IPAddress, List<WatchedProcess>> work)
    {
        var app = new WatchedProcess("app", Environment.ProcessId);
        if (o.Peer is not null)
        {
            var running = InstanceState.Load(o.Instance);
            var procs = new List<WatchedProcess> { app };
            if (running is not null) procs.AddRange(running.Processes.Where(ServerProcess.IsAlive).Select(p => new WatchedProcess(p.Name, p.Pid)));
            var anthost = running is null ? null : AntHostStack.TryCreate(o.Instance, 0, report.Notes);
            if (running is null) NoteOnce(report, $"AntHost side not measured: instance '{o.Instance}' is not up (run `anthost up --instance {o.Instance} --adapter IF --address A.B.C.D/N` first)");
            try { work(new KernelStack(o.BaselineNetns, null, NamespaceThread.Run), anthost, o.Peer, procs); }
            finally { (anthost as IDisposable)?.Dispose(); }
            return;
        }
        string instance = o.Instance + "-" + tuning.Name[..3];
        var up = new UpOptions
        {
            Instance = instance,
            Prefix = o.Prefix,
            SpinUs = tuning.SpinUs,
            HostKernelAddress = HostKernelAddress,
            LogDirectory = o.LogDirectory,
            Cpus = o.Cpus,
            TcpSendBuffer = o.TcpSendBuffer,
        };
        step($"bringing up '{instance}' ({tuning.Name}: spin {tuning.SpinUs} us) on sandbox '{o.Prefix}'");
        var state = Instance.Up(up, step, ct);
        IBenchStack? ah = null;
        try
        {
            var processes = new List<WatchedProcess> { app };
            processes.AddRange(state.Processes.Select(p => new WatchedProcess(p.Name, p.Pid)));
            var kernel = new KernelStack(state.Namespaces[0], IPAddress.Parse(HostKernelAddress.Split('/')[0]), NamespaceThread.Run);
            // The app never spins: inet and the driver are the two spinners the two CPUs allow.
            ah = AntHostStack.TryCreate(instance, 0, report.Notes);
            work(kernel, ah, IPAddress.Parse(state.PeerAddress!.Split('/')[0]), processes);
        }
        finally
        {
            (ah as IDisposable)?.Dispose();
            step($"taking '{instance}' down");
            Instance.Down(state, step);
        }
    }

    /// <summary>inet's counters of the stack brought up for <paramref name="tuning"/> (or the running instance), null when they cannot be read.</summary>
    private static long[]? TryInetStats(BenchOptions o, TuningInfo tuning)
    {
        try { return InetProbe.Stats(o.Peer is null ? o.Instance + "-" + tuning.Name[..3] : o.Instance, TimeSpan.FromSeconds(5)); }
        catch (CliException) { return null; }
    }

    /// <summary>
    /// Messages through inet between two readings of its counters, as counted where they
    /// travel: each app call, each answer to an app (inet's, and the driver's direct returns),
    /// each ethinput, each transmit request and each message that brought completions back.
    /// </summary>
    private static double IpcMessages(long[] after, long[] before)
    {
        long D(AntHost.Inet.Abi.InetStat s) => after[(int)s] - before[(int)s];
        return D(AntHost.Inet.Abi.InetStat.SocketCalls) + D(AntHost.Inet.Abi.InetStat.RepliesToApps) + D(AntHost.Inet.Abi.InetStat.DirectReturns)
            + D(AntHost.Inet.Abi.InetStat.EthInputMessages) + D(AntHost.Inet.Abi.InetStat.TransmitRequests) + D(AntHost.Inet.Abi.InetStat.CompletionMessages);
    }

    /// <summary>Per MB: socket calls, ethinputs and transmit requests with the frames each carried.</summary>
    private static string MessageKinds(long[] after, long[] before, double mb)
    {
        double D(AntHost.Inet.Abi.InetStat s) => (after[(int)s] - before[(int)s]) / mb;
        return string.Create(Ci, $"per MB: {D(AntHost.Inet.Abi.InetStat.SocketCalls):F1} socket calls, "
            + $"{D(AntHost.Inet.Abi.InetStat.EthInputMessages):F1} ethinputs in {D(AntHost.Inet.Abi.InetStat.ReceiveBatches):F1} receive batches of {D(AntHost.Inet.Abi.InetStat.FramesFromDriver):F1} frames ({D(AntHost.Inet.Abi.InetStat.FramesFromLists):F1} in frame lists), "
            + $"{D(AntHost.Inet.Abi.InetStat.TransmitRequests):F1} transmits of {D(AntHost.Inet.Abi.InetStat.FramesToDriver):F1} frames ({D(AntHost.Inet.Abi.InetStat.OffloadFrames):F1} offload), "
            + $"{D(AntHost.Inet.Abi.InetStat.CompletionMessages):F1} completion messages, {D(AntHost.Inet.Abi.InetStat.RepliesToApps) + D(AntHost.Inet.Abi.InetStat.DirectReturns):F1} answers to the app");
    }

    internal static void NoteOnce(NetBenchReport report, string note) => NoteOnceList(report.Notes, note);

    internal static void NoteOnceList(List<string> notes, string note)
    {
        if (!notes.Contains(note)) notes.Add(note);
    }

    /// <summary>The raw rate libpcap injection reaches on the sandbox veth: the NIC driver's probe, one thread, full-size frames.</summary>
    private static InjectionResult? Inject(BenchOptions o, Action<string> step, int seconds)
    {
        step($"libpcap injection rate on the veth, {seconds} s");
        string ns = o.Prefix + "-host";
        // Runs beside the idle stack: the probe opens its own handle on the driver's veth and
        // sends frames to a MAC nobody holds, which the peer drops at once.
        var r = CommandRunner.RunIn(ns, SandboxNetwork.DotnetHost(), [Binaries.Find(Binaries.Nic), "--adapter", SandboxOptions.HostInterface, "--probe", "--inject-seconds", seconds.ToString(Ci)]);
        var m = System.Text.RegularExpressions.Regex.Match(r.StandardOutput, @"inject (\d+) B: ([\d,]+) frames/s.* over ([\d.]+) s");
        if (!m.Success)
        {
            step($"  the probe said: {r.StandardOutput.Trim()} {r.StandardError.Trim()}");
            return null;
        }
        var inj = new InjectionResult(int.Parse(m.Groups[1].Value, Ci), double.Parse(m.Groups[2].Value.Replace(",", "", StringComparison.Ordinal), Ci), double.Parse(m.Groups[3].Value, Ci));
        step($"  {inj.FramesPerSecond:N0} frames/s = {inj.Gbps:F2} Gbit/s");
        return inj;
    }
}
