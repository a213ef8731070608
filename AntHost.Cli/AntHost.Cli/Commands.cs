// What each command prints. Progress is a spinner with the step at hand and a line per
// step done (a redirected output gets the lines alone); results are tables, or JSON.
using System.Globalization;
using System.Text.Json;
using AntHost.Bench.Ipc;
using AntHost.Inet.Abi;
using Spectre.Console;

namespace AntHost.Cli;

internal static class Commands
{
    private static readonly CultureInfo Ci = CultureInfo.InvariantCulture;

    /// <summary>Runs <paramref name="work"/> with a spinner; Ctrl-C or SIGTERM cancels the token instead of killing us.</summary>
    private static T WithProgress<T>(string title, Func<Action<string>, CancellationToken, T> work)
    {
        using var interruption = new Interruption();
        return Progress(title, step => work(step, interruption.Token));
    }

    /// <summary>
    /// A spinner showing the step at hand and a line per step on a terminal; only the lines
    /// when the output is redirected (a spinner there would print every update).
    /// </summary>
    public static T Progress<T>(string title, Func<Action<string>, T> work)
    {
        static void Line(string step) => AnsiConsole.MarkupLineInterpolated($"[grey]  {step}[/]");
        if (!AnsiConsole.Profile.Capabilities.Interactive) return work(Line);
        return AnsiConsole.Status().Spinner(Spinner.Known.Dots).Start(title, ctx => work(step =>
        {
            ctx.Status(Markup.Escape(step));
            Line(step);
        }));
    }

    public static int Up(UpOptions o)
    {
        var state = WithProgress($"bringing up '{o.Instance}'", (p, ct) => Instance.Up(o, p, ct));
        AnsiConsole.MarkupLineInterpolated($"[green]instance '{state.Instance}' is up[/] on {(state.Network == "sandbox" ? $"the sandbox network '{state.Prefix}'" : $"adapter {state.Adapter}")}, {state.Transfer} transfers");
        AnsiConsole.Write(ProcessTable(state, null));
        AnsiConsole.MarkupLineInterpolated($"AntHost speaks as [bold]{state.Address}[/]{(state.PeerAddress is null ? "" : $"; the Linux peer is {state.PeerAddress} in {state.Namespaces[1]}")}");
        AnsiConsole.MarkupLineInterpolated($"state {InstanceState.PathFor(state.Instance)}; logs in {state.LogDirectory}");
        AnsiConsole.MarkupLineInterpolated($"next: anthost ps --instance {state.Instance}    anthost down --instance {state.Instance}");
        return 0;
    }

    public static int Down(string instance)
    {
        Instance.RequireRoot("anthost down");
        var state = InstanceState.Load(instance);
        if (state is null)
        {
            var leftovers = Instance.RemoveKernelFiles(instance, []);
            AnsiConsole.MarkupLineInterpolated($"instance '{instance}' is not up (no {InstanceState.PathFor(instance)})");
            foreach (var s in leftovers.Where(s => s.Result != "already gone")) AnsiConsole.MarkupLineInterpolated($"  {s.What}: {s.Result}");
            return 0;
        }
        var steps = WithProgress($"taking down '{instance}'", (p, _) => Instance.Down(state, p));
        var t = new Table().AddColumn("what").AddColumn("result");
        foreach (var s in steps) t.AddRow(Markup.Escape(s.What), Markup.Escape(s.Result));
        AnsiConsole.Write(t);
        AnsiConsole.MarkupLineInterpolated($"[green]instance '{instance}' is down[/]; logs kept in {state.LogDirectory}");
        return 0;
    }

    private static Table ProcessTable(InstanceState state, PoolSnapshot? pool)
    {
        var t = new Table().AddColumn("process").AddColumn("pid").AddColumn("state").AddColumn(new TableColumn("restarts").RightAligned()).AddColumn("namespace");
        if (pool is not null) t.AddColumn(new TableColumn("pages").RightAligned()).AddColumn(new TableColumn("ICAs").RightAligned());
        t.AddColumn("log");
        foreach (var r in state.Processes)
        {
            bool alive = ServerProcess.IsAlive(r);
            string restarts = r.Restarts == 0 && r.LastExit is null ? "0" : $"{r.Restarts} (last: {r.LastExit ?? "-"})";
            var row = new List<string> { Markup.Escape(r.Name), r.Pid.ToString(Ci), alive ? "[green]alive[/]" : "[red]dead[/]", Markup.Escape(restarts), Markup.Escape(r.Namespace ?? "-") };
            if (pool is not null)
            {
                var inPool = pool.Processes.FirstOrDefault(x => x.Pid == r.Pid && x.State == "alive");
                row.Add(inPool?.Pages.ToString(Ci) ?? "-");
                row.Add(inPool?.Icas.ToString(Ci) ?? "-");
            }
            row.Add(Markup.Escape(Path.GetFileName(r.Log)));
            t.AddRow(row.ToArray());
        }
        return t;
    }

