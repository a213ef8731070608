// Bringing an instance up and down. `up` is a sequence of steps, each recorded in the
// state file as soon as it is taken (sandbox made, process started), so whatever fails
// or whoever interrupts, `down` finds everything that was made. Readiness is what each
// server itself says in its log: the broker "anthost-kernel ready" (pool mapped, socket
// listening), the inet server "anthost-inet ready" (service registered), the driver
// "attached to inet" (inet took its ifattach), the peer's servers "ready" (all bound).
// Down stops them in the reverse order of dependence (driver, peer, inet, broker), each
// with SIGTERM so it logs its counters and gives its pages back, then SIGKILL after a
// grace period; then it removes the namespaces, and the pool file and socket if the
// broker could not.
using System.Runtime.InteropServices;
using AntHost.Kernel.Pool;
using AntHost.Sandbox;

namespace AntHost.Cli;

/// <summary>What <c>anthost up</c> is asked for.</summary>
internal sealed record UpOptions
{
    public string Instance { get; init; } = "default";
    public string Transfer { get; init; } = "direct";
    public int SpinUs { get; init; } = 20;
    public string Prefix { get; init; } = "anthost";
    public string? Adapter { get; init; }
    public string? Address { get; init; }
    public string? Gateway { get; init; }
    public string? LogDirectory { get; init; }
    /// <summary>The group whose members may use the instance besides root (<see cref="Instance.DefaultGroup"/>, made if missing).</summary>
    public string Group { get; init; } = AntHost.Cli.Instance.DefaultGroup;
    /// <summary>The name server apps of the instance ask (written to its resolv.conf), or null: the sandbox peer's dnsmasq, or the host's resolv.conf on an adapter.</summary>
    public string? Dns { get; init; }
    /// <summary>The host namespace kernel's own address on the sandbox veth (the benchmarks' baseline), or null for none.</summary>
    public string? HostKernelAddress { get; init; }
    public TimeSpan Patience { get; init; } = TimeSpan.FromSeconds(60);
    /// <summary>
    /// CPUs the broker, inet server and NIC driver are confined to (taskset list, e.g. "0" or
    /// "0-1"), or null to let the scheduler place them. One CPU for all: a handoff between
    /// them is a switch on that CPU, not a wake-up of the other (see docs/cli.md).
    /// </summary>
    public string? Cpus { get; init; }

    /// <summary>Restarts of one server the supervisor allows within its window (60 s).</summary>
    public int RestartBudget { get; init; } = 5;
    // ---- the servers' own settings, passed through (see `anthost up --help` and docs/cli.md)
    /// <summary>The broker's pool size (its --pool-size, e.g. 64M), or null for its default.</summary>
    public string? PoolSize { get; init; }
    /// <summary>inet's TCP congestion control (cubic, newreno), send and receive buffers per socket.</summary>
    public string? TcpCc { get; init; }
    public int? TcpSendBuffer { get; init; }
    public int? TcpReceiveBuffer { get; init; }
    /// <summary>inet: pool pages TCP's buffers may hold in all, and those its windows leave for the driver's receive ICAs.</summary>
    public int? TcpMemoryPages { get; init; }
    public int? ReceiveReservePages { get; init; }
    /// <summary>Spin budgets of inet and the driver apart (default: --spin-us for both).</summary>
    public int? InetSpinUs { get; init; }
    public int? NicSpinUs { get; init; }
    /// <summary>The driver's fault injection: probabilities per frame, seed, direction.</summary>
    public double? FaultDrop { get; init; }
    public double? FaultReorder { get; init; }
    public double? FaultDuplicate { get; init; }
    public double? FaultCorrupt { get; init; }
    public ulong? FaultSeed { get; init; }
    public string? FaultDirection { get; init; }
    /// <summary>Debug logging in every server.</summary>
    public bool Verbose { get; init; }
    /// <summary>text or json (one object per line), every server.</summary>
    public string LogFormat { get; init; } = "text";
    /// <summary>The driver offers no capture.</summary>
    public bool NoCapture { get; init; }

