using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.RegularExpressions;
using AntHost.Client;
using AntHost.Sandbox;
using AntHost.TestSupport;
using Xunit.Abstractions;

namespace AntHost.Cli.Tests;

/// <summary>
/// The supervisor `up` starts: a NIC driver killed (SIGKILL) twice during a transfer is
/// restarted and the transfer arrives byte-exact with no help from the app; a killed inet
/// server fails the app's call with a SocketException within 250 ms and is restarted, and a
/// new connection works; a killed broker takes the instance down in order. The app is this
/// test process (it links AntHost.Client); the far end is the peer's echo server.
/// </summary>
public sealed partial class SupervisorTests(ITestOutputHelper output)
{
    private static readonly IPEndPoint PeerEcho = new(IPAddress.Parse("198.18.0.1"), 7);

    [LibraryImport("libc", EntryPoint = "kill")]
    private static partial int Kill(int pid, int sig);

    /// <summary>The transfer's size: 200 MiB by default (about 15 s here); ANTHOST_SUPERVISOR_MIB for another.</summary>
    private static int TransferBytes =>
        (int.TryParse(Environment.GetEnvironmentVariable("ANTHOST_SUPERVISOR_MIB"), out int mib) && mib > 0 ? mib : 200) << 20;

    private static JsonElement Record(TestInstance t, string name)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(t.StatePath));
        return doc.RootElement.GetProperty("processes").EnumerateArray().Single(p => p.GetProperty("name").GetString() == name).Clone();
    }

    private static int Restarts(TestInstance t, string name) => Record(t, name).TryGetProperty("restarts", out var r) ? r.GetInt32() : 0;

    private static int Count(string text, string what) => Regex.Matches(text, Regex.Escape(what)).Count;

    private static string ReadShared(string path)
    {
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        return new StreamReader(fs).ReadToEnd();
    }

    /// <summary>Waits until the supervisor recorded restart number <paramref name="restarts"/> of <paramref name="name"/> and the new process said <paramref name="ready"/> that often.</summary>
    private void WaitRestarted(TestInstance t, string name, int restarts, string log, string ready, int readyCount)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (Restarts(t, name) < restarts || Count(ReadShared(Path.Combine(t.LogDirectory, log)), ready) < readyCount)
        {
            Assert.True(DateTime.UtcNow < deadline, $"{name} was not restarted ({restarts}) and ready:\n{ReadShared(Path.Combine(t.LogDirectory, "supervisor.log"))}");
            Thread.Sleep(20);
        }
        t.RecordedProcesses(); // the new pid, for the cleanup
    }

    [PcapFact]
    public void The_driver_killed_twice_mid_transfer_and_inet_killed_are_restarted_and_the_transfer_arrives_whole()
    {
        using var t = new TestInstance(output);
        var up = t.Up();
        Assert.True(up.ExitCode == 0, up.ToString());
        var recorded = t.RecordedProcesses();
        Assert.Equal(["supervisor", "broker", "inet", "nic", "peer", "dns"], recorded.Select(p => p.Name).ToArray());
        string nicLog = Path.Combine(t.LogDirectory, "nic.log");

        // ---- the driver, twice, during a transfer from the peer's kernel to the app ----
        int size = TransferBytes;
        var data = new byte[size];
        new Random(411).NextBytes(data);
        using (var listener = NamespaceThread.Run(t.Prefix + "-peer", () => new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp)))
        using (var stack = InetStack.Connect(new InetStackOptions { Instance = t.Name, ProcessName = "test-supervisor" }))
        using (var socket = new InetSocket(stack, SocketType.Stream, ProtocolType.Tcp))
        {
            listener.Bind(new IPEndPoint(PeerEcho.Address, 5111));
            listener.Listen(1);
            var accepting = listener.AcceptAsync();
            socket.Connect(new IPEndPoint(PeerEcho.Address, 5111));
            Assert.True(accepting.Wait(TimeSpan.FromSeconds(30)), "the peer accepted no connection");
            using var peer = accepting.Result;
            peer.SendTimeout = 60_000;
            socket.ReceiveTimeout = 60_000;
            long received = 0;
            var sw = Stopwatch.StartNew();
            var sending = Task.Run(() => { for (int at = 0; at < size;) at += peer.Send(data, at, Math.Min(1 << 20, size - at), SocketFlags.None); });
            var kills = new List<string>();
            var killing = Task.Run(() =>
            {
                for (int k = 1; k <= 2; k++)
                {
                    long at = size * (k == 1 ? 20L : 55L) / 100;
                    while (Interlocked.Read(ref received) < at) Thread.Sleep(5);
                    int pid = Record(t, "nic").GetProperty("pid").GetInt32();
                    int attached = Count(ReadShared(nicLog), "attached to inet");
                    Assert.Equal(0, Kill(pid, 9));
                    lock (kills) kills.Add($"kill -9 of nic pid {pid} at {Interlocked.Read(ref received) >> 20} MiB received, {sw.Elapsed.TotalSeconds:F1} s");
                    WaitRestarted(t, "nic", k, "nic.log", "attached to inet", attached + 1);
                    lock (kills) kills.Add($"nic restarted (pid {Record(t, "nic").GetProperty("pid").GetInt32()}) at {sw.Elapsed.TotalSeconds:F1} s");
                }
            });
            var buffer = new byte[256 * 1024];
            while (received < size)
            {
                int n = socket.Receive(buffer);
                Assert.True(n > 0, $"the stream ended after {received} of {size} bytes");
                Assert.True(buffer.AsSpan(0, n).SequenceEqual(data.AsSpan((int)received, n)), $"the bytes at {received} differ");
                Interlocked.Add(ref received, n);
            }
            Assert.True(sending.Wait(TimeSpan.FromSeconds(30)), "the peer's send did not finish");
            Assert.True(killing.Wait(TimeSpan.FromSeconds(60)), "the kills did not finish");
            killing.GetAwaiter().GetResult();
            foreach (var k in kills) output.WriteLine(k);
            output.WriteLine($"{size >> 20} MiB from the peer in {sw.Elapsed.TotalSeconds:F1} s with the driver killed twice");
            socket.Shutdown(SocketShutdown.Both);
        }
        var nic = Record(t, "nic");
        Assert.Equal(2, nic.GetProperty("restarts").GetInt32());
        Assert.Equal("killed by signal 9 (SIGKILL)", nic.GetProperty("lastExit").GetString());
        string supervisorLog = ReadShared(Path.Combine(t.LogDirectory, "supervisor.log"));
        Assert.Equal(2, Count(supervisorLog, "died: killed by signal 9 (SIGKILL); last lines of " + nicLog));
        var ps = Cli.Run(output, "ps", "--instance", t.Name);
        Assert.Matches(@"nic\s*│\s*\d+\s*│\s*alive\s*│\s*2 \(last: killed by signal 9 \(SIGKILL\)\)", ps.StandardOutput);

        // ---- inet: a held receive fails within 250 ms, and a new connection works after the restart ----
        using (var stack = InetStack.Connect(new InetStackOptions { Instance = t.Name, ProcessName = "test-supervisor" }))
        using (var socket = new InetSocket(stack, SocketType.Stream, ProtocolType.Tcp))
        {
            socket.Connect(PeerEcho);
            long failedAt = 0;
            SocketException? failure = null;
            var holding = new Thread(() =>
            {
                try { socket.Receive(new byte[100]); }
                catch (SocketException e) { failure = e; }
                failedAt = Stopwatch.GetTimestamp();
            });
            holding.Start();
            Thread.Sleep(200); // the receive is held by inet
            int inetPid = Record(t, "inet").GetProperty("pid").GetInt32();
            int attached = Count(ReadShared(nicLog), "attached to inet");
            long killedAt = Stopwatch.GetTimestamp();
            Assert.Equal(0, Kill(inetPid, 9));
            Assert.True(holding.Join(TimeSpan.FromSeconds(10)), "the held receive did not end");
            Assert.NotNull(failure);
            var after = Stopwatch.GetElapsedTime(killedAt, failedAt);
            output.WriteLine($"the held receive failed {after.TotalMilliseconds:F1} ms after kill -9 of inet: {failure!.SocketErrorCode}: {failure.Message}");
            Assert.Contains(failure.SocketErrorCode, new[] { SocketError.NetworkDown, SocketError.ConnectionReset });
            Assert.True(after < TimeSpan.FromMilliseconds(250), $"the app learnt of inet's death after {after.TotalMilliseconds:F0} ms");
            WaitRestarted(t, "inet", 1, "nic.log", "attached to inet", attached + 1);
        }
        using (var stack = InetStack.Connect(new InetStackOptions { Instance = t.Name, ProcessName = "test-supervisor" }))
        using (var socket = new InetSocket(stack, SocketType.Stream, ProtocolType.Tcp))
        {
            socket.Connect(PeerEcho);
            var hello = data.AsSpan(0, 3000).ToArray();
            Assert.Equal(hello.Length, socket.Send(hello));
            var back = new byte[hello.Length];
            for (int got = 0; got < back.Length;)
            {
                int n = socket.Receive(back.AsSpan(got));
                Assert.True(n > 0);
                got += n;
            }
            Assert.Equal(hello, back);
        }
        Assert.Equal("killed by signal 9 (SIGKILL)", Record(t, "inet").GetProperty("lastExit").GetString());

        var down = t.Down();
        Assert.True(down.ExitCode == 0, down.ToString());
        Assert.DoesNotContain("killed after", down.StandardOutput, StringComparison.Ordinal);
        Assert.DoesNotContain("joined by hand", down.StandardOutput, StringComparison.Ordinal);
        t.AssertNothingLeft();
        // The restarted servers stopped cleanly: their last words are 0 pages owned.
        foreach (var log in new[] { "inet.log", "nic.log" })
            Assert.EndsWith("pages owned at stop: 0", Regex.Matches(ReadShared(Path.Combine(t.LogDirectory, log)), @"pages owned at stop: \d+").Last().Value, StringComparison.Ordinal);
        Assert.Contains("stopping: the servers are left running", ReadShared(Path.Combine(t.LogDirectory, "supervisor.log")), StringComparison.Ordinal);
    }

    [PcapFact]
    public void Past_its_restart_budget_a_server_stays_dead_and_a_clean_exit_is_not_restarted()
    {
        using var t = new TestInstance(output);
        var up = t.Up("--restart-budget", "1");
        Assert.True(up.ExitCode == 0, up.ToString());
        t.RecordedProcesses();
        string nicLog = Path.Combine(t.LogDirectory, "nic.log");
        int attached = Count(ReadShared(nicLog), "attached to inet");
        Assert.Equal(0, Kill(Record(t, "nic").GetProperty("pid").GetInt32(), 9));
        WaitRestarted(t, "nic", 1, "nic.log", "attached to inet", attached + 1);

        // The second death within the window is past the budget of one.
        int pid = Record(t, "nic").GetProperty("pid").GetInt32();
        Assert.Equal(0, Kill(pid, 9));
        string supervisorLog = Path.Combine(t.LogDirectory, "supervisor.log");
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (!ReadShared(supervisorLog).Contains("nic stays dead: its restart budget is spent", StringComparison.Ordinal))
        {
            Assert.True(DateTime.UtcNow < deadline, "the supervisor did not give up on the driver:\n" + ReadShared(supervisorLog));
            Thread.Sleep(50);
        }
        Thread.Sleep(1000);
        Assert.Equal(pid, Record(t, "nic").GetProperty("pid").GetInt32());
        Assert.False(t.IsRunning(pid));
        var ps = Cli.Run(output, "ps", "--instance", t.Name);
        Assert.Matches(@"nic\s*│\s*\d+\s*│\s*dead\s*│\s*1 \(last: killed by signal 9 \(SIGKILL\)\)", ps.StandardOutput);

        // inet asked to stop (SIGTERM, as to run it by hand) exits cleanly and is left stopped.
        int inetPid = Record(t, "inet").GetProperty("pid").GetInt32();
        Assert.Equal(0, Kill(inetPid, 15));
        deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (!ReadShared(supervisorLog).Contains("inet exited cleanly (it was asked to stop): not restarted", StringComparison.Ordinal))
        {
            Assert.True(DateTime.UtcNow < deadline, "the supervisor did not note inet's clean exit:\n" + ReadShared(supervisorLog));
            Thread.Sleep(50);
        }
        Assert.Equal(inetPid, Record(t, "inet").GetProperty("pid").GetInt32());
        Assert.Equal("exit code 0", Record(t, "inet").GetProperty("lastExit").GetString());

        var down = t.Down();
        Assert.True(down.ExitCode == 0, down.ToString());
        t.AssertNothingLeft();
    }

    [PcapFact]
    public void A_killed_broker_takes_the_instance_down_in_order()
    {
        using var t = new TestInstance(output);
        var up = t.Up();
        Assert.True(up.ExitCode == 0, up.ToString());
        var recorded = t.RecordedProcesses();
        var sw = Stopwatch.StartNew();
        Assert.Equal(0, Kill(recorded.Single(p => p.Name == "broker").Pid, 9));
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(90);
        while (recorded.Any(p => t.IsRunning(p.Pid)) || File.Exists(t.StatePath))
        {
            Assert.True(DateTime.UtcNow < deadline, "the instance did not go down after its broker died");
            Thread.Sleep(50);
        }
        output.WriteLine($"the instance was down {sw.Elapsed.TotalSeconds:F1} s after kill -9 of the broker");
        t.AssertNothingLeft();
        string log = ReadShared(Path.Combine(t.LogDirectory, "supervisor.log"));
        Assert.Contains("broker (pid", log, StringComparison.Ordinal);
        Assert.Contains("died: killed by signal 9 (SIGKILL)", log, StringComparison.Ordinal);
        Assert.Contains($"instance '{t.Name}' is down", log, StringComparison.Ordinal);
        // In order: the driver before inet.
        Assert.True(log.IndexOf("down: nic", StringComparison.Ordinal) < log.IndexOf("down: inet", StringComparison.Ordinal), "the driver was not stopped before inet");

        var down = t.Down();
        Assert.Equal(0, down.ExitCode);
        Assert.Contains("is not up", down.StandardOutput, StringComparison.Ordinal);
        Assert.DoesNotContain("joined by hand", down.StandardOutput, StringComparison.Ordinal);
    }
}
