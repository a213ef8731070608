// The generic host of the broker and the inet server: one hosted service, console logging in
// the chosen format, no configuration reload. Compiled into each of them.
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace AntHost.Kernel.Logging;

internal static class ServerHost
{
    /// <summary>
    /// Runs <typeparamref name="TService"/> with <paramref name="options"/> as a singleton until
    /// the host stops; exit code 0, or 1 with the message of a <typeparamref name="TStartFailure"/>.
    /// </summary>
    public static int Run<TService, TOptions, TStartFailure>(string program, TOptions options, string logFormat, bool verbose, TimeSpan shutdownTimeout)
        where TService : class, IHostedService
        where TOptions : class
        where TStartFailure : Exception
    {
        // No configuration reload, and the content root where the binaries are: a watcher of the
        // working directory (where logs and benchmark output are written) woke the idle server ten
        // times a second.
        var settings = new HostApplicationBuilderSettings { Args = [], Configuration = new ConfigurationManager(), ContentRootPath = AppContext.BaseDirectory };
        settings.Configuration["hostBuilder:reloadConfigOnChange"] = "false";
        var builder = Host.CreateApplicationBuilder(settings);
        builder.Logging.ClearProviders();
        builder.Logging.AddServerConsole(logFormat);
        builder.Logging.SetMinimumLevel(verbose ? LogLevel.Debug : LogLevel.Information);
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = shutdownTimeout);
        builder.Services.AddSingleton(options);
        builder.Services.AddHostedService<TService>();
        using var host = builder.Build();
        try
        {
            host.Run();
        }
        catch (TStartFailure e)
        {
            Console.Error.WriteLine($"{program}: {e.Message}");
            return 1;
        }
        return 0;
    }
}
