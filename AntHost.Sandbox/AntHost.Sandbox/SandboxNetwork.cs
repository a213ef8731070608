using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text.Json;

namespace AntHost.Sandbox;

/// <summary>
/// The sandbox network: AntHost's side and a Linux kernel as the remote host, in two network
/// namespaces joined by a veth pair, with addresses in 198.18.0.0/15.
///
/// <code>
///   PREFIX-host                                    PREFIX-peer
///   +-----------------------------+  veth pair  +------------------------------+
///   | anthost0  (no kernel IP,    |=============| peer0  198.18.0.1/24         |
///   |  arp_ignore=8, no IPv6)     |             |  Linux TCP/IP = remote host  |
///   |  NIC driver (libpcap)       |             |  anthost-peer: echo, discard,|
///   |  speaks as 198.18.0.2       |             |  source, HTTP; nft loss; tbf |
///   +-----------------------------+             +------------------------------+
/// </code>
///
/// AntHost's address lives only in the NIC driver. If the host namespace's kernel held it,
/// it would answer ARP for it and reset TCP connections it does not know: so that kernel has no
/// IPv4 address on the veth, ignores ARP (arp_ignore=8) and announces nothing (arp_announce=2),
/// and has IPv6 off. The peer's IPv6 is off too: an IPv4 sandbox stays quiet. Offloads are off
/// on both ends; left on, the peer hands libpcap 64 KiB super-frames with unfilled checksums.
///
/// Everything is made with ordinary commands; a failure throws <see cref="SandboxCommandException"/>
/// naming the command and its stderr. <see cref="Destroy"/> is idempotent, and
/// <see cref="Create"/> first sweeps whatever an earlier crash left under the same prefix.
/// </summary>
public sealed class SandboxNetwork : IDisposable
{
    private const string LossTable = "anthost_loss";
    private Process? _servers;
    private bool _destroyed;

    private SandboxNetwork(SandboxOptions options)
    {
        Options = options;
        HostNamespace = options.Prefix + "-host";
        PeerNamespace = options.Prefix + "-peer";
        (PeerAddress, PrefixLength) = SandboxOptions.ParseCidr(options.PeerAddress, nameof(options.PeerAddress));
        (HostAddress, _) = SandboxOptions.ParseCidr(options.HostAddress, nameof(options.HostAddress));
        if (options.HostKernelAddress is not null)
            (HostKernelAddress, HostKernelPrefixLength) = SandboxOptions.ParseCidr(options.HostKernelAddress, nameof(options.HostKernelAddress));
    }

    public SandboxOptions Options { get; }

    /// <summary>AntHost's namespace: the NIC driver runs here (<c>ip netns exec</c>).</summary>
    public string HostNamespace { get; }

    /// <summary>The remote host's namespace.</summary>
    public string PeerNamespace { get; }

    /// <summary>The adapter the NIC driver opens.</summary>
    public string HostInterface => SandboxOptions.HostInterface;

    /// <summary>The peer's end of the veth.</summary>
    public string PeerInterface => SandboxOptions.PeerInterface;

    /// <summary>The peer kernel's address.</summary>
    public IPAddress PeerAddress { get; }

    /// <summary>AntHost's address (held by the NIC driver and inet server, never by a kernel).</summary>
    public IPAddress HostAddress { get; }

    /// <summary>The host namespace kernel's own address on the veth (the benchmarks' baseline), or null when it has none.</summary>
    public IPAddress? HostKernelAddress { get; }

    private int HostKernelPrefixLength { get; }

    /// <summary>The prefix length of both addresses.</summary>
    public int PrefixLength { get; }

    /// <summary>The peer's veth MAC, as <c>aa:bb:cc:dd:ee:ff</c>.</summary>
    public string PeerMac { get; private set; } = "";

    /// <summary>The host end's own hardware MAC (the NIC driver uses its own address unless told this one).</summary>
    public string HostInterfaceMac { get; private set; } = "";

    /// <summary>The PID of the peer's server process, when running.</summary>
    public int? ServersPid => _servers is { HasExited: false } p ? p.Id : null;

