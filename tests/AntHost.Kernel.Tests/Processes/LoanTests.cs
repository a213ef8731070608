using AntHost.Kernel.Ipc;
using AntHost.Kernel.Pool;
using AntHost.Kernel.Tests.Infrastructure;
using AntHost.TestSupport;

namespace AntHost.Kernel.Tests.Processes;

/// <summary>
/// Loans: ICAs sent with lend come back to the lender when the borrower dies holding them
/// (a frame lent to a NIC driver that crashes is still unacknowledged TCP data); ICAs given
/// outright are reclaimed as before, and a loan the borrower ended by passing the ICA on
/// (here: back to the lender) is over.
/// </summary>
public class LoanTests
{
    private const ushort Inspect = 1, Echo = 2;

    [RootTheory]
    [InlineData(TransferMode.Direct)]
    [InlineData(TransferMode.Mediated)]
    public void Icas_lent_to_a_process_that_dies_come_back_to_the_lender(TransferMode mode)
    {
        using var b = BrokerProcess.Start(mode);
        var keeper = b.Actor("keeper");
        var keeperId = new ProcessId(uint.Parse(keeper.WaitLine("READY").Split(' ')[1]));
        using var k = b.Connect("lender");
        var ep = k.Open("keeper");

        var lentControl = k.AllocateControl();
        var lent1 = k.Allocate(2);
        lent1.Span.Fill(0x5A);
        var lent2 = k.AllocateBytes(100);
        lent2.Span.Fill(0x5B);
        k.Post(ep, lentControl, Inspect, [lent1, lent2], lend: true);
        keeper.WaitLine("KEPT 3");

        var givenControl = k.AllocateControl();
        var given = k.AllocateBytes(100);
        k.Post(ep, givenControl, Inspect, [given]);
        keeper.WaitLine("KEPT 5");

        // Lent, and handed straight back by the keeper: the loan ended with the return.
        var echoControl = k.AllocateControl();
        var echoed = k.AllocateBytes(100);
        k.Post(ep, echoControl, Echo, [echoed], lend: true);
        keeper.WaitLine("KEPT 6");
        Message back = default;
        BrokerProcess.Eventually(() => k.TryReceive(out back) && back.Kind == MessageKind.Notify, "the keeper's notify");
        Assert.Equal(1, back.DataCount);
        var backData = back.GetData(0).Ica;
        Assert.Equal(echoed.Handle.FirstPage, backData.Handle.FirstPage);

        var againControl = k.AllocateControl();
        k.Post(ep, againControl, Echo, [backData]);
        keeper.WaitLine("KEPT 7");
        BrokerProcess.Eventually(() => k.TryReceive(out back) && back.Kind == MessageKind.Notify, "the keeper's second notify");
        backData = back.GetData(0).Ica;
        Assert.Equal(echoed.Handle.FirstPage, backData.Handle.FirstPage);

        keeper.Kill9();
        bool died = false;
        BrokerProcess.Eventually(() =>
        {
            while (k.TryReceive(out var m)) if (m.Kind == MessageKind.PeerDied && m.Endpoint == ep) died = true;
            return died;
        }, "the keeper's death reported");

        Assert.True(k.TryTakeBack(lentControl.Handle, out var c2), "the lent control ICA came back");
        Assert.True(k.TryTakeBack(lent1.Handle, out var l1), "lent ICA 1 came back");
        Assert.True(k.TryTakeBack(lent2.Handle, out var l2), "lent ICA 2 came back");
        Assert.True(k.TryTakeBack(echoControl.Handle, out var e2), "the echo's lent control ICA came back");
        // The echoed ICA came around once more (given to the keeper, echoed back): it is ours
        // through that message, not the old loan, and taking it back as well would hand one
        // ICA out twice (as inet once did with an app's control ICA that a dead driver had
        // returned directly and the app had sent again).
        Assert.False(k.TryTakeBack(echoed.Handle, out _), "an ICA whose loan ended long ago was taken back as lent");
        Assert.False(k.TryTakeBack(given.Handle, out _), "an ICA given outright is reclaimed, not returned");
        Assert.False(k.TryTakeBack(givenControl.Handle, out _));
        Assert.Equal(2, l1.Pages);
        Assert.True(l1.Span.ToArray().All(x => x == 0x5A), "lent ICA 1's bytes changed");
        Assert.True(l2.Span.ToArray().All(x => x == 0x5B), "lent ICA 2's bytes changed");
        Assert.Equal(5, k.Pool.Counter(BrokerCounter.LoansReturned)); // 1 + 2 + 1 + 1 pages

        // What came back is ours like any ICA: it can be sent again and freed.
        var table = new OwnershipTable(k.Pool);
        Assert.True(table.IsOwnedBy(l1.Handle, k.Id));
        foreach (var l in new[] { c2, l1, l2, e2, backData }) k.Free(l);
        k.TrimCache();
        k.Commit();
        Assert.Equal(0, table.PagesOwnedBy(keeperId));
        Assert.Equal(0, table.PagesOwnedBy(k.Id));
        PoolTests.AssertTableConsistent(k.Pool);
    }

    [RootTheory]
    [InlineData(TransferMode.Direct)]
    [InlineData(TransferMode.Mediated)]
    public void A_lender_that_dies_first_leaves_its_loans_with_the_borrower(TransferMode mode)
    {
        using var b = BrokerProcess.Start(mode);
        var keeper = b.Actor("keeper");
        var keeperId = new ProcessId(uint.Parse(keeper.WaitLine("READY").Split(' ')[1]));
        IcaHandle lent;
        using (var k = b.Connect("lender"))
        {
            var ep = k.Open("keeper");
            var d = k.AllocateBytes(100);
            lent = d.Handle;
            k.Post(ep, k.AllocateControl(), Inspect, [d], lend: true);
            keeper.WaitLine("KEPT 2");
        }
        using var observer = b.Connect("observer");
        var table = new OwnershipTable(observer.Pool);
        BrokerProcess.Eventually(() => observer.Pool.Counter(BrokerCounter.Deaths) >= 1, "the lender gone");
        Assert.Equal(2, table.PagesOwnedBy(keeperId)); // the keeper holds both, no longer on loan
        keeper.Kill9();
        BrokerProcess.Eventually(() => observer.Pool.Counter(BrokerCounter.Deaths) >= 2, "the keeper gone");
        Assert.Equal(0, observer.Pool.Counter(BrokerCounter.LoansReturned));
        Assert.NotEqual(KernelError.None, table.Check(lent, out _));
        observer.TrimCache();
        observer.Commit();
        Assert.Equal(0, table.AllocatedPages());
        PoolTests.AssertTableConsistent(observer.Pool);
    }
}
