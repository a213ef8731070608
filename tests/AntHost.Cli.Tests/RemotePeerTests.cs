using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using AntHost.Sandbox;
using AntHost.TestSupport;
using Xunit.Abstractions;

namespace AntHost.Cli.Tests;

/// <summary>A fact that needs a C compiler (<c>cc</c>) and network namespaces; skipped saying which is missing.</summary>
public sealed class CcFactAttribute : FactAttribute
{
    public CcFactAttribute()
    {
        if (Requirements.NetnsMissing is { } why) Skip = why;
        else if (RemotePeerTests.FindTool("cc") is null) Skip = "needs a C compiler as `cc` (the remote peer is plain C); scripts/prereqs.sh installs gcc";
        else if (RemotePeerTests.FindTool("make") is null) Skip = "needs `make` to build the remote peer";
    }
}

/// <summary>
/// The remote peer (remote-peer/anthost-rpeer.c) as a user builds and runs it: its Makefile
/// builds it with the system's cc, and run inside a namespace of the test's own it answers
/// every service the benchmarks use, spoken to by the Linux kernel from the other side of a
/// veth.
/// </summary>
public sealed class RemotePeerTests(ITestOutputHelper output)
{
    public static string? FindTool(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin:/bin").Split(':').Select(d => Path.Combine(d, name)).FirstOrDefault(File.Exists);

    private static string RepositoryRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "AntHost.slnx"))) return d.FullName;
        throw new DirectoryNotFoundException("not inside the repository");
    }

    [CcFact]
    public void The_c_peer_builds_and_answers_echo_discard_source_rtt_and_udp_echo()
    {
        string dir = Directory.CreateTempSubdirectory("anthost-rpeer-").FullName;
        string prefix = "aht-e" + Random.Shared.Next(10000, 100000);
        Process? peer = null;
        try
        {
            foreach (var f in new[] { "anthost-rpeer.c", "Makefile" }) File.Copy(Path.Combine(RepositoryRoot(), "remote-peer", f), Path.Combine(dir, f));
            var make = CommandRunner.Run("make", ["-C", dir]);
            output.WriteLine(make.StandardOutput + make.StandardError);
            Assert.True(make.Succeeded, make.StandardError);

            using var sb = SandboxNetwork.Create(new SandboxOptions { Prefix = prefix, StartServers = false, HostKernelAddress = "198.18.0.3/24" });
            var psi = new ProcessStartInfo("ip", ["netns", "exec", sb.PeerNamespace, Path.Combine(dir, "anthost-rpeer"), "-b", sb.PeerAddress.ToString()])
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            peer = Process.Start(psi)!;
            var ready = peer.StandardOutput.ReadLineAsync();
            Assert.True(ready.Wait(TimeSpan.FromSeconds(30)), "the peer said nothing");
            Assert.StartsWith("ready", ready.Result, StringComparison.Ordinal);

            Socket Connect(int port) => NamespaceThread.Run(sb.HostNamespace, () =>
            {
                var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { ReceiveTimeout = 20_000, SendTimeout = 20_000 };
                s.Bind(new IPEndPoint(sb.HostKernelAddress!, 0));
                s.Connect(new IPEndPoint(sb.PeerAddress, port));
                return s;
            });

            // Echo: what goes out comes back.
            using (var echo = Connect(7))
            {
                var sent = Enumerable.Range(0, 5000).Select(i => (byte)(i * 7)).ToArray();
                echo.Send(sent);
                var got = new byte[sent.Length];
                for (int n = 0; n < got.Length;) n += echo.Receive(got.AsSpan(n));
                Assert.Equal(sent, got);
            }

            // RTT: a 4-byte size, then one byte back for every N bytes.
            using (var rtt = Connect(5001))
            {
                var header = new byte[4];
                BinaryPrimitives.WriteInt32BigEndian(header, 3000);
                rtt.Send(header);
                for (int round = 0; round < 5; round++)
                {
                    rtt.Send(new byte[1000]);
                    rtt.Send(new byte[2000]);
                    var one = new byte[2];
                    Assert.Equal(1, rtt.Receive(one));
                    Assert.Equal(1, one[0]);
                }
                rtt.Poll(200_000, SelectMode.SelectRead);
                Assert.Equal(0, rtt.Available); // one byte per round, not more
            }

            // Discard: reads everything, and answers the FIN with its own.
            using (var discard = Connect(9))
            {
                var chunk = new byte[64 * 1024];
                for (int i = 0; i < 32; i++) discard.Send(chunk);
                discard.Shutdown(SocketShutdown.Send);
                Assert.Equal(0, discard.Receive(new byte[16]));
            }

            // Source: bytes until we close.
            using (var source = Connect(19))
            {
                var buffer = new byte[64 * 1024];
                long total = 0;
                while (total < 2_000_000) total += source.Receive(buffer);
                Assert.True(total >= 2_000_000);
            }

            // UDP echo.
            using (var udp = NamespaceThread.Run(sb.HostNamespace, () => new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp) { ReceiveTimeout = 5_000 }))
            {
                var d = "over udp"u8.ToArray();
                var buffer = new byte[64];
                int n = 0;
                for (int attempt = 0; attempt < 3 && n == 0; attempt++)
                {
                    udp.SendTo(d, new IPEndPoint(sb.PeerAddress, 7));
                    try { n = udp.Receive(buffer); }
                    catch (SocketException e) when (e.SocketErrorCode == SocketError.TimedOut) { }
                }
                Assert.Equal(d, buffer[..n]);
            }

            // SIGTERM ends it.
            Assert.Equal(0, CommandRunner.Run("kill", ["-TERM", peer.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]).ExitCode);
            Assert.True(peer.WaitForExit(10_000), "the peer did not stop on SIGTERM");
            Assert.Equal(0, peer.ExitCode);
        }
        finally
        {
            if (peer is { HasExited: false })
            {
                peer.Kill();
                peer.WaitForExit(5000);
            }
            peer?.Dispose();
            SandboxNetwork.Sweep(prefix);
            Directory.Delete(dir, recursive: true);
        }
    }

    [CcFact]
    public void The_c_peer_refuses_a_bad_command_line()
    {
        string dir = Directory.CreateTempSubdirectory("anthost-rpeer-").FullName;
        try
        {
            foreach (var f in new[] { "anthost-rpeer.c", "Makefile" }) File.Copy(Path.Combine(RepositoryRoot(), "remote-peer", f), Path.Combine(dir, f));
            Assert.True(CommandRunner.Run("make", ["-C", dir]).Succeeded);
            var bad = CommandRunner.Run(Path.Combine(dir, "anthost-rpeer"), ["-r", "70000"]);
            Assert.Equal(2, bad.ExitCode);
            Assert.Contains("rtt port '70000' is not 1..65535", bad.StandardError, StringComparison.Ordinal);
            var badAddress = CommandRunner.Run(Path.Combine(dir, "anthost-rpeer"), ["-b", "nowhere"]);
            Assert.Equal(2, badAddress.ExitCode);
            Assert.Contains("is not an IPv4 address", badAddress.StandardError, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
