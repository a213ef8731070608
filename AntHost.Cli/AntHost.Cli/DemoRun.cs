// `anthost demo`: the stack up on a sandbox of its own, then what it can do today, seen
// from the peer's Linux kernel (a remote host that nobody here wrote): the kernel resolves
// AntHost's address by ARP and gets the driver's MAC; it pings AntHost through the driver,
// inet and back, and the round trips are measured; a UDP datagram to a port nobody
// listens on comes back as ICMP port unreachable, which the kernel reports to its socket
// as "connection refused". Then TCP through AntHost's own sockets: the paper's RTT test at
// 256 B through AntHost beside the host kernel's TCP (which holds an address of its own on
// the same veth for this), and the samples, each its own app process: TCP echo, HttpClient
// GET, ping from AntHost, UDP echo, and a web server on AntHost's address that curl in the
// peer namespace reaches. Every figure printed is measured in this run. The instance is
// taken down at the end whatever happened, Ctrl-C included.
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using AntHost.Bench.Ipc;
using AntHost.Bench.Net;
using AntHost.Inet.Abi;
using AntHost.Sandbox;
using Spectre.Console;

namespace AntHost.Cli;

internal static class DemoRun
{
    private static readonly CultureInfo Ci = CultureInfo.InvariantCulture;

    /// <summary>How long one echo may take before it counts as lost: generous, since a loaded machine is not a lossy link.</summary>
    private static readonly TimeSpan EchoPatience = TimeSpan.FromSeconds(5);

    private sealed record Check(string What, bool Ok, string Detail);

    public static int Run(UpOptions o, int pings)
    {
        Instance.RequireRoot("anthost demo");
        using var interruption = new Interruption();
        var checks = new List<Check>();
        InstanceState? state = null;
        try
        {
            AnsiConsole.MarkupLine("[bold]AntHost demo[/]: broker, inet server and NIC driver as three processes; the peer is the Linux kernel in its own namespace");
            state = Commands.Progress("bringing the stack up", step => Instance.Up(o with { HostKernelAddress = BenchRun.HostKernelAddress }, step, interruption.Token));
            AnsiConsole.MarkupLineInterpolated($"[green]up[/]: {string.Join(", ", state.Processes.Select(p => $"{p.Name} pid {p.Pid}"))}");
            Commands.Progress("measuring", step => { Measure(state, pings, checks, step, interruption.Token); return 0; });
        }
        catch (OperationCanceledException)
        {
            checks.Add(new Check("interrupted", false, "Ctrl-C or SIGTERM: everything was taken down"));
        }
        catch (ServerFailedException e)
        {
            checks.Add(new Check("bring-up", false, e.Message));
            AnsiConsole.WriteLine($"---- last lines of {e.Process.Log} ----");
            AnsiConsole.WriteLine(ServerProcess.Tail(e.Process.Log));
        }
        catch (Exception e) when (e is CliException or SandboxCommandException or SocketException)
        {
            checks.Add(new Check("demo", false, e.Message));
        }
        finally
        {
            // Only what this run brought up: a failed Up has taken down what it started itself,
            // and an Up refused because the instance was already up must leave that instance alone.
            if (state is not null)
            {
                var s = state;
                var steps = Commands.Progress("taking the stack down", step => Instance.Down(s, step));
                bool clean = steps.All(x => x.Result is not "would not die");
                AnsiConsole.MarkupLine((clean ? "[green]down[/]: " : "[red]down, with trouble[/]: ") + Markup.Escape(string.Join("; ", steps.Select(x => $"{x.What} {x.Result}"))));
                AnsiConsole.MarkupLineInterpolated($"logs kept in {s.LogDirectory}");
            }
        }

        if (AnsiConsole.Profile.Capabilities.Interactive)
        {
            var t = new Table().Title("what the running stack did, measured in this run").AddColumn("").AddColumn("check").AddColumn("measured");
            foreach (var c in checks) t.AddRow(c.Ok ? "[green]ok[/]" : "[red]FAILED[/]", Markup.Escape(c.What), Markup.Escape(c.Detail));
            AnsiConsole.Write(t);
        }
        else
        {
            // A log or a pipe: one unwrapped line per check, so each reads (and greps) whole.
            Console.WriteLine("what the running stack did, measured in this run:");
            foreach (var c in checks) Console.WriteLine($"{(c.Ok ? "ok" : "FAILED"),-6} {c.What}: {c.Detail}");
        }
        bool ok = checks.Count > 0 && checks.All(c => c.Ok);
        AnsiConsole.MarkupLine(ok ? "[green]demo passed[/]" : "[red]demo failed[/]");
        return ok ? 0 : 1;
    }

