using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using AntHost.Client.Tests.Infrastructure;
using AntHost.Inet.Abi;
using AntHost.Sandbox;
using AntHost.Stack.Tests.Infrastructure;
using AntHost.TestSupport;
using Xunit.Abstractions;

namespace AntHost.Client.Tests;

/// <summary>
/// ASP.NET Core on AntHost: samples/WebServer (a minimal-API app, Kestrel over
/// AntHost.Client.Kestrel) run as its own process, reached by curl run by the peer's kernel.
/// </summary>
public sealed class KestrelTests(ITestOutputHelper output)
{
    private const string Url = "http://198.18.0.2:8080";

    private sealed class WebServer : IDisposable
    {
        private readonly Process _p;
        private readonly StringBuilder _out = new();
        private readonly Task _reading;
        private readonly Task<string> _errors;

        public WebServer(RunningStack running)
        {
            var psi = new ProcessStartInfo(SandboxNetwork.DotnetHost()) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            foreach (var a in new[] { Repo.Dll("samples/WebServer", "WebServer.dll"), "--instance", running.Instance }) psi.ArgumentList.Add(a);
            _p = Process.Start(psi)!;
            var listening = new TaskCompletionSource();
            _reading = Task.Run(async () =>
            {
                string? line;
                while ((line = await _p.StandardOutput.ReadLineAsync()) is not null)
                {
                    lock (_out) _out.AppendLine(line);
                    if (line.StartsWith("listening on", StringComparison.Ordinal)) listening.TrySetResult();
                }
                listening.TrySetResult();
            });
            _errors = _p.StandardError.ReadToEndAsync();
            Assert.True(listening.Task.Wait(TimeSpan.FromSeconds(60)), "the web server did not start");
            if (_p.HasExited) Assert.Fail($"the web server exited: {Output}{_errors.Result}");
        }

        public int Pid => _p.Id;

        public string Output
        {
            get { lock (_out) return _out.ToString() + (_errors.IsCompleted ? _errors.Result : ""); }
        }

        /// <summary>SIGTERM: the host's console lifetime stops the app gracefully.</summary>
        public int Stop()
        {
            using (var kill = Process.Start("kill", ["-TERM", _p.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])) kill.WaitForExit();
            Assert.True(_p.WaitForExit(TimeSpan.FromSeconds(30)), "the web server did not stop on SIGTERM");
            _reading.Wait(TimeSpan.FromSeconds(5));
            return _p.ExitCode;
        }

        /// <summary>SIGKILL: the app dies in the middle of whatever it does.</summary>
        public void Kill()
        {
            _p.Kill();
            _p.WaitForExit(10_000);
        }

        public void Dispose()
        {
            if (!_p.HasExited) _p.Kill();
            _p.Dispose();
        }
    }

    private CommandResult Curl(RunningStack running, params string[] args)
    {
        var r = running.Sandbox.RunInPeer("curl", ["-sS", "--max-time", "60", .. args]);
        if (!r.Succeeded) output.WriteLine($"curl {string.Join(' ', args.Take(6))}: exit {r.ExitCode}: {r.StandardError}");
        return r;
    }

    private static string Sha256Hex(Stream s) => Convert.ToHexStringLower(SHA256.HashData(s));

    [PcapFact]
    public void Kestrel_on_AntHost_serves_curl_keep_alive_parallel_and_50_MB_each_way_intact()
    {
        using var running = new RunningStack(output, "64M");
        using var server = new WebServer(running);

        // 100 requests on one connection (curl reuses it: keep-alive), every one answered.
        string[] hundred = [.. Enumerable.Range(1, 100).SelectMany(i => new[] { "-o", "/dev/null", $"{Url}/r{i}" })];
        var keep = Curl(running, ["-w", "%{http_code} %{num_connects}\n", .. hundred]);
        Assert.True(keep.Succeeded);
        var lines = keep.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(100, lines.Length);
        Assert.All(lines, l => Assert.StartsWith("200 ", l, StringComparison.Ordinal));
        Assert.Equal(1, lines.Sum(l => int.Parse(l.Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture)));

        // 50 connections at once, each held 1 s by the app: all answered in far less than 50 s.
        var sw = Stopwatch.StartNew();
        string[] fifty = [.. Enumerable.Range(1, 50).SelectMany(_ => new[] { "-o", "/dev/null", $"{Url}/delay/1000" })];
        var parallel = Curl(running, ["--parallel", "--parallel-immediate", "--parallel-max", "50", "-H", "Connection: close", "-w", "%{http_code}\n", .. fifty]);
        sw.Stop();
        Assert.True(parallel.Succeeded);
        var codes = parallel.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(50, codes.Length);
        Assert.All(codes, c => Assert.Equal("200", c));
        output.WriteLine($"50 parallel requests of 1 s each: {sw.Elapsed.TotalSeconds:0.0} s");
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(20), $"50 parallel 1-s requests took {sw.Elapsed}");

