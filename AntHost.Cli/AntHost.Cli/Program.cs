// anthost: brings an AntHost instance up and down, shows what runs, measures, and demonstrates.
// Exit codes: 0 done; 1 the operation failed (the message says why, and a failing server's
// log tail follows); 2 the command line is wrong.
using System.CommandLine;
using System.Net;
using System.Net.Sockets;
using AntHost.Cli;

[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]

// Redirected output (a log, a pipe, a test) is not wrapped at 80 columns.
if (!Spectre.Console.AnsiConsole.Profile.Capabilities.Interactive) Spectre.Console.AnsiConsole.Profile.Width = 200;
return new CliCommands().Run(args);

namespace AntHost.Cli
{
    internal sealed class UsageException(string message) : Exception(message);

    /// <summary>The command line: parsing apart from running, so tests can check it.</summary>
    internal sealed class CliCommands
    {
        public RootCommand Root { get; }

        private static Option<string> InstanceOption() => new("--instance")
        {
            Description = "instance name: pool /dev/shm/anthost-NAME.pool, state /run/anthost/NAME/",
            DefaultValueFactory = _ => "default",
        };

        public CliCommands()
        {
            Root = new RootCommand("AntHost: a TCP/IP stack as separate processes (broker, inet server, NIC driver) over a shared ICA pool");

            // ---- up ----
            var instance = InstanceOption();
            var transfer = new Option<string>("--transfer") { Description = "how ICAs change hands: direct (journaled) or mediated (through the broker)", DefaultValueFactory = _ => "direct" };
            transfer.AcceptOnlyFromAmong("direct", "mediated");
            var spin = new Option<int>("--spin-us") { Description = "spin budget of inet and the driver before they sleep, microseconds (0 = frugal)", DefaultValueFactory = _ => 20 };
            spin.Validators.Add(r => { if (r.GetValueOrDefault<int>() is < 0 or > 100_000) r.AddError("--spin-us takes 0..100000"); });
            var prefix = new Option<string>("--prefix") { Description = "sandbox namespaces PREFIX-host and PREFIX-peer", DefaultValueFactory = _ => "anthost" };
            var adapter = new Option<string?>("--adapter") { Description = "run on this real adapter instead of the sandbox (needs --address)" };
            var address = new Option<string?>("--address") { Description = "AntHost's IPv4 address on --adapter, A.B.C.D/N (one nobody else uses)" };
            var gateway = new Option<string?>("--gateway") { Description = "default gateway on --adapter's link" };
            var logDir = new Option<string?>("--log-dir") { Description = "where the servers' logs go (default /var/log/anthost/INSTANCE)" };
            var group = new Option<string>("--group") { Description = $"the group whose members may use the instance besides root (pool, socket, state; default: {Instance.DefaultGroup}, made if missing)", DefaultValueFactory = _ => Instance.DefaultGroup };
            group.Validators.Add(r =>
            {
                string g = r.GetValueOrDefault<string>() ?? "";
                if (g != Instance.DefaultGroup && !AntHost.Kernel.Interop.UnixAccess.TryResolveGroup(g, out _)) r.AddError($"--group: there is no group '{g}' (see /etc/group)");
            });
            var dns = new Option<string?>("--dns") { Description = "the name server apps resolve names with (A.B.C.D; default: the sandbox peer's dnsmasq, or /etc/resolv.conf on an adapter)" };
            dns.Validators.Add(r =>
            {
                string? v = r.GetValueOrDefault<string?>();
                if (v is not null && !(System.Net.IPAddress.TryParse(v, out var ip) && ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork))
                    r.AddError($"--dns wants an IPv4 address, not '{v}'");
            });
            var cpus = CpusOption();
            var restartBudget = new Option<int>("--restart-budget") { Description = "restarts of a dead inet server or NIC driver the supervisor allows per server within 60 s (0: none)", DefaultValueFactory = _ => 5 };
            restartBudget.Validators.Add(r => { if (r.GetValueOrDefault<int>() is < 0 or > 1000) r.AddError("--restart-budget takes 0..1000"); });
            // The servers' own settings, passed to each (defaults: the servers').
            var poolSize = new Option<string?>("--pool-size") { Description = "broker: the ICA pool's size, e.g. 64M or 1G (default 64M)" };
            poolSize.Validators.Add(r => { if (r.GetValueOrDefault<string?>() is { } v && !System.Text.RegularExpressions.Regex.IsMatch(v, "^[1-9][0-9]*[KMG]?$")) r.AddError($"--pool-size takes a size like 64M or 1G, not '{v}'"); });
            var tcpCc = new Option<string?>("--tcp-cc") { Description = "inet: TCP congestion control, cubic or newreno (default cubic)" };
            tcpCc.AcceptOnlyFromAmong("cubic", "newreno");
            var tcpSnd = new Option<int?>("--tcp-sndbuf") { Description = "inet: TCP send buffer per socket, bytes (default 262144)" };
            tcpSnd.Validators.Add(r => { if (r.GetValueOrDefault<int?>() is < 4096) r.AddError("--tcp-sndbuf takes 4096 or more"); });
            var tcpRcv = new Option<int?>("--tcp-rcvbuf") { Description = "inet: TCP receive buffer (largest window) per socket, bytes (default 1048576)" };
            tcpRcv.Validators.Add(r => { if (r.GetValueOrDefault<int?>() is < 1024) r.AddError("--tcp-rcvbuf takes 1024 or more"); });
            var tcpMem = new Option<int?>("--tcp-mem-pages") { Description = "inet: pool pages TCP's buffers may hold, all connections together; windows and send buffers shrink to a share of them (default: half the pool; 0 = no limit)" };
            var rxReserve = new Option<int?>("--rx-reserve-pages") { Description = "inet: pool pages TCP's windows leave for the NIC driver's receive ICAs (default: an eighth of the pool)" };
            foreach (var o in new[] { tcpMem, rxReserve })
                o.Validators.Add(r => { if (r.GetValueOrDefault<int?>() is < 0) r.AddError($"{r.Option.Name} takes 0 or more"); });
            var inetSpin = new Option<int?>("--inet-spin-us") { Description = "inet's spin budget, microseconds (default: --spin-us)" };
            var nicSpin = new Option<int?>("--nic-spin-us") { Description = "the NIC driver's spin budget, microseconds (default: --spin-us)" };
            foreach (var o in new[] { inetSpin, nicSpin })
                o.Validators.Add(r => { if (r.GetValueOrDefault<int?>() is < 0 or > 100_000) r.AddError($"{r.Option.Name} takes 0..100000"); });
            Option<double?> Probability(string name, string what) => new(name) { Description = $"NIC driver: probability that a frame is {what} (default 0)" };
            var faultDrop = Probability("--fault-drop", "dropped");
            var faultReorder = Probability("--fault-reorder", "held back behind the next (reordered)");
            var faultDuplicate = Probability("--fault-duplicate", "duplicated");
            var faultCorrupt = Probability("--fault-corrupt", "corrupted (one byte flipped)");
            foreach (var o in new[] { faultDrop, faultReorder, faultDuplicate, faultCorrupt })
                o.Validators.Add(r => { if (r.GetValueOrDefault<double?>() is < 0 or > 1) r.AddError($"{r.Option.Name} takes a probability 0..1"); });
            var faultSeed = new Option<ulong?>("--fault-seed") { Description = "NIC driver: the fault injector's seed (default 1)" };
            var faultDirection = new Option<string?>("--fault-direction") { Description = "NIC driver: faults on rx, tx or both (default both)" };
            faultDirection.AcceptOnlyFromAmong("rx", "tx", "both");
            var verbose = new Option<bool>("--verbose") { Description = "every server: debug logging" };
            var logFormat = new Option<string>("--log-format") { Description = "every server: text, or json (one object per line: timestamp, level, category, message, the template's fields)", DefaultValueFactory = _ => "text" };
            logFormat.AcceptOnlyFromAmong("text", "json");
            var noCapture = new Option<bool>("--no-capture") { Description = "NIC driver: offer no capture (anthost capture is refused; the live counters stay)" };
            var up = new Command("up", "start the broker, the inet server and a NIC driver (on the sandbox network unless --adapter); every setting of the servers is listed here with its default");
            foreach (Option o in new Option[] { instance, transfer, spin, prefix, adapter, address, gateway, logDir, cpus, group, restartBudget, dns,
                poolSize, tcpCc, tcpSnd, tcpRcv, tcpMem, rxReserve, inetSpin, nicSpin, faultDrop, faultReorder, faultDuplicate, faultCorrupt, faultSeed, faultDirection, verbose, logFormat, noCapture }) up.Options.Add(o);
            up.SetAction(r => Guard(() =>
            {
                var o = new UpOptions
                {
                    Instance = Name(r.GetValue(instance)!),
                    Transfer = r.GetValue(transfer)!,
                    SpinUs = r.GetValue(spin),
                    Prefix = r.GetValue(prefix)!,
                    Adapter = r.GetValue(adapter),
                    Address = r.GetValue(address),
                    Gateway = r.GetValue(gateway),
                    LogDirectory = r.GetValue(logDir),
                    Group = r.GetValue(group)!,
                    Dns = r.GetValue(dns),
                    Cpus = r.GetValue(cpus) is { } list ? Instance.CheckCpus(list) : null,
                    RestartBudget = r.GetValue(restartBudget),
                    PoolSize = r.GetValue(poolSize),
                    TcpCc = r.GetValue(tcpCc),
                    TcpSendBuffer = r.GetValue(tcpSnd),
                    TcpReceiveBuffer = r.GetValue(tcpRcv),
                    TcpMemoryPages = r.GetValue(tcpMem),
                    ReceiveReservePages = r.GetValue(rxReserve),
                    InetSpinUs = r.GetValue(inetSpin),
                    NicSpinUs = r.GetValue(nicSpin),
                    FaultDrop = r.GetValue(faultDrop),
                    FaultReorder = r.GetValue(faultReorder),
                    FaultDuplicate = r.GetValue(faultDuplicate),
                    FaultCorrupt = r.GetValue(faultCorrupt),
                    FaultSeed = r.GetValue(faultSeed),
                    FaultDirection = r.GetValue(faultDirection),
                    Verbose = r.GetValue(verbose),
                    LogFormat = r.GetValue(logFormat)!,
                    NoCapture = r.GetValue(noCapture),
                };
                CheckNetwork(o);
                return Commands.Up(o);
            }));
            Root.Subcommands.Add(up);

            // ---- down ----
            var downInstance = InstanceOption();
            var down = new Command("down", "stop the instance's processes and remove its sandbox, pool, socket and state (also after a crash)");
            down.Options.Add(downInstance);
            down.SetAction(r => Guard(() => Commands.Down(Name(r.GetValue(downInstance)!))));
            Root.Subcommands.Add(down);

            // ---- supervise (started by up; not for users) ----
            var supInstance = InstanceOption();
            var budget = new Option<int>("--budget") { Description = "restarts of one server allowed within --window-s", DefaultValueFactory = _ => 5 };
            var window = new Option<int>("--window-s") { Description = "the restart budget's window, seconds", DefaultValueFactory = _ => 60 };
            var supervise = new Command("supervise", "the instance's supervisor (anthost up starts it): starts the servers, restarts a dead inet or NIC driver, takes the instance down when the broker dies") { Hidden = true };
            foreach (Option o in new Option[] { supInstance, budget, window }) supervise.Options.Add(o);
            supervise.SetAction(r => Guard(() => Supervisor.Run(new SupervisorOptions
            {
                Instance = Name(r.GetValue(supInstance)!),
                Budget = Math.Max(0, r.GetValue(budget)),
                Window = TimeSpan.FromSeconds(Math.Max(1, r.GetValue(window))),
            })));
            Root.Subcommands.Add(supervise);

            // ---- ps ----
            var psInstance = InstanceOption();
            var json = new Option<bool>("--json") { Description = "print JSON instead of tables" };
            var ps = new Command("ps", "the instance's processes, pages and ICAs they own, ring depths and counters");
            ps.Options.Add(psInstance);
            ps.Options.Add(json);
            ps.SetAction(r => Guard(() => Commands.Ps(Name(r.GetValue(psInstance)!), r.GetValue(json))));
            Root.Subcommands.Add(ps);

            // ---- ss ----
            var ssInstance = InstanceOption();
            var ssJson = new Option<bool>("--json") { Description = "print JSON instead of a table" };
            var ssArp = new Option<bool>("--arp") { Description = "the ARP cache instead of the sockets" };
            var ss = new Command("ss", "inet's sockets: protocol, state, endpoints, owning process, queues, and TCP's RTT, RTO, windows, retransmissions and options (--arp: the ARP cache)");
            foreach (Option o in new Option[] { ssInstance, ssJson, ssArp }) ss.Options.Add(o);
            ss.SetAction(r => Guard(() => SsRun.Run(Name(r.GetValue(ssInstance)!), r.GetValue(ssJson), r.GetValue(ssArp))));
            Root.Subcommands.Add(ss);

            // ---- capture ----
            var capInstance = InstanceOption();
            var capWrite = new Option<string?>("--write", "-w") { Description = "write the frames to this pcapng file (direction and the driver's timestamp kept; Wireshark and tshark read it)" };
            var capCount = new Option<long?>("--count", "-c") { Description = "stop after this many frames (that pass the filter)" };
            capCount.Validators.Add(r => { if (r.GetValueOrDefault<long?>() is < 1) r.AddError("--count takes 1 or more"); });
            var capFilter = new Option<string?>("--filter") { Description = "a libpcap filter, e.g. 'tcp port 80' (pcap-filter(7)), applied to every frame" };
            var capPrint = new Option<bool>("--print") { Description = "print one line per frame, as tcpdump does (the default without -w)" };
            var capSeconds = new Option<double?>("--seconds") { Description = "stop after this long (default: Ctrl-C or --count)" };
            capSeconds.Validators.Add(r => { if (r.GetValueOrDefault<double?>() is <= 0) r.AddError("--seconds takes a positive number"); });
            var capture = new Command("capture", "every frame the NIC driver receives and transmits, as pcapng (-w) or one line each (--print)");
            foreach (Option o in new Option[] { capInstance, capWrite, capCount, capFilter, capPrint, capSeconds }) capture.Options.Add(o);
            capture.SetAction(r => Guard(() =>
            {
                using var interruption = new Interruption();
                CaptureRun.Run(new CaptureOptions
                {
                    Instance = Name(r.GetValue(capInstance)!),
                    Write = r.GetValue(capWrite),
                    Count = r.GetValue(capCount),
                    Filter = r.GetValue(capFilter),
                    Print = r.GetValue(capPrint),
                    Seconds = r.GetValue(capSeconds),
                }, interruption.Token);
                return 0;
            }));
            Root.Subcommands.Add(capture);

            // ---- bench ipc ----
            var quick = new Option<bool>("--quick") { Description = "fewer iterations (about 20 s instead of 1-2 min)" };
            var jsonOut = new Option<string?>("--json") { Description = "also write the report as JSON to this file" };
            var mdOut = new Option<string?>("--md") { Description = "also write the Markdown table to this file" };
            var ipc = new Command("ipc", "the IPC benchmark: the paper's three hops and the whole chain, both transfer paths, beside a Unix socket");
            foreach (Option o in new Option[] { quick, jsonOut, mdOut }) ipc.Options.Add(o);
            ipc.SetAction(r => Guard(() => Commands.BenchIpc(r.GetValue(quick), r.GetValue(jsonOut), r.GetValue(mdOut))));
            var bench = new Command("bench", "benchmarks (reported beside their baselines, measured in the same run)");
            bench.Subcommands.Add(ipc);
            bench.Subcommands.Add(NetBench("rtt", "the paper's RTT test (N bytes out, 1 byte back), AntHost and the host kernel against the same peer, latency and frugal tunings, with the CPU each used", rtt: true));
            bench.Subcommands.Add(NetBench("send", "send processing time and its per-stage timeline (the paper's table 3), beside the host kernel's send()", send: true));
            bench.Subcommands.Add(NetBench("throughput", "bulk TCP each way, AntHost and the host kernel, beside the raw libpcap injection rate", throughput: true));
            var from = new Option<string>("--from") { Description = "a report.json written by a bench run", Required = true };
            var reportOut = new Option<string?>("--out") { Description = "write report.md, report.json and the PNG charts into this folder" };
            var reportDocs = new Option<string?>("--docs") { Description = "write DOCS/evaluation.md and DOCS/eval/ from it" };
            var report = new Command("report", "render a run's report.json again (Markdown, charts, the evaluation page), e.g. after the writers changed");
            foreach (Option o in new Option[] { from, reportOut, reportDocs }) report.Options.Add(o);
            report.SetAction(r => Guard(() => Commands.BenchReport(r.GetValue(from)!, r.GetValue(reportOut), r.GetValue(reportDocs))));
            bench.Subcommands.Add(report);
            bench.Subcommands.Add(LossBenchRun.Create());
            bench.Subcommands.Add(AggregateBench.WorkerCommand());
            bench.Subcommands.Add(NetBench("idle", "what the servers cost with nothing to do: wake-ups per second and CPU of the broker, inet server and NIC driver over 20 s (5 s with --quick)", idle: true));
            bench.Subcommands.Add(NetBench("all", "every benchmark (ipc, rtt, send, throughput, idle) in one report; --docs writes docs/evaluation.md", rtt: true, send: true, throughput: true, ipc: true, idle: true));
            Root.Subcommands.Add(bench);

            // ---- demo ----
            var demoInstance = new Option<string>("--instance") { Description = "instance name for the demo", DefaultValueFactory = _ => "demo" };
            var demoPrefix = new Option<string>("--prefix") { Description = "sandbox namespaces PREFIX-host and PREFIX-peer", DefaultValueFactory = _ => "anthost-demo" };
            var pings = new Option<int>("--pings") { Description = "echo requests measured (after a warm-up of a quarter as many)", DefaultValueFactory = _ => 200 };
            pings.Validators.Add(r => { if (r.GetValueOrDefault<int>() is < 1 or > 100_000) r.AddError("--pings takes 1..100000"); });
            var demoLogDir = new Option<string?>("--log-dir") { Description = "where the servers' logs go (default /var/log/anthost/INSTANCE)" };
            var demo = new Command("demo", "bring the stack up on the sandbox, show what it does against the Linux peer, take it down");
            foreach (Option o in new Option[] { demoInstance, demoPrefix, pings, demoLogDir }) demo.Options.Add(o);
            demo.SetAction(r => Guard(() => Commands.Demo(new UpOptions
            {
                Instance = Name(r.GetValue(demoInstance)!),
                Prefix = r.GetValue(demoPrefix)!,
                LogDirectory = r.GetValue(demoLogDir),
            }, r.GetValue(pings))));
            Root.Subcommands.Add(demo);
        }