    private static void Measure(InstanceState state, int pings, List<Check> checks, Action<string> status, CancellationToken ct)
    {
        string peerNs = state.Namespaces[1];
        var host = IPAddress.Parse(state.Address.Split('/')[0]);
        var before = InetProbe.Stats(state.Instance, TimeSpan.FromSeconds(10));
        string mac = InetProbe.FormatMac(before[(int)InetStat.Mac]);
        checks.Add(new Check("the NIC driver attached to inet", before[(int)InetStat.Attached] == 1,
            $"MAC {mac}, link {(AbiLinkState)before[(int)InetStat.Link]}, attachment #{before[(int)InetStat.Attaches]}"));

        // ARP: the peer's kernel knows nothing of 198.18.0.2; its first echo request makes it ask.
        status("ARP and the first echo");
        using var pinger = new PeerPinger(peerNs, host);
        double? first = pinger.Ping(0, TimeSpan.FromSeconds(10));
        string neigh = CommandRunner.RunIn(peerNs, "ip", ["neigh", "show", host.ToString(), "dev", SandboxOptions.PeerInterface]).StandardOutput.Trim();
        bool learned = neigh.Contains("lladdr " + mac, StringComparison.Ordinal);
        checks.Add(new Check($"the peer's kernel resolved {host} by ARP", learned && first is not null,
            $"ip neigh: '{neigh}'; first echo with the ARP exchange: {(first is null ? "no reply" : $"{first:F0} us")}"));

        // Ping: a warm-up, then the measured round trips.
        int warm = Math.Max(1, pings / 4), lost = 0;
        for (int i = 1; i <= warm; i++)
        {
            ct.ThrowIfCancellationRequested();
            if (pinger.Ping((ushort)i, EchoPatience) is null) lost++;
        }
        status($"{pings} echo requests");
        var rtt = new List<double>(pings);
        for (int i = 0; i < pings; i++)
        {
            ct.ThrowIfCancellationRequested();
            if (pinger.Ping((ushort)(warm + 1 + i), EchoPatience) is { } us) rtt.Add(us); else lost++;
        }
        rtt.Sort();
        string figures = rtt.Count == 0 ? "no reply" :
            $"{rtt.Count}/{pings} answered after {warm} of warm-up; round trip min {rtt[0]:F0} us, median {rtt[rtt.Count / 2]:F0} us, p99 {rtt[Math.Min(rtt.Count - 1, rtt.Count * 99 / 100)]:F0} us, max {rtt[^1]:F0} us";
        checks.Add(new Check($"ping {host} from the peer (kernel -> veth -> driver -> inet -> driver -> veth -> kernel)", lost == 0 && rtt.Count == pings, figures));

        // A datagram to a port nobody listens on: ICMP port unreachable, reported by the peer's kernel.
        status("UDP to a closed port");
        const int closedPort = 33434;
        using var udp = NamespaceThread.Run(peerNs, () =>
        {
            var u = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            u.Connect(new IPEndPoint(host, closedPort));
            return u;
        });
        // UDP promises nothing: like traceroute, up to three probes, each given 3 s; the report
        // says which one was answered.
        udp.ReceiveTimeout = 3_000;
        SocketError got = SocketError.Success;
        double elapsed = 0;
        int attempt = 0;
        while (attempt < 3 && got != SocketError.ConnectionRefused)
        {
            ct.ThrowIfCancellationRequested();
            attempt++;
            long t0 = Stopwatch.GetTimestamp();
            udp.Send("anyone there?"u8.ToArray());
            // The time is taken when the ICMP error is pending on the socket (poll's POLLERR),
            // not after Receive: a process's first SocketException costs ~15 ms to build, which
            // would be timed instead of the stack.
            bool pending = udp.Poll(3_000_000, SelectMode.SelectError);
            elapsed = Stopwatch.GetElapsedTime(t0).TotalMicroseconds;
            if (!pending) { got = SocketError.TimedOut; continue; }
            try { udp.Receive(new byte[64]); got = SocketError.Success; }
            catch (SocketException e) { got = e.SocketErrorCode; }
        }
        string neighbour = CommandRunner.RunIn(peerNs, "ip", ["neigh", "show", host.ToString(), "dev", SandboxOptions.PeerInterface]).StandardOutput.Trim();
        checks.Add(new Check($"UDP to {host}:{closedPort} (nobody listens) gets ICMP port unreachable", got == SocketError.ConnectionRefused,
            got == SocketError.ConnectionRefused
                ? $"the peer's socket reported connection refused {elapsed:F0} us after the send (probe {attempt} of 3)"
                : $"no ICMP error after 3 probes (the peer's socket reported {got}); the peer's neighbour entry: '{neighbour}'"));

        // The paper's RTT test at 256 B, a first figure: AntHost beside the host kernel's own TCP
        // over the same veth, against the same responder in the peer namespace.
        ct.ThrowIfCancellationRequested();
        status("RTT through AntHost and through the host kernel");
        Rtt(state, checks);

        // The samples, each a separate app process over the client library.
        Samples(state, checks, status, ct);

        // What inet counted meanwhile, and where every page is.
        status("counters");
        var after = InetProbe.Stats(state.Instance, TimeSpan.FromSeconds(10));
        long D(InetStat s) => after[(int)s] - before[(int)s];
        checks.Add(new Check("inet's counters over the demo", D(InetStat.BadRequests) == 0 && after[(int)InetStat.FramesNotSent] == 0,
            $"frames from the driver {D(InetStat.FramesFromDriver)}, frames sent {D(InetStat.FramesSent)}, ARP replies {D(InetStat.ArpRepliesOut)}, " +
            $"echo replies {D(InetStat.IcmpEchoRepliesOut)}, port unreachables {D(InetStat.IcmpUnreachableOut)}, UDP no-port {D(InetStat.UdpNoPort)}, " +
            $"bad requests {D(InetStat.BadRequests)}, rx drops {D(InetStat.IfaceRxDrops)}, frames not sent {after[(int)InetStat.FramesNotSent]}"));
        // Every sample has exited: each allocated page belongs to a live server, none to an app
        // or a dead process, none to nobody.
        var pool = PoolSnapshot.Read(state.PoolPath);
        int owned = pool.Processes.Sum(p => p.Pages);
        int apps = pool.Processes.Where(p => p.State == "alive" && !p.Server).Sum(p => p.Pages);
        int dead = pool.Processes.Where(p => p.State != "alive").Sum(p => p.Pages);
        checks.Add(new Check("pool pages after the samples: all with live servers (ownership table)", owned == pool.AllocatedPages && apps == 0 && dead == 0,
            $"{pool.AllocatedPages} of {pool.DataPages} allocated: " + string.Join(", ", pool.Processes.Where(p => p.Pages > 0 || p.State == "alive").Select(p => $"{p.Name} ({p.State}) {p.Pages} pages / {p.Icas} ICAs"))
            + $"; held by apps {apps}, by dead processes {dead}, by no process {pool.AllocatedPages - owned}"));
    }

