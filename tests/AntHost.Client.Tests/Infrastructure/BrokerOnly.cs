using AntHost.Kernel;
using AntHost.Kernel.Pool;
using AntHost.Sandbox;
using AntHost.Stack.Tests.Infrastructure;
using Xunit.Abstractions;

namespace AntHost.Client.Tests.Infrastructure;

/// <summary>
/// A broker process of its own instance (<c>test-client-N</c>) for tests that play the inet
/// server themselves. Dispose stops it by pid, writes its log and removes its files.
/// </summary>
public sealed class BrokerOnly : IDisposable
{
    private readonly ITestOutputHelper _output;

    public BrokerOnly(ITestOutputHelper output)
    {
        _output = output;
        Instance = $"test-client-{Random.Shared.Next(10000, 100000)}";
        Process = StackProcess.Start("broker", SandboxNetwork.DotnetHost(),
            [Repo.Dll("AntHost.Kernel/AntHost.Broker", "anthost-kernel.dll"), "--instance", Instance, "--pool-size", "16M"]);
        try
        {
            Process.WaitFor("anthost-kernel ready");
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public string Instance { get; }
    public StackProcess Process { get; }

    public KernelConnection Connect(string name) =>
        KernelConnection.Connect(new KernelOptions { Instance = Instance, ProcessName = name });

    /// <summary>Free data pages as the broker's table says.</summary>
    public (long Free, int Total) PoolPages()
    {
        using var pool = IcaPool.Open(IcaPool.PathFor(Instance));
        return (pool.Counter(BrokerCounter.FreePages), pool.DataPages);
    }

    public void Dispose()
    {
        Process.Stop();
        _output.WriteLine($"===== broker (pid {Process.Pid}) =====");
        _output.WriteLine(Process.Log);
        Process.Dispose();
        try { File.Delete(IcaPool.PathFor(Instance)); } catch (IOException) { }
        try { File.Delete(IcaPool.TablesPathFor(Instance)); } catch (IOException) { }
        try { File.Delete($"/run/anthost/{Instance}.sock"); } catch (IOException) { }
    }
}
