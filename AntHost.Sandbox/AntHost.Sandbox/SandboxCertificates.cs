using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace AntHost.Sandbox;

/// <summary>
/// TLS material for the sandbox, made on the spot (valid one day): a CA of its own and a
/// server certificate it signed for the sandbox's names (peer.anthost.test and
/// anthost.anthost.test), written to a folder as PEM (ca.pem, server.pem, server.key, for
/// openssl and curl) and PKCS#12 (server.pfx, no password, for Kestrel). Nothing trusts the
/// CA but who is given it: the demo and the TLS tests validate against it alone.
/// </summary>
public sealed record SandboxCertificates(X509Certificate2 Ca, string CaPem, string CertificatePem, string KeyPem, string Pfx)
{
    public static SandboxCertificates Create(string directory)
    {
        Directory.CreateDirectory(directory);
        var now = DateTimeOffset.UtcNow;
        using var caKey = RSA.Create(2048);
        var caRequest = new CertificateRequest("CN=AntHost sandbox CA", caKey, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        caRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        caRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        var ca = caRequest.CreateSelfSigned(now.AddDays(-1), now.AddDays(1));
        using var key = RSA.Create(2048);
        var request = new CertificateRequest($"CN={SandboxNetwork.PeerName}", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName(SandboxNetwork.PeerName);
        san.AddDnsName(SandboxNetwork.HostName);
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, false));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.KeyEncipherment, false));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false)); // server authentication
        using var cert = request.Create(ca, now.AddDays(-1), now.AddDays(1), RandomNumberGenerator.GetBytes(8));
        using var withKey = cert.CopyWithPrivateKey(key);
        var c = new SandboxCertificates(ca, Path.Combine(directory, "ca.pem"), Path.Combine(directory, "server.pem"),
            Path.Combine(directory, "server.key"), Path.Combine(directory, "server.pfx"));
        File.WriteAllText(c.CaPem, ca.ExportCertificatePem());
        File.WriteAllText(c.CertificatePem, cert.ExportCertificatePem());
        File.WriteAllText(c.KeyPem, key.ExportPkcs8PrivateKeyPem());
        File.WriteAllBytes(c.Pfx, withKey.Export(X509ContentType.Pkcs12));
        return c;
    }

    /// <summary>The command that runs a TLS server in the peer namespace (openssl s_server -www: a status page over HTTP/1.0) at <paramref name="peerAddress"/>:<paramref name="port"/>.</summary>
    public string[] PeerTlsServerCommand(string peerNamespace, string peerAddress, int port) =>
        ["ip", "netns", "exec", peerNamespace, "openssl", "s_server", "-accept", $"{peerAddress}:{port}",
         "-cert", CertificatePem, "-key", KeyPem, "-www", "-quiet"];
}