    private const int RttRounds = 300, RttWarmUp = 100;

    private static void Rtt(InstanceState state, List<Check> checks)
    {
        var peer = new IPEndPoint(IPAddress.Parse(state.PeerAddress!.Split('/')[0]), new PeerPorts().Rtt);
        var kernel = new KernelStack(state.Namespaces[0], IPAddress.Parse(BenchRun.HostKernelAddress.Split('/')[0]), NamespaceThread.Run);
        var notes = new List<string>();
        Percentiles? k = null, a = null;
        string? error = null;
        try
        {
            k = Bench.Net.Measure.Rtt(kernel, peer, 256, RttWarmUp, RttRounds, TimeSpan.Zero);
            using var anthost = AntHostStack.TryCreate(state.Instance, state.SpinUs, notes);
            if (anthost is not null) a = Bench.Net.Measure.Rtt(anthost, peer, 256, RttWarmUp, RttRounds, TimeSpan.Zero);
        }
        catch (Exception e) when (e is SocketException or IOException or InvalidOperationException or AntHost.Kernel.KernelException)
        {
            error = e.Message;
        }
        string detail = (a is { } x ? $"AntHost median {x.MedianUs:F1} us (p99 {x.P99Us:F1} us)" : $"AntHost: {error ?? string.Join("; ", notes)}")
            + (k is { } y ? $"; the host kernel's TCP from {BenchRun.HostKernelAddress.Split('/')[0]} on the same veth: median {y.MedianUs:F1} us (p99 {y.P99Us:F1} us)" : "")
            + (a is { } p && k is { } q ? $"; AntHost ÷ kernel {p.MedianUs / Math.Max(1e-9, q.MedianUs):F2}x over {RttRounds} rounds (spin {state.SpinUs} us; `anthost bench rtt` for every size and both tunings)" : "");
        checks.Add(new Check("RTT, 256 B out and 1 B back to the peer's responder (the paper's test)", a is not null && k is not null, detail));
    }

