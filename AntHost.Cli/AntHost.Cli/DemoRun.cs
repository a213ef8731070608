// `anthost demo`: the stack up on a sandbox of its own, then what it can do today, seen
// from the peer's Linux kernel (a remote host that nobody here wrote): the kernel resolves
// AntHost's address by ARP and gets the driver's MAC; it pings AntHost through the driver,
// inet and back, and the round trips are measured; a UDP datagram to a port nobody
// listens on comes back as ICMP port unreachable, which the kernel reports to its socket
// as "connection refused". Every figure printed is measured in this run. The instance is
// taken down at the end whatever happened, Ctrl-C included.
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
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
            state = Commands.Progress("bringing the stack up", step => Instance.Up(o, step, interruption.Token));
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
            try { udp.Receive(new byte[64]); got = SocketError.Success; }
            catch (SocketException e) { got = e.SocketErrorCode; }
            elapsed = Stopwatch.GetElapsedTime(t0).TotalMicroseconds;
        }
        string neighbour = CommandRunner.RunIn(peerNs, "ip", ["neigh", "show", host.ToString(), "dev", SandboxOptions.PeerInterface]).StandardOutput.Trim();
        checks.Add(new Check($"UDP to {host}:{closedPort} (nobody listens) gets ICMP port unreachable", got == SocketError.ConnectionRefused,
            got == SocketError.ConnectionRefused
                ? $"the peer's socket reported connection refused {elapsed:F0} us after the send (probe {attempt} of 3)"
                : $"no ICMP error after 3 probes (the peer's socket reported {got}); the peer's neighbour entry: '{neighbour}'"));

        // What inet counted meanwhile, and where every page is.
        status("counters");
        var after = InetProbe.Stats(state.Instance, TimeSpan.FromSeconds(10));
        long D(InetStat s) => after[(int)s] - before[(int)s];
        checks.Add(new Check("inet's counters over the demo", D(InetStat.BadRequests) == 0 && after[(int)InetStat.FramesNotSent] == 0,
            $"frames from the driver {D(InetStat.FramesFromDriver)}, frames sent {D(InetStat.FramesSent)}, ARP replies {D(InetStat.ArpRepliesOut)}, " +
            $"echo replies {D(InetStat.IcmpEchoRepliesOut)}, port unreachables {D(InetStat.IcmpUnreachableOut)}, UDP no-port {D(InetStat.UdpNoPort)}, " +
            $"bad requests {D(InetStat.BadRequests)}, rx drops {D(InetStat.IfaceRxDrops)}, frames not sent {after[(int)InetStat.FramesNotSent]}"));
        var pool = PoolSnapshot.Read(state.PoolPath);
        checks.Add(new Check("pool pages per process (ownership table)", true,
            $"{pool.AllocatedPages} of {pool.DataPages} allocated: " + string.Join(", ", pool.Processes.Where(p => p.State == "alive").Select(p => $"{p.Name} {p.Pages} pages / {p.Icas} ICAs"))));
    }
}
