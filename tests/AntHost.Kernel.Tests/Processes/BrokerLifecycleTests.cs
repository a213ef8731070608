using AntHost.Kernel.Pool;
using AntHost.Kernel.Tests.Infrastructure;
using AntHost.TestSupport;

namespace AntHost.Kernel.Tests.Processes;

/// <summary>The broker's pool file and socket: created at start, removed at shutdown, cleaned after a crash.</summary>
public class BrokerLifecycleTests
{
    [RootTheory]
    [InlineData(15)] // SIGTERM
    [InlineData(2)]  // SIGINT (Ctrl-C)
    public void Shutdown_removes_pool_file_and_socket(int signal)
    {
        using var b = BrokerProcess.Start();
        Assert.True(File.Exists(b.PoolPath));
        Assert.True(File.Exists(b.SocketPath));
        b.Process.Signal(signal);
        Assert.Equal(0, b.Process.WaitExit());
        Assert.False(File.Exists(b.PoolPath), "pool file left behind");
        Assert.False(File.Exists(b.SocketPath), "socket left behind");
    }

    [RootFact]
    public void A_restarted_broker_cleans_up_what_a_killed_one_left()
    {
        string instance = BrokerProcess.NewInstance();
        using (var first = BrokerProcess.Start(instance: instance))
        {
            using var k = first.Connect("survivor-check");
            k.Allocate(3);
            first.Process.Kill9();
            first.Process.WaitExit();
            Assert.True(File.Exists(first.PoolPath), "a killed broker cannot remove its pool");
            Assert.True(File.Exists(first.SocketPath));

            using var second = BrokerProcess.Start(instance: instance);
            Assert.Contains("removing stale", second.Process.Output, StringComparison.Ordinal);
            using var pool = second.OpenPool();
            Assert.Equal(0, new OwnershipTable(pool).AllocatedPages());
            using var k2 = second.Connect("after-restart");
            var l = k2.Allocate(2);
            Assert.Equal(2, l.Pages);
        }
    }

    [RootTheory]
    [InlineData(9)]
    [InlineData(15)]
    public void A_process_learns_that_the_broker_is_gone_and_a_wait_on_it_ends(int signal)
    {
        using var b = BrokerProcess.Start();
        using var k = b.Connect("watcher");
        Assert.False(k.BrokerGone.IsCancellationRequested);
        // A receive with no timeout, as a server's loop waits: only the broker's end ends it.
        var waiter = Task.Run(() => k.Receive(out _, Timeout.InfiniteTimeSpan, k.BrokerGone));
        Assert.False(waiter.Wait(TimeSpan.FromMilliseconds(600)), "the wait ended with the broker alive");
        b.Process.Signal(signal);
        b.Process.WaitExit();
        Assert.True(waiter.Wait(ChildProcess.Patience), "the wait did not end when the broker went");
        Assert.False(waiter.Result);
        Assert.True(k.BrokerGone.IsCancellationRequested);
    }

    [RootFact]
    public void A_call_waiting_for_a_reply_ends_with_a_clear_error_when_the_broker_dies()
    {
        using var b = BrokerProcess.Start();
        b.Actor("keeper").WaitLine("READY"); // takes requests, never answers
        using var k = b.Connect("caller");
        var ep = k.Open("keeper");
        var call = Task.Run(() => k.Call(ep, k.AllocateControl(), 1, default, Timeout.InfiniteTimeSpan));
        Assert.False(call.Wait(TimeSpan.FromMilliseconds(600)), "the call ended with the broker alive");
        b.Process.Kill9();
        b.Process.WaitExit();
        var e = Assert.ThrowsAny<AggregateException>(() => call.Wait(ChildProcess.Patience));
        var ke = Assert.IsType<KernelException>(e.InnerException);
        Assert.Equal(KernelError.BrokerUnavailable, ke.Error);
    }

    [RootFact]
    public void A_second_broker_for_a_live_instance_refuses_with_a_clear_message()
    {
        using var b = BrokerProcess.Start();
        using var second = ChildProcess.Start("anthost-kernel.dll", ["--instance", b.Instance]);
        Assert.Equal(1, second.WaitExit());
        Assert.Contains("already running", second.Errors, StringComparison.Ordinal);
        Assert.True(File.Exists(b.PoolPath), "the refused broker must not touch the live one's pool");
        using var k = b.Connect("still-works");
        Assert.Equal(1, k.Allocate(1).Pages);
    }
}