    public static int Ps(string instance, bool json)
    {
        Instance.RequireRoot("anthost ps");
        var state = InstanceState.Load(instance) ?? throw new CliException($"instance '{instance}' is not up (no {InstanceState.PathFor(instance)})");
        PoolSnapshot? pool = null;
        string? poolError = null, inetError = null;
        long[]? inet = null;
        try { pool = PoolSnapshot.Read(state.PoolPath); }
        catch (Exception e) when (e is IOException or CliException or UnauthorizedAccessException) { poolError = e.Message; }
        if (pool is not null)
        {
            try { inet = InetProbe.Stats(instance, TimeSpan.FromSeconds(2)); }
            catch (CliException e) { inetError = e.Message; }
        }
        var nic = NicPanelReader.Read(instance, state.Adapter);
        if (json)
        {
            var doc = new
            {
                state.Instance,
                state.Network,
                state.Prefix,
                state.Namespaces,
                state.Adapter,
                state.Address,
                state.Transfer,
                state.Complete,
                Processes = state.Processes.Select(r => new
                {
                    r.Name,
                    r.Pid,
                    Alive = ServerProcess.IsAlive(r),
                    r.Restarts,
                    r.LastExit,
                    r.Namespace,
                    r.Log,
                    r.CommandLine,
                    Pool = pool?.Processes.FirstOrDefault(x => x.Pid == r.Pid && x.State == "alive")
                }),
                Pool = pool,
                PoolError = poolError,
                Inet = inet is null ? null : Enum.GetValues<InetStat>().Where(v => v != InetStat.Count).ToDictionary(v => v.ToString(), v => inet[(int)v]),
                InetError = inetError,
                Nic = nic.Values is null ? null : Enum.GetValues<NicStat>().Where(v => v != NicStat.Count).ToDictionary(v => v.ToString(), v => nic.Values[(int)v]),
                NicPublishedUtc = nic.Values is null ? (DateTime?)null : nic.Published,
                NicCapture = nic.Values is null ? null : new { nic.CaptureOwner, nic.Captured, nic.CaptureDrops },
                NicError = nic.Error,
            };
            Console.WriteLine(JsonSerializer.Serialize(doc, new JsonSerializerOptions { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase }));
            return 0;
        }
        AnsiConsole.MarkupLineInterpolated($"instance [bold]{state.Instance}[/]: {(state.Network == "sandbox" ? $"sandbox '{state.Prefix}'" : $"adapter {state.Adapter}")}, address {state.Address}, {state.Transfer} transfers{(state.Complete ? "" : " [yellow](up did not finish)[/]")}");
        AnsiConsole.Write(ProcessTable(state, pool));
        if (pool is null)
        {
            AnsiConsole.MarkupLineInterpolated($"[yellow]pool: {poolError}[/]");
            return 0;
        }
        AnsiConsole.MarkupLineInterpolated($"pool {pool.Path}: {pool.AllocatedPages} of {pool.DataPages} pages allocated, broker pid {pool.BrokerPid}, rings of {pool.RingCapacity} slots");
        var procs = new Table().Title("processes in the pool").AddColumn("slot").AddColumn("name").AddColumn("pid").AddColumn("uid").AddColumn("kind").AddColumn("state")
            .AddColumn(new TableColumn("pages").RightAligned()).AddColumn(new TableColumn("ICAs").RightAligned())
            .AddColumn(new TableColumn("uplink").RightAligned()).AddColumn(new TableColumn("downlink").RightAligned());
        foreach (var p in pool.Processes)
            procs.AddRow(p.Slot.ToString(Ci), Markup.Escape(p.Name), p.Pid.ToString(Ci), p.Uid.ToString(Ci), p.Server ? "server" : "app", p.State, p.Pages.ToString(Ci), p.Icas.ToString(Ci), p.Uplink.ToString(Ci), p.Downlink.ToString(Ci));
        AnsiConsole.Write(procs);
        var ch = new Table().Title("open channels (messages waiting)").AddColumn("#").AddColumn("service").AddColumn("client").AddColumn("server")
            .AddColumn(new TableColumn("to server").RightAligned()).AddColumn(new TableColumn("to client").RightAligned());
        foreach (var c in pool.Channels)
            ch.AddRow(c.Index.ToString(Ci), Markup.Escape(c.Service), Markup.Escape(c.Client), Markup.Escape(c.Server), c.ToServer.ToString(Ci), c.ToClient.ToString(Ci));
        AnsiConsole.Write(ch);
        AnsiConsole.MarkupLineInterpolated($"services: {string.Join(", ", pool.Services)}");
        AnsiConsole.MarkupLineInterpolated($"broker: {string.Join(", ", pool.Counters.Select(kv => $"{kv.Key} {kv.Value}"))}");
        if (inet is null) AnsiConsole.MarkupLineInterpolated($"[yellow]inet: {inetError}[/]");
        else
        {
            AnsiConsole.MarkupLineInterpolated($"inet: attached {inet[(int)InetStat.Attached]} (MAC {InetProbe.FormatMac(inet[(int)InetStat.Mac])}), link {(AbiLinkState)inet[(int)InetStat.Link]}");
            AnsiConsole.MarkupLineInterpolated($"inet: {string.Join(", ", Enum.GetValues<InetStat>().Where(v => v is not (InetStat.Count or InetStat.Mac or InetStat.Address or InetStat.Link or InetStat.Attached)).Select(v => $"{v} {inet[(int)v]}"))}");
        }
        if (nic.Values is not { } n) AnsiConsole.MarkupLineInterpolated($"[yellow]nic: {nic.Error}[/]");
        else
        {
            AnsiConsole.MarkupLineInterpolated($"nic {state.Adapter} (live, published {(DateTime.UtcNow - nic.Published).TotalMilliseconds:F0} ms ago): {string.Join(", ", Enum.GetValues<NicStat>().Where(v => v != NicStat.Count).Select(v => $"{v} {n[(int)v]}"))}");
            AnsiConsole.MarkupLineInterpolated($"nic capture: {(nic.CaptureOwner == 0 ? "none running" : $"run by pid {nic.CaptureOwner}")}; {nic.Captured} frames captured, {nic.CaptureDrops} dropped since the driver started");
        }
        return 0;
    }