        private static Option<string?> CpusOption() => new("--cpus")
        {
            Description = "confine the broker, inet server and NIC driver (and, in a benchmark, the app: both stacks' client side) to these CPUs, e.g. 0 (default: no placement)",
        };

        /// <summary>One of the network benchmarks' commands, with the options they share.</summary>
        private static Command NetBench(string name, string description, bool rtt = false, bool send = false, bool throughput = false, bool ipc = false, bool idle = false)
        {
            var quick = new Option<bool>("--quick") { Description = "a fast smoke run: few iterations, short transfers" };
            var instance = new Option<string>("--instance") { Description = "instance name prefix for the stacks the benchmark brings up (with --peer: the running instance to use)", DefaultValueFactory = _ => "bench" };
            var prefix = new Option<string>("--prefix") { Description = "sandbox namespaces PREFIX-host and PREFIX-peer", DefaultValueFactory = _ => "anthost-bench" };
            var peer = new Option<string?>("--peer") { Description = "a remote host A.B.C.D running anthost-rpeer (remote-peer/) to measure against instead of the sandbox peer; AntHost's side then uses the running instance (anthost up --adapter ...)" };
            var baselineNetns = new Option<string?>("--baseline-netns") { Description = "with --peer: the network namespace whose kernel makes the baseline's sockets (default: this one)" };
            var output = new Option<string>("--out") { Description = "folder for report.md, report.json and the PNG charts", DefaultValueFactory = _ => "anthost-bench" };
            var iterations = new Option<int?>("--iterations") { Description = "round trips or sends per payload size (default 2000, 100 with --quick)" };
            iterations.Validators.Add(r => { if (r.GetValueOrDefault<int?>() is < 1 or > 1_000_000) r.AddError("--iterations takes 1..1000000"); });
            var spin = new Option<int>("--spin-us") { Description = "spin budget of the latency tuning (inet, NIC driver, app), microseconds", DefaultValueFactory = _ => 50 };
            spin.Validators.Add(r => { if (r.GetValueOrDefault<int>() is < 1 or > 100_000) r.AddError("--spin-us takes 1..100000"); });
            var logDir = new Option<string?>("--log-dir") { Description = "where the servers' logs go (default /var/log/anthost/INSTANCE)" };
            var cpus = CpusOption();
            var sndbuf = new Option<int?>("--tcp-sndbuf") { Description = "AntHost's TCP send buffer per socket in bytes (as `up --tcp-sndbuf`; default the inet server's own)" };
            sndbuf.Validators.Add(r => { if (r.GetValueOrDefault<int?>() is < 4096 or > (1 << 30)) r.AddError("--tcp-sndbuf takes 4096..2^30"); });
            var oneConnection = new Option<bool>("--one-connection") { Description = "throughput: only the one-connection rows each way (no HttpClient, several-apps or injection rows)" };
            var c = new Command(name, description);
            foreach (Option o in new Option[] { quick, instance, prefix, peer, baselineNetns, output, iterations, spin, logDir, cpus, sndbuf }) c.Options.Add(o);
            if (throughput) c.Options.Add(oneConnection);
            Option<string?>? docs = null;
            if (ipc)
            {
                docs = new Option<string?>("--docs") { Description = "also write DOCS/evaluation.md and DOCS/eval/ (the repository's docs folder)" };
                c.Options.Add(docs);
            }
            c.SetAction(r => Guard(() =>
            {
                IPAddress? peerAddress = null;
                if (r.GetValue(peer) is { } text && !(IPAddress.TryParse(text, out peerAddress) && peerAddress.AddressFamily == AddressFamily.InterNetwork))
                    throw new UsageException($"--peer '{text}' is not an IPv4 address");
                string? ns = r.GetValue(baselineNetns);
                if (ns is not null && peerAddress is null) throw new UsageException("--baseline-netns goes with --peer (the sandbox has its own baseline)");
                if (ns is not null && !File.Exists($"/var/run/netns/{ns}")) throw new UsageException($"--baseline-netns '{ns}': no such network namespace (ip netns list)");
                string p = r.GetValue(prefix)!;
                if (peerAddress is null)
                {
                    try { new AntHost.Sandbox.SandboxOptions { Prefix = p }.Validate(); }
                    catch (ArgumentException e) { throw new UsageException(e.Message); }
                    if (p.Length + "-host".Length > 24) throw new UsageException($"--prefix '{p}' is too long");
                }
                string inst = Name(r.GetValue(instance)!);
                if (peerAddress is null) Name(inst + "-lat");
                return BenchRun.Run(new BenchOptions
                {
                    Rtt = rtt,
                    Send = send,
                    Throughput = throughput,
                    Ipc = ipc,
                    Idle = idle,
                    Quick = r.GetValue(quick),
                    Instance = inst,
                    Prefix = p,
                    Peer = peerAddress,
                    BaselineNetns = ns,
                    Out = r.GetValue(output)!,
                    Docs = docs is null ? null : r.GetValue(docs),
                    Iterations = r.GetValue(iterations),
                    LatencySpinUs = r.GetValue(spin),
                    LogDirectory = r.GetValue(logDir),
                    Cpus = r.GetValue(cpus) is { } list ? Instance.CheckCpus(list) : null,
                    TcpSendBuffer = r.GetValue(sndbuf),
                    OneConnection = throughput && r.GetValue(oneConnection),
                });
            }));
            return c;
        }

