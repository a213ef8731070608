using AntHost.Kernel.Pool;
using AntHost.Kernel.Tests.Infrastructure;
using AntHost.TestSupport;

namespace AntHost.Kernel.Tests.Processes;

/// <summary>How many ICAs one refill of the allocation cache brings from the broker, and how many the cache keeps.</summary>
public class CacheRefillTests
{
    [RootFact]
    public void A_refill_brings_as_many_large_icas_as_the_cache_keeps_pages_for()
    {
        using var b = BrokerProcess.Start();
        using var k = KernelConnection.Connect(new KernelOptions { Instance = b.Instance, ProcessName = "app", CachePerSize = 128, AllocationBatch = 32 });
        var first = k.Allocate(16);
        Assert.Equal(128 / 16 - 1, k.CachedIcas); // eight 16-page ICAs: the cache's 128 pages
        k.Free(first);
    }

    [RootFact]
    public void With_refill_pages_a_refill_brings_more_large_icas_and_the_cache_still_keeps_only_its_pages_of_frees()
    {
        using var b = BrokerProcess.Start();
        using var k = KernelConnection.Connect(new KernelOptions { Instance = b.Instance, ProcessName = "nic", CachePerSize = 128, AllocationBatch = 32, RefillPages = 512 });
        var held = new List<IcaLease> { k.Allocate(16) };
        Assert.Equal(32 - 1, k.CachedIcas); // one round trip on the broker's socket brought 32
        while (k.CachedIcas > 0) held.Add(k.Allocate(16));
        Assert.Equal(32, held.Count);
        long freeBefore = k.Pool.Counter(BrokerCounter.FreePages);
        foreach (var l in held) k.Free(l);
        Assert.Equal(128 / 16, k.CachedIcas); // what is freed beyond the cache's pages goes back to the pool
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (k.Pool.Counter(BrokerCounter.FreePages) < freeBefore + (32 - 8) * 16 && DateTime.UtcNow < deadline) Thread.Sleep(10);
        Assert.Equal(freeBefore + (32 - 8) * 16, k.Pool.Counter(BrokerCounter.FreePages));
    }
}
