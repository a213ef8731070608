// Kestrel over AntHost. Kestrel asks its IConnectionListenerFactory to bind each endpoint;
// this one makes an AntHost listening socket (InetSocket: Bind, Listen) and hands Kestrel
// every accepted connection as a ConnectionContext whose Transport is a pair of pipes:
// a receive loop copies what the socket receives into the input pipe, a send loop sends
// what Kestrel wrote into the output pipe. So HTTP/1.1, HTTP/2, TLS (UseHttps), keep-alive
// and the whole ASP.NET Core pipeline run unchanged on AntHost's TCP.
using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace AntHost.Client.Kestrel;

/// <summary>How Kestrel's AntHost transport connects and buffers.</summary>
public sealed class AntHostTransportOptions
{
    /// <summary>A stack the app already has; null: the transport connects to <see cref="Instance"/> at its first bind and disposes that stack with the host.</summary>
    public InetStack? Stack { get; set; }

    /// <summary>The AntHost instance (null: ANTHOST_INSTANCE, then "default").</summary>
    public string? Instance { get; set; }

    /// <summary>The listen backlog.</summary>
    public int Backlog { get; set; } = 512;

    /// <summary>Bytes received and not yet read by Kestrel before the receive loop pauses (the input pipe's pause threshold).</summary>
    public long MaxReadBufferSize { get; set; } = 1024 * 1024;

    /// <summary>Bytes Kestrel may write ahead of what was sent before its writes wait.</summary>
    public long MaxWriteBufferSize { get; set; } = 64 * 1024;

    /// <summary>Disable Nagle on accepted connections (as Kestrel's socket transport does by default).</summary>
    public bool NoDelay { get; set; } = true;
}

/// <summary>The factory Kestrel binds its IPv4 endpoints with (see <see cref="AntHostWebHostBuilderExtensions.UseAntHost"/>).</summary>
public sealed class AntHostTransportFactory : IConnectionListenerFactory, IConnectionListenerFactorySelector, IAsyncDisposable
{
    private readonly AntHostTransportOptions _options;
    private readonly ILogger _log;
    private readonly object _gate = new();
    private InetStack? _owned;

    public AntHostTransportFactory(IOptions<AntHostTransportOptions> options, ILoggerFactory loggerFactory)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(loggerFactory);
        _options = options.Value;
        _log = loggerFactory.CreateLogger("AntHost.Client.Kestrel");
    }

    /// <summary>The stack the transport's sockets live on.</summary>
    public InetStack Stack
    {
        get
        {
            if (_options.Stack is { } given) return given;
            lock (_gate)
            {
                if (_owned is not { IsAlive: true })
                {
                    _owned?.Dispose();
                    _owned = InetStack.Connect(new InetStackOptions { Instance = _options.Instance });
                }
                return _owned;
            }
        }
    }

    /// <summary>IPv4 endpoints: AntHost speaks IPv4 only.</summary>
    public bool CanBind(EndPoint endpoint) => endpoint is IPEndPoint { AddressFamily: AddressFamily.InterNetwork };

    public ValueTask<IConnectionListener> BindAsync(EndPoint endpoint, CancellationToken cancellationToken = default)
    {
        if (endpoint is not IPEndPoint { AddressFamily: AddressFamily.InterNetwork } ip)
            throw new NotSupportedException($"AntHost's Kestrel transport binds IPv4 endpoints, not {endpoint}");
        var socket = new InetSocket(Stack, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            socket.Bind(ip);
            socket.Listen(_options.Backlog);
        }
        catch (SocketException e)
        {
            socket.Dispose();
            // Kestrel reports an address in use by this exception type.
            if (e.SocketErrorCode == SocketError.AddressAlreadyInUse) throw new AddressInUseException(e.Message, e);
            throw;
        }
        _log.LogInformation("listening on AntHost {EndPoint} (instance {Instance})", socket.LocalEndPoint, socket.Stack.Instance);
        return ValueTask.FromResult<IConnectionListener>(new AntHostConnectionListener(socket, _options, _log));
    }

    public ValueTask DisposeAsync()
    {
        lock (_gate)
        {
            _owned?.Dispose();
            _owned = null;
        }
        return ValueTask.CompletedTask;
    }
}

/// <summary>One bound endpoint: accepts AntHost connections for Kestrel.</summary>
internal sealed class AntHostConnectionListener(InetSocket listener, AntHostTransportOptions options, ILogger log) : IConnectionListener
{
    private int _unbound;

    public EndPoint EndPoint { get; } = listener.LocalEndPoint!;

    public async ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
    {
        while (true)
        {
            if (Volatile.Read(ref _unbound) != 0) return null;
            InetSocket socket;
            try
            {
                socket = await listener.AcceptAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (SocketException) when (Volatile.Read(ref _unbound) != 0)
            {
                return null; // unbound while waiting: Kestrel stops accepting
            }
            catch (ObjectDisposedException)
            {
                return null;
            }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.ConnectionReset or SocketError.ConnectionAborted)
            {
                continue; // a connection that went before it was taken
            }
            try
            {
                if (options.NoDelay) socket.NoDelay = true;
            }
            catch (SocketException e)
            {
                log.LogDebug("a connection from {Remote} went before it was set up: {Error}", socket.RemoteEndPoint, e.Message);
                socket.Dispose();
                continue;
            }
            var connection = new AntHostConnection(socket, options, log);
            connection.Start();
            return connection;
        }
    }

    public ValueTask UnbindAsync(CancellationToken cancellationToken = default)
    {
        if (Interlocked.Exchange(ref _unbound, 1) == 0) listener.Dispose();
        return ValueTask.CompletedTask;
    }

    public ValueTask DisposeAsync() => UnbindAsync();
}

/// <summary>Registration.</summary>
public static class AntHostWebHostBuilderExtensions
{
    /// <summary>
    /// Kestrel binds its IPv4 endpoints on AntHost: every connection of the app is an AntHost TCP
    /// connection (the inet server's, not the host kernel's). Listen on AntHost's address, e.g.
    /// <c>builder.WebHost.UseAntHost().UseUrls("http://198.18.0.2:8080")</c>.
    /// </summary>
    public static IWebHostBuilder UseAntHost(this IWebHostBuilder builder, Action<AntHostTransportOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.ConfigureServices(services =>
        {
            if (configure is not null) services.Configure(configure);
            services.AddSingleton<AntHostTransportFactory>();
            services.AddSingleton<IConnectionListenerFactory>(sp => sp.GetRequiredService<AntHostTransportFactory>());
        });
    }
}
