// anthost-inet: the inet server process of one AntHost kernel instance.
using AntHost.Inet;
using AntHost.Kernel;
using AntHost.Kernel.Logging;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

return ServerCommandLine.Run("anthost-inet", "anthost-inet: the AntHost inet server (TCP/IP stack) of one instance",
    InetOptions.Options, args, InetOptions.Parse, Serve);

static int Serve(InetOptions options)
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
    builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(10));
    builder.Services.AddSingleton(options);
    builder.Services.AddHostedService<InetServer>();
    using var host = builder.Build();
    try
    {
        host.Run();
    }
    catch (KernelException e)
    {
        Console.Error.WriteLine($"anthost-inet: {e.Message}");
        return 1;
    }
    return 0;
}
