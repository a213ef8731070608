// ASP.NET Core hosted on AntHost: a minimal-API app whose Kestrel listens on AntHost's own
// address (198.18.0.2, which no kernel holds) through AntHost.Client.Kestrel, so a client in
// the peer namespace (curl) reaches it across the veth through AntHost's NIC driver and inet
// server. Everything above the transport (HTTP/1.1, keep-alive, routing) is ASP.NET Core's.
// It stops after --requests N requests (0: on Ctrl-C or SIGTERM), gracefully.
//   GET  /anything      a line naming the request
//   GET  /bytes/{n}     n bytes of the pattern i % 251
//   GET  /delay/{ms}    answers after ms milliseconds
//   POST /sha256        the body's SHA-256 (hex) and length
// With --cert server.pfx it also serves HTTPS on --https-port (8443).
using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using AntHost.Client.Kestrel;
using AntHost.Samples;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

const string Usage = "WebServer [--instance NAME] [--listen 198.18.0.2] [--port 8080] [--requests 0] [--cert server.pfx [--https-port 8443]]";
var cli = SampleArgs.Parse(Environment.GetCommandLineArgs()[1..], Usage, "listen", "port", "requests", "cert", "https-port");
return SampleArgs.Run(() =>
{
    using var stack = cli.Connect();
    var at = new IPEndPoint(cli.Address("listen", "198.18.0.2"), cli.Int("port", 8080));
    int limit = cli.Int("requests", 0);

    var builder = WebApplication.CreateSlimBuilder();
    builder.Logging.ClearProviders();
    builder.WebHost.UseAntHost(o => o.Stack = stack);
    builder.WebHost.ConfigureKestrel(k =>
    {
        k.Listen(at);
        // HTTPS too when given a certificate (a PKCS#12 file with its key, no password): TLS runs
        // in Kestrel's connection middleware, over the same AntHost transport.
        if (cli.String("cert", "") is { Length: > 0 } pfx)
            k.Listen(at.Address, cli.Int("https-port", 8443), l => l.UseHttps(X509CertificateLoader.LoadPkcs12FromFile(pfx, null)));
        k.Limits.MaxRequestBodySize = 1L << 30;
    });
    var app = builder.Build();
    int served = 0;

    // Counts a request; the one that reaches --requests stops the app once its response is sent.
    void Count(HttpContext context)
    {
        if (Interlocked.Increment(ref served) == limit)
            context.Response.OnCompleted(() => { app.Lifetime.StopApplication(); return Task.CompletedTask; });
    }

    app.MapGet("/bytes/{n:long}", (long n, HttpContext context) =>
    {
        Count(context);
        if (n is < 0 or > 1L << 32) return Results.BadRequest("n must be 0..4294967296\n");
        return Results.Stream(async body =>
        {
            var chunk = new byte[251 * 256];
            for (int i = 0; i < chunk.Length; i++) chunk[i] = (byte)(i % 251);
            for (long left = n; left > 0;)
            {
                int k = (int)Math.Min(left, chunk.Length);
                await body.WriteAsync(chunk.AsMemory(0, k), context.RequestAborted);
                left -= k;
            }
        }, "application/octet-stream");
    });
    app.MapGet("/delay/{ms:int}", async (int ms, HttpContext context) =>
    {
        Count(context);
        await Task.Delay(Math.Clamp(ms, 0, 60_000), context.RequestAborted);
        return $"answered after {ms} ms\n";
    });
    app.MapPost("/sha256", async (HttpContext context) =>
    {
        Count(context);
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[64 * 1024];
        long length = 0;
        int n;
        while ((n = await context.Request.Body.ReadAsync(buffer, context.RequestAborted)) > 0)
        {
            sha.AppendData(buffer, 0, n);
            length += n;
        }
        return $"{Convert.ToHexStringLower(sha.GetHashAndReset())} {length}\n";
    });
    app.MapGet("/{**path}", (HttpContext context) =>
    {
        Count(context);
        var c = context.Connection;
        return $"Hello from AntHost: {context.Request.Method} {context.Request.Path} is request {Volatile.Read(ref served)}, " +
            $"served to {c.RemoteIpAddress}:{c.RemotePort} by {c.LocalIpAddress}:{c.LocalPort}\n";
    });

    app.Start();
    Console.WriteLine($"listening on http://{at}/ (ASP.NET Core on AntHost)"
        + (cli.String("cert", "") is { Length: > 0 } ? $" and https://{at.Address}:{cli.Int("https-port", 8443)}/" : ""));
    Console.Out.Flush();
    app.WaitForShutdown();
    Console.WriteLine($"served {served} requests; stopping");
    return 0;
});
