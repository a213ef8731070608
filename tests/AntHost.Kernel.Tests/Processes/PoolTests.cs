using AntHost.Kernel.Ipc;
using AntHost.Kernel.Pool;
using AntHost.Kernel.Tests.Infrastructure;
using AntHost.TestSupport;

namespace AntHost.Kernel.Tests.Processes;

/// <summary>Allocation, contiguity, the read-only table, death and reclaim, with real processes.</summary>
public class PoolTests
{
    /// <summary>Checks the table's structure: heads describe runs of tail pages that point back at them, nothing overlaps.</summary>
    internal static void AssertTableConsistent(IcaPool pool)
    {
        uint p = 0;
        while (p < (uint)pool.DataPages)
        {
            ref var e = ref pool.Page(p);
            if ((e.Flags & OwnershipEntry.FlagAllocated) == 0) { p++; continue; }
            Assert.True((e.Flags & OwnershipEntry.FlagHead) != 0, $"page {p} is allocated but belongs to no head");
            uint n = e.PagesOrHead;
            Assert.InRange(n, 1u, (uint)pool.DataPages - p);
            for (uint t = p + 1; t < p + n; t++)
            {
                ref var te = ref pool.Page(t);
                Assert.Equal(OwnershipEntry.FlagAllocated, te.Flags);
                Assert.Equal(p, te.PagesOrHead);
                Assert.Equal(e.Owner, te.Owner);
            }
            p += n;
        }
    }

    [RootTheory]
    [InlineData(TransferMode.Direct)]
    [InlineData(TransferMode.Mediated)]
    public void Allocations_are_contiguous_owned_and_disjoint(TransferMode mode)
    {
        using var b = BrokerProcess.Start(mode);
        using var k = b.Connect("allocator");
        var table = new OwnershipTable(k.Pool);
        var leases = new List<IcaLease>();
        foreach (int pages in new[] { 1, 2, 3, 16, 17, 64, 1, 5 })
        {
            var l = k.Allocate(pages);
            Assert.Equal(pages, l.Pages);
            Assert.Equal(KernelError.None, table.Check(l.Handle, out int n));
            Assert.Equal(pages, n);
            Assert.True(table.IsOwnedBy(l.Handle, k.Id));
            // Contiguous: one range of the pool file, writable end to end.
            Assert.Equal(k.Pool.PageFileOffset(l.Handle.FirstPage), l.PoolOffset);
            l.Span.Fill((byte)pages);
            Assert.Equal((byte)pages, l.Span[^1]);
            leases.Add(l);
        }
        var ranges = leases.Select(l => (l.Handle.FirstPage, End: l.Handle.FirstPage + (uint)l.Pages)).OrderBy(r => r.FirstPage).ToList();
        for (int i = 1; i < ranges.Count; i++) Assert.True(ranges[i - 1].End <= ranges[i].FirstPage, "ICAs overlap");
        AssertTableConsistent(k.Pool);

        // A freed ICA's handle is refused from then on (stale), also after reuse.
        var big = leases.Single(l => l.Pages == 64);
        k.Free(big);
        k.Commit();
        Assert.Equal(KernelError.StaleHandle, table.Check(big.Handle, out _));
        Assert.Equal(KernelError.InvalidHandle, table.Check(IcaHandle.Create((uint)k.Pool.DataPages + 5, 1, 0), out _));
        Assert.Equal(KernelError.InvalidHandle, table.Check(IcaHandle.Create(big.Handle.FirstPage + 1, big.Handle.Generation, 0), out _));
        Assert.Throws<KernelException>(() => k.Allocate(k.Pool.DataPages + 1));
    }

    [RootFact]
    public void Pool_exhaustion_is_a_clear_error_not_a_crash()
    {
        using var b = BrokerProcess.Start();
        // A server: an app would meet its own limit first (QuotaTests).
        using var k = b.Connect("greedy", server: true);
        var first = k.Allocate(1);
        // The whole pool cannot be had while one page is taken.
        var e = Assert.Throws<KernelException>(() => k.Allocate(k.Pool.DataPages));
        Assert.Equal(KernelError.OutOfPages, e.Error);
        Assert.Contains("contiguous", e.Message, StringComparison.Ordinal);
        using var k2 = b.Connect("after");
        Assert.Equal(1, k2.Allocate(1).Pages);
        k.Free(first);
    }

