using System.ComponentModel;
using System.Diagnostics;
using System.Text;

namespace AntHost.Sandbox;

/// <summary>The outcome of one command.</summary>
public sealed record CommandResult(string CommandLine, int ExitCode, string StandardOutput, string StandardError)
{
    public bool Succeeded => ExitCode == 0;
}

/// <summary>A command the sandbox ran failed; the message holds the command line, its exit code and its stderr.</summary>
public sealed class SandboxCommandException : Exception
{
    public SandboxCommandException(CommandResult result, string? what = null)
        : base($"{(what is null ? "" : what + ": ")}`{result.CommandLine}` failed (exit code {result.ExitCode}): "
            + (string.IsNullOrWhiteSpace(result.StandardError) ? "(no stderr) " + result.StandardOutput.Trim() : result.StandardError.Trim()))
    {
        Result = result;
    }

    public SandboxCommandException(string message) : base(message) { }
    public SandboxCommandException(string message, Exception inner) : base(message, inner) { }
    public SandboxCommandException() { }

    /// <summary>What the command did, when it ran at all.</summary>
    public CommandResult? Result { get; }
}

/// <summary>
/// Runs ordinary commands (ip, ethtool, nft, tc, sysctl) with an argument list (no shell, no
/// quoting), captures both outputs, and bounds the wait so a hung command is an error, not a
/// hang. Everything the sandbox does goes through here, so every failure names its command.
/// </summary>
public static class CommandRunner
{
    /// <summary>How long one command may take.</summary>
    public static TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Runs a command and returns what happened, whatever its exit code.</summary>
    public static CommandResult Run(string file, IEnumerable<string> arguments, string? standardInput = null)
    {
        ArgumentNullException.ThrowIfNull(arguments);
        var args = arguments.ToArray();
        string line = file + (args.Length > 0 ? " " + string.Join(' ', args.Select(Quote)) : "");
        var psi = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        Process process;
        try
        {
            process = Process.Start(psi) ?? throw new SandboxCommandException($"`{line}` could not be started");
        }
        catch (Win32Exception e)
        {
            throw new SandboxCommandException($"`{line}` could not be started: {e.Message} (is `{file}` installed? scripts/prereqs.sh installs what the sandbox needs)", e);
        }
        using (process)
        {
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            if (standardInput is not null) process.StandardInput.Write(standardInput);
            process.StandardInput.Close();
            if (!process.WaitForExit(Timeout))
            {
                try { process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
                throw new SandboxCommandException($"`{line}` did not finish within {Timeout.TotalSeconds:0} s and was killed");
            }
            process.WaitForExit();
            return new CommandResult(line, process.ExitCode, stdout.Result, stderr.Result);
        }
    }

    /// <summary>Runs a command and throws <see cref="SandboxCommandException"/> unless it succeeds.</summary>
    public static CommandResult Check(string file, IEnumerable<string> arguments, string? what = null, string? standardInput = null)
    {
        var r = Run(file, arguments, standardInput);
        if (!r.Succeeded) throw new SandboxCommandException(r, what);
        return r;
    }

    /// <summary>Runs a command inside a network namespace (<c>ip netns exec NS ...</c>).</summary>
    public static CommandResult RunIn(string netns, string file, IEnumerable<string> arguments, string? standardInput = null) =>
        Run("ip", new[] { "netns", "exec", netns, file }.Concat(arguments), standardInput);

    /// <summary>Runs a command inside a network namespace and throws unless it succeeds.</summary>
    public static CommandResult CheckIn(string netns, string file, IEnumerable<string> arguments, string? what = null, string? standardInput = null) =>
        Check("ip", new[] { "netns", "exec", netns, file }.Concat(arguments), what, standardInput);

    private static string Quote(string a) =>
        a.Length > 0 && a.All(c => char.IsLetterOrDigit(c) || "-_./:=,+@%".Contains(c)) ? a : "'" + a.Replace("'", "'\\''") + "'";
}
