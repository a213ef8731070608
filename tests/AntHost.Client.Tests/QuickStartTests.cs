using System.Diagnostics;
using System.Text.RegularExpressions;
using AntHost.Client.Tests.Infrastructure;
using AntHost.Sandbox;
using AntHost.Stack.Tests.Infrastructure;
using AntHost.TestSupport;
using Xunit.Abstractions;

namespace AntHost.Client.Tests;

/// <summary>
/// docs/client.md's quick start, followed as a new user follows it, from an empty folder:
/// `dotnet pack` the libraries, `dotnet new console`, add the package from the folder pack
/// wrote, the Program.cs the page shows (read from the page itself), `dotnet run` against a
/// running instance.
/// </summary>
public sealed partial class QuickStartTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("aht-quickstart-").FullName;

    private string Home => Directory.CreateDirectory(Path.Combine(_dir, "home")).FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Run(string workingDirectory, IDictionary<string, string>? environment, params string[] args)
    {
        var psi = new ProcessStartInfo(SandboxNetwork.DotnetHost()) { WorkingDirectory = workingDirectory, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        // A package cache of its own: never a stale AntHost.Client 0.1.0 from an earlier run.
        psi.Environment["NUGET_PACKAGES"] = Path.Combine(_dir, "packages");
        // A home of its own: the quick start's `dotnet nuget add source` changes the user's NuGet config.
        psi.Environment["HOME"] = Home;
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        psi.Environment["DOTNET_NOLOGO"] = "1";
        foreach (var (k, v) in environment ?? new Dictionary<string, string>()) psi.Environment[k] = v;
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromMinutes(4))) p.Kill(entireProcessTree: true);
        p.WaitForExit();
        string all = stdout.Result + stderr.Result;
        output.WriteLine($"$ dotnet {string.Join(' ', args)} -> {p.ExitCode}\n{all.Trim()}");
        Assert.True(p.ExitCode == 0, $"dotnet {string.Join(' ', args)} failed: {all}");
        return stdout.Result;
    }

    [GeneratedRegex("<!-- quick-start: Program.cs -->\\s*```csharp\\n(?<code>.*?)```", RegexOptions.Singleline)]
    private static partial Regex QuickStartCode();

    [PcapFact]
    public void The_quick_start_of_docs_client_md_runs_from_an_empty_folder()
    {
        string page = File.ReadAllText(Path.Combine(Repo.Root, "docs", "client.md"));
        var code = QuickStartCode().Match(page);
        Assert.True(code.Success, "docs/client.md has no block marked <!-- quick-start: Program.cs -->");

        string feed = Path.Combine(_dir, "feed");
        foreach (var project in new[] { "AntHost.Kernel/AntHost.Kernel", "AntHost.Inet/AntHost.Inet.Abi", "AntHost.Client/AntHost.Client" })
            Run(Repo.Root, null, "pack", Path.Combine(Repo.Root, project), "-c", Repo.Configuration, "--no-build", "-o", feed);
        Assert.True(File.Exists(Path.Combine(feed, "AntHost.Client.0.1.0.nupkg")));

        Run(_dir, null, "nuget", "add", "source", feed, "--name", "anthost-local");
        Run(_dir, null, "new", "console", "-o", "hello");
        string app = Path.Combine(_dir, "hello");
        Run(app, null, "add", "package", "AntHost.Client");
        File.WriteAllText(Path.Combine(app, "Program.cs"), code.Groups["code"].Value);

        using var running = new RunningStack(output);
        running.Sandbox.StartServers();
        running.Sandbox.StartDns();
        string resolv = Path.Combine(_dir, "resolv.conf");
        File.WriteAllText(resolv, running.Sandbox.ResolvConf);
        var env = new Dictionary<string, string>
        {
            [InetStackOptions.InstanceVariable] = running.Instance,
            [DnsOptions.ResolvConfVariable] = resolv,
        };
        string printed = Run(app, env, "run", "-c", "Release");
        Assert.Contains("hello from the AntHost peer", printed, StringComparison.Ordinal);
    }
}
