using AntHost.Inet.Abi;
using AntHost.Kernel;
using AntHost.Kernel.Ipc;
using AntHost.Stack.Tests.Infrastructure;
using AntHost.TestSupport;
using Xunit.Abstractions;

namespace AntHost.Stack.Tests;

/// <summary>
/// inet's answers that cannot be delivered. An app that posts socket calls and never takes
/// the answers fills its channel's ring; the answers past it fail (the ring stays full, then
/// the app goes) before their ICAs left inet. inet must free them: before, it kept them
/// until it stopped (`pages owned at stop: 2`), as after a thief that was cut off.
/// </summary>
public sealed class ReplyFailureTests(ITestOutputHelper output)
{
    [PcapFact]
    public void Answers_an_app_never_takes_cost_inet_no_page()
    {
        using var stack = new RunningStack(output);
        using (var app = KernelConnection.Connect(new KernelOptions { Instance = stack.Instance, ProcessName = "test-deaf-app" }))
        {
            var inet = app.Open(InetService.Name);
            int posts = app.Pool.Layout.RingCapacity + 2;
            for (int i = 0; i < posts; i++)
            {
                var control = app.AllocateControl();
                Assert.True(ControlIca.TryOpen(control.Span, out var c));
                Assert.True(c.TryPushFrame(new RequestFrame(inet.ServiceId, (ushort)InetOp.GetOption, RequestFrameFlags.None, 0, 0), out var args));
                SocketArgs.Begin(args).Socket = 0xdead_0000 + (ulong)i; // no such socket: answered at once
                app.Post(inet, control, (ushort)InetOp.GetOption, default);
            }
            // inet answered every one; the last two could not be delivered (it waited 5 s for room each, then gave up).
            // (It says so in its log; at most 12 s are waited for that, then the pages decide.)
            stack.WaitStats(s => s[(int)InetStat.InvalidSocketHandles] >= posts, $"{posts} calls on no socket answered");
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(12);
            while (stack.Inet.Occurrences("reply to ") < 2 && DateTime.UtcNow < deadline) Thread.Sleep(50);
        }
        stack.DisconnectObserver();
        Assert.Equal(0, stack.Driver.Stop());
        Assert.Equal(0, stack.Inet.Stop());
        output.WriteLine(stack.Inet.Log.Split('\n').LastOrDefault(l => l.Contains("pages owned at stop", StringComparison.Ordinal)));
        Assert.Contains("reply to", stack.Inet.Log, StringComparison.Ordinal);
        stack.Inet.WaitFor("pages owned at stop: 0");
        stack.AssertEveryPageFree();
    }
}
