// Names and HttpClient on the stack: the stub resolver (InetResolver, over AntHost's own UDP),
// connecting a stream to a host name, and a SocketsHttpHandler whose connections are AntHost
// TCP connections, so `new HttpClient(stack.CreateHttpHandler())` works with any URL.
using System.Net;
using System.Net.Http;
using System.Net.Sockets;

namespace AntHost.Client;

public sealed partial class InetStack
{
    private InetResolver? _resolver;

    /// <summary>The configuration the app gave (InetStackOptions.Dns), or null for the instance's resolv.conf.</summary>
    internal DnsOptions? DnsChoice { get; init; }

    /// <summary>
    /// The stack's DNS stub resolver, made on first use from <see cref="InetStackOptions.Dns"/>, else
    /// ANTHOST_RESOLV_CONF, else the instance's resolv.conf (written by <c>anthost up</c>), else /etc/resolv.conf.
    /// </summary>
    public InetResolver Resolver
    {
        get
        {
            if (_resolver is { } r) return r;
            Interlocked.CompareExchange(ref _resolver, new InetResolver(this, DnsChoice ?? DnsOptions.ForInstance(Instance)), null);
            return _resolver;
        }
    }

    /// <summary>
    /// The IPv4 addresses of <paramref name="host"/>, asked over AntHost (see <see cref="InetResolver"/>).
    /// Fails with SocketError.HostNotFound (no such name) or TryAgain (no server answered in time).
    /// </summary>
    public Task<IPAddress[]> ResolveAsync(string host, CancellationToken cancellationToken = default) =>
        Resolver.ResolveAsync(host, cancellationToken);

    /// <summary>As <see cref="ResolveAsync"/>, waiting for the answer.</summary>
    public IPAddress[] Resolve(string host) => Resolver.ResolveAsync(host).GetAwaiter().GetResult();

    /// <summary>
    /// A connected TCP stream to <paramref name="host"/>:<paramref name="port"/>: the name resolved,
    /// then each address tried in turn (a socket whose connect failed is closed) until one connects.
    /// </summary>
    public async ValueTask<InetStream> ConnectStreamAsync(string host, int port, CancellationToken cancellationToken = default)
    {
        var addresses = await ResolveAsync(host, cancellationToken).ConfigureAwait(false);
        SocketException? last = null;
        foreach (var address in addresses)
        {
            var socket = new InetSocket(this, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                await socket.ConnectAsync(new IPEndPoint(address, port), cancellationToken).ConfigureAwait(false);
                socket.NoDelay = true;
                return new InetStream(socket, ownsSocket: true);
            }
            catch (SocketException e)
            {
                socket.Dispose();
                last = e;
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        }
        throw last ?? InetErrors.Local(SocketError.HostNotFound, $"'{host}' has no address");
    }

    /// <summary>
    /// A <see cref="SocketsHttpHandler"/> whose every connection is an AntHost TCP connection to the
    /// URL's host, resolved over AntHost: <c>new HttpClient(stack.CreateHttpHandler())</c>. Pooling,
    /// keep-alive, HTTP/1.1 and HTTPS (SslStream over the InetStream) are the handler's own.
    /// The handler uses no proxy (a proxy would be a host of the host kernel's network).
    /// </summary>
    public SocketsHttpHandler CreateHttpHandler()
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        return new SocketsHttpHandler
        {
            UseProxy = false,
            ConnectCallback = async (context, ct) =>
                await ConnectStreamAsync(context.DnsEndPoint.Host, context.DnsEndPoint.Port, ct).ConfigureAwait(false),
        };
    }
}