    private static string S(IFormattable v) => v.ToString(null, System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>The broker's arguments for these settings (after --instance, --transfer, --group).</summary>
    public string[] BrokerSettings() =>
        [.. PoolSize is { } p ? ["--pool-size", p] : Array.Empty<string>(), .. Common()];

    /// <summary>The inet server's arguments for these settings (after --instance, --address, --gateway).</summary>
    public string[] InetSettings() =>
        ["--spin-us", S(InetSpinUs ?? SpinUs),
         .. TcpCc is { } cc ? ["--tcp-cc", cc] : Array.Empty<string>(),
         .. TcpSendBuffer is { } sb ? ["--tcp-sndbuf", S(sb)] : Array.Empty<string>(),
         .. TcpReceiveBuffer is { } rb ? ["--tcp-rcvbuf", S(rb)] : Array.Empty<string>(),
         .. TcpMemoryPages is { } mp ? ["--tcp-mem-pages", S(mp)] : Array.Empty<string>(),
         .. ReceiveReservePages is { } rr ? ["--rx-reserve-pages", S(rr)] : Array.Empty<string>(),
         .. Common()];

    /// <summary>The NIC driver's arguments for these settings (after --adapter, --instance).</summary>
    public string[] NicSettings() =>
        ["--ipc-spin-us", S(NicSpinUs ?? SpinUs),
         .. FaultDrop is { } d ? ["--fault-drop", S(d)] : Array.Empty<string>(),
         .. FaultReorder is { } r ? ["--fault-reorder", S(r)] : Array.Empty<string>(),
         .. FaultDuplicate is { } u ? ["--fault-duplicate", S(u)] : Array.Empty<string>(),
         .. FaultCorrupt is { } c ? ["--fault-corrupt", S(c)] : Array.Empty<string>(),
         .. FaultSeed is { } seed ? ["--fault-seed", S(seed)] : Array.Empty<string>(),
         .. FaultDirection is { } dir ? ["--fault-direction", dir] : Array.Empty<string>(),
         .. NoCapture ? ["--no-capture"] : Array.Empty<string>(),
         .. Common()];

    private string[] Common() => [.. Verbose ? ["--verbose"] : Array.Empty<string>(), .. LogFormat != "text" ? ["--log-format", LogFormat] : Array.Empty<string>()];
}

internal static partial class Instance
{
    public static readonly TimeSpan Grace = TimeSpan.FromSeconds(10);

    /// <summary>The group `up` gives the instance unless told another; made (a system group) when missing.</summary>
    public const string DefaultGroup = "anthost";

    /// <summary>Makes <see cref="DefaultGroup"/> when it does not exist yet (any other group must exist).</summary>
    public static void EnsureGroup(string group, Action<string> progress)
    {
        if (AntHost.Kernel.Interop.UnixAccess.TryResolveGroup(group, out _)) return;
        if (group != DefaultGroup) throw new CliException($"--group: there is no group '{group}' (see /etc/group)");
        progress($"making the system group '{group}' (its members may run apps on the instance without root)");
        var r = CommandRunner.Run("groupadd", ["--system", group]);
        if (!r.Succeeded && !AntHost.Kernel.Interop.UnixAccess.TryResolveGroup(group, out _))
            throw new CliException($"groupadd --system {group} failed: {r.StandardError.Trim()}");
    }

    /// <summary>The peer's servers stop when their stdin closes, which ours never does; they hold no state, so after a short wait they are killed.</summary>
    public static readonly TimeSpan PeerGrace = TimeSpan.FromSeconds(2);

    public static bool IsRoot => GetEuid() == 0;

    [LibraryImport("libc", EntryPoint = "geteuid")]
    private static partial uint GetEuid();

