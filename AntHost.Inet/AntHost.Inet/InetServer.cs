// The process shell: joins the kernel instance, registers the service name, runs
// the request manager on a thread of its own (not the thread pool: it blocks on
// the doorbell), and on stop gives every buffer back, empties its ICA cache and
// checks that the table assigns it no page any more before it leaves.
using AntHost.Inet.Abi;
using AntHost.Inet.Sockets;
using AntHost.Kernel;
using AntHost.Kernel.Ipc;
using AntHost.Kernel.Pool;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace AntHost.Inet;

/// <summary>The inet server as a hosted service.</summary>
public sealed class InetServer(InetOptions options, ILogger<InetServer> log, IHostApplicationLifetime lifetime) : IHostedService
{
    private readonly CancellationTokenSource _stop = new();
    private Thread? _thread;
    private KernelConnection? _kernel;
    private InetMeter? _meter;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _kernel = KernelConnection.Connect(new KernelOptions
        {
            Instance = options.Instance,
            ProcessName = "inet",
            Server = true, // the broker's per-app limits are for apps; its reserve is for us
            SpinBudget = options.SpinBudget,
            CachePerSize = options.CachePerSize,
            AllocationBatch = Math.Min(32, options.CachePerSize),
        });
        uint serviceId = _kernel.RegisterService(options.Service);
        var core = new InetCore(new KernelSeam(_kernel), options, serviceId, log);
        var requests = new RequestManager(_kernel, core);
        _meter = InetMeter.For(core.Protocol, core.Sockets);
        _thread = new Thread(() => Run(requests, core)) { Name = "inet request manager", IsBackground = true };
        _thread.Start();
        log.LogInformation("anthost-inet ready: instance {Instance}, service '{Service}' as {Process} ({Mode} transfers), address {Address}/{Prefix}",
            options.Instance, options.Service, _kernel.Id, _kernel.Mode, options.Address, options.PrefixLength);
        return Task.CompletedTask;
    }

    private void Run(RequestManager requests, InetCore core)
    {
        var k = _kernel!;
        ServerThread.WaitForWakerToSleep();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token, k.BrokerGone);
        try
        {
            requests.Run(stop.Token);
        }
        catch (KernelException e)
        {
            log.LogCritical("the kernel connection failed: {Message}", e.Message);
            lifetime.StopApplication();
        }
        if (k.BrokerGone.IsCancellationRequested && !_stop.IsCancellationRequested)
        {
            // Without the broker no page can move: stop rather than serve nothing.
            log.LogCritical("the broker is gone; anthost-inet stops");
            lifetime.StopApplication();
            return;
        }
        try
        {
            var protocol = core.Protocol;
            core.Shutdown(requests.Now);
            log.LogInformation("counters: {Counters}", protocol.InterfaceCounters());
            log.LogInformation("tcp drops by reason: {Drops}", core.Sockets.TcpDrops());
            log.LogInformation("buffers outstanding at stop: {N}", protocol.Pool.Outstanding);
            k.TrimCache();
            k.Commit();
            log.LogInformation("pages owned at stop: {N}", new OwnershipTable(k.Pool).PagesOwnedBy(k.Id));
        }
        catch (KernelException e)
        {
            log.LogWarning("stop: {Message}", e.Message);
        }
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        // The meter reads the pool: it stops before the kernel connection unmaps it.
        _meter?.Close();
        _stop.Cancel();
        _thread?.Join(TimeSpan.FromSeconds(5));
        _kernel?.Dispose();
        return Task.CompletedTask;
    }
}