    /// <summary>Builds the network (sweeping leftovers of the same prefix first). On failure, everything made so far is removed.</summary>
    public static SandboxNetwork Create(SandboxOptions? options = null)
    {
        options ??= new SandboxOptions();
        options.Validate();
        Sweep(options.Prefix);
        var sandbox = new SandboxNetwork(options);
        try
        {
            sandbox.Build();
            return sandbox;
        }
        catch
        {
            sandbox.Destroy();
            throw;
        }
    }

    private void Build()
    {
        var o = Options;
        Ip("netns", "add", HostNamespace);
        Ip("netns", "add", PeerNamespace);

        // The host side's kernel must never speak for AntHost's address: set the defaults
        // before the veth exists so it is born with them, then set them on it by name too.
        SysctlIn(HostNamespace,
            "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1",
            "net.ipv4.conf.all.arp_ignore=8", "net.ipv4.conf.default.arp_ignore=8",
            "net.ipv4.conf.all.arp_announce=2", "net.ipv4.conf.default.arp_announce=2",
            "net.ipv4.ip_forward=0");
        SysctlIn(PeerNamespace, "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1");

        Ip("-n", HostNamespace, "link", "add", HostInterface, "type", "veth", "peer", "name", PeerInterface, "netns", PeerNamespace);
        SysctlIn(HostNamespace,
            $"net.ipv6.conf.{HostInterface}.disable_ipv6=1",
            $"net.ipv4.conf.{HostInterface}.arp_ignore=8",
            $"net.ipv4.conf.{HostInterface}.arp_announce=2");
        SysctlIn(PeerNamespace, $"net.ipv6.conf.{PeerInterface}.disable_ipv6=1");

        foreach (var (ns, dev) in new[] { (HostNamespace, HostInterface), (PeerNamespace, PeerInterface) })
        {
            Ip("-n", ns, "link", "set", dev, "mtu", o.Mtu.ToString(CultureInfo.InvariantCulture));
            if (o.OffloadsOff)
                CommandRunner.CheckIn(ns, "ethtool", ["-K", dev, "tso", "off", "gso", "off", "gro", "off", "tx", "off", "rx", "off", "sg", "off"],
                    $"turning offloads off on {dev}");
            Ip("-n", ns, "link", "set", "lo", "up");
        }
        Ip("-n", PeerNamespace, "addr", "add", $"{PeerAddress}/{PrefixLength}", "dev", PeerInterface);
        if (HostKernelAddress is not null)
        {
            // The kernel answers ARP for what it holds on the veth and nothing else; the
            // effective arp_ignore is the larger of "all" and the interface's, so both go to 1.
            SysctlIn(HostNamespace, "net.ipv4.conf.all.arp_ignore=1", $"net.ipv4.conf.{HostInterface}.arp_ignore=1");
            Ip("-n", HostNamespace, "addr", "add", $"{HostKernelAddress}/{HostKernelPrefixLength}", "dev", HostInterface);
        }
        Ip("-n", HostNamespace, "link", "set", HostInterface, "up");
        Ip("-n", PeerNamespace, "link", "set", PeerInterface, "up");

        PeerMac = ReadMac(PeerNamespace, PeerInterface);
        HostInterfaceMac = ReadMac(HostNamespace, HostInterface);

        if (o.LossInPercent > 0 || o.LossOutPercent > 0) SetLoss(o.LossInPercent, o.LossOutPercent);
        if (o.RateLimit is not null) SetRateLimit(o.RateLimit);
        if (o.StartServers)
        {
            StartServers();
            StartDns();
        }
    }

    // ---- faults and limits -----------------------------------------------------------------

