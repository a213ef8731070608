// The supervisor of one instance (as MINIX 3's reincarnation server): `anthost up` starts it
// first, and it starts every server for `up` (a request on its socket), so it is their
// parent and learns how each one ended (exit code or signal) from the kernel, not by
// polling. Once `up` finished, a dead inet server or NIC driver is restarted with the
// arguments it had, the first time at once and then after a doubling pause, at most
// `budget` times per server within `window`; why it died (exit code or signal, the last
// lines of its log) goes to the supervisor's log, and the restart count and last exit to
// the state file, which `ps` shows. The driver keeps the adapter's TCP connections alive
// across its own restart (inet retransmits what the dead driver held); a new inet server
// is joined by the running driver by itself. A dead broker takes the whole instance down
// in order, as `down` would (its pool is gone, so is every server's reason to run). `down`
// stops the supervisor first (SIGTERM), so nothing `down` stops is started again.
using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace AntHost.Cli;

/// <summary>What the supervisor of an instance is told.</summary>
internal sealed record SupervisorOptions
{
    public required string Instance { get; init; }
    /// <summary>Restarts of one server allowed within <see cref="Window"/>; past it the server stays dead.</summary>
    public int Budget { get; init; } = 5;
    public TimeSpan Window { get; init; } = TimeSpan.FromSeconds(60);
    /// <summary>The pause before the second restart within the window; it doubles for each further one (the first is at once).</summary>
    public TimeSpan Backoff { get; init; } = TimeSpan.FromMilliseconds(250);
    public TimeSpan MaxBackoff { get; init; } = TimeSpan.FromSeconds(8);
    /// <summary>How long a restarted server may take to say it is ready.</summary>
    public TimeSpan Patience { get; init; } = TimeSpan.FromSeconds(60);
}

/// <summary>A server the supervisor is asked to start (by <c>up</c>).</summary>
internal sealed record StartRequest(string Name, string[] Command, string Marker, string Log, string Stdin, string? Namespace, string? Ready);

internal sealed record StartReply(ProcessRecord? Process, string? Error);

internal static class Supervisor
{
    public const string SocketName = "supervisor.sock";
    public const string ReadyLine = "anthost-supervisor ready";
    /// <summary>What the supervisor's command line holds (its identity with pid and start time).</summary>
    public const string Marker = "anthost.dll supervise";

    /// <summary>One JSON document a line on the supervisor's socket.</summary>
    internal static readonly JsonSerializerOptions Wire = new(InstanceState.Json) { WriteIndented = false };

    public static string SocketPath(string instance) => Path.Combine(InstanceState.DirectoryFor(instance), SocketName);

    /// <summary>The command that runs the supervisor of <paramref name="instance"/> (this program's own dll).</summary>
    public static string[] Command(string dotnet, string instance, int budget) =>
        [dotnet, Path.Combine(AppContext.BaseDirectory, "anthost.dll"), "supervise", "--instance", instance, "--budget", budget.ToString(CultureInfo.InvariantCulture)];

    /// <summary>Asks the supervisor to start a server as its child; returns the record of the process it started.</summary>
    public static ProcessRecord Start(string instance, StartRequest request, CancellationToken ct)
    {
        using var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(30));
        try
        {
            s.ConnectAsync(new UnixDomainSocketEndPoint(SocketPath(instance)), timeout.Token).AsTask().GetAwaiter().GetResult();
            using var stream = new NetworkStream(s);
            var line = Encoding.UTF8.GetBytes(JsonSerializer.Serialize(request, Wire) + "\n");
            stream.Write(line);
            using var reader = new StreamReader(stream, Encoding.UTF8);
            string answer = reader.ReadLineAsync(timeout.Token).AsTask().GetAwaiter().GetResult()
                ?? throw new CliException($"the supervisor of '{instance}' closed its socket without starting {request.Name}");
            var reply = JsonSerializer.Deserialize<StartReply>(answer, Wire);
            return reply?.Process ?? throw new CliException($"the supervisor could not start {request.Name}: {reply?.Error ?? "no answer"}");
        }
        catch (Exception e) when (e is SocketException or IOException or JsonException or OperationCanceledException && !ct.IsCancellationRequested)
        {
            throw new CliException($"cannot ask the supervisor of '{instance}' ({SocketPath(instance)}) to start {request.Name}: {e.Message}");
        }
    }

    /// <summary>Runs the supervisor until SIGTERM (or until its broker died and it took the instance down).</summary>
    public static int Run(SupervisorOptions options)
    {
        Instance.RequireRoot("anthost supervise");
        var settings = new HostApplicationBuilderSettings { Args = [], Configuration = new ConfigurationManager(), ContentRootPath = AppContext.BaseDirectory };
        settings.Configuration["hostBuilder:reloadConfigOnChange"] = "false";
        var builder = Host.CreateApplicationBuilder(settings);
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(o => { o.SingleLine = false; o.TimestampFormat = "HH:mm:ss.fff "; });
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(5));
        builder.Services.AddSingleton(options);
        builder.Services.AddHostedService<SupervisorService>();
        using var host = builder.Build();
        host.Run();
        return 0;
    }
}