    private sealed record Sample(string Name, string What, string[] Args);

    private static void Samples(InstanceState state, List<Check> checks, Action<string> status, CancellationToken ct)
    {
        string peer = state.PeerAddress!.Split('/')[0];
        var list = new List<Sample>
        {
            new("EchoClient", $"EchoClient: TCP echo with {peer}:7 through AntHost", ["--to", peer, "--count", "3"]),
            new("HttpGet", $"HttpGet: the standard HttpClient over AntHost (stack.CreateHttpHandler()) GETs http://{peer}/", ["--to", peer]),
            new("HttpGet", $"HttpGet by name: http://{SandboxNetwork.PeerName}/ resolved by the peer's dnsmasq over AntHost's UDP", ["--url", $"http://{SandboxNetwork.PeerName}/"]),
            new("Ping", $"Ping: ICMP echo from AntHost to {peer}", ["--to", peer, "--count", "3"]),
            new("UdpEcho", $"UdpEcho: datagrams to {peer}:7 and back", ["--to", peer, "--count", "3"]),
        };
        foreach (var sample in list)
        {
            ct.ThrowIfCancellationRequested();
            status($"sample {sample.Name}");
            if (sample.Name == "HttpGet")
            {
                CapturedSample(state, sample, checks, ct);
                continue;
            }
            var (ok, text) = RunSample(sample.Name, [.. sample.Args, "--instance", state.Instance], TimeSpan.FromSeconds(30));
            checks.Add(new Check(sample.What, ok, text));
        }

        // TLS material of this run: the HTTPS GET and the web server's HTTPS are validated against its CA alone.
        string tlsDir = Path.Combine(Path.GetTempPath(), $"anthost-demo-{state.Instance}-tls");
        var certificates = SandboxCertificates.Create(tlsDir);
        try
        {
            HttpsGet(state, certificates, checks, status, ct);
            WebServer(state, certificates, checks, status, ct);
        }
        finally
        {
            Directory.Delete(tlsDir, recursive: true);
        }
    }

