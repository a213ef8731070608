using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace AntHost.Broker;

/// <summary>Runs one broker for the life of the host; removes its pool file and socket on shutdown.</summary>
internal sealed class BrokerService : IHostedService
{
    private readonly BrokerOptions _options;
    private readonly ILogger<BrokerService> _log;
    private KernelBroker? _broker;
    private ControlServer? _server;
    private BrokerMeter? _meter;

    public BrokerService(BrokerOptions options, ILogger<BrokerService> log)
    {
        _options = options;
        _log = log;
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _broker = KernelBroker.Create(_options, _log);
        try
        {
            _server = new ControlServer(_broker, _log);
        }
        catch
        {
            Cleanup();
            throw;
        }
        _broker.StartPump();
        _server.Start();
        var broker = _broker;
        _meter = new BrokerMeter(broker.Counter, broker.Pool);
        _log.LogInformation("anthost-kernel ready: instance {Instance}, {Pages} pages ({MiB} MiB), {Mode} transfer{Strict}, pool {Pool}, socket {Socket}, group {Group}",
            _options.Instance, _broker.Layout.DataPages, _broker.Layout.DataPages / 256, _options.Transfer.ToString().ToLowerInvariant(),
            _options.Strict ? ", strict" : "", _broker.PoolPath, _broker.SocketPath, _options.Group);
        _log.LogInformation("limits per app: {Pages} pages, {Icas} ICAs, {Channels} channels, {Services} services; per uid (root: none): {Regs} processes, {Conns} connections; servers' reserve {Reserve} pages",
            _broker.AppPages, _options.AppIcas, _options.AppChannels, _options.AppServices, _options.RegistrationsPerUid, _options.ConnectionsPerUid, _broker.ServerReserve);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        Cleanup();
        _log.LogInformation("anthost-kernel stopped; removed pool and socket");
        return Task.CompletedTask;
    }

    private void Cleanup()
    {
        _meter?.Close();
        _meter = null;
        _server?.Dispose();
        _broker?.StopPump();
        if (_broker is null) return;
        TryDelete(_broker.SocketPath);
        TryDelete(_broker.PoolPath);
        TryDelete(_broker.TablesPath);
        _broker.Dispose();
        _broker = null;
    }

    private static void TryDelete(string path)
    {
        try { File.Delete(path); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