    /// <summary>
    /// Random loss of IPv4 packets at the peer, in percent, each direction on its own (0 clears
    /// it). ARP is not affected (it is not in the inet family), so neighbours still resolve.
    /// </summary>
    public void SetLoss(double inPercent, double outPercent)
    {
        if (inPercent is < 0 or > 100 || outPercent is < 0 or > 100) throw new ArgumentException("loss must be 0..100 percent");
        ClearLoss();
        if (inPercent == 0 && outPercent == 0) return;
        // numgen random mod 10000 draws 0..9999: below p*100 is p percent; 100 percent drops all.
        static string Rule(string match, double percent)
        {
            int limit = (int)Math.Round(percent * 100);
            return limit <= 0 ? "" : limit >= 10000 ? $"{match} counter drop" : $"{match} numgen random mod 10000 < {limit} counter drop";
        }
        string script = $$"""
            table inet {{LossTable}} {
              chain input {
                type filter hook input priority -10; policy accept;
                {{Rule($"iifname \"{PeerInterface}\"", inPercent)}}
              }
              chain output {
                type filter hook output priority -10; policy accept;
                {{Rule($"oifname \"{PeerInterface}\"", outPercent)}}
              }
            }
            """;
        CommandRunner.CheckIn(PeerNamespace, "nft", ["-f", "-"], "installing the loss rules", script);
    }

    /// <summary>Removes the loss rules (nothing happens when there are none).</summary>
    public void ClearLoss()
    {
        var r = CommandRunner.RunIn(PeerNamespace, "nft", ["list", "table", "inet", LossTable]);
        if (r.Succeeded) CommandRunner.CheckIn(PeerNamespace, "nft", ["delete", "table", "inet", LossTable], "removing the loss rules");
    }

    /// <summary>How many packets the loss rules dropped so far (input, output).</summary>
    public (long In, long Out) LossDropped() => NftCounted(PeerNamespace, "inet", LossTable, "input");

    /// <summary>
    /// The packets the counters of an nftables table in <paramref name="ns"/> counted so far:
    /// those in the chain named <paramref name="inChain"/>, and those in every other chain
    /// ((0, 0) when the table is not there).
    /// </summary>
    public static (long In, long Out) NftCounted(string ns, string family, string table, string inChain)
    {
        var r = CommandRunner.RunIn(ns, "nft", ["-j", "list", "table", family, table]);
        if (!r.Succeeded) return (0, 0);
        long input = 0, output = 0;
        using var doc = JsonDocument.Parse(r.StandardOutput);
        foreach (var item in doc.RootElement.GetProperty("nftables").EnumerateArray())
        {
            if (!item.TryGetProperty("rule", out var rule)) continue;
            string chain = rule.GetProperty("chain").GetString() ?? "";
            foreach (var expr in rule.GetProperty("expr").EnumerateArray())
                if (expr.TryGetProperty("counter", out var c))
                {
                    long n = c.GetProperty("packets").GetInt64();
                    if (chain == inChain) input += n; else output += n;
                }
        }
        return (input, output);
    }

    /// <summary>A token-bucket rate limit on both ends' egress (tc tbf), e.g. <c>100mbit</c>.</summary>
    public void SetRateLimit(string rate)
    {
        new SandboxOptions { RateLimit = rate }.Validate();
        foreach (var (ns, dev) in new[] { (HostNamespace, HostInterface), (PeerNamespace, PeerInterface) })
            CommandRunner.CheckIn(ns, "tc", ["qdisc", "replace", "dev", dev, "root", "tbf", "rate", rate, "burst", "64kb", "latency", "50ms"],
                $"setting the rate limit on {dev}");
    }

    /// <summary>Removes the rate limits (nothing happens when there are none).</summary>
    public void ClearRateLimit()
    {
        foreach (var (ns, dev) in new[] { (HostNamespace, HostInterface), (PeerNamespace, PeerInterface) })
        {
            var r = CommandRunner.RunIn(ns, "tc", ["qdisc", "show", "dev", dev]);
            if (r.Succeeded && r.StandardOutput.Contains("tbf", StringComparison.Ordinal))
                CommandRunner.CheckIn(ns, "tc", ["qdisc", "del", "dev", dev, "root"], $"removing the rate limit on {dev}");
        }
    }

    // ---- running things inside ---------------------------------------------------------------

    /// <summary>Runs a command in the peer namespace (the remote host's point of view).</summary>
    public CommandResult RunInPeer(string file, params string[] arguments) => CommandRunner.RunIn(PeerNamespace, file, arguments);

