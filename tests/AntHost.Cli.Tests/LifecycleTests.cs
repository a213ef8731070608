using System.Runtime.InteropServices;
using System.Text.Json;
using AntHost.TestSupport;
using Xunit.Abstractions;

namespace AntHost.Cli.Tests;

/// <summary>
/// `up`, `ps`, `down` and `demo` on a sandbox of the test's own (prefix aht-cN, instance
/// test-cli-N), each checked for what it leaves behind.
/// </summary>
public sealed partial class LifecycleTests(ITestOutputHelper output)
{
    [LibraryImport("libc", EntryPoint = "kill")]
    private static partial int Kill(int pid, int sig);

    private static bool IsAntHostProcess(int pid)
    {
        try { return TestInstance.StartTicks(pid) is not null && File.ReadAllText($"/proc/{pid}/cmdline").Contains("anthost-", StringComparison.Ordinal); }
        catch (IOException) { return false; }
    }

    [PcapFact]
    public void Up_then_ps_then_down_leaves_nothing_behind()
    {
        using var t = new TestInstance(output);
        var up = t.Up("--group", "nogroup");
        Assert.True(up.ExitCode == 0, up.ToString());
        Assert.Contains($"instance '{t.Name}' is up", up.StandardOutput, StringComparison.Ordinal);
        // Root and the group use the instance; the broker's tables are its own.
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite, File.GetUnixFileMode(t.PoolPath));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(t.TablesPath));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute,
            File.GetUnixFileMode(Path.GetDirectoryName(t.StatePath)!));
        Assert.Contains("group nogroup", File.ReadAllText(Path.Combine(t.LogDirectory, "broker.log")), StringComparison.Ordinal);
        var recorded = t.RecordedProcesses();
        Assert.Equal(["supervisor", "broker", "inet", "nic", "peer", "dns"], recorded.Select(p => p.Name).ToArray());
        // The apps' resolver configuration: the peer's dnsmasq, searching the sandbox's domain.
        string resolv = File.ReadAllText($"/run/anthost/{t.Name}/resolv.conf");
        Assert.Contains("nameserver 198.18.0.1", resolv, StringComparison.Ordinal);
        Assert.Contains("search anthost.test", resolv, StringComparison.Ordinal);
        Assert.All(recorded, p => Assert.True(t.IsRunning(p.Pid), $"{p.Name} pid {p.Pid} is not running after up"));
        Assert.Equal(t.Namespaces.Order(), t.NamespacesLeft().Order());
        Assert.True(File.Exists(t.PoolPath));
        foreach (var name in new[] { "broker", "inet", "nic", "peer" }) Assert.True(File.Exists(Path.Combine(t.LogDirectory, name + ".log")), $"no {name}.log");

        // A second up of the same instance is refused and touches nothing.
        var again = t.Up();
        Assert.Equal(1, again.ExitCode);
        Assert.Contains("is already up", again.StandardError, StringComparison.Ordinal);
        Assert.All(recorded, p => Assert.True(t.IsRunning(p.Pid), $"{p.Name} died from the refused second up"));

        // ps: every process alive; the pool shows inet and the driver with pages; inet's counters say the driver attached.
        var ps = Cli.Run(output, "ps", "--instance", t.Name, "--json");
        Assert.True(ps.ExitCode == 0, ps.ToString());
        using (var doc = JsonDocument.Parse(ps.StandardOutput))
        {
            var root = doc.RootElement;
            Assert.All(root.GetProperty("processes").EnumerateArray(), p => Assert.True(p.GetProperty("alive").GetBoolean()));
            // The pool's process table names the very processes up started (how many pages each
            // caches at idle is the kernel's policy, not checked here), and the pages it gives
            // them are within what the table says is allocated.
            var poolProcs = root.GetProperty("pool").GetProperty("processes").EnumerateArray().ToList();
            int Pid(string name) => recorded.Single(p => p.Name == name).Pid;
            Assert.Contains(poolProcs, p => p.GetProperty("name").GetString() == "inet" && p.GetProperty("pid").GetInt32() == Pid("inet") && p.GetProperty("state").GetString() == "alive"
                && p.GetProperty("server").GetBoolean() && p.GetProperty("uid").GetUInt32() == 0);
            Assert.Contains(poolProcs, p => p.GetProperty("name").GetString()!.StartsWith("nic", StringComparison.Ordinal) && p.GetProperty("pid").GetInt32() == Pid("nic"));
            Assert.True(poolProcs.Sum(p => p.GetProperty("pages").GetInt32()) <= root.GetProperty("pool").GetProperty("allocatedPages").GetInt32());
            Assert.Contains(root.GetProperty("pool").GetProperty("channels").EnumerateArray(), c => c.GetProperty("service").GetString() == "inet");
            Assert.Equal(1, root.GetProperty("inet").GetProperty("Attached").GetInt64());
        }
        var table = Cli.Run(output, "ps", "--instance", t.Name);
        Assert.Equal(0, table.ExitCode);
        Assert.Contains("alive", table.StandardOutput, StringComparison.Ordinal);

        // An app of a member of the group works without root (uid 65534, gid nogroup); the same
        // user outside the group is refused, saying why.
        string echo = Binaries.FindSample("EchoClient");
        var member = Cli.RunDllUnder(output, ["setpriv", "--reuid", "65534", "--regid", "nogroup", "--clear-groups"], echo, "--instance", t.Name, "--count", "2");
        Assert.True(member.ExitCode == 0, member.ToString());
        Assert.Contains("echoed intact", member.StandardOutput, StringComparison.Ordinal);
        var outsider = Cli.RunDllUnder(output, ["setpriv", "--reuid", "65534", "--regid", "users", "--clear-groups"], echo, "--instance", t.Name, "--count", "2");
        Assert.NotEqual(0, outsider.ExitCode);
        Assert.Contains("only root and members of the instance's group may", outsider.All, StringComparison.Ordinal);

        var down = t.Down();
        Assert.True(down.ExitCode == 0, down.ToString());
        Assert.Contains($"instance '{t.Name}' is down", down.StandardOutput, StringComparison.Ordinal);
        // Every server, the peer's included, ends on SIGTERM within the grace time.
        Assert.DoesNotContain("killed after", down.StandardOutput, StringComparison.Ordinal);
        Assert.DoesNotContain("would not die", down.StandardOutput, StringComparison.Ordinal);
        t.AssertNothingLeft();
        // The servers stopped cleanly and said so in their logs, which down keeps.
        Assert.Contains("pages owned at stop: 0", File.ReadAllText(Path.Combine(t.LogDirectory, "inet.log")), StringComparison.Ordinal);
        Assert.Contains("pages owned at stop: 0", File.ReadAllText(Path.Combine(t.LogDirectory, "nic.log")), StringComparison.Ordinal);

        var downAgain = t.Down();
        Assert.Equal(0, downAgain.ExitCode);
        Assert.Contains("is not up", downAgain.StandardOutput, StringComparison.Ordinal);
    }

    [PcapFact]
    public void A_server_that_fails_to_start_makes_up_take_everything_down_and_show_its_log()
    {
        using var t = new TestInstance(output);
        // Programs that are not programs: the broker's `dotnet` refuses its dll and exits at once.
        string bin = Path.Combine(t.LogDirectory, "bin");
        Directory.CreateDirectory(bin);
        foreach (var dll in new[] { "anthost-kernel.dll", "anthost-inet.dll", "anthost-nic.dll", "anthost-peer.dll" })
            File.WriteAllText(Path.Combine(bin, dll), "not an assembly");
        var up = t.Up(new Dictionary<string, string> { ["ANTHOST_BIN_DIR"] = bin });
        Assert.Equal(1, up.ExitCode);
        Assert.Contains("broker (pid", up.StandardError, StringComparison.Ordinal);
        Assert.Contains("exited before it said 'anthost-kernel ready'", up.StandardError, StringComparison.Ordinal);
        Assert.Contains("---- last lines of " + Path.Combine(t.LogDirectory, "broker.log"), up.StandardError, StringComparison.Ordinal);
        // The tail shown is the broker's log: dotnet's own complaint about the dll.
        string lastLine = File.ReadAllLines(Path.Combine(t.LogDirectory, "broker.log")).Last(l => l.Trim().Length > 0).Trim();
        Assert.Contains(lastLine, up.StandardError, StringComparison.Ordinal);
        Assert.Contains("taking down what was started", up.StandardOutput, StringComparison.Ordinal);
        Assert.Empty(t.NamespacesLeft()); // the sandbox was made before the broker failed, and is gone
        Assert.False(File.Exists(t.StatePath));
        Assert.False(File.Exists(t.PoolPath));
    }

    [PcapFact]
    public void Down_after_every_process_was_killed_cleans_up()
    {
        using var t = new TestInstance(output);
        var up = t.Up();
        Assert.True(up.ExitCode == 0, up.ToString());
        // Without --group the instance belongs to the group 'anthost', made by up when missing.
        Assert.True(AntHost.Kernel.Interop.UnixAccess.TryResolveGroup("anthost", out _), "up did not make the group 'anthost'");
        Assert.Contains("group anthost", File.ReadAllText(Path.Combine(t.LogDirectory, "broker.log")), StringComparison.Ordinal);
        var recorded = t.RecordedProcesses();
        foreach (var (_, pid) in recorded) Assert.Equal(0, Kill(pid, 9));
        var deadline = DateTime.UtcNow + Cli.Patience;
        while (recorded.Any(p => t.IsRunning(p.Pid)))
        {
            Assert.True(DateTime.UtcNow < deadline, "the killed processes did not go");
            Thread.Sleep(20);
        }
        // The broker died without removing its pool and socket.
        Assert.True(File.Exists(t.PoolPath), "a killed broker leaves its pool file");

        var ps = Cli.Run(output, "ps", "--instance", t.Name);
        Assert.Equal(0, ps.ExitCode);
        Assert.Contains("dead", ps.StandardOutput, StringComparison.Ordinal);

        var down = t.Down();
        Assert.True(down.ExitCode == 0, down.ToString());
        Assert.Contains("not running", down.StandardOutput, StringComparison.Ordinal);
        Assert.DoesNotContain("joined by hand", down.StandardOutput, StringComparison.Ordinal);
        t.AssertNothingLeft();
    }

    [PcapFact]
    public void Demo_runs_end_to_end_and_takes_everything_down()
    {
        using var t = new TestInstance(output);
        var r = Cli.Run(output, "demo", "--instance", t.Name, "--prefix", t.Prefix, "--log-dir", t.LogDirectory, "--pings", "50");
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains("demo passed", r.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("50/50 answered", r.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("connection refused", r.StandardOutput, StringComparison.Ordinal);
        Assert.Matches(@"ok +RTT, 256 B out and 1 B back.*AntHost median [0-9.]+ us.*host kernel's TCP.*median [0-9.]+ us", r.StandardOutput);
        foreach (var sample in new[] { "EchoClient", "HttpGet", "Ping", "UdpEcho", "WebServer" }) Assert.Matches($"ok +{sample}", r.StandardOutput);
        // The processes it started (its "up:" line names them) must all be gone.
        var started = System.Text.RegularExpressions.Regex.Matches(r.StandardOutput, @"(broker|inet|nic|peer) pid (\d+)").Select(m => int.Parse(m.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture)).Distinct().ToList();
        Assert.Equal(4, started.Count);
        foreach (int pid in started) Assert.False(IsAntHostProcess(pid), $"pid {pid} still runs after the demo");
        foreach (var log in new[] { "broker", "inet", "nic", "peer" }) Assert.True(File.Exists(Path.Combine(t.LogDirectory, log + ".log")), $"no {log}.log");
        Assert.Empty(t.NamespacesLeft());
        Assert.False(File.Exists(t.PoolPath));
        Assert.False(File.Exists(t.SocketPath));
        Assert.False(File.Exists(t.StatePath));
        Assert.Contains("pages owned at stop: 0", File.ReadAllText(Path.Combine(t.LogDirectory, "inet.log")), StringComparison.Ordinal);
    }
}