/// <summary>The supervisor's work: start servers for <c>up</c>, watch them, restart or take down.</summary>
internal sealed class SupervisorService(SupervisorOptions options, ILogger<SupervisorService> log, IHostApplicationLifetime life) : BackgroundService
{
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly Dictionary<string, Queue<DateTime>> _restarts = [];
    private volatile bool _stopping;
    private CancellationToken _stoppingToken;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        _stoppingToken = stoppingToken;
        string path = Supervisor.SocketPath(options.Instance);
        File.Delete(path);
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        listener.Listen(8);
        log.LogInformation("{Ready} for instance '{Instance}' (pid {Pid}): restarts inet and the NIC driver (budget {Budget} per {Window} s), takes the instance down when the broker dies",
            Supervisor.ReadyLine, options.Instance, Environment.ProcessId, options.Budget, options.Window.TotalSeconds);
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                var client = await listener.AcceptAsync(stoppingToken).ConfigureAwait(false);
                _ = Task.Run(() => Serve(client, stoppingToken), stoppingToken);
            }
        }
        catch (OperationCanceledException) { }
        finally
        {
            try { File.Delete(path); }
            catch (DirectoryNotFoundException) { } // the instance went down with its state directory
        }
    }

    public override Task StopAsync(CancellationToken cancellationToken)
    {
        _stopping = true;
        log.LogInformation("stopping: the servers are left running, nothing more is restarted");
        return base.StopAsync(cancellationToken);
    }

    private async Task Serve(Socket client, CancellationToken ct)
    {
        using var _ = client;
        using var stream = new NetworkStream(client);
        StartReply reply;
        try
        {
            using var reader = new StreamReader(stream, Encoding.UTF8, leaveOpen: true);
            string? line = await reader.ReadLineAsync(ct).ConfigureAwait(false);
            var request = line is null ? null : JsonSerializer.Deserialize<StartRequest>(line, Supervisor.Wire);
            if (request is null || request.Command.Length == 0) reply = new StartReply(null, "an empty request");
            else
            {
                var (record, process) = ServerProcess.StartChild(request.Name, request.Command, request.Marker, request.Log, request.Stdin, request.Namespace);
                record = record with { Ready = request.Ready };
                log.LogInformation("started {Name} (pid {Pid}) for up: {Command}", record.Name, record.Pid, string.Join(' ', record.CommandLine));
                Watch(record, process);
                reply = new StartReply(record, null);
            }
        }
        catch (Exception e) when (e is JsonException or IOException or CliException or System.ComponentModel.Win32Exception)
        {
            reply = new StartReply(null, e.Message);
        }
        catch (OperationCanceledException) { return; }
        try { await stream.WriteAsync(Encoding.UTF8.GetBytes(JsonSerializer.Serialize(reply, Supervisor.Wire) + "\n"), ct).ConfigureAwait(false); }
        catch (Exception e) when (e is IOException or OperationCanceledException) { }
    }

    /// <summary>Waits (without a thread) for the child's end, then decides what its death means.</summary>
    private void Watch(ProcessRecord record, Process process) => _ = Task.Run(async () =>
    {
        await process.WaitForExitAsync(CancellationToken.None).ConfigureAwait(false);
        int code = process.ExitCode;
        process.Dispose();
        try { await Died(record, code).ConfigureAwait(false); }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            log.LogError(e, "handling the death of {Name} (pid {Pid}) failed", record.Name, record.Pid);
        }
    });

    private async Task Died(ProcessRecord dead, int exitCode)
    {
        string reason = ServerProcess.DescribeExit(exitCode);
        if (_stopping) return;
        log.LogWarning("{Name} (pid {Pid}) died: {Reason}; last lines of {Log}:\n{Tail}", dead.Name, dead.Pid, reason, dead.Log, ServerProcess.Tail(dead.Log, 12));
        InstanceState state;
        ProcessRecord current;
        await _gate.WaitAsync(CancellationToken.None).ConfigureAwait(false);
        try
        {
            if (_stopping || InstanceState.Load(options.Instance) is not { } s) return;
            int i = s.Processes.FindIndex(p => p.Pid == dead.Pid && p.StartTicks == dead.StartTicks);
            if (i < 0) return; // no longer the instance's (replaced, or not recorded)
            if (!s.Complete)
            {
                // up writes the state file until it finished; it sees the death itself.
                log.LogInformation("up has not finished: it sees the death itself and takes down what it started");
                return;
            }
            current = s.Processes[i] with { LastExit = reason };
            s.Processes[i] = current;
            s.Save();
            state = s;
            if (dead.Name == "broker")
            {
                _stopping = true;
                log.LogError("the broker died: taking instance '{Instance}' down in order (driver, peer, inet; namespaces, pool, socket, state)", options.Instance);
                var self = state with { Processes = [.. state.Processes.Where(p => p.Pid != Environment.ProcessId)] };
                foreach (var step in Instance.Down(self, _ => { }))
                    log.LogInformation("down: {What}: {Result}", step.What, step.Result);
                log.LogInformation("instance '{Instance}' is down", options.Instance);
                life.StopApplication();
                return;
            }
        }
        finally
        {
            _gate.Release();
        }
        if (dead.Name is not ("inet" or "nic"))
        {
            log.LogWarning("{Name} is not restarted (only inet and the NIC driver are)", dead.Name);
            return;
        }
        if (exitCode == 0)
        {
            // Asked to stop (kill PID): someone means to run it by hand, e.g. under a debugger.
            log.LogWarning("{Name} exited cleanly (it was asked to stop): not restarted; run it by hand or anthost down and up", dead.Name);
            return;
        }
        if (state.Processes.FirstOrDefault(p => p.Name == "broker") is { } broker && !ServerProcess.IsAlive(broker))
        {
            log.LogWarning("{Name} is not restarted: the broker is gone (its death takes the instance down)", dead.Name);
            return;
        }
        await Restart(current, reason).ConfigureAwait(false);
    }

    private async Task Restart(ProcessRecord dead, string reason)
    {
        TimeSpan pause;
        int within;
        lock (_restarts)
        {
            var now = DateTime.UtcNow;
            if (!_restarts.TryGetValue(dead.Name, out var times)) _restarts[dead.Name] = times = new Queue<DateTime>();
            while (times.Count > 0 && now - times.Peek() > options.Window) times.Dequeue();
            if (times.Count >= options.Budget)
            {
                log.LogError("{Name} stays dead: its restart budget is spent ({Count} restarts within {Window} s); see its log {Log}, then anthost down and up",
                    dead.Name, times.Count, options.Window.TotalSeconds, dead.Log);
                return;
            }
            pause = times.Count == 0 ? TimeSpan.Zero
                : TimeSpan.FromTicks(Math.Min(options.MaxBackoff.Ticks, options.Backoff.Ticks << Math.Min(times.Count - 1, 20)));
            times.Enqueue(now);
            within = times.Count;
        }
        if (pause > TimeSpan.Zero)
        {
            log.LogInformation("restarting {Name} in {Pause} ms (restart {N} within {Window} s)", dead.Name, pause.TotalMilliseconds, within, options.Window.TotalSeconds);
            try { await Task.Delay(pause, _stoppingToken).ConfigureAwait(false); }
            catch (OperationCanceledException) { return; }
        }
        var watch = Stopwatch.StartNew();
        ProcessRecord started;
        long from;
        await _gate.WaitAsync(CancellationToken.None).ConfigureAwait(false);
        try
        {
            if (_stopping || InstanceState.Load(options.Instance) is not { } state) return;
            int i = state.Processes.FindIndex(p => p.Pid == dead.Pid && p.StartTicks == dead.StartTicks);
            if (i < 0) return;
            from = ServerProcess.LengthOf(dead.Log);
            File.AppendAllText(dead.Log, $"---- {DateTime.UtcNow:HH:mm:ss.fff} anthost-supervisor: pid {dead.Pid} {reason}; restarting ----\n");
            var (record, process) = ServerProcess.StartChild(dead.Name, dead.CommandLine, dead.Marker, dead.Log, "/dev/null", dead.Namespace);
            started = record with { Ready = dead.Ready, Restarts = dead.Restarts + 1, LastExit = reason };
            state.Processes[i] = started;
            state.Save();
            Watch(started, process);
            log.LogInformation("restarted {Name}: pid {Pid} (restart {Restarts}), waiting for '{Ready}'", started.Name, started.Pid, started.Restarts, started.Ready);
        }
        finally
        {
            _gate.Release();
        }
        if (started.Ready is null) return;
        try
        {
            await Task.Run(() => ServerProcess.WaitForLog(started, started.Ready, from, options.Patience, _stoppingToken)).ConfigureAwait(false);
            log.LogInformation("{Name} (pid {Pid}) is ready again, {Ms} ms after the restart began", started.Name, started.Pid, watch.ElapsedMilliseconds);
        }
        catch (ServerFailedException e)
        {
            log.LogWarning("{Message}", e.Message); // its death, if it died, is handled as any other
        }
        catch (OperationCanceledException) { }
    }
}