    /// <summary>Runs a command in AntHost's namespace.</summary>
    public CommandResult RunInHost(string file, params string[] arguments) => CommandRunner.RunIn(HostNamespace, file, arguments);

    /// <summary>Starts (or restarts) the peer's servers and waits until they listen.</summary>
    public void StartServers()
    {
        StopServers();
        var peerDll = Path.Combine(AppContext.BaseDirectory, "anthost-peer.dll");
        if (!File.Exists(peerDll))
            throw new SandboxCommandException($"the peer's servers are not built: {peerDll} is missing (build AntHost.Sandbox)");
        var p = Options.Ports;
        var psi = new ProcessStartInfo("ip")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var a in new[]
        {
            "netns", "exec", PeerNamespace, DotnetHost(), peerDll, "--address", PeerAddress.ToString(),
            "--echo", p.Echo.ToString(CultureInfo.InvariantCulture), "--discard", p.Discard.ToString(CultureInfo.InvariantCulture),
            "--source", p.Source.ToString(CultureInfo.InvariantCulture), "--http", p.Http.ToString(CultureInfo.InvariantCulture),
            "--rtt", p.Rtt.ToString(CultureInfo.InvariantCulture),
        })
            psi.ArgumentList.Add(a);
        var process = Process.Start(psi) ?? throw new SandboxCommandException("the peer's servers could not be started");
        var stderr = process.StandardError.ReadToEndAsync();
        var ready = process.StandardOutput.ReadLineAsync();
        if (!ready.Wait(TimeSpan.FromSeconds(60)) || ready.Result != "ready")
        {
            try { process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            process.WaitForExit(5000);
            string err = stderr.IsCompleted ? stderr.Result.Trim() : "";
            process.Dispose();
            throw new SandboxCommandException($"the peer's servers in {PeerNamespace} did not become ready: {(err.Length > 0 ? err : "no output")}");
        }
        _servers = process;
    }

    /// <summary>Stops the peer's servers (closing their stdin asks them to go; then they are killed).</summary>
    public void StopServers()
    {
        var p = _servers;
        _servers = null;
        if (p is null) return;
        try
        {
            if (!p.HasExited)
            {
                p.StandardInput.Close();
                if (!p.WaitForExit(2000)) p.Kill(entireProcessTree: true);
                p.WaitForExit(5000);
            }
        }
        catch (InvalidOperationException)
        {
        }
        p.Dispose();
    }

    // ---- the peer's DNS server ---------------------------------------------------------------

    /// <summary>The domain the peer's DNS server is authoritative for (RFC 6761 reserves .test).</summary>
    public const string DnsDomain = "anthost.test";

    /// <summary>The peer kernel's name.</summary>
    public const string PeerName = "peer." + DnsDomain;

    /// <summary>AntHost's own name (its address in the sandbox).</summary>
    public const string HostName = "anthost." + DnsDomain;

    /// <summary>An alias of the peer (a CNAME to <see cref="PeerName"/>).</summary>
    public const string AliasName = "www." + DnsDomain;

    /// <summary>A name with <see cref="ManyCount"/> addresses: its answer does not fit 512 bytes of UDP (a resolver's TCP fallback).</summary>
    public const string ManyName = "many." + DnsDomain;

    public const int ManyCount = 40;

    /// <summary>Seconds the peer's DNS server gives its records.</summary>
    public const int DnsTtl = 30;

    private Process? _dns;

    /// <summary>The PID of the peer's DNS server, when running.</summary>
    public int? DnsPid => _dns is { HasExited: false } p ? p.Id : null;

