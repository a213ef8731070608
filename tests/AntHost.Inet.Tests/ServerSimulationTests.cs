using Xunit.Abstractions;

namespace AntHost.Inet.Tests;

/// <summary>
/// The server core in its seeded simulation (<see cref="ServerSimulation"/>): 200 seeds of
/// 300 steps by default, in seconds; ANTHOST_SIM_SEEDS=N for a soak, ANTHOST_SIM_SEED=S to
/// replay one.
/// </summary>
public class ServerSimulationTests(ITestOutputHelper output)
{
    [Fact]
    public void Apps_a_driver_and_a_peer_in_any_order_leave_every_ica_owned_once_and_every_call_answered()
    {
        string path = $"/dev/shm/anthost-test-srv-sim-{Environment.ProcessId}.pool";
        using var kernel = new FakeKernel(path, 4096, AntHost.Kernel.Pool.ProcessId.Create(0, 1));
        long completionMessages = 0, sharedCompletions = 0, badCompletions = 0, completionMessagesIn = 0, badCompletionsIn = 0;
        long replies = 0, listFrames = 0, badLists = 0, listFramesIn = 0, badListFramesIn = 0, dataReplies = 0, direct = 0, forwardedAtMost = 0, driverDeaths = 0, appDeaths = 0, heldAtMost = 0, parkedAtMost = 0;
        int seeds = 0;
        foreach (var seed in Seeds(200))
        {
            kernel.Reset();
            var sim = new ServerSimulation(seed, kernel);
            sim.Run(300);
            listFrames += sim.ListFrames;
            badLists += sim.BadLists;
            listFramesIn += sim.Stat(AntHost.Inet.Abi.InetStat.FramesFromLists);
            badListFramesIn += sim.Stat(AntHost.Inet.Abi.InetStat.BadListFrames);
            completionMessages += sim.CompletionMessages;
            sharedCompletions += sim.SharedCompletionMessages;
            badCompletions += sim.BadCompletions;
            completionMessagesIn += sim.Stat(AntHost.Inet.Abi.InetStat.CompletionMessages);
            badCompletionsIn += sim.Stat(AntHost.Inet.Abi.InetStat.BadCompletions);
            replies += sim.Replies;
            dataReplies += sim.DataReplies;
            direct += sim.DirectReturns;
            forwardedAtMost = Math.Max(forwardedAtMost, sim.Forwarded);
            driverDeaths += sim.DriverDeaths;
            appDeaths += sim.AppDeaths;
            heldAtMost = Math.Max(heldAtMost, sim.HeldAtMost);
            parkedAtMost = Math.Max(parkedAtMost, sim.ParkedAtMost);
            seeds++;
        }
        output.WriteLine($"{seeds} seeds: {replies} replies ({dataReplies} with a received datagram), {direct} sends answered by the driver (direct return; up to {forwardedAtMost} with it at once), {appDeaths} app deaths, {driverDeaths} driver deaths, up to {heldAtMost} calls held at once, up to {parkedAtMost} answers parked behind a full ring");
        // The simulation must have exercised what it claims to.
        Assert.True(replies > seeds * 50, $"only {replies} replies");
        Assert.True(dataReplies > seeds, $"only {dataReplies} datagrams received");
        Assert.True(direct > seeds / 4, $"only {direct} direct returns");
        Assert.True(driverDeaths > 0 && appDeaths > 0 && heldAtMost > 2 && parkedAtMost > 1);
        // Frame lists: every ACK packed in a list reached TCP (the ICA's owner is checked at every
        // step, and inet owns nothing at the end), every forged list was refused and counted.
        output.WriteLine($"{listFrames} header-only frames in frame lists, {badLists} malformed lists");
        Assert.True(listFrames > seeds / 2, $"only {listFrames} frames went in lists");
        Assert.Equal(listFrames, listFramesIn);
        Assert.True(badLists > 0, "no malformed list was tried");
        Assert.Equal(badLists, badListFramesIn);
        // Completions several to a message (TxCompletions): every lent ICA came home (owners are
        // checked at every step), every message was counted, every malformed one refused and counted.
        output.WriteLine($"{completionMessages} completion messages, {sharedCompletions} carrying several completions, {badCompletions} malformed");
        Assert.True(sharedCompletions > seeds / 10, $"only {sharedCompletions} messages carried several completions");
        Assert.True(badCompletions > 0, "no malformed completion was tried");
        Assert.Equal(completionMessages, completionMessagesIn);
        Assert.Equal(badCompletions, badCompletionsIn);
    }

    private static IEnumerable<ulong> Seeds(int defaultCount)
    {
        if (ulong.TryParse(Environment.GetEnvironmentVariable("ANTHOST_SIM_SEED"), out var one))
        {
            yield return one;
            yield break;
        }
        int n = int.TryParse(Environment.GetEnvironmentVariable("ANTHOST_SIM_SEEDS"), out var m) ? m : defaultCount;
        for (int i = 0; i < n; i++) yield return (ulong)i;
    }
}
