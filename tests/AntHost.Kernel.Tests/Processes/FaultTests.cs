using AntHost.Kernel.Ipc;
using AntHost.Kernel.Pool;
using AntHost.Kernel.Tests.Infrastructure;
using AntHost.TestSupport;

namespace AntHost.Kernel.Tests.Processes;

/// <summary>Processes that break the rules: a thief, a hostile process, a use after transfer in strict mode.</summary>
public class FaultTests
{
    [RootTheory]
    [InlineData(TransferMode.Direct)]
    [InlineData(TransferMode.Mediated)]
    public void Handing_over_a_foreign_ica_is_refused_or_cut_off(TransferMode mode)
    {
        using var b = BrokerProcess.Start(mode);
        using var sink = b.Connect("sink");
        sink.RegisterService("sink");
        var victim = b.Actor("hold", "--count", "1", "--pages", "2", "--fill", "171"); // 0xAB
        var ready = victim.WaitLine("READY").Split(' ');
        var victimId = new ProcessId(uint.Parse(ready[1]));
        var stolen = new IcaHandle(ulong.Parse(ready[2]));
        var table = new OwnershipTable(sink.Pool);
        Assert.True(table.IsOwnedBy(stolen, victimId));

        var thief = b.Actor("thief", "--target", "sink", "--handle", stolen.Value.ToString());
        var thiefId = default(ProcessId);
        BrokerProcess.Eventually(() => { while (sink.TryReceive(out var m)) { if (m.Kind == MessageKind.ChannelOpened) thiefId = m.Source; else sink.FreeMessage(m); } return !thiefId.IsNone; }, "thief opened its channel");

        if (mode == TransferMode.Mediated)
        {
            // Refused by the broker before the receiver could see it.
            Assert.Equal("REFUSED NotOwner", thief.WaitLine("REFUSED"));
            Assert.False(sink.TryReceive(out var none) && none.Kind == MessageKind.Request, "the sink must not see the request");
            Assert.True(b.OpenPoolCounter(BrokerCounter.Refused) >= 1);
        }
        else
        {
            // The receiver refuses the handle at once (it never surfaces as a request); the
            // broker cuts the thief off when it commits the thief's journal. Which comes first
            // is a race: a thief preempted between its journal record and its ring write is
            // cut off before it publishes, and the sink then has nothing to refuse. Either
            // way no request may surface, up to and including the drain on PeerDied.
            bool gone = false;
            BrokerProcess.Eventually(() =>
            {
                while (sink.TryReceive(out var m))
                {
                    Assert.NotEqual(MessageKind.Request, m.Kind);
                    if (m.Kind == MessageKind.PeerDied && m.Source == thiefId) gone = true;
                }
                return gone;
            }, "the thief cut off and its channel drained");
            int code = thief.WaitExit();
            Assert.Equal(137, code); // SIGKILL: cut off
            Assert.True(sink.Pool.Counter(BrokerCounter.CutOffs) >= 1);
            BrokerProcess.Eventually(() => table.PagesOwnedBy(thiefId) == 0, "the thief's pages reclaimed");
        }

        // Either way the table still gives the ICA to its owner, and its bytes are intact.
        sink.Commit();
        Assert.True(table.IsOwnedBy(stolen, victimId), "the victim still owns its ICA");
        unsafe
        {
            var bytes = new ReadOnlySpan<byte>(sink.Pool.PageAddress(stolen.FirstPage), 2 * PoolLayout.PageSize);
            Assert.True(bytes.ToArray().All(x => x == 0xAB), "the victim's data changed");
        }
        Assert.False(victim.HasExited);
        PoolTests.AssertTableConsistent(sink.Pool);
    }

