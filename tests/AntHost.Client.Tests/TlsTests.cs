using System.Diagnostics;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using AntHost.Client.Tests.Infrastructure;
using AntHost.Inet.Abi;
using AntHost.Sandbox;
using AntHost.Stack.Tests.Infrastructure;
using AntHost.TestSupport;
using Xunit.Abstractions;

namespace AntHost.Client.Tests;

/// <summary>
/// TLS over AntHost with certificate validation on: the test makes its own CA and a server
/// certificate (SandboxCertificates); SslStream over InetStream and HttpClient to https:// reach a TLS server the peer's
/// kernel runs (openssl s_server in the peer namespace); a certificate for another name or from
/// an untrusted CA fails as .NET's own sockets fail; and Kestrel on AntHost serves HTTPS to curl.
/// </summary>
public sealed class TlsTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("aht-tls-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>Validation on, trusting only the test's CA: the chain must end in it and the name must match.</summary>
    private static RemoteCertificateValidationCallback TrustOnly(X509Certificate2 ca) => (_, certificate, _, errors) =>
    {
        if (certificate is null || (errors & ~SslPolicyErrors.RemoteCertificateChainErrors) != SslPolicyErrors.None) return false;
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(ca);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        return chain.Build(new X509Certificate2(certificate));
    };

    [PcapFact]
    public async Task SslStream_and_HttpClient_reach_a_TLS_server_on_the_peer_and_a_wrong_certificate_fails()
    {
        var certificates = SandboxCertificates.Create(_dir);
        var ca = certificates.Ca;
        using var running = new RunningStack(output);
        running.Sandbox.StartDns();
        var command = certificates.PeerTlsServerCommand(running.Sandbox.PeerNamespace, running.Sandbox.PeerAddress.ToString(), 4433);
        var psi = new ProcessStartInfo(command[0]) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false };
        foreach (var a in command.Skip(1)) psi.ArgumentList.Add(a);
        using var tlsServer = Process.Start(psi)!;
        var serverErr = tlsServer.StandardError.ReadToEndAsync();
        try
        {
            var dns = new DnsOptions { Servers = [new IPEndPoint(RunningStack.PeerIp, 53)], Search = [SandboxNetwork.DnsDomain] };
            using var stack = InetStack.Connect(new InetStackOptions { Instance = running.Instance, ProcessName = "tls-test", Dns = dns });
            long before = running.Stat(InetStat.SocketsOpen);
            // The server listens once its socket shows in the peer's kernel.
            for (int i = 0; i < 100 && !running.Sandbox.RunInPeer("ss", "-ltn", "sport = :4433").StandardOutput.Contains("4433", StringComparison.Ordinal); i++)
                Thread.Sleep(50);

            // SslStream over InetStream, the name checked against the certificate.
            await using (var stream = await stack.ConnectStreamAsync(SandboxNetwork.PeerName, 4433))
            await using (var tls = new SslStream(stream))
            {
                await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
                {
                    TargetHost = SandboxNetwork.PeerName,
                    RemoteCertificateValidationCallback = TrustOnly(ca),
                });
                output.WriteLine($"TLS: {tls.SslProtocol}, {tls.NegotiatedCipherSuite}, server {tls.RemoteCertificate?.Subject}");
                await tls.WriteAsync(Encoding.ASCII.GetBytes("GET / HTTP/1.0\r\n\r\n"));
                string page = await new StreamReader(tls).ReadToEndAsync();
                Assert.StartsWith("HTTP/1.0 200 ok", page, StringComparison.Ordinal);
            }

            // HttpClient to an https:// URL, validation on.
            var handler = stack.CreateHttpHandler();
            handler.SslOptions.RemoteCertificateValidationCallback = TrustOnly(ca);
            using (var http = new HttpClient(handler))
            {
                using var response = await http.GetAsync($"https://{SandboxNetwork.PeerName}:4433/");
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                Assert.Contains("s_server", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);

                // A name the certificate does not hold (the alias): the handshake fails as .NET's does.
                var wrongName = await Assert.ThrowsAsync<HttpRequestException>(() => http.GetAsync($"https://{SandboxNetwork.AliasName}:4433/"));
                Assert.IsType<AuthenticationException>(wrongName.InnerException);
                output.WriteLine($"wrong name: {wrongName.Message} / {wrongName.InnerException!.Message}");
            }
            // Default validation (the test CA is not trusted by the machine): refused.
            using (var strict = new HttpClient(stack.CreateHttpHandler()))
            {
                var untrusted = await Assert.ThrowsAsync<HttpRequestException>(() => strict.GetAsync($"https://{SandboxNetwork.PeerName}:4433/"));
                Assert.IsType<AuthenticationException>(untrusted.InnerException);
            }
            running.WaitStats(x => x[(int)InetStat.SocketsOpen] == before, "every TLS connection's socket closed");
        }
        finally
        {
            if (!tlsServer.HasExited) tlsServer.Kill();
            tlsServer.WaitForExit(5000);
            output.WriteLine("openssl s_server: " + (serverErr.IsCompleted ? serverErr.Result : ""));
        }
    }

    [PcapFact]
    public void Kestrel_on_AntHost_serves_HTTPS_to_curl_on_the_peer()
    {
        var certificates = SandboxCertificates.Create(_dir);
        string caPem = certificates.CaPem, pfx = certificates.Pfx;
        using var running = new RunningStack(output);
        var psi = new ProcessStartInfo(SandboxNetwork.DotnetHost()) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { Repo.Dll("samples/WebServer", "WebServer.dll"), "--instance", running.Instance, "--cert", pfx, "--requests", "2" })
            psi.ArgumentList.Add(a);
        using var server = Process.Start(psi)!;
        var errors = server.StandardError.ReadToEndAsync();
        try
        {
            string? line;
            while ((line = server.StandardOutput.ReadLine()) is not null && !line.StartsWith("listening", StringComparison.Ordinal)) { }
            Assert.Contains("https://198.18.0.2:8443/", line ?? errors.Result, StringComparison.Ordinal);
            string resolve = $"{SandboxNetwork.HostName}:8443:198.18.0.2";
            var ok = running.Sandbox.RunInPeer("curl", "-sS", "--max-time", "30", "--cacert", caPem, "--resolve", resolve, $"https://{SandboxNetwork.HostName}:8443/secure");
            output.WriteLine($"curl: {ok.StandardOutput}{ok.StandardError}");
            Assert.True(ok.Succeeded);
            Assert.Contains("GET /secure", ok.StandardOutput, StringComparison.Ordinal);
            // Without the CA curl refuses the certificate (exit 60), and the app goes on.
            var refused = running.Sandbox.RunInPeer("curl", "-sS", "--max-time", "30", "--resolve", resolve, $"https://{SandboxNetwork.HostName}:8443/");
            Assert.Equal(60, refused.ExitCode);
            var second = running.Sandbox.RunInPeer("curl", "-sS", "--max-time", "30", "--cacert", caPem, "--resolve", resolve, $"https://{SandboxNetwork.HostName}:8443/again");
            Assert.True(second.Succeeded, second.StandardError);
            Assert.True(server.WaitForExit(TimeSpan.FromSeconds(30)), "the app did not stop after its 2 requests");
            Assert.Equal(0, server.ExitCode);
            running.WaitStats(x => x[(int)InetStat.SocketsOpen] == 0, "every socket of the app closed");
        }
        finally
        {
            if (!server.HasExited) server.Kill();
        }
    }
}
