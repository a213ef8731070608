// Starting and stopping the servers as daemons. Each server outlives `anthost up`, so it
// must not write to a pipe of ours or sit in our terminal's process group (Ctrl-C there
// would reach it): it is started through `sh -c 'exec setsid "$@" <IN >>LOG 2>&1'`, and
// every exec keeps the pid (sh execs setsid, which execs at once since the child is not a
// group leader; `ip netns exec` execs too), so the pid we get back is the server's own.
// Its identity is pid + start time (/proc/PID/stat field 22) + a marker in its command
// line; nothing is signalled unless all three still match.
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;

namespace AntHost.Cli;

internal static partial class ServerProcess
{
    public const int SigTerm = 15;
    public const int SigKill = 9;

    /// <summary>Starts <paramref name="command"/> detached, stdin from <paramref name="stdin"/> (opened read-write: a FIFO that never reports end of file), output appended to <paramref name="log"/>.</summary>
    public static ProcessRecord Start(string name, string[] command, string marker, string log, string stdin, string? netns)
    {
        var (record, process) = StartChild(name, command, marker, log, stdin, netns);
        process.Dispose();
        return record;
    }

    /// <summary>As <see cref="Start"/>, keeping the child's <see cref="Process"/>: its parent (the supervisor) learns its exit code or signal from it.</summary>
    public static (ProcessRecord Record, Process Process) StartChild(string name, string[] command, string marker, string log, string stdin, string? netns)
    {
        var psi = new ProcessStartInfo("/bin/sh") { UseShellExecute = false };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add("exec setsid \"$@\" 0<>\"$ANTHOST_STDIN\" >>\"$ANTHOST_LOG\" 2>&1");
        psi.ArgumentList.Add("sh");
        foreach (var a in command) psi.ArgumentList.Add(a);
        psi.Environment["ANTHOST_STDIN"] = stdin;
        psi.Environment["ANTHOST_LOG"] = log;
        psi.Environment["DOTNET_TieredPGO"] = "0";
        var p = Process.Start(psi) ?? throw new CliException($"could not start {name}: {string.Join(' ', command)}");
        int pid = p.Id;
        // The start time is the pid's from its fork: the exec chain does not change it. A
        // process already gone gets a start time no process has, so the wait for its ready
        // line reports it as any early exit is reported, with its log's last lines.
        long ticks = StartTicks(pid) ?? -1;
        return (new ProcessRecord
        {
            Name = name,
            Pid = pid,
            StartTicks = ticks,
            CommandLine = command,
            Marker = marker,
            Log = log,
            Namespace = netns,
            StartedUtc = DateTime.UtcNow,
        }, p);
    }

    /// <summary>Field 22 of /proc/PID/stat, or null when there is no such process (or only its zombie).</summary>
    public static long? StartTicks(int pid)
    {
        string text;
        try { text = File.ReadAllText($"/proc/{pid}/stat"); }
        catch (IOException) { return null; }
        catch (UnauthorizedAccessException) { return null; }
        // "pid (comm) S ppid ...": comm may hold spaces and parentheses; fields restart after the last ')'.
        int close = text.LastIndexOf(')');
        if (close < 0) return null;
        var fields = text[(close + 2)..].Split(' ');
        if (fields.Length < 20 || fields[0] == "Z" || fields[0] == "X") return null;
        return long.TryParse(fields[19], NumberStyles.None, CultureInfo.InvariantCulture, out long t) ? t : null;
    }

    private static string CommandLineOf(int pid)
    {
        try { return Encoding.UTF8.GetString(File.ReadAllBytes($"/proc/{pid}/cmdline")).Replace('\0', ' '); }
        catch (IOException) { return ""; }
        catch (UnauthorizedAccessException) { return ""; }
    }

    /// <summary>True when the recorded process still runs: same pid, same start time, its command line names its marker.</summary>
    public static bool IsAlive(ProcessRecord r) =>
        StartTicks(r.Pid) == r.StartTicks && CommandLineOf(r.Pid).Contains(r.Marker, StringComparison.Ordinal);