    public static int BenchIpc(bool quick, string? json, string? md)
    {
        Instance.RequireRoot("anthost bench ipc");
        var o = (quick ? IpcBenchOptions.Quick : new IpcBenchOptions()) with { Log = line => AnsiConsole.MarkupLineInterpolated($"[grey]{line}[/]") };
        var report = Progress("IPC benchmark", _ => IpcBenchmark.Run(o));
        string table = IpcBenchReportWriter.ToMarkdown(report);
        Console.WriteLine(table);
        if (json is not null) File.WriteAllText(json, IpcBenchReportWriter.ToJson(report));
        if (md is not null) File.WriteAllText(md, table);
        return 0;
    }

    public static int BenchReport(string from, string? output, string? docs)
    {
        AntHost.Bench.Net.NetBenchReport report;
        try { report = AntHost.Bench.Net.NetBenchReportWriter.FromJson(File.ReadAllText(from)); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException)
        {
            throw new CliException($"cannot read the report {from}: {e.Message}");
        }
        Console.WriteLine(AntHost.Bench.Net.NetBenchReportWriter.ToMarkdown(report));
        var files = new List<string>();
        if (output is not null) files.AddRange(AntHost.Bench.Net.NetBenchReportWriter.WriteAll(report, output));
        if (docs is not null) files.AddRange(AntHost.Bench.Net.EvaluationPage.Write(report, docs));
        if (files.Count > 0) AnsiConsole.MarkupLineInterpolated($"written: {string.Join(", ", files)}");
        return 0;
    }

    public static int Demo(UpOptions o, int pings) => DemoRun.Run(o, pings);
}