    [RootFact]
    public void Ownership_table_is_read_only_outside_the_broker()
    {
        using var b = BrokerProcess.Start();
        var writer = b.Actor("write-table");
        writer.WaitLine("WRITING");
        int code = writer.WaitExit();
        Assert.DoesNotContain("WROTE", writer.Output, StringComparison.Ordinal);
        Assert.NotEqual(0, code);
        // The runtime reports the fault (SIGSEGV) and aborts: 134 (SIGABRT) or 139 (SIGSEGV).
        Assert.True(code is 134 or 139, $"exit code {code}; stderr: {writer.Errors}");
        using var pool = b.OpenPool();
        AssertTableConsistent(pool);
    }

    [RootTheory]
    [InlineData(TransferMode.Direct)]
    [InlineData(TransferMode.Mediated)]
    public void Kill9_of_a_holder_with_transfers_in_flight_leaks_nothing(TransferMode mode)
    {
        using var b = BrokerProcess.Start(mode);
        using var sink = b.Connect("sink");
        sink.RegisterService("sink");
        var holder = b.Actor("hold", "--count", "12", "--pages", "3", "--send-to", "sink", "--send", "5", "--free", "2");
        var ready = holder.WaitLine("READY").Split(' ');
        var holderId = new ProcessId(uint.Parse(ready[1]));
        var table = new OwnershipTable(sink.Pool);
        // The holder owns what it kept (and, direct path, possibly still the journaled ones).
        Assert.True(table.PagesOwnedBy(holderId) >= 5 * 3);

        holder.Kill9();
        holder.WaitExit();
        BrokerProcess.Eventually(() => sink.Pool.Counter(BrokerCounter.Deaths) >= 1, "broker noticed the death");
        Assert.Equal(0, table.PagesOwnedBy(holderId));

        // What was sent before the death is the sink's: five ICAs of 3 pages, intact.
        var got = new List<Message>();
        BrokerProcess.Eventually(() =>
        {
            while (sink.TryReceive(out var m)) if (m.Kind == MessageKind.Notify) got.Add(m);
            return got.Count == 5;
        }, "five notifications from the holder");
        foreach (var m in got)
        {
            Assert.Equal(3, m.Data0Pages());
            Assert.True(m.GetData(0).Ica.Span.ToArray().All(x => x == 0x5A));
            sink.FreeMessage(m);
        }
        sink.TrimCache();
        sink.Commit();
        AssertTableConsistent(sink.Pool);
        Assert.Equal(0, table.AllocatedPages());
        Assert.Equal(sink.Pool.DataPages, sink.Pool.Counter(BrokerCounter.FreePages));
    }

    [RootTheory]
    [InlineData(TransferMode.Direct)]
    [InlineData(TransferMode.Mediated)]
    public void Kill9_of_a_receiver_reclaims_what_was_in_flight_towards_it(TransferMode mode)
    {
        using var b = BrokerProcess.Start(mode);
        var server = b.Actor("hold", "--count", "0");
        // A receiver that never reads: registers a service through the echo-server role, then is killed.
        var echo = b.Actor("echo-server", "--service", "victim");
        echo.WaitLine("READY");
        using var k = b.Connect("sender");
        var ep = k.Open("victim");
        echo.Kill9();
        echo.WaitExit();
        // Sends after (or racing with) the death: either refused as PeerDied or reclaimed by the broker.
        for (int i = 0; i < 10; i++)
        {
            var l = k.Allocate(2);
            try { k.Notify(ep, 1, 0, [l]); }
            catch (KernelException e) when (e.Error == KernelError.PeerDied) { k.Free(l); }
        }
        BrokerProcess.Eventually(() => k.Pool.Counter(BrokerCounter.Deaths) >= 1, "death noticed");
        BrokerProcess.Eventually(() => { k.TryReceive(out _); return !ep.IsOpen; }, "channel closed");
        k.TrimCache();
        k.Commit();
        AssertTableConsistent(k.Pool);
        Assert.Equal(0, new OwnershipTable(k.Pool).AllocatedPages());
        server.Dispose();
    }
}

internal static class MessageTestExtensions
{
    public static int Data0Pages(this Message m) => m.GetData(0).Ica.Pages;
}
