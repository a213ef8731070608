// `anthost bench loss`: bulk TCP each way through random loss, AntHost and the host kernel
// in the same run, against the same peer. The loss is applied on the peer's end of the veth
// by nftables netdev ingress and egress hooks (numgen), so neither stack under test sees a
// drop as a local error: AntHost's driver captures the frames before anything could drop
// them on its own side, and the host kernel's TCP would treat a drop in its own output hook
// as local congestion. Only IPv4 is dropped (ARP still resolves). For each rate and stack:
// goodput to the peer and from it, and the sender's retransmissions by cause where its
// counters say (the host kernel's from its namespace's /proc/net, the peer kernel's when it
// is the sender, AntHost's from the inet server's Stats).
using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text.Json;
using AntHost.Bench.Net;
using AntHost.Inet.Abi;
using AntHost.Sandbox;
using Spectre.Console;

namespace AntHost.Cli;

internal static class LossBenchRun
{
    private static readonly CultureInfo Ci = CultureInfo.InvariantCulture;
    private const string Table = "anthost_bench_loss";

    /// <summary>The `bench loss` command.</summary>
    public static Command Create()
    {
        var rates = new Option<string>("--loss") { Description = "loss rates in percent, comma-separated", DefaultValueFactory = _ => "1,2,5" };
        var seconds = new Option<double>("--seconds") { Description = "how long each transfer sends", DefaultValueFactory = _ => 5 };
        seconds.Validators.Add(r => { if (r.GetValueOrDefault<double>() is < 0.1 or > 600) r.AddError("--seconds takes 0.1..600"); });
        var instance = new Option<string>("--instance") { Description = "instance name for the stack the benchmark brings up", DefaultValueFactory = _ => "bench-loss" };
        var prefix = new Option<string>("--prefix") { Description = "sandbox namespaces PREFIX-host and PREFIX-peer", DefaultValueFactory = _ => "anthost-loss" };
        var output = new Option<string>("--out") { Description = "folder for loss.md and loss.json", DefaultValueFactory = _ => "anthost-bench-loss" };
        var logDir = new Option<string?>("--log-dir") { Description = "where the servers' logs go (default /var/log/anthost/INSTANCE)" };
        var spin = new Option<int>("--spin-us") { Description = "how long inet and the NIC driver spin before they sleep (0, the default: every hop sleeps as soon as it has nothing to do; the throughput benchmark spins 50 in its latency tuning)", DefaultValueFactory = _ => 0 };
        spin.Validators.Add(r => { if (r.GetValueOrDefault<int>() is < 0 or > 10_000) r.AddError("--spin-us takes 0..10000"); });
        var rcvbuf = new Option<int?>("--tcp-rcvbuf") { Description = "AntHost's TCP receive buffer in bytes (as `up --tcp-rcvbuf`; default the inet server's own)" };
        rcvbuf.Validators.Add(r => { if (r.GetValueOrDefault<int?>() is < 1024 or > (1 << 30)) r.AddError("--tcp-rcvbuf takes 1024..2^30"); });
        var kernelCc = new Option<string>("--kernel-cc") { Description = "congestion control of the host kernel's sockets, comma-separated, a row each: 'same' is AntHost's (--tcp-cc; newreno is Linux's reno), 'default' its namespace's own, or a name from net.ipv4.tcp_available_congestion_control; the first is the baseline every ratio is taken against", DefaultValueFactory = _ => "same,default" };
        var tcpCc = new Option<string>("--tcp-cc") { Description = "AntHost's congestion control (cubic or newreno; as `up --tcp-cc`)", DefaultValueFactory = _ => "cubic" };
        tcpCc.AcceptOnlyFromAmong("cubic", "newreno");
        var docs = new Option<string?>("--docs") { Description = "also write the report as DOCS/eval/loss.md (with how the run was made), the page docs/evaluation.md links" };
        var direction = new Option<string>("--direction") { Description = "which transfers: out (to the peer), in (from it) or both", DefaultValueFactory = _ => "both" };
        direction.AcceptOnlyFromAmong("out", "in", "both");
        var c = new Command("loss", "bulk TCP each way through random loss (nftables on the peer's veth), AntHost and the host kernel: goodput and retransmissions by cause");
        foreach (Option o in new Option[] { rates, seconds, instance, prefix, output, logDir, spin, rcvbuf, kernelCc, tcpCc, direction, docs }) c.Options.Add(o);
        c.SetAction(r =>
        {
            var list = new List<double>();
            foreach (var part in r.GetValue(rates)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                if (!double.TryParse(part, NumberStyles.Float, Ci, out double v) || v is < 0 or > 50)
                {
                    Console.Error.WriteLine($"--loss '{part}' is not a rate in 0..50 percent");
                    return 2;
                }
                list.Add(v);
            }
            string p = r.GetValue(prefix)!;
            try { new SandboxOptions { Prefix = p }.Validate(); }
            catch (ArgumentException e)
            {
                Console.Error.WriteLine(e.Message);
                return 2;
            }
            var ccs = r.GetValue(kernelCc)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            if (ccs.Length == 0 || ccs.Any(a => a.Length > 15 || !a.All(ch => char.IsAsciiLetterOrDigit(ch) || ch == '_')))
            {
                Console.Error.WriteLine($"--kernel-cc '{r.GetValue(kernelCc)}' is not a list of algorithm names (as net.ipv4.tcp_available_congestion_control lists them) or 'default'");
                return 2;
            }
            string dir = r.GetValue(direction)!;
            return Run(new LossBenchSettings(list, r.GetValue(seconds), r.GetValue(instance)!, p, r.GetValue(output)!, r.GetValue(logDir), r.GetValue(spin), r.GetValue(rcvbuf),
                ccs.Distinct().ToArray(), r.GetValue(tcpCc)!, Out: dir != "in", In: dir != "out", r.GetValue(docs)));
        });
        return c;
    }

