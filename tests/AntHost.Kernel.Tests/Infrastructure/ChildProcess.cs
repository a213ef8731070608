using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;

namespace AntHost.Kernel.Tests.Infrastructure;

/// <summary>
/// A real OS process started by a test, with its stdout as a queue of lines. Disposing it
/// ends it (by its pid) if it still runs; tests never leave processes behind.
/// </summary>
internal sealed partial class ChildProcess : IDisposable
{
    /// <summary>Generous: a slow, shared machine must never fail a test.</summary>
    public static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    private readonly Process _p;
    private readonly BlockingCollection<string> _lines = new();
    private readonly StringBuilder _all = new();
    private readonly StringBuilder _stderr = new();

    private ChildProcess(Process p) => _p = p;

    public int Pid => _p.Id;
    public bool HasExited => _p.HasExited;
    public string Output { get { lock (_all) return _all.ToString(); } }
    public string Errors { get { lock (_stderr) return _stderr.ToString(); } }

    public static ChildProcess Start(string dll, IEnumerable<string> args, IDictionary<string, string>? env = null) =>
        StartUnder([], dll, args, env);

    /// <summary>
    /// As <see cref="Start"/>, run through <paramref name="wrapper"/> (a program and its arguments
    /// that execs the rest, e.g. setpriv to run as another user; the pid stays the child's).
    /// </summary>
    public static ChildProcess StartUnder(IReadOnlyList<string> wrapper, string dll, IEnumerable<string> args, IDictionary<string, string>? env = null)
    {
        string path = Path.Combine(AppContext.BaseDirectory, dll);
        var psi = new ProcessStartInfo(wrapper.Count > 0 ? wrapper[0] : DotnetHost())
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        if (wrapper.Count > 0)
        {
            foreach (var w in wrapper.Skip(1)) psi.ArgumentList.Add(w);
            psi.ArgumentList.Add(DotnetHost());
        }
        psi.ArgumentList.Add(path);
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["DOTNET_TieredPGO"] = "0";
        if (env is not null) foreach (var kv in env) psi.Environment[kv.Key] = kv.Value;
        var p = new Process { StartInfo = psi };
        var c = new ChildProcess(p);
        p.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null) { c._lines.CompleteAdding(); return; }
            lock (c._all) c._all.AppendLine(e.Data);
            c._lines.Add(e.Data);
        };
        p.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (c._stderr) c._stderr.AppendLine(e.Data); };
        p.Start();
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        return c;
    }

    public static string DotnetHost()
    {
        var fromEnv = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        if (!string.IsNullOrEmpty(fromEnv) && File.Exists(fromEnv)) return fromEnv;
        var self = Environment.ProcessPath;
        if (self is not null && Path.GetFileNameWithoutExtension(self) == "dotnet") return self;
        return "dotnet";
    }

    /// <summary>The next stdout line that starts with <paramref name="prefix"/> (earlier lines are skipped).</summary>
    public string WaitLine(string prefix, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? Patience);
        while (true)
        {
            var left = deadline - DateTime.UtcNow;
            if (left <= TimeSpan.Zero)
                throw new TimeoutException($"no line '{prefix}...' from pid {Pid}; output so far:\n{Output}\nstderr:\n{Errors}");
            if (_lines.TryTake(out var line, left))
            {
                if (line.StartsWith(prefix, StringComparison.Ordinal)) return line;
                if (line.StartsWith("ERROR", StringComparison.Ordinal))
                    throw new InvalidOperationException($"pid {Pid} reported: {line}\nstderr:\n{Errors}");
            }
            else if (_lines.IsCompleted)
                throw new InvalidOperationException($"pid {Pid} ended before '{prefix}...'; output:\n{Output}\nstderr:\n{Errors}");
        }
    }

    /// <summary>Waits for the process to end; returns its exit code (128 + signal when a signal ended it).</summary>
    public int WaitExit(TimeSpan? timeout = null)
    {
        if (!_p.WaitForExit(timeout ?? Patience))
            throw new TimeoutException($"pid {Pid} did not end; output:\n{Output}\nstderr:\n{Errors}");
        _p.WaitForExit();
        return _p.ExitCode;
    }

    public void Signal(int signal) => _ = Kill(_p.Id, signal);

    public void Kill9() => Signal(9);

    [LibraryImport("libc", EntryPoint = "kill")]
    private static partial int Kill(int pid, int sig);

    public void Dispose()
    {
        try
        {
            if (!_p.HasExited)
            {
                Kill9();
                _p.WaitForExit(10_000);
            }
        }
        catch (InvalidOperationException) { }
        _p.Dispose();
    }
}
