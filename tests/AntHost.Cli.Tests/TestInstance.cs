using System.Diagnostics;
using System.Text.Json;
using Xunit.Abstractions;

namespace AntHost.Cli.Tests;

/// <summary>
/// Names for one test's instance (<c>test-cli-N</c>, sandbox prefix <c>aht-cN</c>, logs in a
/// folder of its own) and, on Dispose, the cleanup a failed test needs: `down` if a state
/// file is left, then by hand whatever is still there (the recorded processes, by pid and
/// start time; the two namespaces; the pool file and socket; the log folder).
/// </summary>
public sealed class TestInstance : IDisposable
{
    private readonly ITestOutputHelper _output;
    private readonly List<(int Pid, long Start)> _seen = [];

    /// <param name="kind">"cli" (test-cli-N, aht-cN), "eval" (test-eval-N, aht-eN: the benchmarks' tests) or "ops" (test-ops-N, aht-oN: capture, ss, live counters).</param>
    public TestInstance(ITestOutputHelper output, string kind = "cli")
    {
        _output = output;
        int n = Random.Shared.Next(10000, 100000);
        Name = $"test-{kind}-{n}";
        Prefix = $"aht-{kind[0]}{n}";
        LogDirectory = Path.Combine(Path.GetTempPath(), $"anthost-cli-test-{n}");
    }

    public string Name { get; }
    public string Prefix { get; }
    public string LogDirectory { get; }
    public string StatePath => $"/run/anthost/{Name}/state.json";
    public string PoolPath => $"/dev/shm/anthost-{Name}.pool";
    public string TablesPath => $"/dev/shm/anthost-{Name}.tables";
    public string SocketPath => $"/run/anthost/{Name}.sock";
    /// <summary>The NIC driver's panel (live counters, capture ring) on the sandbox's adapter.</summary>
    public string PanelPath => $"/dev/shm/anthost-{Name}.nic-anthost0";
    public string[] Namespaces => [Prefix + "-host", Prefix + "-peer"];

    public CliResult Up(params string[] extra) =>
        Cli.Run(_output, ["up", "--instance", Name, "--prefix", Prefix, "--log-dir", LogDirectory, .. extra]);

    public CliResult Up(IReadOnlyDictionary<string, string> environment) =>
        Cli.Run(_output, environment, ["up", "--instance", Name, "--prefix", Prefix, "--log-dir", LogDirectory]);

    public CliResult Down() => Cli.Run(_output, "down", "--instance", Name);

    /// <summary>The processes the state file records (name, pid); remembered for the final checks.</summary>
    public List<(string Name, int Pid)> RecordedProcesses()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(StatePath));
        var list = new List<(string, int)>();
        foreach (var p in doc.RootElement.GetProperty("processes").EnumerateArray())
        {
            int pid = p.GetProperty("pid").GetInt32();
            long start = p.GetProperty("startTicks").GetInt64();
            lock (_seen) if (!_seen.Contains((pid, start))) _seen.Add((pid, start));
            list.Add((p.GetProperty("name").GetString()!, pid));
        }
        return list;
    }

    /// <summary>True while the process with this pid and recorded start time lives (a zombie counts as gone).</summary>
    public bool IsRunning(int pid)
    {
        long start;
        lock (_seen) start = _seen.FirstOrDefault(s => s.Pid == pid).Start;
        return start != 0 && StartTicks(pid) == start;
    }

    public static long? StartTicks(int pid)
    {
        string text;
        try { text = File.ReadAllText($"/proc/{pid}/stat"); }
        catch (IOException) { return null; }
        var fields = text[(text.LastIndexOf(')') + 2)..].Split(' ');
        return fields[0] is "Z" or "X" ? null : long.Parse(fields[19], System.Globalization.CultureInfo.InvariantCulture);
    }

    public IReadOnlyList<string> NamespacesLeft()
    {
        var psi = new ProcessStartInfo("ip", "netns list") { RedirectStandardOutput = true, UseShellExecute = false };
        using var p = Process.Start(psi)!;
        string all = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return all.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split(' ')[0]).Where(n => Namespaces.Contains(n)).ToList();
    }

    /// <summary>Asserts that nothing of the instance is left: no namespace, pool, socket, state or process.</summary>
    public void AssertNothingLeft()
    {
        Assert.Empty(NamespacesLeft());
        Assert.False(File.Exists(PoolPath), $"{PoolPath} is left");
        Assert.False(File.Exists(TablesPath), $"{TablesPath} is left");
        Assert.False(File.Exists(SocketPath), $"{SocketPath} is left");
        Assert.False(File.Exists(PanelPath), $"{PanelPath} is left");
        Assert.False(File.Exists(StatePath), $"{StatePath} is left");
        Assert.False(Directory.Exists($"/run/anthost/{Name}"), $"/run/anthost/{Name} is left");
        List<(int Pid, long Start)> seen;
        lock (_seen) seen = [.. _seen];
        Assert.NotEmpty(seen);
        foreach (var (pid, _) in seen) Assert.False(IsRunning(pid), $"pid {pid} still runs");
    }

    public void Dispose()
    {
        try
        {
            if (File.Exists(StatePath))
            {
                try { RecordedProcesses(); } catch (Exception e) when (e is IOException or JsonException) { }
                Down();
            }
        }
        finally
        {
            List<(int Pid, long Start)> seen;
            lock (_seen) seen = [.. _seen];
            foreach (var (pid, start) in seen)
            {
                if (StartTicks(pid) != start) continue;
                try { using var p = Process.GetProcessById(pid); p.Kill(); p.WaitForExit(10_000); }
                catch (ArgumentException) { }
                catch (InvalidOperationException) { }
            }
            foreach (var ns in NamespacesLeft())
            {
                using var p = Process.Start("ip", ["netns", "del", ns]);
                p.WaitForExit();
            }
            foreach (var f in new[] { PoolPath, TablesPath, SocketPath, StatePath, PanelPath }) if (File.Exists(f)) File.Delete(f);
            if (Directory.Exists($"/run/anthost/{Name}")) Directory.Delete($"/run/anthost/{Name}", recursive: true);
            if (Directory.Exists(LogDirectory))
            {
                foreach (var log in Directory.GetFiles(LogDirectory, "*.log"))
                    _output.WriteLine($"===== {Path.GetFileName(log)} =====\n{File.ReadAllText(log)}");
                Directory.Delete(LogDirectory, recursive: true);
            }
        }
    }
}
