using System.Net;
using AntHost.Inet.Abi;
using AntHost.Kernel;
using AntHost.Kernel.Ipc;
using AntHost.Kernel.Pool;
using AntHost.Sandbox;
using Xunit.Abstractions;

namespace AntHost.Stack.Tests.Infrastructure;

/// <summary>
/// The stack as a user runs it, made for one test: a sandbox network of its own
/// (namespaces <c>aht-sN-host</c>/<c>aht-sN-peer</c>), a kernel instance of its own
/// (<c>test-stack-N</c>), and the broker, the inet server and the NIC driver as separate
/// processes (the driver inside the host namespace with <c>ip netns exec</c>). Dispose
/// writes every process's log to the test output and removes everything by pid and by
/// name, also when the test failed.
/// </summary>
public sealed class RunningStack : IDisposable
{
    public static readonly IPAddress PeerIp = IPAddress.Parse("198.18.0.1");
    public static readonly IPAddress HostIp = IPAddress.Parse("198.18.0.2");

    private readonly ITestOutputHelper _output;
    private readonly List<StackProcess> _all = [];
    private KernelConnection? _observer;
    private Endpoint? _inetChannel;

    private readonly string[] _driverArgs;
    private readonly string[] _inetArgs = [];

    public RunningStack(ITestOutputHelper output) : this(output, "16M") { }

    /// <param name="poolSize">The kernel's pool (the broker's --pool-size): every ICA of every process comes from it.</param>
    /// <param name="driverArgs">More arguments for every NIC driver started.</param>
    public RunningStack(ITestOutputHelper output, string poolSize, params string[] driverArgs)
        : this(output, poolSize, [], driverArgs) { }

    /// <param name="inetArgs">More arguments for the inet server (its first start and restarts).</param>
    public RunningStack(ITestOutputHelper output, string poolSize, string[] inetArgs, string[] driverArgs)
    {
        _driverArgs = driverArgs;
        _inetArgs = inetArgs;
        _output = output;
        int n = Random.Shared.Next(10000, 100000);
        Instance = $"test-stack-{n}";
        try
        {
            Sandbox = SandboxNetwork.Create(new SandboxOptions { Prefix = $"aht-s{n}", StartServers = false });
            Broker = Start("broker", Dll("anthost-kernel.dll"), ["--instance", Instance, "--pool-size", poolSize]);
            Broker.WaitFor("anthost-kernel ready");
            Inet = Start("inet", Dll("anthost-inet.dll"), ["--instance", Instance, "--address", "198.18.0.2/24", .. _inetArgs]);
            Inet.WaitFor("anthost-inet ready");
            Driver = StartDriver();
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public string Instance { get; }
    public SandboxNetwork Sandbox { get; } = null!;
    public StackProcess Broker { get; } = null!;
    /// <summary>The inet server now running (a restart replaces it).</summary>
    public StackProcess Inet { get; private set; } = null!;

    /// <summary>Starts another inet server (after the last one died) and waits until it registered.</summary>
    public StackProcess RestartInet()
    {
        _inetChannel = null;
        Inet = Start("inet", Dll("anthost-inet.dll"), ["--instance", Instance, "--address", "198.18.0.2/24", .. _inetArgs]);
        Inet.WaitFor("anthost-inet ready");
        return Inet;
    }

    /// <summary>The NIC driver now running (a restart replaces it).</summary>
    public StackProcess Driver { get; private set; } = null!;

    /// <summary>
    /// A server's dll in its own project's output. Not this folder's copy: the sandbox brings
    /// the ASP.NET Core shared framework into this test project, which then drops the
    /// Microsoft.Extensions packages the servers' own runtime configurations need.
    /// </summary>
    private static string Dll(string name)
    {
        string project = name switch
        {
            "anthost-kernel.dll" => "AntHost.Kernel/AntHost.Broker",
            "anthost-inet.dll" => "AntHost.Inet/AntHost.Inet",
            "anthost-nic.dll" => "AntHost.Nic8139/AntHost.Nic8139",
            "anthost-stack-app.dll" => "tests/AntHost.Stack.App",
            _ => throw new ArgumentException(name),
        };
        // .../tests/AntHost.Stack.Tests/bin/CONFIG/TFM/
        var tfmDir = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd('/'));
        string tfm = tfmDir.Name, config = tfmDir.Parent!.Name;
        for (var d = tfmDir; d is not null; d = d.Parent)
        {
            if (!File.Exists(Path.Combine(d.FullName, "AntHost.slnx"))) continue;
            string path = Path.Combine(d.FullName, project, "bin", config, tfm, name);
            if (File.Exists(path)) return path;
            break;
        }
        throw new FileNotFoundException($"{name} is not built in {project}/bin/{config}/{tfm}", name);
    }

    private StackProcess Start(string name, string dll, IEnumerable<string> args)
    {
        var p = StackProcess.Start(name, SandboxNetwork.DotnetHost(), new[] { dll }.Concat(args));
        lock (_all) _all.Add(p);
        return p;
    }

    /// <summary>Starts a NIC driver in the host namespace and waits until inet took its ifattach.</summary>
    public StackProcess StartDriver()
    {
        int number = _all.Count(p => p.Name.StartsWith("nic", StringComparison.Ordinal));
        var p = StackProcess.Start($"nic#{number}", "ip",
            ["netns", "exec", Sandbox.HostNamespace, SandboxNetwork.DotnetHost(), Dll("anthost-nic.dll"),
             "--adapter", Sandbox.HostInterface, "--instance", Instance, .. _driverArgs]);
        lock (_all) _all.Add(p);
        Driver = p;
        p.WaitFor("attached to inet");
        return p;
    }

    /// <summary>Starts an app process (tests/AntHost.Stack.App) in one of its modes against this instance.</summary>
    public StackProcess StartApp(string mode, params string[] args)
    {
        int number = _all.Count(p => p.Name.StartsWith("app", StringComparison.Ordinal));
        return Start($"app#{number}", Dll("anthost-stack-app.dll"), [mode, Instance, .. args]);
    }

    /// <summary>inet's counters (<see cref="InetStat"/>), asked over the IPC like any tool would.</summary>
    public long[] InetStats()
    {
        _observer ??= KernelConnection.Connect(new KernelOptions { Instance = Instance, ProcessName = "test" });
        for (int attempt = 1; ; attempt++)
        {
            if (_inetChannel is not { IsOpen: true }) _inetChannel = _observer.Open(InetService.Name);
            var control = _observer.AllocateControl();
            Message reply;
            try
            {
                reply = _observer.Call(_inetChannel, control, (ushort)InetOp.Stats, default, TimeSpan.FromSeconds(15));
            }
            catch (KernelException e) when (e.Error == KernelError.Timeout && attempt < 3)
            {
                // Seen once in many runs before the kernel's lost-reply fixes: a call that never got
                // its answer. Say so, with the refused-handle count that tells a refused reply, close
                // the channel (its slot is freed) and use a new one.
                _output.WriteLine($"Stats call on {_inetChannel} got no reply in 15 s (attempt {attempt}, refused handles so far: "
                    + $"{_observer.Counters.RefusedHandles}); opening a new channel");
                _observer.Close(_inetChannel);
                _inetChannel = null;
                continue;
            }
            try
            {
                Assert.Equal((int)InetStatus.Ok, reply.Status);
                Assert.True(ControlIca.TryOpen(reply.Control.Span, out var c));
                return global::AntHost.Inet.Abi.InetStats.Read(c.Inline);
            }
            finally
            {
                _observer.FreeMessage(reply);
            }
        }
    }

    public long Stat(InetStat s) => InetStats()[(int)s];

    /// <summary>Polls inet's counters until <paramref name="condition"/> holds (a guard against a hang, not a timing check).</summary>
    public long[] WaitStats(Func<long[], bool> condition, string what)
    {
        var deadline = DateTime.UtcNow + StackProcess.Patience;
        while (true)
        {
            var s = InetStats();
            if (condition(s)) return s;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"inet never reached: {what}; counters {Format(s)}");
            Thread.Sleep(20);
        }
    }