    /// <summary>An HTTPS GET by name through AntHost to a TLS server the peer's kernel runs (openssl s_server), the certificate validated.</summary>
    private static void HttpsGet(InstanceState state, SandboxCertificates certificates, List<Check> checks, Action<string> status, CancellationToken ct)
    {
        ct.ThrowIfCancellationRequested();
        status("sample HttpGet over TLS");
        const int Port = 4433;
        string what = $"HttpGet over TLS: https://{SandboxNetwork.PeerName}:{Port}/ (openssl s_server on the peer), SslStream over AntHost, certificate validated";
        var command = certificates.PeerTlsServerCommand(state.Namespaces[1], state.PeerAddress!.Split('/')[0], Port);
        var psi = new ProcessStartInfo(command[0]) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false };
        foreach (var a in command.Skip(1)) psi.ArgumentList.Add(a);
        using var tls = Process.Start(psi)!;
        var tlsErr = tls.StandardError.ReadToEndAsync();
        try
        {
            for (int i = 0; i < 100 && !CommandRunner.RunIn(state.Namespaces[1], "ss", ["-ltn", $"sport = :{Port}"]).StandardOutput.Contains($":{Port}", StringComparison.Ordinal); i++)
                Thread.Sleep(50);
            var (ok, text) = RunSample("HttpGet", ["--url", $"https://{SandboxNetwork.PeerName}:{Port}/", "--ca", certificates.CaPem, "--instance", state.Instance], TimeSpan.FromSeconds(30));
            checks.Add(new Check(what, ok, text));
        }
        finally
        {
            if (!tls.HasExited) tls.Kill();
            tls.WaitForExit(5000);
        }
    }

    /// <summary>The web server sample (ASP.NET Core, Kestrel on AntHost) on AntHost's address, reached by curl from the peer's namespace over HTTP and HTTPS.</summary>
    private static void WebServer(InstanceState state, SandboxCertificates certificates, List<Check> checks, Action<string> status, CancellationToken ct)
    {
        string self = state.Address.Split('/')[0];
        ct.ThrowIfCancellationRequested();
        status("sample WebServer, reached by curl from the peer");
        string dll;
        try { dll = Binaries.FindSample("WebServer"); }
        catch (CliException e)
        {
            checks.Add(new Check("WebServer on AntHost reached by curl from the peer", false, e.Message));
            return;
        }
        var psi = new ProcessStartInfo(SandboxNetwork.DotnetHost()) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { dll, "--instance", state.Instance, "--listen", self, "--port", "8080", "--requests", "2", "--cert", certificates.Pfx }) psi.ArgumentList.Add(a);
        using var server = Process.Start(psi)!;
        var output = new System.Text.StringBuilder();
        var listening = new ManualResetEventSlim();
        server.OutputDataReceived += (_, e) => { if (e.Data is null) return; lock (output) output.AppendLine(e.Data); if (e.Data.Contains("listening", StringComparison.OrdinalIgnoreCase)) listening.Set(); };
        server.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.AppendLine(e.Data); };
        server.BeginOutputReadLine();
        server.BeginErrorReadLine();
        try
        {
            if (!listening.Wait(TimeSpan.FromSeconds(30), ct))
            {
                checks.Add(new Check("WebServer on AntHost reached by curl from the peer", false, $"the server did not say it listens: {Last(output)}"));
                return;
            }
            // The socket table while the server listens: its listener, owned by its process.
            try
            {
                var sockets = SsRun.Sockets(state.Instance);
                var listener = sockets.FirstOrDefault(x => x.Protocol == "tcp" && x.State == "LISTEN" && x.Local.EndsWith(":8080", StringComparison.Ordinal));
                checks.Add(new Check("anthost ss while WebServer runs: inet's socket table", listener is not null && listener.Pid == server.Id,
                    $"{sockets.Count} sockets: " + string.Join("; ", sockets.Take(6).Select(x => $"{x.Protocol} {x.State} {x.Local} {x.Remote} {x.Process ?? "-"}{(x.Pid is { } pid ? $" (pid {pid})" : "")}"))));
            }
            catch (CliException e)
            {
                checks.Add(new Check("anthost ss while WebServer runs: inet's socket table", false, e.Message));
            }
            string[] measure = ["-sS", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code} %{size_download} bytes in %{time_total} s"];
            var curl = CommandRunner.RunIn(state.Namespaces[1], "curl", [.. measure, $"http://{self}:8080/"]);
            var curlTls = CommandRunner.RunIn(state.Namespaces[1], "curl", [.. measure, "--cacert", certificates.CaPem,
                "--resolve", $"{SandboxNetwork.HostName}:8443:{self}", $"https://{SandboxNetwork.HostName}:8443/"]);
            bool exited = server.WaitForExit(10_000);
            static bool Ok(CommandResult r) => r.Succeeded && r.StandardOutput.StartsWith("200", StringComparison.Ordinal);
            static string Said(CommandResult r) => r.Succeeded ? "HTTP " + r.StandardOutput : r.StandardError.Trim();
            bool ok = Ok(curl) && Ok(curlTls) && exited && server.ExitCode == 0;
            checks.Add(new Check($"WebServer: ASP.NET Core (Kestrel on AntHost, {self}:8080 and HTTPS :8443) reached by curl from the peer's kernel", ok,
                $"curl: {Said(curl)}; curl https: {Said(curlTls)}; server: {Last(output)}"));
        }
        finally
        {
            if (!server.HasExited)
            {
                server.Kill();
                server.WaitForExit(5000);
            }
        }
    }

    /// <summary>HttpGet run under `anthost capture` (pcapng in the log folder), the file read back and summarized.</summary>
    private static void CapturedSample(InstanceState state, Sample sample, List<Check> checks, CancellationToken ct)
    {
        string file = Path.Combine(state.LogDirectory, "demo-httpget.pcapng");
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        using var started = new ManualResetEventSlim();
        var output = new StringWriter();
        var capture = Task.Run(() => CaptureRun.Run(new CaptureOptions { Instance = state.Instance, Write = file, Out = output, Seconds = 60 }, stop.Token, started.Set));
        bool running = Task.WaitAny([capture, Task.Run(() => started.Wait(TimeSpan.FromSeconds(10), ct))]) == 1 && started.IsSet;
        var (ok, text) = RunSample(sample.Name, [.. sample.Args, "--instance", state.Instance], TimeSpan.FromSeconds(30));
        checks.Add(new Check(sample.What, ok, text));
        stop.Cancel();
        try
        {
            var summary = capture.GetAwaiter().GetResult();
            var (complete, readBack) = CaptureReadBack.Summarize(file, System.Net.IPAddress.Parse(state.Address.Split('/')[0]));
            checks.Add(new Check("anthost capture of HttpGet, read back from pcapng", running && complete,
                $"{summary.Matched} frames captured ({summary.In} in, {summary.Out} out), {summary.DroppedByDriver} dropped; {readBack}; file {file} (tshark -r reads it)"));
        }
        catch (Exception e) when (e is CliException or IOException or SharpPcap.PcapException)
        {
            checks.Add(new Check("anthost capture of HttpGet, read back from pcapng", false, e.Message));
        }
    }

    private static (bool Ok, string Text) RunSample(string name, string[] args, TimeSpan patience)
    {
        string dll;
        try { dll = Binaries.FindSample(name); }
        catch (CliException e) { return (false, e.Message); }
        var psi = new ProcessStartInfo(SandboxNetwork.DotnetHost()) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(dll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        var stdout = p.StandardOutput.ReadToEndAsync();
        if (!p.WaitForExit(patience))
        {
            p.Kill();
            p.WaitForExit(5000);
            return (false, $"did not finish within {patience.TotalSeconds:F0} s: {Last(stdout.Result)}");
        }
        p.WaitForExit();
        string text = Last(stdout.Result + stderr.Result);
        return (p.ExitCode == 0, p.ExitCode == 0 ? text : $"exit {p.ExitCode}: {text}");
    }

    /// <summary>The last lines a sample printed, joined (what happened, in its own words).</summary>
    private static string Last(object text)
    {
        var lines = (text.ToString() ?? "").Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return lines.Length == 0 ? "(no output)" : string.Join(" | ", lines.TakeLast(3));
    }
}