    /// <summary>What one `bench loss` run measures.</summary>
    public sealed record LossBenchSettings(IReadOnlyList<double> Rates, double Seconds, string Instance, string Prefix, string OutDir, string? LogDir, int SpinUs, int? ReceiveBuffer,
        string[] KernelCc, string TcpCc, bool Out, bool In, string? Docs);

    public static int Run(LossBenchSettings o)
    {
        var (rates, seconds, instance, outDir) = (o.Rates, o.Seconds, o.Instance, o.OutDir);
        var started = DateTime.UtcNow;
        string loadAtStart = NetBenchReport.LoadAverage();
        Instance.RequireRoot("anthost bench loss");
        using var interruption = new Interruption();
        var results = new List<LossResult>();
        var notes = new List<string>
        {
            "AntHost's retransmissions come from the inet server's Stats: after a timeout, DupThresh without SACK, SACK (RFC 6675), RACK and the tail loss probe's retransmissions; TLP probes counts every probe, of new data or not, as Linux's TCPLossProbes does.",
            "The host kernel's causes: TCPFastRetrans covers RACK and DupThresh alike (Linux does not split them); TLP probes include probes of new data.",
            "The dropped column counts what the loss rules dropped during the transfer. The egress hook sees a Linux sender's GSO packets whole, so data from the peer kernel is dropped less often than the nominal rate (per GSO packet, not per segment); data into the peer is dropped per frame.",
        };
        var up = new UpOptions { Instance = instance, Prefix = o.Prefix, SpinUs = o.SpinUs, TcpReceiveBuffer = o.ReceiveBuffer, TcpCc = o.TcpCc, HostKernelAddress = BenchRun.HostKernelAddress, LogDirectory = o.LogDir };
        var state = Instance.Up(up, s => AnsiConsole.MarkupLineInterpolated($"[grey]{s}[/]"), interruption.Token);
        string hostNs = state.Namespaces[0], peerNs = state.Namespaces[1];
        var peer = IPAddress.Parse(state.PeerAddress!.Split('/')[0]);
        var ports = new PeerPorts();
        AntHostStack? anthost = null;
        try
        {
            // The host kernel once per algorithm asked for, each named; the first is the baseline
            // (by default AntHost's own: a loss-based algorithm and a model-based one such as BBR,
            // which does not read random loss as congestion, differ by an order of magnitude here).
            string nsDefault = CommandRunner.CheckIn(hostNs, "sysctl", ["-n", "net.ipv4.tcp_congestion_control"]).StandardOutput.Trim();
            string peerCc = CommandRunner.CheckIn(peerNs, "sysctl", ["-n", "net.ipv4.tcp_congestion_control"]).StandardOutput.Trim();
            var kernels = o.KernelCc.Select(a => a switch { "default" => nsDefault, "same" => o.TcpCc == "newreno" ? "reno" : o.TcpCc, _ => a }).Distinct()
                .Select(a => new KernelStack(hostNs, IPAddress.Parse(BenchRun.HostKernelAddress.Split('/')[0]), NamespaceThread.Run, a)).ToList();
            notes.Add($"Congestion control: AntHost runs {o.TcpCc}; the host kernel runs {string.Join(" and ", kernels.Select(k => k.CongestionControl))} ({nsDefault} is its namespace's default); every ratio is against {kernels[0].Name}. The peer kernel sends with {peerCc} to either stack.");
            anthost = AntHostStack.TryCreate(instance, 0, notes);
            var stacks = new List<IBenchStack>(kernels);
            if (anthost is not null) stacks.Add(anthost);
            foreach (double rate in rates)
            {
                SetLoss(peerNs, rate);
                foreach (var stack in stacks)
                {
                    interruption.Token.ThrowIfCancellationRequested();
                    bool isKernel = stack is KernelStack;
                    bool baseline = stack == kernels[0];
                    if (o.Out)
                        results.Add(Measure(stack, rate, "to the peer", isKernel ? "host kernel" : "AntHost", isKernel ? hostNs : null, instance, peerNs, baseline,
                            () => AntHost.Bench.Net.Measure.Outbound(stack, new IPEndPoint(peer, ports.Discard), seconds)));
                    // From the peer, the peer's algorithm sends: the kernel's own plays no part, so one kernel row.
                    if (o.In && (!isKernel || baseline))
                        results.Add(Measure(stack, rate, "from the peer", "peer kernel", peerNs, instance, peerNs, baseline,
                            () => AntHost.Bench.Net.Measure.Inbound(stack, new IPEndPoint(peer, ports.Source), seconds)));
                }
            }
        }
        catch (OperationCanceledException)
        {
            notes.Add("interrupted: the run was cut short");
        }
        finally
        {
            anthost?.Dispose();
            ClearLoss(peerNs);
            Instance.Down(state, s => AnsiConsole.MarkupLineInterpolated($"[grey]{s}[/]"));
        }
        string md = LossReport.ToMarkdown(results, notes);
        Directory.CreateDirectory(outDir);
        File.WriteAllText(Path.Combine(outDir, "loss.md"), md);
        File.WriteAllText(Path.Combine(outDir, "loss.json"), JsonSerializer.Serialize(results, new JsonSerializerOptions { WriteIndented = true, IncludeFields = true }));
        Console.WriteLine(md);
        AnsiConsole.MarkupLineInterpolated($"written: {Path.Combine(outDir, "loss.md")}, {Path.Combine(outDir, "loss.json")}");
        if (o.Docs is not null)
        {
            var m = MachineInfo.Here();
            string rateList = string.Join(", ", rates.Select(x => x.ToString(Ci) + "%"));
            string heading = FormattableString.Invariant(
                $"Generated by `anthost bench loss --docs docs` on {started:yyyy-MM-dd HH:mm} UTC ({(DateTime.UtcNow - started).TotalSeconds:F0} s; as root, from a Release build): {seconds:F0} s per transfer at {rateList} loss, dropped at random by nftables at the netdev ingress and egress hooks of the sandbox peer's veth, so that neither stack sees a drop as a local error. Machine: {m.Cpu}, {m.Cores} CPUs, Linux {m.Kernel}, .NET {m.Dotnet}; load average {loadAtStart} at the start, {NetBenchReport.LoadAverage()} at the end (the machine is shared). docs/tcp.md says what these figures mean and what limits each stack.");
            string page = Path.Combine(o.Docs, "eval", "loss.md");
            Directory.CreateDirectory(Path.GetDirectoryName(page)!);
            File.WriteAllText(page, LossReport.ToMarkdown(results, notes, heading));
            AnsiConsole.MarkupLineInterpolated($"written: {page}");
        }
        return notes.Any(n => n.StartsWith("interrupted", StringComparison.Ordinal)) ? 1 : 0;
    }