    public static string Format(long[] s) => string.Join(", ", Enum.GetValues<InetStat>().Where(v => v != InetStat.Count).Select(v => $"{v}={s[(int)v]}"));

    /// <summary>Free and total data pages as the broker's table says.</summary>
    public (long Free, int Total) PoolPages()
    {
        using var pool = IcaPool.Open(IcaPool.PathFor(Instance));
        return (pool.Counter(BrokerCounter.FreePages), pool.DataPages);
    }

    /// <summary>
    /// Waits until the broker has reclaimed what leaving processes held (it does so as it
    /// notices each go), then asserts that every data page of the pool is free.
    /// </summary>
    public void AssertEveryPageFree()
    {
        var deadline = DateTime.UtcNow + StackProcess.Patience;
        var (free, total) = PoolPages();
        while (free != total && DateTime.UtcNow < deadline)
        {
            Thread.Sleep(20);
            (free, total) = PoolPages();
        }
        Assert.Equal(total, free);
    }

    /// <summary>Disconnects the test's own kernel connection (so only the stack's processes own pages).</summary>
    public void DisconnectObserver()
    {
        _observer?.Dispose();
        _observer = null;
        _inetChannel = null;
    }

    public void Dispose()
    {
        DisconnectObserver();
        List<StackProcess> all;
        lock (_all) all = [.. _all];
        // Driver first, then inet, then the broker: each stops cleanly, its log complete.
        foreach (var p in all.Where(p => p.Name.StartsWith("app", StringComparison.Ordinal))) p.Stop();
        foreach (var p in all.Where(p => p.Name.StartsWith("nic", StringComparison.Ordinal))) p.Stop();
        foreach (var p in all.Where(p => p.Name == "inet")) p.Stop();
        foreach (var p in all.Where(p => p.Name == "broker")) p.Stop();
        foreach (var p in all)
        {
            _output.WriteLine($"===== {p.Name} (pid {p.Pid}) =====");
            _output.WriteLine(p.Log);
            p.Dispose();
        }
        Sandbox?.Destroy();
        try { File.Delete(IcaPool.PathFor(Instance)); } catch (IOException) { }
        try { File.Delete(IcaPool.TablesPathFor(Instance)); } catch (IOException) { }
        try { File.Delete($"/run/anthost/{Instance}.sock"); } catch (IOException) { }
    }
}
