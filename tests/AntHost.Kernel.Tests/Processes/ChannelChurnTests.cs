using AntHost.Kernel.Ipc;
using AntHost.Kernel.Pool;
using AntHost.Kernel.Tests.Infrastructure;
using AntHost.TestSupport;

namespace AntHost.Kernel.Tests.Processes;

/// <summary>
/// Channels opened, used once and closed, thousands of times, by several clients at once,
/// against a server shaped like the inet server (one thread waiting with timeouts, posting
/// work to a "driver" client whose second thread posts to it without pause): the broker
/// reuses channel slots as fast as it can. Every call must be answered; a call that waits
/// 10 s is a lost request. The rounds are bounded by count, never by time, so a slow machine
/// makes the test longer, never red. Also: closing a channel, and a refused reply.
/// </summary>
public class ChannelChurnTests
{
    private const ushort Inspect = 1;

    [RootTheory]
    [InlineData(TransferMode.Direct)]
    [InlineData(TransferMode.Mediated)]
    public void A_request_on_a_reused_channel_slot_is_always_answered(TransferMode mode)
    {
        using var b = BrokerProcess.Start(mode);
        var server = b.Actor("busy-server", "--service", "busy");
        server.WaitLine("READY");
        var driver = b.Actor("busy-driver", "--target", "busy");
        driver.WaitLine("READY");
        var churners = new List<ChildProcess>();
        for (int i = 0; i < 3; i++)
            churners.Add(b.Actor("channel-churn", "--target", "busy", "--rounds", i == 2 ? "400" : "3000", "--call-timeout-ms", "10000",
                "--reconnect-every", i == 2 ? "1" : "0"));
        foreach (var c in churners)
        {
            string line = c.WaitLine("DONE", TimeSpan.FromMinutes(10));
            Assert.Contains("garbage 0 refused 0", line);
        }
        Assert.False(server.HasExited, server.Output + server.Errors);
        Assert.False(driver.HasExited, driver.Output + driver.Errors);
        // Every closed channel's slot went back: only the driver's is still in use.
        using var pool = b.OpenPool();
        BrokerProcess.Eventually(() => OpenChannels(pool) == 1, "every churned channel freed");
    }

    private static int OpenChannels(IcaPool pool)
    {
        int n = 0;
        for (int c = 0; c < pool.Layout.MaxChannels; c++)
            if (Volatile.Read(ref pool.Channel(c).State) != 0) n++;
        return n;
    }

    [RootFact]
    public void Close_tells_the_server_and_frees_the_slot_for_the_next_channel()
    {
        using var b = BrokerProcess.Start();
        var server = b.Actor("echo-server", "--service", "echo");
        server.WaitLine("READY");
        using var k = b.Connect("app");
        var ep = k.Open("echo");
        var r = k.Call(ep, k.AllocateControl(), Inspect, default, ChildProcess.Patience);
        k.FreeMessage(r);
        k.Close(ep);
        Assert.False(ep.IsOpen);
        var e = Assert.Throws<KernelException>(() => k.Call(ep, k.AllocateControl(), Inspect, default, ChildProcess.Patience));
        Assert.Equal(KernelError.PeerDied, e.Error);
        // The server saw the close (a PeerDied notice) and closed its end: the slot is free.
        Assert.StartsWith("EVENT PeerDied", server.WaitLine("EVENT PeerDied"));
        using var pool = b.OpenPool();
        BrokerProcess.Eventually(() => OpenChannels(pool) == 0, "the closed channel's slot freed");
        var again = k.Open("echo");
        Assert.Equal(ep.ChannelId & 0xFFFF, again.ChannelId & 0xFFFF);
        Assert.NotEqual(ep.ChannelId, again.ChannelId);
        r = k.Call(again, k.AllocateControl(), Inspect, default, ChildProcess.Patience);
        Assert.Equal(MessageKind.Reply, r.Kind);
        k.FreeMessage(r);
    }

    [RootFact]
    public void A_refused_reply_ends_its_call_at_once_instead_of_leaving_it_to_time_out()
    {
        using var b = BrokerProcess.Start();
        var server = b.Actor("stale-replier", "--service", "stale");
        server.WaitLine("READY");
        using var k = b.Connect("app");
        var ep = k.Open("stale");
        // The patience is long: the call must end because the reply was refused, not because
        // it waited; a Timeout here is the failure this test guards against.
        var e = Assert.Throws<KernelException>(() => k.Call(ep, k.AllocateControl(), Inspect, default, ChildProcess.Patience));
        Assert.Equal(KernelError.InvalidHandle, e.Error);
        Assert.Equal(1, k.Counters.RefusedHandles);
        server.WaitLine("STALE-REPLY-SENT");
        var r = k.Call(ep, k.AllocateControl(), Inspect, default, ChildProcess.Patience);
        Assert.Equal(MessageKind.Reply, r.Kind);
        k.FreeMessage(r);
    }
    [RootTheory]
    [InlineData(TransferMode.Direct)]
    [InlineData(TransferMode.Mediated)]
    public void A_call_on_a_channel_opened_while_another_thread_waits_in_Receive_gets_its_reply(TransferMode mode)
    {
        using var b = BrokerProcess.Start(mode);
        b.Actor("echo-server", "--service", "echo").WaitLine("READY");
        using var k = b.Connect("app");
        using var stop = new CancellationTokenSource();
        var waiting = new ManualResetEventSlim();
        int received = 0;
        // This thread holds the receiver role, asleep on the doorbell with nothing to read.
        var receiver = new Thread(() =>
        {
            waiting.Set();
            while (!stop.IsCancellationRequested)
                if (k.Receive(out var m, Timeout.InfiniteTimeSpan, stop.Token)) { Interlocked.Increment(ref received); k.FreeMessage(m); }
        });
        receiver.Start();
        try
        {
            waiting.Wait();
            Thread.Sleep(50); // so that its wait began before the channel existed (the case under test)
            var ep = k.Open("echo");
            var r = k.Call(ep, k.AllocateControl(), Inspect, default, ChildProcess.Patience);
            Assert.Equal(MessageKind.Reply, r.Kind);
            k.FreeMessage(r);
        }
        finally
        {
            stop.Cancel();
            Assert.True(receiver.Join(ChildProcess.Patience));
        }
        Assert.Equal(0, received);
    }

    [RootFact]
    public void Closing_a_channel_ends_a_call_another_thread_waits_for_on_it()
    {
        using var b = BrokerProcess.Start();
        b.Actor("keeper").WaitLine("READY"); // takes requests, never answers
        using var k = b.Connect("app");
        var ep = k.Open("keeper");
        var call = Task.Run(() => k.Call(ep, k.AllocateControl(), 1, default, Timeout.InfiniteTimeSpan));
        Assert.False(call.Wait(TimeSpan.FromMilliseconds(600)), "the call ended before the channel closed");
        k.Close(ep);
        var e = Assert.ThrowsAny<AggregateException>(() => call.Wait(ChildProcess.Patience));
        Assert.Equal(KernelError.PeerDied, Assert.IsType<KernelException>(e.InnerException).Error);
    }
}