        // 50 MB down: the peer hashes what it got.
        const int Size = 50 * 1024 * 1024;
        var pattern = new byte[Size];
        for (int i = 0; i < Size; i++) pattern[i] = (byte)(i % 251);
        // The app writes chunks of 251*256 bytes of i % 251 restarting each chunk; 251*256 is a multiple of 251, so it is i % 251 throughout.
        string expected = Sha256Hex(new MemoryStream(pattern));
        sw.Restart();
        var down = running.Sandbox.RunInPeer("sh", "-c", $"curl -sS --max-time 120 {Url}/bytes/{Size} | sha256sum");
        sw.Stop();
        Assert.True(down.Succeeded, down.StandardError);
        Assert.Equal(expected, down.StandardOutput.Split(' ')[0]);
        output.WriteLine($"50 MB down: {sw.Elapsed.TotalSeconds:0.0} s ({Size * 8 / sw.Elapsed.TotalSeconds / 1e6:0} Mbit/s)");

        // 50 MB up: the app hashes what it got.
        string file = Path.Combine(Path.GetTempPath(), $"aht-upload-{Environment.ProcessId}.bin");
        var random = new byte[Size];
        new Random(12).NextBytes(random);
        File.WriteAllBytes(file, random);
        try
        {
            sw.Restart();
            var up = Curl(running, "--max-time", "120", "--data-binary", "@" + file, "-H", "Content-Type: application/octet-stream", $"{Url}/sha256");
            sw.Stop();
            Assert.True(up.Succeeded);
            Assert.Equal($"{Sha256Hex(new MemoryStream(random))} {Size}", up.StandardOutput.Trim());
            output.WriteLine($"50 MB up: {sw.Elapsed.TotalSeconds:0.0} s ({Size * 8 / sw.Elapsed.TotalSeconds / 1e6:0} Mbit/s)");
        }
        finally
        {
            File.Delete(file);
        }

        // Graceful shutdown: every socket closed by the app itself, nothing left in inet.
        Assert.Equal(0, server.Stop());
        output.WriteLine(server.Output);
        Assert.Contains("served", server.Output, StringComparison.Ordinal);
        var s = running.WaitStats(x => x[(int)InetStat.SocketsOpen] == 0 && x[(int)InetStat.TxInFlight] == 0, "every socket of the app closed");
        Assert.Equal(0, s[(int)InetStat.SocketsAbortedForDeadApps]);
        // And with the app gone and the servers stopped, every page of the pool is free again.
        running.DisconnectObserver();
        Assert.Equal(0, running.Driver.Stop());
        Assert.Equal(0, running.Inet.Stop());
        running.AssertEveryPageFree();
    }

    [PcapFact]
    public void A_client_that_resets_mid_request_is_dropped_and_the_app_goes_on()
    {
        using var running = new RunningStack(output);
        using var server = new WebServer(running);
        long before = running.Stat(InetStat.SocketsOpen);

        // A kernel socket of the peer: half a POST, then RST (linger 0).
        var peer = NamespaceThread.Run(running.Sandbox.PeerNamespace, () => new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp));
        peer.Connect(new IPEndPoint(RunningStack.HostIp, 8080));
        peer.Send(Encoding.ASCII.GetBytes("POST /sha256 HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n"));
        peer.Send(new byte[100_000]);
        Thread.Sleep(200);
        peer.LingerState = new LingerOption(true, 0);
        peer.Close();

        // The connection is gone from inet, and the app serves the next client.
        running.WaitStats(x => x[(int)InetStat.SocketsOpen] == before, "the reset connection's socket closed");
        var next = Curl(running, $"{Url}/after-reset");
        Assert.True(next.Succeeded);
        Assert.Contains("GET /after-reset", next.StandardOutput, StringComparison.Ordinal);
        Assert.Equal(0, server.Stop());
        running.WaitStats(x => x[(int)InetStat.SocketsOpen] == 0, "every socket of the app closed");
    }

    [PcapFact]
    public void An_app_killed_in_the_middle_of_a_response_leaves_nothing_in_inet_or_the_pool()
    {
        using var running = new RunningStack(output);
        using var server = new WebServer(running);
        var psi = new ProcessStartInfo("ip") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "netns", "exec", running.Sandbox.PeerNamespace, "curl", "-sS", "--max-time", "60", "-o", "/dev/null", $"{Url}/bytes/500000000" })
            psi.ArgumentList.Add(a);
        using var curl = Process.Start(psi)!;
        var curlErr = curl.StandardError.ReadToEndAsync();
        // Once the response is flowing, the app dies without a word.
        running.WaitStats(x => x[(int)InetStat.SocketsOpen] >= 2, "the download's connection accepted");
        Thread.Sleep(500);
        server.Kill();
        Assert.True(curl.WaitForExit(TimeSpan.FromSeconds(60)), "curl did not see the end of the connection");
        output.WriteLine($"curl: exit {curl.ExitCode}: {curlErr.Result}");
        // 18: the transfer closed with data outstanding; 56: the connection was reset.
        Assert.Contains(curl.ExitCode, new[] { 18, 56 });
        var s = running.WaitStats(x => x[(int)InetStat.SocketsOpen] == 0 && x[(int)InetStat.TxInFlight] == 0, "the dead app's sockets aborted");
        Assert.True(s[(int)InetStat.SocketsAbortedForDeadApps] >= 1);
        running.DisconnectObserver();
        Assert.Equal(0, running.Driver.Stop());
        Assert.Equal(0, running.Inet.Stop());
        running.AssertEveryPageFree();
    }
}
