// The remote host's servers in the sandbox. The Linux kernel in the peer namespace plays the
// remote host (a TCP/IP stack nobody here wrote); these are the ordinary services it runs, one
// process so the sandbox starts, watches and stops a single PID:
//   TCP echo (7), UDP echo (7), TCP discard/sink (9), TCP source (19: sends zeros until the
//   client closes), HTTP (80, Kestrel): GET / (a greeting), GET /bytes/{n} (n bytes of a fixed
//   pattern), POST /echo (the body back), GET /health; and the RTT responder (5001: after a
//   4-byte size N, one byte back for every N bytes: the benchmarks' RTT test).
// It prints "ready" on stdout once every listener is bound, and stops on SIGTERM or when its
// standard input closes (so it cannot outlive the sandbox that started it).
using System.Net;
using System.Net.Sockets;
using AntHost.Peer;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

var options = PeerOptions.Parse(args);
if (options is null)
{
    Console.Error.WriteLine("usage: anthost-peer --address A.B.C.D [--echo 7] [--discard 9] [--source 19] [--http 80] [--rtt 5001]");
    return 2;
}

// Not disposed: the stdin watcher may cancel it as the process ends, and it holds no timer.
var stop = new CancellationTokenSource();

var builder = WebApplication.CreateSlimBuilder();
builder.Logging.ClearProviders();
builder.WebHost.ConfigureKestrel(k => k.Listen(options.Address, options.HttpPort));
var app = builder.Build();
// The host's console lifetime takes SIGTERM and SIGINT for itself: it asks the application to
// stop rather than letting the process exit, so the servers stop when it does.
app.Lifetime.ApplicationStopping.Register(stop.Cancel);
app.MapGet("/", () => "hello from the AntHost peer\n");
app.MapGet("/health", () => "ok\n");
app.MapGet("/bytes/{n:int}", (int n, HttpResponse response) =>
{
    if (n < 0 || n > 1 << 30) return Results.BadRequest("n must be 0..1073741824\n");
    return Results.Stream(async s =>
    {
        var chunk = new byte[64 * 1024];
        for (int i = 0; i < chunk.Length; i++) chunk[i] = (byte)(i % 251);
        long left = n;
        while (left > 0)
        {
            int k = (int)Math.Min(left, chunk.Length);
            await s.WriteAsync(chunk.AsMemory(0, k));
            left -= k;
        }
    }, "application/octet-stream");
});
app.MapPost("/echo", async (HttpRequest request, HttpResponse response) =>
{
    response.ContentType = request.ContentType ?? "application/octet-stream";
    await request.Body.CopyToAsync(response.Body);
});

var servers = new List<Task>
{
    Servers.TcpAsync(new IPEndPoint(options.Address, options.EchoPort), Servers.EchoAsync, stop.Token),
    Servers.UdpEchoAsync(new IPEndPoint(options.Address, options.EchoPort), stop.Token),
    Servers.TcpAsync(new IPEndPoint(options.Address, options.DiscardPort), Servers.DiscardAsync, stop.Token),
    Servers.TcpAsync(new IPEndPoint(options.Address, options.SourcePort), Servers.SourceAsync, stop.Token),
    Servers.TcpAsync(new IPEndPoint(options.Address, options.RttPort), Servers.RttAsync, stop.Token),
};
await app.StartAsync(stop.Token);
await Servers.AllBound.Task;
Console.WriteLine("ready");
Console.Out.Flush();

// Stop when the parent closes our standard input (it died or is tearing down).
_ = Task.Run(async () =>
{
    var buffer = new char[64];
    while (await Console.In.ReadAsync(buffer.AsMemory()) > 0) { }
    stop.Cancel();
});

try
{
    await Task.Delay(Timeout.Infinite, stop.Token);
}
catch (OperationCanceledException)
{
}
await app.StopAsync(CancellationToken.None);
return 0;
