// The standard HttpClient over AntHost in one line: InetStack.CreateHttpHandler() returns a
// SocketsHttpHandler whose connections are AntHost TCP connections (InetStream) and whose host
// names are resolved over AntHost's own UDP (the instance's resolv.conf: the sandbox peer's
// dnsmasq knows peer.anthost.test). Everything above the socket (HTTP/1.1, TLS, headers,
// chunking, pooling) is .NET's own and every byte crosses AntHost's inet server and NIC driver.
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using AntHost.Client;
using AntHost.Samples;

const string Usage = "HttpGet [--instance NAME] [--to 198.18.0.1] [--url http://peer.anthost.test/] [--count 1] [--ca ca.pem]";
var cli = SampleArgs.Parse(Environment.GetCommandLineArgs()[1..], Usage, "url", "count", "ca");
return SampleArgs.Run(() =>
{
    using var stack = cli.Connect();
    var url = new Uri(cli.String("url", $"http://{cli.To}/"));
    using var handler = stack.CreateHttpHandler();
    // https:// URLs: the machine's trusted roots, or with --ca only that CA (a PEM file), validation on either way.
    if (cli.String("ca", "") is { Length: > 0 } caFile)
    {
        var ca = X509CertificateLoader.LoadCertificateFromFile(caFile);
        handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, _, errors) =>
        {
            if (certificate is null || (errors & ~SslPolicyErrors.RemoteCertificateChainErrors) != SslPolicyErrors.None) return false;
            using var chain = new X509Chain();
            chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
            chain.ChainPolicy.CustomTrustStore.Add(ca);
            chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
            return chain.Build(new X509Certificate2(certificate));
        };
    }
    using var http = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(30) };
    int failures = 0;
    for (int i = 0; i < Math.Max(1, cli.Int("count", 1)); i++)
    {
        using var response = http.GetAsync(url).GetAwaiter().GetResult();
        string body = response.Content.ReadAsStringAsync().GetAwaiter().GetResult();
        Console.WriteLine($"GET {url} -> {(int)response.StatusCode} {response.ReasonPhrase}, HTTP/{response.Version}, {body.Length} characters");
        Console.WriteLine($"  server: {response.Headers.Server}, content-type: {response.Content.Headers.ContentType}{(url.Scheme == "https" ? ", TLS with the certificate validated" : "")}");
        string first = body.Split('\n', 2)[0];
        Console.WriteLine($"  body starts: {(first.Length > 100 ? first[..100] + "..." : first)}");
        if (!response.IsSuccessStatusCode) failures++;
    }
    return failures == 0 ? 0 : 1;
});
