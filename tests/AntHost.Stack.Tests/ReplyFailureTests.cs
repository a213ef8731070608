using AntHost.Inet;
using AntHost.Inet.Abi;
using AntHost.Kernel;
using AntHost.Kernel.Ipc;
using AntHost.Sandbox;
using AntHost.Stack.Tests.Infrastructure;
using AntHost.TestSupport;
using Xunit.Abstractions;

namespace AntHost.Stack.Tests;

/// <summary>
/// inet's answers to an app that does not take them. An app that posts socket calls and never
/// reads the answers fills its channel's ring; inet parks the answers past it instead of
/// waiting on its one thread (before, it waited 5 s for room per answer and every other app
/// and the driver waited with it), delivers them in order once the app reads, drops them
/// after the patience when it never does, and frees their ICAs either way.
/// </summary>
public sealed class ReplyFailureTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Patience = StackProcess.Patience;

    [PcapFact]
    public void Answers_an_app_does_not_take_are_parked_without_stalling_inet_and_cost_no_page()
    {
        using var stack = new RunningStack(output);
        using var pinger = new PeerPinger(stack.Sandbox.PeerNamespace, RunningStack.HostIp);
        using (var app = KernelConnection.Connect(new KernelOptions { Instance = stack.Instance, ProcessName = "test-deaf-app" }))
        {
            var inet = app.Open(InetService.Name);
            int ring = app.Pool.Layout.RingCapacity;

            // 1. A full ring: the two answers past it are parked, and inet goes on answering the
            //    peer's pings and the observer's Stats calls meanwhile.
            ulong handle = 0xdead_0000;
            PostCallsOnNoSocket(app, inet, ring + 2, ref handle);
            var s = stack.WaitStats(x => x[(int)InetStat.RepliesParkedNow] == 2, "two answers parked behind the app's full ring");
            for (ushort i = 1; i <= 20; i++) Assert.True(pinger.Answers(i, Patience), $"echo request {i} got no reply while answers were parked");
            s = stack.InetStats();
            Assert.Equal(2, s[(int)InetStat.RepliesParkedNow]);
            Assert.Equal(0, s[(int)InetStat.RepliesDropped]);

            // 2. The app reads: the parked answers follow, in order, and none is lost.
            var ids = TakeAnswers(app, ring + 2);
            Assert.Equal(ids.Order(), ids); // request ids grow with each post: in order
            s = stack.InetStats();
            Assert.Equal(0, s[(int)InetStat.RepliesParkedNow]);
            Assert.Equal(0, s[(int)InetStat.RepliesDropped]);

            // 3. The app stops reading for good: past the patience, the parked answers are dropped and their ICAs freed.
            PostCallsOnNoSocket(app, inet, ring + 3, ref handle);
            stack.WaitStats(x => x[(int)InetStat.RepliesParkedNow] == 3, "three answers parked");
            s = stack.WaitStats(x => x[(int)InetStat.RepliesDropped] == 3 && x[(int)InetStat.RepliesParkedNow] == 0,
                $"the parked answers dropped after {AppReplies.ReplyPatience.TotalSeconds} s");
            Assert.Equal(5, s[(int)InetStat.RepliesParked]);
            stack.Inet.WaitFor("its ring stayed full", times: 3);
            Assert.Equal(ring, TakeAnswers(app, ring).Count);
        }
        stack.DisconnectObserver();
        Assert.Equal(0, stack.Driver.Stop());
        Assert.Equal(0, stack.Inet.Stop());
        stack.Inet.WaitFor("pages owned at stop: 0");
        stack.AssertEveryPageFree();
    }

    /// <summary>Posts <paramref name="count"/> GetOption calls on sockets that do not exist (each answered at once with an error).</summary>
    private static void PostCallsOnNoSocket(KernelConnection app, Endpoint inet, int count, ref ulong handle)
    {
        for (int i = 0; i < count; i++)
        {
            var control = app.AllocateControl();
            Assert.True(ControlIca.TryOpen(control.Span, out var c));
            Assert.True(c.TryPushFrame(new RequestFrame(inet.ServiceId, (ushort)InetOp.GetOption, RequestFrameFlags.None, 0, 0), out var args));
            SocketArgs.Begin(args).Socket = handle++;
            app.Post(inet, control, (ushort)InetOp.GetOption, default);
        }
    }

    /// <summary>Reads <paramref name="count"/> answers (freeing their ICAs); returns their request ids in arrival order.</summary>
    private static List<uint> TakeAnswers(KernelConnection app, int count)
    {
        var ids = new List<uint>();
        while (ids.Count < count)
        {
            Assert.True(app.Receive(out var m, Patience), $"only {ids.Count} of {count} answers came");
            Assert.Equal(MessageKind.Reply, m.Kind);
            Assert.Equal((int)SocketStatus.InvalidSocket, m.Word);
            ids.Add(m.RequestId);
            app.FreeMessage(m);
        }
        return ids;
    }
}