    /// <summary>
    /// SIGTERM, then SIGKILL after <paramref name="grace"/>; returns how it ended. A pid that
    /// is no longer the recorded process is left alone.
    /// </summary>
    public static string Stop(ProcessRecord r, TimeSpan grace)
    {
        if (!IsAlive(r)) return "not running";
        _ = Kill(r.Pid, SigTerm);
        var deadline = DateTime.UtcNow + grace;
        while (DateTime.UtcNow < deadline)
        {
            if (StartTicks(r.Pid) != r.StartTicks) return "stopped";
            Thread.Sleep(25);
        }
        if (IsAlive(r)) _ = Kill(r.Pid, SigKill);
        deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (StartTicks(r.Pid) == r.StartTicks && DateTime.UtcNow < deadline) Thread.Sleep(25);
        return StartTicks(r.Pid) == r.StartTicks ? "would not die" : "killed after " + grace.TotalSeconds.ToString("F0", CultureInfo.InvariantCulture) + " s";
    }

    /// <summary>Sends <paramref name="signal"/> only if the recorded process still runs.</summary>
    public static bool Signal(ProcessRecord r, int signal) => IsAlive(r) && Kill(r.Pid, signal) == 0;

    /// <summary>The last <paramref name="lines"/> lines of a log (empty when missing).</summary>
    public static string Tail(string log, int lines = 25)
    {
        try
        {
            var all = File.ReadAllLines(log);
            return string.Join('\n', all.Skip(Math.Max(0, all.Length - lines)));
        }
        catch (IOException) { return ""; }
    }

    /// <summary>Waits until the log holds <paramref name="text"/>; fails when the process ends first or after <paramref name="patience"/>.</summary>
    public static void WaitForLog(ProcessRecord r, string text, TimeSpan patience, CancellationToken ct) => WaitForLog(r, text, 0, patience, ct);

    /// <summary>As above, looking only at what the log holds past <paramref name="from"/> bytes (a restarted process appends to its old log).</summary>
    public static void WaitForLog(ProcessRecord r, string text, long from, TimeSpan patience, CancellationToken ct)
    {
        var deadline = DateTime.UtcNow + patience;
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            string content;
            content = ReadFrom(r.Log, from);
            if (content.Contains(text, StringComparison.Ordinal)) return;
            if (StartTicks(r.Pid) != r.StartTicks)
                throw new ServerFailedException(r, $"{r.Name} (pid {r.Pid}) exited before it said '{text}'");
            if (DateTime.UtcNow > deadline)
                throw new ServerFailedException(r, $"{r.Name} (pid {r.Pid}) did not say '{text}' within {patience.TotalSeconds:F0} s");
            Thread.Sleep(50);
        }
    }

    /// <summary>The length of a file (0 when missing).</summary>
    public static long LengthOf(string path)
    {
        try { return new FileInfo(path).Length; }
        catch (IOException) { return 0; }
    }

    private static string ReadFrom(string path, long from)
    {
        try
        {
            using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            if (from > fs.Length) from = 0;
            fs.Seek(from, SeekOrigin.Begin);
            using var reader = new StreamReader(fs, Encoding.UTF8);
            return reader.ReadToEnd();
        }
        catch (IOException) { return ""; }
    }

    /// <summary>"exit code N" or "killed by signal N (SIGNAME)" from a .NET exit code (which is 128 + the signal for a signalled child).</summary>
    public static string DescribeExit(int exitCode) => exitCode switch
    {
        > 128 and <= 128 + 64 => $"killed by signal {exitCode - 128} ({SignalName(exitCode - 128)})",
        _ => $"exit code {exitCode}",
    };

    private static string SignalName(int signal) => signal switch
    {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        24 => "SIGXCPU",
        25 => "SIGXFSZ",
        31 => "SIGSYS",
        _ => "signal " + signal.ToString(CultureInfo.InvariantCulture),
    };

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int sig);
}

/// <summary>A server failed to start or become ready; its log tail goes to the user.</summary>
internal sealed class ServerFailedException(ProcessRecord process, string message) : Exception(message)
{
    public ProcessRecord Process { get; } = process;
}
