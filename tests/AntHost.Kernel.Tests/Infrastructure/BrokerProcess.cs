using AntHost.Kernel.Pool;
using AntHost.Kernel.Protocol;

namespace AntHost.Kernel.Tests.Infrastructure;

/// <summary>
/// A broker (anthost-kernel) started as its own process for one test, on an instance of
/// its own (test-...). Disposing it stops it with SIGTERM and removes anything left.
/// </summary>
internal sealed class BrokerProcess : IDisposable
{
    private readonly List<ChildProcess> _actors = new();

    public string Instance { get; }
    public TransferMode Mode { get; }
    public ChildProcess Process { get; }
    public string PoolPath => IcaPool.PathFor(Instance);
    public string SocketPath => ControlProtocol.SocketPathFor(Instance);

    private BrokerProcess(string instance, TransferMode mode, ChildProcess p)
    {
        Instance = instance;
        Mode = mode;
        Process = p;
    }

    public static string NewInstance() => "test-" + Guid.NewGuid().ToString("N")[..10];

    public static BrokerProcess Start(TransferMode mode = TransferMode.Direct, string? instance = null, params string[] extra)
    {
        instance ??= NewInstance();
        var args = new List<string> { "--instance", instance, "--transfer", mode == TransferMode.Mediated ? "mediated" : "direct", "--pool-size", "16M" };
        args.AddRange(extra);
        var p = ChildProcess.Start("anthost-kernel.dll", args);
        var b = new BrokerProcess(instance, mode, p);
        try
        {
            WaitReady(b);
        }
        catch
        {
            b.Dispose();
            throw;
        }
        return b;
    }

    private static void WaitReady(BrokerProcess b)
    {
        var deadline = DateTime.UtcNow + ChildProcess.Patience;
        while (!b.Process.Output.Contains("anthost-kernel ready", StringComparison.Ordinal))
        {
            if (b.Process.HasExited) throw new InvalidOperationException($"broker exited:\n{b.Process.Output}\n{b.Process.Errors}");
            if (DateTime.UtcNow > deadline) throw new TimeoutException("broker did not become ready:\n" + b.Process.Output);
            Thread.Sleep(10);
        }
    }

    /// <summary>Starts a test actor in a role against this instance.</summary>
    public ChildProcess Actor(string role, params string[] args)
    {
        var all = new List<string> { role, "--instance", Instance };
        all.AddRange(args);
        var a = ChildProcess.Start("AntHost.Kernel.TestActor.dll", all);
        lock (_actors) _actors.Add(a);
        return a;
    }

    /// <summary>Starts a test actor through a wrapper that execs it (e.g. setpriv, to run it as another user).</summary>
    public ChildProcess ActorUnder(IReadOnlyList<string> wrapper, string role, params string[] args)
    {
        var all = new List<string> { role, "--instance", Instance };
        all.AddRange(args);
        // An unprivileged user has no home to write in: the runtime needs none, but keep it off root's.
        var a = ChildProcess.StartUnder(wrapper, "AntHost.Kernel.TestActor.dll", all, new Dictionary<string, string> { ["HOME"] = "/tmp", ["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1" });
        lock (_actors) _actors.Add(a);
        return a;
    }

    public ChildProcess ActorWithEnv(IDictionary<string, string> env, string role, params string[] args)
    {
        var all = new List<string> { role, "--instance", Instance };
        all.AddRange(args);
        var a = ChildProcess.Start("AntHost.Kernel.TestActor.dll", all, env);
        lock (_actors) _actors.Add(a);
        return a;
    }

    /// <summary>Connects the test process itself as a registered process of this instance.</summary>
    public KernelConnection Connect(string name, int spinUs = 20, bool server = false) =>
        KernelConnection.Connect(new KernelOptions { Instance = Instance, ProcessName = name, SpinBudget = TimeSpan.FromMicroseconds(spinUs), Server = server });

    /// <summary>Maps the pool read-only-table as an observer (not registered).</summary>
    public IcaPool OpenPool() => IcaPool.Open(PoolPath);

    /// <summary>Polls until <paramref name="condition"/> holds (never a timing assertion: the wait is generous).</summary>
    public static void Eventually(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow + ChildProcess.Patience;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException("never happened: " + what);
            Thread.Sleep(5);
        }
    }

    public void Dispose()
    {
        lock (_actors)
            foreach (var a in _actors) a.Dispose();
        if (!Process.HasExited)
        {
            Process.Signal(15);
            try { Process.WaitExit(TimeSpan.FromSeconds(20)); }
            catch (TimeoutException) { }
        }
        Process.Dispose();
        try { File.Delete(PoolPath); } catch (IOException) { }
        try { File.Delete(IcaPool.TablesPathOf(PoolPath)); } catch (IOException) { }
        try { File.Delete(SocketPath); } catch (IOException) { }
    }
}

internal static class BrokerProcessExtensions
{
    public static long OpenPoolCounter(this BrokerProcess b, BrokerCounter c)
    {
        using var pool = b.OpenPool();
        return pool.Counter(c);
    }
}
