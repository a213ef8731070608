using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;

namespace AntHost.Stack.Tests.Infrastructure;

/// <summary>
/// One process of the stack (broker, inet server, NIC driver), started by a test, with its
/// output kept for the test's log. Disposing it ends it by its pid if it still runs.
/// </summary>
public sealed partial class StackProcess : IDisposable
{
    /// <summary>Generous: a slow, shared machine must never fail a test.</summary>
    public static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    private readonly Process _p;
    private readonly StringBuilder _log = new();

    private StackProcess(string name, Process p)
    {
        Name = name;
        _p = p;
    }

    public string Name { get; }
    public int Pid => _p.Id;
    public bool HasExited => _p.HasExited;

    public string Log { get { lock (_log) return _log.ToString(); } }

    /// <summary>Starts <paramref name="file"/> with <paramref name="args"/>.</summary>
    public static StackProcess Start(string name, string file, IEnumerable<string> args)
    {
        var psi = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["DOTNET_TieredPGO"] = "0";
        var p = new Process { StartInfo = psi };
        var s = new StackProcess(name, p);
        p.OutputDataReceived += (_, e) => s.Append(e.Data, "");
        p.ErrorDataReceived += (_, e) => s.Append(e.Data, "stderr: ");
        p.Start();
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        return s;
    }

    private void Append(string? line, string prefix)
    {
        if (line is null) return;
        lock (_log)
        {
            _log.Append(prefix).AppendLine(line);
            Monitor.PulseAll(_log);
        }
    }

    /// <summary>
    /// Waits until the output contains <paramref name="text"/> at least <paramref name="times"/> times
    /// (a process's log arrives through a pipe, after the fact it reports); fails if the process ends first.
    /// </summary>
    public void WaitFor(string text, int times = 1)
    {
        var deadline = DateTime.UtcNow + Patience;
        lock (_log)
        {
            while (Count(_log.ToString(), text) < times)
            {
                if (_p.HasExited)
                {
                    Monitor.Wait(_log, 200); // let the last lines arrive
                    if (Count(_log.ToString(), text) >= times) return;
                    throw new InvalidOperationException($"{Name} (pid {Pid}) exited ({_p.ExitCode}) before saying '{text}' {times} time(s):\n{_log}");
                }
                if (DateTime.UtcNow > deadline) throw new TimeoutException($"{Name} (pid {Pid}) never said '{text}' {times} time(s):\n{_log}");
                Monitor.Wait(_log, 100);
            }
        }
    }

    /// <summary>Waits for the process to end by itself (a guard against a hang, not a timing check); returns its exit code.</summary>
    public int WaitForExit()
    {
        if (!_p.WaitForExit(Patience)) throw new TimeoutException($"{Name} (pid {Pid}) did not end:\n{Log}");
        _p.WaitForExit();
        return _p.ExitCode;
    }

    /// <summary>How many times the output contains <paramref name="text"/>.</summary>
    public int Occurrences(string text) => Count(Log, text);

    private static int Count(string all, string text)
    {
        int n = 0;
        for (int i = all.IndexOf(text, StringComparison.Ordinal); i >= 0; i = all.IndexOf(text, i + text.Length, StringComparison.Ordinal)) n++;
        return n;
    }

    public void Signal(int signal)
    {
        if (!_p.HasExited) _ = Kill(_p.Id, signal);
    }

    /// <summary>SIGTERM, then waits for the exit; SIGKILL if it does not come.</summary>
    public int Stop()
    {
        if (!_p.HasExited)
        {
            Signal(15);
            if (!_p.WaitForExit(Patience)) Signal(9);
        }
        _p.WaitForExit();
        return _p.ExitCode;
    }

    /// <summary>kill -9, and waits until it is gone.</summary>
    public void Kill9()
    {
        Signal(9);
        _p.WaitForExit();
    }

    [LibraryImport("libc", EntryPoint = "kill")]
    private static partial int Kill(int pid, int sig);

    public void Dispose()
    {
        try
        {
            if (!_p.HasExited)
            {
                Signal(9);
                _p.WaitForExit(10_000);
            }
        }
        catch (InvalidOperationException) { }
        _p.Dispose();
    }
}