    /// <summary>
    /// The command that runs the peer's DNS server (dnsmasq from Debian) inside the peer
    /// namespace: in the foreground, logging to stderr, bound only to the peer's address
    /// (port 53, UDP and TCP), no upstream servers (--no-resolv: it knows only its own
    /// names and refuses the rest), no /etc/hosts, no DHCP; it keeps root (the sandbox's own
    /// process, killed with the namespace). Its names go into <c>DIRECTORY/hosts</c>:
    /// peer.anthost.test, anthost.anthost.test, www.anthost.test (a CNAME of the peer) and
    /// many.anthost.test (40 addresses); any other name under anthost.test does not exist.
    /// </summary>
    public string[] DnsServerCommand(string directory)
    {
        Directory.CreateDirectory(directory);
        string hosts = Path.Combine(directory, "hosts");
        var sb = new System.Text.StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"{PeerAddress} {PeerName} peer\n");
        sb.Append(CultureInfo.InvariantCulture, $"{HostAddress} {HostName} anthost\n");
        for (int i = 1; i <= ManyCount; i++) sb.Append(CultureInfo.InvariantCulture, $"198.18.1.{i} {ManyName}\n");
        File.WriteAllText(hosts, sb.ToString());
        return ["ip", "netns", "exec", PeerNamespace, "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--no-poll",
            $"--listen-address={PeerAddress}", "--bind-dynamic", "--pid-file=", "--user=root", "--port=53",
            $"--local=/{DnsDomain}/", $"--domain={DnsDomain}", $"--addn-hosts={hosts}", $"--cname={AliasName},{PeerName}",
            $"--local-ttl={DnsTtl}", "--log-facility=-"];
    }

    /// <summary>What dnsmasq logs once it listens.</summary>
    public const string DnsReadyLine = "started, version";

    /// <summary>The resolv.conf an app of this sandbox uses: the peer's DNS server, searching anthost.test.</summary>
    public string ResolvConf => $"nameserver {PeerAddress}\nsearch {DnsDomain}\noptions ndots:1 timeout:2 attempts:2\n";

    /// <summary>Starts (or restarts) the peer's DNS server and waits until it listens; <see cref="Destroy"/> stops it.</summary>
    public void StartDns()
    {
        StopDns();
        string dir = Path.Combine(Path.GetTempPath(), $"anthost-{Options.Prefix}-dns");
        var command = DnsServerCommand(dir);
        var psi = new ProcessStartInfo(command[0]) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in command.Skip(1)) psi.ArgumentList.Add(a);
        Process process;
        try
        {
            process = Process.Start(psi) ?? throw new SandboxCommandException("dnsmasq could not be started");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new SandboxCommandException($"dnsmasq could not be started ({e.Message}); install dnsmasq-base (scripts/prereqs.sh)");
        }
        var log = new System.Text.StringBuilder();
        var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null) { ready.TrySetException(new SandboxCommandException($"dnsmasq in {PeerNamespace} exited: {log}")); return; }
            lock (log) log.AppendLine(e.Data);
            if (e.Data.Contains(DnsReadyLine, StringComparison.Ordinal)) ready.TrySetResult();
        };
        process.BeginErrorReadLine();
        process.BeginOutputReadLine();
        bool started;
        try { started = ready.Task.Wait(TimeSpan.FromSeconds(10)); }
        catch (AggregateException) { started = false; }
        if (!started)
        {
            try { process.Kill(); } catch (InvalidOperationException) { }
            process.WaitForExit(5000);
            process.Dispose();
            lock (log) throw new SandboxCommandException($"dnsmasq in {PeerNamespace} did not start: {log.ToString().Trim()}");
        }
        _dns = process;
    }

    /// <summary>Stops the peer's DNS server (nothing happens when it is not running).</summary>
    public void StopDns()
    {
        var p = _dns;
        _dns = null;
        if (p is null) return;
        try
        {
            if (!p.HasExited)
            {
                p.Kill();
                p.WaitForExit(5000);
            }
        }
        catch (InvalidOperationException) { }
        p.Dispose();
        try { Directory.Delete(Path.Combine(Path.GetTempPath(), $"anthost-{Options.Prefix}-dns"), recursive: true); }
        catch (IOException) { }
    }

    /// <summary>The <c>dotnet</c> host that runs framework-dependent AntHost programs inside a namespace.</summary>
    public static string DotnetHost()
    {
        if (Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } h && File.Exists(h)) return h;
        if (Environment.ProcessPath is { } self && Path.GetFileNameWithoutExtension(self) == "dotnet") return self;
        foreach (var dir in new[] { Environment.GetEnvironmentVariable("DOTNET_ROOT"), "/usr/share/dotnet", "/usr/lib/dotnet", "/usr/local/share/dotnet" })
            if (dir is not null && File.Exists(Path.Combine(dir, "dotnet"))) return Path.Combine(dir, "dotnet");
        return "dotnet";
    }

    // ---- teardown ----------------------------------------------------------------------------

    /// <summary>Removes everything this sandbox made: its processes, both namespaces (and so the veth, the rules and limits). Safe to call twice.</summary>
    public void Destroy()
    {
        if (_destroyed) return;
        StopDns();
        StopServers();
        Sweep(Options.Prefix);
        _destroyed = true;
    }

    public void Dispose() => Destroy();

    /// <summary>The namespaces that exist now and belong to <paramref name="prefix"/> (<c>PREFIX-host</c>, <c>PREFIX-peer</c>).</summary>
    public static IReadOnlyList<string> Namespaces(string prefix) =>
        ListNamespaces().Where(n => n == prefix + "-host" || n == prefix + "-peer").ToList();

    /// <summary>Every network namespace name (<c>ip netns list</c>).</summary>
    public static IReadOnlyList<string> ListNamespaces()
    {
        var r = CommandRunner.Check("ip", ["netns", "list"], "listing network namespaces");
        return r.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(l => l.Split(' ')[0]).ToList();
    }

    /// <summary>
    /// Removes what a sandbox with this prefix left, also after a crash: kills the processes
    /// inside its namespaces (by PID, as <c>ip netns pids</c> lists them; never this process)
    /// and deletes the namespaces, which takes the veth and everything on it along.
    /// </summary>
    public static void Sweep(string prefix)
    {
        new SandboxOptions { Prefix = prefix }.Validate();
        foreach (var ns in Namespaces(prefix)) RemoveNamespace(ns);
    }

    /// <summary>Sweeps every sandbox whose prefix starts with <paramref name="namePrefix"/> (e.g. <c>aht-</c> for the tests).</summary>
    public static void SweepAll(string namePrefix)
    {
        if (string.IsNullOrEmpty(namePrefix)) throw new ArgumentException("a name prefix is required", nameof(namePrefix));
        foreach (var ns in ListNamespaces())
            if (ns.StartsWith(namePrefix, StringComparison.Ordinal) && (ns.EndsWith("-host", StringComparison.Ordinal) || ns.EndsWith("-peer", StringComparison.Ordinal)))
                RemoveNamespace(ns);
    }

    private static void RemoveNamespace(string ns)
    {
        for (int attempt = 0; attempt < 3; attempt++)
        {
            var pids = CommandRunner.Run("ip", ["netns", "pids", ns]);
            if (!pids.Succeeded) break;
            var list = pids.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(s => int.TryParse(s, out int v) ? v : -1).Where(v => v > 0 && v != Environment.ProcessId).ToList();
            if (list.Count == 0) break;
            foreach (var pid in list)
            {
                try
                {
                    using var p = Process.GetProcessById(pid);
                    p.Kill(entireProcessTree: false);
                    p.WaitForExit(5000);
                }
                catch (ArgumentException) { } // already gone
                catch (InvalidOperationException) { }
            }
        }
        var del = CommandRunner.Run("ip", ["netns", "del", ns]);
        if (!del.Succeeded && ListNamespaces().Contains(ns))
            throw new SandboxCommandException(del, $"removing network namespace {ns}");
    }

    // ---- helpers ---------------------------------------------------------------------------------

    private static void Ip(params string[] args) => CommandRunner.Check("ip", args);

    private static void SysctlIn(string ns, params string[] settings) =>
        CommandRunner.CheckIn(ns, "sysctl", new[] { "-q", "-w" }.Concat(settings), $"setting sysctls in {ns}");

    private static string ReadMac(string ns, string dev)
    {
        var r = CommandRunner.Check("ip", ["-n", ns, "-j", "link", "show", dev], $"reading the MAC of {dev}");
        using var doc = JsonDocument.Parse(r.StandardOutput);
        return doc.RootElement[0].GetProperty("address").GetString() ?? "";
    }
}
