using System.Diagnostics;
using System.Text;
using Xunit.Abstractions;

namespace AntHost.Cli.Tests;

/// <summary>One run of <c>anthost</c> as a separate process: exit code and output.</summary>
public sealed record CliResult(int ExitCode, string StandardOutput, string StandardError)
{
    public string All => StandardOutput + StandardError;
    public override string ToString() => $"exit {ExitCode}\n--- stdout ---\n{StandardOutput}\n--- stderr ---\n{StandardError}";
}

/// <summary>Runs the built <c>anthost.dll</c> (same configuration as this test) with <c>dotnet</c>.</summary>
public static class Cli
{
    /// <summary>Generous: a slow, shared machine must never fail a test. A guard against a hang only.</summary>
    public static readonly TimeSpan Patience = TimeSpan.FromMinutes(4);

    public static string Dll { get; } = FindDll();

    private static string FindDll()
    {
        var tfmDir = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd('/'));
        string tfm = tfmDir.Name, config = tfmDir.Parent!.Name;
        for (var d = tfmDir; d is not null; d = d.Parent)
        {
            if (!File.Exists(Path.Combine(d.FullName, "AntHost.slnx"))) continue;
            string path = Path.Combine(d.FullName, "AntHost.Cli/AntHost.Cli/bin", config, tfm, "anthost.dll");
            if (File.Exists(path)) return path;
            break;
        }
        throw new FileNotFoundException($"anthost.dll is not built for {config}/{tfm}");
    }

    public static CliResult Run(ITestOutputHelper? output, params string[] args) => Run(output, null, args);

    public static CliResult Run(ITestOutputHelper? output, IReadOnlyDictionary<string, string>? environment, params string[] args) =>
        Exec(output, environment, [DotnetHost(), Dll, .. args], "anthost " + string.Join(' ', args));

    /// <summary>Runs a .NET program (a dll) through <paramref name="wrapper"/> (e.g. setpriv, to run it as another user).</summary>
    public static CliResult RunDllUnder(ITestOutputHelper? output, IReadOnlyList<string> wrapper, string dll, params string[] args) =>
        Exec(output, new Dictionary<string, string> { ["HOME"] = "/tmp" }, [.. wrapper, DotnetHost(), dll, .. args],
            $"{string.Join(' ', wrapper)} {Path.GetFileName(dll)} {string.Join(' ', args)}");

    private static CliResult Exec(ITestOutputHelper? output, IReadOnlyDictionary<string, string>? environment, IReadOnlyList<string> command, string what)
    {
        var psi = new ProcessStartInfo(command[0])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var a in command.Skip(1)) psi.ArgumentList.Add(a);
        foreach (var (k, v) in environment ?? new Dictionary<string, string>()) psi.Environment[k] = v;
        using var p = Process.Start(psi)!;
        var stdout = new StringBuilder();
        var stderr = new StringBuilder();
        p.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (stdout) stdout.AppendLine(e.Data); };
        p.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (stderr) stderr.AppendLine(e.Data); };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        if (!p.WaitForExit(Patience))
        {
            p.Kill(entireProcessTree: false);
            p.WaitForExit();
            throw new TimeoutException($"{what} did not finish within {Patience}:\n{stdout}\n{stderr}");
        }
        p.WaitForExit();
        CliResult r;
        lock (stdout) lock (stderr) r = new CliResult(p.ExitCode, stdout.ToString(), stderr.ToString());
        output?.WriteLine($"$ {what}\n{r}");
        return r;
    }

    private static string DotnetHost()
    {
        if (Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } h && File.Exists(h)) return h;
        if (Environment.ProcessPath is { } self && Path.GetFileNameWithoutExtension(self) == "dotnet") return self;
        foreach (var dir in new[] { Environment.GetEnvironmentVariable("DOTNET_ROOT"), "/usr/share/dotnet", "/usr/lib/dotnet" })
            if (dir is not null && File.Exists(Path.Combine(dir, "dotnet"))) return Path.Combine(dir, "dotnet");
        return "dotnet";
    }
}
