using AntHost.Kernel.Tests.Infrastructure;
using AntHost.TestSupport;

namespace AntHost.Kernel.Tests.Processes;

/// <summary>What the kernel interface itself allocates on the managed heap.</summary>
public class AllocationCostTests
{
    [RootFact]
    public void A_cache_refill_allocates_nothing_on_the_managed_heap()
    {
        using var b = BrokerProcess.Start();
        // A cache of one ICA refilled one at a time: every Allocate is a refill over the socket.
        using var k = KernelConnection.Connect(new KernelOptions { Instance = b.Instance, ProcessName = "app", CachePerSize = 1, AllocationBatch = 1 });
        var held = new IcaLease[300];
        for (int i = 0; i < 50; i++) held[i] = k.Allocate(1); // warm-up: JIT, socket buffers
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 50; i < held.Length; i++) held[i] = k.Allocate(1);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(0, k.CachedIcas);
        Assert.True(allocated == 0, $"{held.Length - 50} refills allocated {allocated} bytes");
        foreach (var l in held) k.Free(l);
    }
}