    [RootTheory]
    [InlineData(TransferMode.Direct)]
    [InlineData(TransferMode.Mediated)]
    public void Hostile_process_cannot_crash_the_broker_or_leak_pages(TransferMode mode)
    {
        using var b = BrokerProcess.Start(mode);
        var echo = b.Actor("echo-server", "--service", "echo");
        echo.WaitLine("READY");
        var args = new List<string> { "--target", "echo", "--socket", "50000", "--ring", "60000", "--seed", "7" };
        if (mode == TransferMode.Direct) args.Add("--forge-at-end");
        var hostile = b.Actor("hostile", args.ToArray());
        var socketLine = hostile.WaitLine("SOCKET", TimeSpan.FromMinutes(5));
        var done = hostile.WaitLine("DONE", TimeSpan.FromMinutes(5));
        Assert.True(long.Parse(done.Split(' ')[1]) >= 100_000, done);
        if (mode == TransferMode.Direct)
        {
            hostile.WaitLine("FORGING");
            Assert.Equal(137, hostile.WaitExit()); // cut off for the forged transfer
        }
        else Assert.Equal(0, hostile.WaitExit());

        Assert.False(b.Process.HasExited, "the broker died:\n" + b.Process.Output);
        using var pool = b.OpenPool();
        BrokerProcess.Eventually(() => pool.Counter(BrokerCounter.Deaths) >= 1, "the hostile process is gone");
        Assert.True(pool.Counter(BrokerCounter.BadSocketRequests) > 1000, socketLine);
        Assert.True(pool.Counter(BrokerCounter.DuplicateRegistrations) > 0);
        Assert.True(pool.Counter(BrokerCounter.UnknownServices) > 0);
        Assert.True(pool.Counter(BrokerCounter.BadMessages) + pool.Counter(BrokerCounter.Refused) > 1000);

        // Honest processes still work, with correct bytes.
        using (var k = b.Connect("honest"))
        {
            var ep = k.Open("echo");
            for (int i = 0; i < 20; i++)
            {
                var d = k.AllocateBytes(2000);
                d.Span.Fill((byte)i);
                var r = k.Call(ep, k.AllocateControl(), 2, [new DataIca(d, 2000)], ChildProcess.Patience);
                Assert.Equal(1, r.DataCount);
                Assert.True(r.GetData(0).Span.ToArray().All(x => x == (byte)i));
                k.FreeMessage(r);
            }
            k.Call(ep, k.AllocateControl(), 100, default, ChildProcess.Patience); // quit
        }
        Assert.Equal(0, echo.WaitExit());

        // Everyone is gone: not one page may still be allocated.
        BrokerProcess.Eventually(() => pool.Counter(BrokerCounter.Deaths) >= 3, "all processes gone");
        PoolTests.AssertTableConsistent(pool);
        Assert.Equal(0, new OwnershipTable(pool).AllocatedPages());
        Assert.Equal(pool.DataPages, pool.Counter(BrokerCounter.FreePages));
        Assert.False(b.Process.HasExited);
    }

    [RootFact]
    public void Strict_mode_makes_a_use_after_transfer_fault()
    {
        using var b = BrokerProcess.Start();
        using var sink = b.Connect("sink");
        sink.RegisterService("sink");
        var toucher = b.ActorWithEnv(new Dictionary<string, string> { ["ANTHOST_STRICT_TRACE"] = "1" }, "strict-touch", "--target", "sink", "--strict");
        toucher.WaitLine("OWNED-WRITE-OK");
        var sent = toucher.WaitLine("SENT").Split(' ');
        var handle = new IcaHandle(ulong.Parse(sent[1]));
        int code = toucher.WaitExit();
        Assert.DoesNotContain("TOUCHED", toucher.Output, StringComparison.Ordinal);
        Assert.True(code is 134 or 139, $"exit {code}; the touch did not fault. stderr:\n{toucher.Errors}");
        // The message naming the ICA, written as its pages were revoked.
        Assert.Contains($"strict: {handle} revoked", toucher.Errors, StringComparison.Ordinal);

        // The receiver got the ICA with the bytes written before the transfer.
        Message got = default;
        BrokerProcess.Eventually(() => { while (sink.TryReceive(out var m)) if (m.Kind == MessageKind.Notify) { got = m; return true; } return false; }, "notification");
        Assert.Equal(handle.FirstPage, got.GetData(0).Ica.Handle.FirstPage);
        Assert.True(got.GetData(0).Span.ToArray().All(x => x == 0x11));
    }

    [RootFact]
    public void Strict_instance_makes_every_process_strict()
    {
        using var b = BrokerProcess.Start(TransferMode.Direct, null, "--strict");
        using var k = b.Connect("strict-by-default");
        Assert.True(k.Strict);
        var l = k.Allocate(2);
        l.Span.Fill(1);
        Assert.Equal(1, l.Span[^1]);
        k.Free(l);
    }
}
