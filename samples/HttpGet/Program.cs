// The standard HttpClient over AntHost: SocketsHttpHandler.ConnectCallback opens an
// AntHost TCP connection and hands HttpClient an InetStream, so everything above the
// socket (HTTP/1.1, headers, chunking, pooling) is .NET's own and every byte crosses
// AntHost's inet server and NIC driver.
using System.Net;
using System.Net.Sockets;
using AntHost.Client;
using AntHost.Samples;

const string Usage = "HttpGet [--instance NAME] [--to 198.18.0.1] [--url http://198.18.0.1/] [--count 1]";
var cli = SampleArgs.Parse(Environment.GetCommandLineArgs()[1..], Usage, "url", "count");
return SampleArgs.Run(() =>
{
    using var stack = cli.Connect();
    var url = new Uri(cli.String("url", $"http://{cli.To}/"));
    using var handler = new SocketsHttpHandler
    {
        // AntHost has no resolver: the URL's host is an address.
        ConnectCallback = async (context, ct) =>
        {
            if (!IPAddress.TryParse(context.DnsEndPoint.Host, out var ip))
                throw new SocketException((int)SocketError.HostNotFound, $"AntHost does not resolve names: use an address, not '{context.DnsEndPoint.Host}'");
            var socket = new InetSocket(stack, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                await socket.ConnectAsync(new IPEndPoint(ip, context.DnsEndPoint.Port), ct);
                socket.NoDelay = true;
                return new InetStream(socket, ownsSocket: true);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        },
        UseProxy = false,
    };
    using var http = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(30) };
    int failures = 0;
    for (int i = 0; i < Math.Max(1, cli.Int("count", 1)); i++)
    {
        using var response = http.GetAsync(url).GetAwaiter().GetResult();
        string body = response.Content.ReadAsStringAsync().GetAwaiter().GetResult();
        Console.WriteLine($"GET {url} -> {(int)response.StatusCode} {response.ReasonPhrase}, HTTP/{response.Version}, {body.Length} characters");
        Console.WriteLine($"  server: {response.Headers.Server}, content-type: {response.Content.Headers.ContentType}");
        string first = body.Split('\n', 2)[0];
        Console.WriteLine($"  body starts: {(first.Length > 100 ? first[..100] + "..." : first)}");
        if (!response.IsSuccessStatusCode) failures++;
    }
    return failures == 0 ? 0 : 1;
});