        public int Run(string[] args)
        {
            var result = Root.Parse(args);
            if (result.Errors.Count > 0)
            {
                foreach (var e in result.Errors) Console.Error.WriteLine($"anthost: {e.Message}");
                Console.Error.WriteLine("see: anthost --help, or anthost COMMAND --help");
                return 2;
            }
            return result.Invoke();
        }

        private static string Name(string instance)
        {
            try { InstanceState.ValidateName(instance); }
            catch (CliException e) { throw new UsageException(e.Message); }
            return instance;
        }

        private static void CheckNetwork(UpOptions o)
        {
            if (o.Adapter is null)
            {
                if (o.Address is not null || o.Gateway is not null) throw new UsageException("--address and --gateway go with --adapter (the sandbox has its own addresses)");
                try { new AntHost.Sandbox.SandboxOptions { Prefix = o.Prefix }.Validate(); }
                catch (ArgumentException e) { throw new UsageException(e.Message); }
                return;
            }
            if (o.Address is null) throw new UsageException("--adapter needs --address A.B.C.D/N (AntHost's own address on that network)");
            var parts = o.Address.Split('/');
            if (parts.Length != 2 || !System.Net.IPAddress.TryParse(parts[0], out var ip) || ip.AddressFamily != System.Net.Sockets.AddressFamily.InterNetwork
                || !int.TryParse(parts[1], out int len) || len is < 1 or > 32)
                throw new UsageException($"--address '{o.Address}' is not an IPv4 address with a prefix length, like 192.0.2.10/24");
            if (o.Gateway is not null && !(System.Net.IPAddress.TryParse(o.Gateway, out var g) && g.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork))
                throw new UsageException($"--gateway '{o.Gateway}' is not an IPv4 address");
        }

        /// <summary>Turns the errors a user can act on into a message and an exit code.</summary>
        private static int Guard(Func<int> action)
        {
            try
            {
                return action();
            }
            catch (UsageException e)
            {
                Console.Error.WriteLine($"anthost: {e.Message}");
                return 2;
            }
            catch (ServerFailedException e)
            {
                Console.Error.WriteLine($"anthost: {e.Message}");
                Console.Error.WriteLine($"---- last lines of {e.Process.Log} ----");
                Console.Error.WriteLine(ServerProcess.Tail(e.Process.Log));
                return 1;
            }
            catch (Exception e) when (e is CliException or AntHost.Sandbox.SandboxCommandException or OperationCanceledException)
            {
                Console.Error.WriteLine($"anthost: {(e is OperationCanceledException ? "interrupted; everything started was taken down" : e.Message)}");
                return 1;
            }
        }
    }
}
