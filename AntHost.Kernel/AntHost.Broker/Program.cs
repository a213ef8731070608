// anthost-kernel: the broker process of one AntHost instance.
using AntHost.Broker;
using AntHost.Kernel.Logging;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

return ServerCommandLine.Run("anthost-kernel", "anthost-kernel: the AntHost broker (ICA pool, ownership, names, death and reclaim)",
    BrokerOptions.Options, args, BrokerOptions.Parse, Serve);

static int Serve(BrokerOptions options)
{
    // No configuration reload, and the content root where the binaries are: a watcher of the
    // working directory (where logs and benchmark output are written) woke the idle server ten
    // times a second.
    var settings = new HostApplicationBuilderSettings { Args = [], Configuration = new ConfigurationManager(), ContentRootPath = AppContext.BaseDirectory };
    settings.Configuration["hostBuilder:reloadConfigOnChange"] = "false";
    var builder = Host.CreateApplicationBuilder(settings);
    builder.Logging.ClearProviders();
    builder.Logging.AddServerConsole(options.LogFormat);
    builder.Logging.SetMinimumLevel(options.Verbose ? LogLevel.Debug : LogLevel.Information);
    builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(5));
    builder.Services.AddSingleton(options);
    builder.Services.AddHostedService<BrokerService>();
    using var host = builder.Build();
    try
    {
        host.Run();
    }
    catch (BrokerStartException e)
    {
        Console.Error.WriteLine($"anthost-kernel: {e.Message}");
        return 1;
    }
    return 0;
}