    [LibraryImport("libc", EntryPoint = "mkfifo", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int MkFifo(string path, uint mode);

    /// <summary>
    /// The resolv.conf the instance's apps read (/run/anthost/INSTANCE/resolv.conf): --dns, else the
    /// sandbox peer's dnsmasq searching anthost.test; on an adapter without --dns none is written
    /// (apps then read the host's /etc/resolv.conf).
    /// </summary>
    private static void WriteResolvConf(UpOptions o, SandboxNetwork? net)
    {
        string? text = o.Dns is not null ? $"nameserver {o.Dns}\n" + (net is null ? "" : $"search {SandboxNetwork.DnsDomain}\n")
            : net?.ResolvConf;
        if (text is null) return;
        string path = Path.Combine(InstanceState.DirectoryFor(o.Instance), "resolv.conf");
        File.WriteAllText(path, text);
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
    }

    /// <summary>Checks a --cpus list (taskset's syntax: "0", "0-1", "0,1") against this machine's CPUs; throws <see cref="UsageException"/>.</summary>
    public static string CheckCpus(string cpus)
    {
        foreach (var part in cpus.Split(','))
        {
            var ends = part.Split('-');
            if (ends.Length > 2 || ends.Any(e => !int.TryParse(e, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int c) || c >= Environment.ProcessorCount))
                throw new UsageException($"--cpus '{cpus}': a list of CPUs 0..{Environment.ProcessorCount - 1} such as 0 or 0-1 or 0,1");
        }
        return cpus;
    }

    /// <summary>Confines every thread of this process to <paramref name="cpus"/> (taskset -a -p); threads made later inherit it.</summary>
    public static void PinThisProcess(string cpus)
    {
        var r = CommandRunner.Run("taskset", ["-a", "-p", "-c", cpus, Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        if (r.ExitCode != 0) throw new CliException($"taskset -a -p -c {cpus} failed: {r.StandardError.Trim()}");
    }

    public static void RequireRoot(string what)
    {
        if (!IsRoot) throw new CliException($"{what} needs root (network namespaces, the pool in /dev/shm, /run/anthost): run it with sudo");
    }

    /// <summary>Brings the instance up; on any failure (or cancellation) takes down what it made and rethrows.</summary>
    public static InstanceState Up(UpOptions o, Action<string> progress, CancellationToken ct)
    {
        RequireRoot("anthost up");
        if (InstanceState.Load(o.Instance) is { } old)
        {
            var alive = old.Processes.Where(ServerProcess.IsAlive).ToList();
            if (alive.Count > 0)
                throw new CliException($"instance '{o.Instance}' is already up ({string.Join(", ", alive.Select(p => $"{p.Name} pid {p.Pid}"))}); " +
                    $"see `anthost ps --instance {o.Instance}`, or `anthost down --instance {o.Instance}` first");
            progress($"instance '{o.Instance}' left state behind (its processes are gone): cleaning up first");
            Down(old, progress);
        }
        bool sandbox = o.Adapter is null;
        if (sandbox)
        {
            foreach (var other in InstanceState.All())
                if (other.Instance != o.Instance && other.Prefix == o.Prefix && other.Processes.Any(ServerProcess.IsAlive))
                    throw new CliException($"the sandbox prefix '{o.Prefix}' belongs to running instance '{other.Instance}': choose another --prefix");
        }

        EnsureGroup(o.Group, progress);
        string logDir = o.LogDirectory ?? InstanceState.DefaultLogDirectory(o.Instance);
        Directory.CreateDirectory(logDir);
        var state = new InstanceState
        {
            Instance = o.Instance,
            Network = sandbox ? "sandbox" : "adapter",
            Prefix = sandbox ? o.Prefix : null,
            Namespaces = sandbox ? [o.Prefix + "-host", o.Prefix + "-peer"] : [],
            Adapter = sandbox ? SandboxOptions.HostInterface : o.Adapter,
            Address = sandbox ? new SandboxOptions().HostAddress : o.Address!,
            Gateway = o.Gateway,
            PeerAddress = sandbox ? new SandboxOptions().PeerAddress : null,
            Transfer = o.Transfer,
            SpinUs = o.SpinUs,
            LogDirectory = logDir,
            Group = o.Group,
            CreatedUtc = DateTime.UtcNow,
        };
        state.Save();
        try
        {
            string dotnet = SandboxNetwork.DotnetHost();
            // The servers' launchers find the runtime through DOTNET_ROOT (inherited through the
            // supervisor, which starts them) where it is not in a default place.
            if (Path.IsPathRooted(dotnet) && Environment.GetEnvironmentVariable("DOTNET_ROOT") is null or "")
                Environment.SetEnvironmentVariable("DOTNET_ROOT", Path.GetDirectoryName(dotnet));
            string broker = Binaries.Find(Binaries.Broker), inet = Binaries.Find(Binaries.Inet), nic = Binaries.Find(Binaries.Nic);
            string? peer = sandbox ? Binaries.Find(Binaries.Peer) : null;
            SandboxNetwork? net = null;
            if (sandbox)
            {
                progress($"making the sandbox network ({state.Namespaces[0]}, {state.Namespaces[1]})");
                net = SandboxNetwork.Create(new SandboxOptions { Prefix = o.Prefix, StartServers = false, HostKernelAddress = o.HostKernelAddress });
            }

            // Servers that read nothing get /dev/null; the peer's servers stop when their stdin
            // closes, so theirs is a FIFO opened read-write by the peer itself: it never closes
            // while the peer lives, and SIGTERM stops it.
            string peerStdin = Path.Combine(InstanceState.DirectoryFor(o.Instance), "peer.stdin");
            File.Delete(peerStdin);
            if (sandbox && MkFifo(peerStdin, 0x180) != 0) throw new CliException($"mkfifo {peerStdin} failed: errno {Marshal.GetLastPInvokeError()}");

            // The servers (not the peer, which plays a remote host) run confined to --cpus.
            string[] Pinned(string[] command) => o.Cpus is null ? command : ["taskset", "-c", o.Cpus, .. command];

            // The supervisor first: it starts every server as its child (so it learns how each
            // one ends), and once up finished it restarts a dead inet or driver.
            ProcessRecord Launch(string name, string[] command, string marker, string? netns, string ready, string what)
            {
                ct.ThrowIfCancellationRequested();
                string log = Path.Combine(logDir, name + ".log");
                if (File.Exists(log)) File.Move(log, log + ".1", overwrite: true);
                progress($"starting {what}");
                string stdin = name == "peer" ? peerStdin : "/dev/null";
                var r = name == "supervisor"
                    ? ServerProcess.Start(name, command, marker, log, stdin, netns) with { Ready = ready }
                    : Supervisor.Start(o.Instance, new StartRequest(name, command, marker, log, stdin, netns, ready), ct);
                state.Processes.Add(r);
                state.Save();
                progress($"waiting for {what} (pid {r.Pid}) to say '{ready}'");
                ServerProcess.WaitForLog(r, ready, o.Patience, ct);
                return r;
            }

            Launch("supervisor", Supervisor.Command(dotnet, o.Instance, o.RestartBudget), Supervisor.Marker, null, Supervisor.ReadyLine, "the supervisor");
            Launch("broker", Pinned([.. Binaries.Command(dotnet, broker), "--instance", o.Instance, "--transfer", o.Transfer, "--group", o.Group, .. o.BrokerSettings()]), Binaries.Marker(Binaries.Broker), null, "anthost-kernel ready", "the broker");
            string[] inetArgs = [.. Binaries.Command(dotnet, inet), "--instance", o.Instance, "--address", state.Address,
                .. o.Gateway is null ? Array.Empty<string>() : ["--gateway", o.Gateway], .. o.InetSettings()];
            Launch("inet", Pinned(inetArgs), Binaries.Marker(Binaries.Inet), null, "anthost-inet ready", "the inet server");
            string[] nicArgs = [.. Binaries.Command(dotnet, nic), "--adapter", state.Adapter!, "--instance", o.Instance, .. o.NicSettings()];
            Launch("nic", sandbox ? ["ip", "netns", "exec", net!.HostNamespace, .. Pinned(nicArgs)] : Pinned(nicArgs), Binaries.Marker(Binaries.Nic), sandbox ? net!.HostNamespace : null,
                "attached to inet", $"the NIC driver on {state.Adapter}");
            if (sandbox)
            {
                var ports = new PeerPorts();
                Launch("peer", ["ip", "netns", "exec", net!.PeerNamespace, dotnet, peer!, "--address", net.PeerAddress.ToString(),
                    "--echo", ports.Echo.ToString(System.Globalization.CultureInfo.InvariantCulture), "--discard", ports.Discard.ToString(System.Globalization.CultureInfo.InvariantCulture),
                    "--source", ports.Source.ToString(System.Globalization.CultureInfo.InvariantCulture), "--http", ports.Http.ToString(System.Globalization.CultureInfo.InvariantCulture),
                    "--rtt", ports.Rtt.ToString(System.Globalization.CultureInfo.InvariantCulture)],
                    Binaries.Peer, net.PeerNamespace, "ready", "the peer's servers (echo, discard, source, HTTP)");
                Launch("dns", net.DnsServerCommand(InstanceState.DirectoryFor(o.Instance)), "dnsmasq", net.PeerNamespace, SandboxNetwork.DnsReadyLine,
                    $"the peer's DNS server (dnsmasq, {SandboxNetwork.DnsDomain})");
            }
            WriteResolvConf(o, net);
            state = state with { Complete = true };
            state.Save();
            return state;
        }
        catch
        {
            progress("failed: taking down what was started");
            Down(state, _ => { });
            throw;
        }
    }

    /// <summary>One line per step of <see cref="Down"/>.</summary>
    public sealed record DownStep(string What, string Result);

    /// <summary>Stops what the state records, removes the sandbox, pool, socket and state. Safe to repeat.</summary>
    public static List<DownStep> Down(InstanceState state, Action<string> progress)
    {
        var steps = new List<DownStep>();
        // The supervisor first, so that it restarts nothing stopped below; then the state again:
        // it records the servers it restarted. (When the supervisor itself takes the instance
        // down, after its broker died, it is not in the list.)
        foreach (var r in state.Processes.Where(p => p.Name == "supervisor"))
        {
            progress($"stopping {r.Name} (pid {r.Pid})");
            steps.Add(new DownStep($"{r.Name} (pid {r.Pid})", ServerProcess.Stop(r, Grace)));
        }
        state = InstanceState.Load(state.Instance) is { } now && now.CreatedUtc == state.CreatedUtc ? now : state;
        // Processes that joined the instance by hand (a server under a debugger) are not ours
        // to stop: say so, so nobody wonders why one still runs after its broker is gone.
        try
        {
            var recorded = state.Processes.Where(ServerProcess.IsAlive).Select(p => p.Pid).ToHashSet();
            foreach (var p in JoinedByHand(PoolSnapshot.Read(state.PoolPath), recorded))
                steps.Add(new DownStep($"{p.Name} (pid {p.Pid})", "joined by hand, not started by anthost up: left running, stop it yourself"));
        }
        catch (Exception e) when (e is IOException or CliException or UnauthorizedAccessException)
        {
            // no pool (the broker is gone): nobody can have joined it
        }
        string[] order = ["nic", "peer", "inet", "broker"];
        foreach (var r in state.Processes.Where(p => p.Name != "supervisor").OrderBy(p => Array.IndexOf(order, p.Name) is var i && i < 0 ? 0 : i))
        {
            progress($"stopping {r.Name} (pid {r.Pid})");
            steps.Add(new DownStep($"{r.Name} (pid {r.Pid})", ServerProcess.Stop(r, r.Name == "peer" ? PeerGrace : Grace)));
        }
        if (state.Network == "sandbox" && state.Prefix is not null)
        {
            progress($"removing the sandbox network '{state.Prefix}'");
            bool had = SandboxNetwork.Namespaces(state.Prefix).Count > 0;
            SandboxNetwork.Sweep(state.Prefix);
            steps.Add(new DownStep($"namespaces {string.Join(", ", state.Namespaces)}", had ? "removed" : "already gone"));
        }
        steps.AddRange(RemoveKernelFiles(state.Instance, state.Processes.Where(p => p.Name == "broker").ToList()));
        InstanceState.Remove(state.Instance);
        steps.Add(new DownStep("state " + InstanceState.PathFor(state.Instance), "removed"));
        return steps;
    }

    /// <summary>
    /// The pool's processes that run and that <c>up</c> did not start (not in
    /// <paramref name="recordedPids"/>). A dead broker's table is a leftover: what it shows
    /// as alive died with it or never learnt of its death, so nothing is named then; nor is
    /// an entry whose pid no longer runs.
    /// </summary>
    internal static List<PoolProcess> JoinedByHand(PoolSnapshot pool, IReadOnlySet<int> recordedPids)
    {
        if (ServerProcess.StartTicks(pool.BrokerPid) is null) return [];
        return pool.Processes.Where(p => p.State == "alive" && !recordedPids.Contains(p.Pid) && ServerProcess.StartTicks(p.Pid) is not null).ToList();
    }

    /// <summary>
    /// Removes the pool file and socket a dead broker left. A broker that still runs for this
    /// instance and is not one we started (started by hand) keeps them: they are its.
    /// </summary>
    public static List<DownStep> RemoveKernelFiles(string instance, IReadOnlyList<ProcessRecord> ours)
    {
        var steps = new List<DownStep>();
        string pool = IcaPool.PathFor(instance), tables = IcaPool.TablesPathFor(instance), socket = $"/run/anthost/{instance}.sock";
        int brokerPid = ReadBrokerPid(tables);
        if (brokerPid > 0 && ServerProcess.StartTicks(brokerPid) is not null && IsBroker(brokerPid) && !ours.Any(p => p.Pid == brokerPid && ServerProcess.IsAlive(p)))
        {
            steps.Add(new DownStep($"pool {pool}", $"kept: broker pid {brokerPid} (not started by anthost up) still runs"));
            return steps;
        }
        foreach (var f in new[] { pool, tables, socket })
        {
            if (!File.Exists(f)) { steps.Add(new DownStep(f, "already gone")); continue; }
            File.Delete(f);
            steps.Add(new DownStep(f, "removed (left by a broker that did not stop cleanly)"));
        }
        // Wake sockets of processes that were killed while they slept in poll (see Doorbell),
        // and panels of NIC drivers that were killed (see NicPanel).
        foreach (var f in (Directory.Exists("/run/anthost") ? Directory.GetFiles("/run/anthost", instance + ".wake.*") : [])
            .Concat(Directory.GetFiles("/dev/shm", $"anthost-{instance}.nic-*")))
        {
            File.Delete(f);
            steps.Add(new DownStep(f, "removed (left by a process that did not stop cleanly)"));
        }
        return steps;
    }

    private static bool IsBroker(int pid)
    {
        try { return File.ReadAllText($"/proc/{pid}/cmdline").Contains("anthost-kernel", StringComparison.Ordinal); }
        catch (IOException) { return false; }
    }

    private static int ReadBrokerPid(string tables)
    {
        try
        {
            using var fs = new FileStream(tables, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            Span<byte> h = stackalloc byte[64];
            if (fs.Read(h) < 64) return 0;
            return System.Buffers.Binary.BinaryPrimitives.ReadInt32LittleEndian(h[44..]);
        }
        catch (IOException) { return 0; }
    }
}