    /// <summary>One transfer, with the sender's counters read around it.</summary>
    private static LossResult Measure(IBenchStack stack, double rate, string direction, string sender, string? senderNs, string instance, string peerNs, bool baseline, Func<ThroughputResult> transfer)
    {
        AnsiConsole.MarkupLineInterpolated($"[grey]{rate}% loss: {stack.Name} {direction}[/]");
        var dropped0 = Dropped(peerNs);
        var linux0 = senderNs is null ? null : Linux(senderNs);
        var inet0 = senderNs is null ? InetProbe.Stats(instance, TimeSpan.FromSeconds(10)) : null;
        var sw = Stopwatch.StartNew();
        ThroughputResult t;
        try
        {
            t = transfer();
        }
        catch (Exception e) when (e is System.Net.Sockets.SocketException or IOException or TimeoutException or InvalidOperationException)
        {
            AnsiConsole.MarkupLineInterpolated($"[red]{stack.Name} {direction} failed: {e.Message}[/]");
            return new LossResult { LossPercent = rate, Stack = stack.Name, Direction = direction + " (failed: " + e.Message + ")", Sender = sender, Bytes = 0, Seconds = sw.Elapsed.TotalSeconds, Baseline = baseline };
        }
        var dropped1 = Dropped(peerNs);
        var result = new LossResult
        {
            LossPercent = rate,
            Stack = stack.Name,
            Direction = direction,
            Sender = sender,
            Baseline = baseline,
            Bytes = t.Bytes,
            Seconds = t.Seconds,
            Dropped = (dropped1.In - dropped0.In, dropped1.Out - dropped0.Out),
        };
        if (linux0 is not null)
        {
            var (all, timeouts, by) = LinuxTcpCounters.Retransmissions(linux0, Linux(senderNs!));
            result = result with { Retransmits = all, Timeouts = timeouts, ByCause = by };
        }
        else if (inet0 is not null)
        {
            var inet1 = InetProbe.Stats(instance, TimeSpan.FromSeconds(10));
            long D(InetStat s) => inet1[(int)s] - inet0[(int)s];
            result = result with
            {
                Retransmits = D(InetStat.TcpRetransmits),
                Timeouts = D(InetStat.TcpTimeouts),
                ByCause = new Dictionary<string, long>
                {
                    ["after a timeout"] = D(InetStat.TcpRetransmitsTimeout),
                    ["DupThresh without SACK"] = D(InetStat.TcpRetransmitsFast),
                    ["SACK (RFC 6675)"] = D(InetStat.TcpRetransmitsSack),
                    ["RACK"] = D(InetStat.TcpRetransmitsRack),
                    ["tail loss probe"] = D(InetStat.TcpRetransmitsTlp),
                    ["TLP probes"] = D(InetStat.TcpTlpProbes),
                },
            };
        }
        AnsiConsole.MarkupLineInterpolated($"[grey]  {result.Mbps:F1} Mbit/s, {result.Retransmits?.ToString(Ci) ?? "?"} retransmitted[/]");
        return result;
    }

