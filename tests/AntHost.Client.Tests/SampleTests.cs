using System.Diagnostics;
using AntHost.Client.Tests.Infrastructure;
using AntHost.Sandbox;
using AntHost.Stack.Tests.Infrastructure;
using AntHost.TestSupport;
using Xunit.Abstractions;

namespace AntHost.Client.Tests;

/// <summary>Each sample run as its own process against the running stack, as a user runs it after `anthost up`.</summary>
public sealed class SampleTests(ITestOutputHelper output)
{
    private sealed record Run(int ExitCode, string Output, string Errors);

    private Run RunSample(string sample, params string[] args) => RunSample(sample, null, args);

    private Run RunSample(string sample, IDictionary<string, string>? environment, params string[] args)
    {
        var psi = new ProcessStartInfo(SandboxNetwork.DotnetHost())
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        psi.ArgumentList.Add(Repo.Dll($"samples/{sample}", $"{sample}.dll"));
        foreach (var a in args) psi.ArgumentList.Add(a);
        foreach (var (k, v) in environment ?? new Dictionary<string, string>()) psi.Environment[k] = v;
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromSeconds(120)))
        {
            p.Kill();
            p.WaitForExit();
        }
        var run = new Run(p.ExitCode, stdout.Result, stderr.Result);
        output.WriteLine($"$ {sample} {string.Join(' ', args)}  -> exit {run.ExitCode}\n{run.Output}{run.Errors}");
        return run;
    }

    [PcapFact]
    public void Every_sample_runs_against_the_stack_and_says_what_it_did()
    {
        using var running = new RunningStack(output);
        running.Sandbox.StartServers();
        string[] instance = ["--instance", running.Instance];

        var echo = RunSample("EchoClient", [.. instance, "--count", "3", "--size", "3000"]);
        Assert.Equal(0, echo.ExitCode);
        Assert.Contains("round 3: 3000 bytes echoed intact", echo.Output, StringComparison.Ordinal);

        var http = RunSample("HttpGet", [.. instance]);
        Assert.Equal(0, http.ExitCode);
        Assert.Contains("GET http://198.18.0.1/ -> 200 OK", http.Output, StringComparison.Ordinal);
        // By name: the instance's resolver configuration names the peer's dnsmasq.
        running.Sandbox.StartDns();
        string resolv = Path.Combine(Path.GetTempPath(), $"aht-samples-{running.Instance}.resolv.conf");
        File.WriteAllText(resolv, running.Sandbox.ResolvConf);
        try
        {
            var byName = RunSample("HttpGet", new Dictionary<string, string> { [DnsOptions.ResolvConfVariable] = resolv },
                [.. instance, "--url", $"http://{SandboxNetwork.PeerName}/"]);
            Assert.Equal(0, byName.ExitCode);
            Assert.Contains($"GET http://{SandboxNetwork.PeerName}/ -> 200 OK", byName.Output, StringComparison.Ordinal);
            var noSuch = RunSample("HttpGet", new Dictionary<string, string> { [DnsOptions.ResolvConfVariable] = resolv },
                [.. instance, "--url", "http://nope.anthost.test/"]);
            Assert.Equal(1, noSuch.ExitCode);
            Assert.Contains("no such host is known: 'nope.anthost.test'", noSuch.Errors, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(resolv);
        }

        var ping = RunSample("Ping", [.. instance, "--count", "3"]);
        Assert.Equal(0, ping.ExitCode);
        Assert.Contains("3 sent, 3 answered", ping.Output, StringComparison.Ordinal);

        var udp = RunSample("UdpEcho", [.. instance, "--count", "3"]);
        Assert.Equal(0, udp.ExitCode);
        Assert.Contains("3 datagrams echoed intact", udp.Output, StringComparison.Ordinal);

        // The web server on AntHost's address, reached twice by curl in the peer namespace.
        var psi = new ProcessStartInfo(SandboxNetwork.DotnetHost()) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { Repo.Dll("samples/WebServer", "WebServer.dll"), "--instance", running.Instance, "--requests", "2" }) psi.ArgumentList.Add(a);
        using var server = Process.Start(psi)!;
        var serverErr = server.StandardError.ReadToEndAsync();
        try
        {
            string? first = server.StandardOutput.ReadLine(); // connected ...
            string? listening = server.StandardOutput.ReadLine();
            Assert.True(listening?.StartsWith("listening on http://198.18.0.2:8080/", StringComparison.Ordinal), $"{first}\n{listening}");
            for (int i = 1; i <= 2; i++)
            {
                var curl = running.Sandbox.RunInPeer("curl", "-sS", "--max-time", "60", $"http://198.18.0.2:8080/page{i}");
                output.WriteLine($"curl {i}: exit {curl.ExitCode}: {curl.StandardOutput}{curl.StandardError}");
                Assert.Equal(0, curl.ExitCode);
                Assert.Contains($"GET /page{i} is request {i}", curl.StandardOutput, StringComparison.Ordinal);
            }
            var rest = server.StandardOutput.ReadToEndAsync();
            Assert.True(server.WaitForExit(TimeSpan.FromSeconds(60)), "the web server did not stop after its requests");
            output.WriteLine(rest.Result + serverErr.Result);
            Assert.Equal(0, server.ExitCode);
            Assert.Contains("served 2 requests", rest.Result, StringComparison.Ordinal);
        }
        finally
        {
            if (!server.HasExited) server.Kill();
        }

        // Failures exit non-zero with a message that says what happened.
        var refused = RunSample("EchoClient", [.. instance, "--port", "5998"]);
        Assert.Equal(1, refused.ExitCode);
        Assert.Contains("error: connect to 198.18.0.1:5998: the connection was refused", refused.Errors, StringComparison.Ordinal);
    }

    [RootFact]
    public void A_sample_without_a_running_instance_says_so_and_exits_3()
    {
        var run = RunSample("Ping", "--instance", "no-such-instance-x");
        Assert.Equal(3, run.ExitCode);
        Assert.Contains("cannot reach AntHost instance 'no-such-instance-x'", run.Errors, StringComparison.Ordinal);
        var bad = RunSample("Ping", "--to", "not-an-address");
        Assert.Equal(2, bad.ExitCode);
        Assert.Contains("--to wants an IPv4 address", bad.Errors, StringComparison.Ordinal);
    }
}
