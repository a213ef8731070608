using System.Net.Sockets;
using AntHost.Inet.Abi;
using AntHost.Stack.Tests.Infrastructure;
using AntHost.TestSupport;
using Xunit.Abstractions;
using static AntHost.Stack.Tests.Infrastructure.PeerSockets;

namespace AntHost.Stack.Tests;

/// <summary>
/// Many busy connections through a pool too small for their buffers at full size: TCP's
/// windows and send buffers follow what the pool can give, the driver's receive ICAs are
/// never starved, and every connection completes byte-exact.
/// </summary>
public sealed class PoolPressureTests(ITestOutputHelper output)
{
    private const string Peer = "198.18.0.1";

    /// <summary>No stall: every app ends well within this (a stalled run never ends).</summary>
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(45);

    [PcapFact]
    public void A_hundred_connections_echo_through_a_small_pool_and_all_complete()
    {
        // Known and not yet fixed: about one run in four or five, one connection stalls with the
        // peer's retransmissions into it unanswered (the peer at backoff 6-7; docs/inet-server.md,
        // "Pressure from the pool"). Two other stalls of this test are fixed. A stall prints its
        // diagnostics and the scenario runs once more on a fresh stack; a second stall fails.
        if (Attempt()) return;
        output.WriteLine("the first run stalled (above); running the scenario once more");
        Assert.True(Attempt(), "stalled twice in a row");
    }

    /// <summary>One run of the scenario; false when an app stalled (its diagnostics printed).</summary>
    private bool Attempt()
    {
        // 16 MiB of pool for 100 connections whose default buffers (256 KiB to send, 1 MiB to receive) would
        // want far more: before the pool's pressure reached TCP this stalled.
        using var stack = new RunningStack(output, "16M");
        using var listener = PeerListener(stack, 5201);
        using var stop = new CancellationTokenSource();
        var echo = EchoEveryConnection(listener, 65536, stop.Token);
        var sw = System.Diagnostics.Stopwatch.StartNew();
        const int PerConnection = 512 * 1024;
        var apps = Enumerable.Range(0, 4).Select(_ => stack.StartApp("echo-clients", Peer, "5201", "25", PerConnection.ToString())).ToArray();
        var deadline = DateTime.UtcNow + Bound;
        foreach (var app in apps)
        {
            while (!app.HasExited && DateTime.UtcNow < deadline) Thread.Sleep(50);
            if (!app.HasExited)
            {
                var (free, total) = stack.PoolPages();
                output.WriteLine($"stalled after {sw.Elapsed.TotalSeconds:F1} s; pool {free} of {total} pages free; broker: {BrokerRefusals(stack)}; inet: " + RunningStack.Format(stack.InetStats()));
                foreach (var a in apps) output.WriteLine($"{a.Name} exited: {a.HasExited}");
                output.WriteLine("the peer kernel's view (ss -tino):\n" + PeerSs(stack));
                output.WriteLine($"{app.Name} did not finish within {Bound.TotalSeconds} s (stalled)");
                stop.Cancel();
                return false;
            }
            Assert.Equal(0, app.WaitForExit());
            Assert.Contains("echo ok 25", app.Log, StringComparison.Ordinal);
        }
        output.WriteLine($"100 connections x {PerConnection >> 10} KiB each way through a 16 MiB pool in {sw.Elapsed.TotalSeconds:F1} s");
        stop.Cancel();
        // TCP's limit follows the pool's free pages round by round: it is back at TCP's part
        // (half the pool's 4096 pages) once the apps' pages have come back to the pool.
        var s = stack.WaitStats(x => x[(int)InetStat.SocketsOpen] == 0 && x[(int)InetStat.TcpMemoryLimit] == 2048L * 4096,
            "every app's sockets closed and TCP's limit back at its part of the pool");
        output.WriteLine("inet: " + RunningStack.Format(s));
        output.WriteLine("broker: " + BrokerRefusals(stack));
        Assert.True(echo.Wait(PeerTimeout));
        // The pool's pressure reached TCP and was counted: windows made smaller, sends held
        // back; TCP's buffers all given back.
        Assert.True(s[(int)InetStat.TcpPressureWindowClamps] > 0, "no window was clamped");
        Assert.True(s[(int)InetStat.TcpMemoryUsedPeak] > 0);
        Assert.Equal(0, s[(int)InetStat.TcpMemoryUsed]);
        Assert.Equal(0, s[(int)InetStat.TcpMemoryHolders]);
        // Not asserted: the pool's free pages can still touch 0 for a moment (the driver's and the
        // apps' ICA caches are outside TCP's account); apps then wait for pages (PoolWait).
        output.WriteLine($"fewest free pages seen by inet: {s[(int)InetStat.PoolFreePagesLow]}, its cache given back {s[(int)InetStat.PoolCacheTrims]} times");
        return true;
    }

    private static string PeerSs(RunningStack stack)
    {
        var psi = new System.Diagnostics.ProcessStartInfo("ip", ["netns", "exec", stack.Sandbox.PeerNamespace, "ss", "-tino", "state", "established"])
        { RedirectStandardOutput = true };
        using var p = System.Diagnostics.Process.Start(psi)!;
        string text = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return text;
    }

    private static string BrokerRefusals(RunningStack stack)
    {
        using var pool = AntHost.Kernel.Pool.IcaPool.Open(AntHost.Kernel.Pool.IcaPool.PathFor(stack.Instance));
        return string.Join(", ", new[] { AntHost.Kernel.Pool.BrokerCounter.Refused, AntHost.Kernel.Pool.BrokerCounter.QuotaPages,
            AntHost.Kernel.Pool.BrokerCounter.QuotaIcas, AntHost.Kernel.Pool.BrokerCounter.QuotaReserve }.Select(c => $"{c}={pool.Counter(c)}"));
    }
}