    private static Dictionary<string, long> Linux(string ns) =>
        LinuxTcpCounters.Parse(CommandRunner.CheckIn(ns, "cat", ["/proc/net/snmp"]).StandardOutput, CommandRunner.CheckIn(ns, "cat", ["/proc/net/netstat"]).StandardOutput);

    /// <summary>Random loss of IPv4 packets into and out of the peer, at its veth's netdev hooks.</summary>
    private static void SetLoss(string peerNs, double percent)
    {
        ClearLoss(peerNs);
        int limit = (int)Math.Round(percent * 100);
        if (limit <= 0) return;
        string dev = SandboxOptions.PeerInterface;
        string script = $$"""
            table netdev {{Table}} {
              chain in {
                type filter hook ingress device "{{dev}}" priority -500; policy accept;
                meta protocol ip numgen random mod 10000 < {{limit}} counter drop
              }
              chain out {
                type filter hook egress device "{{dev}}" priority -500; policy accept;
                meta protocol ip numgen random mod 10000 < {{limit}} counter drop
              }
            }
            """;
        CommandRunner.CheckIn(peerNs, "nft", ["-f", "-"], "installing the loss rules", script);
    }

    private static void ClearLoss(string peerNs)
    {
        if (CommandRunner.RunIn(peerNs, "nft", ["list", "table", "netdev", Table]).Succeeded)
            CommandRunner.RunIn(peerNs, "nft", ["delete", "table", "netdev", Table]);
    }

    /// <summary>Packets the loss rules dropped so far (into the peer, out of it).</summary>
    private static (long In, long Out) Dropped(string peerNs) => SandboxNetwork.NftCounted(peerNs, "netdev", Table, "in");
}
