using System.Diagnostics.Metrics;
using AntHost.Broker;
using AntHost.Kernel.Pool;
using AntHost.Kernel.Tests.Infrastructure;
using AntHost.TestSupport;

namespace AntHost.Kernel.Tests;

/// <summary>The broker's Meter (anthost-kernel) as a MeterListener sees it, and that it reads nothing once closed.</summary>
public sealed class BrokerMeterTests
{
    [Fact]
    public void The_meter_anthost_kernel_reports_transfers_refusals_by_reason_and_free_pages_until_closed()
    {
        var meter = new BrokerMeter(c => c switch
        {
            BrokerCounter.FreePages => 1000,
            BrokerCounter.TransfersCommitted => 77,
            BrokerCounter.QuotaPages => 2,
            BrokerCounter.Deaths => 1,
            _ => 0,
        });
        var seen = new List<(string, long, string?)>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (i, l) => { if (i.Meter.Name == "anthost-kernel") l.EnableMeasurementEvents(i); };
        listener.SetMeasurementEventCallback<long>((i, v, tags, _) => { lock (seen) seen.Add((i.Name, v, tags.Length > 0 ? $"{tags[0].Key}={tags[0].Value}" : null)); });
        listener.Start();
        listener.RecordObservableInstruments();
        Assert.Contains(("anthost.kernel.pages.free", 1000L, null), seen);
        Assert.Contains(("anthost.kernel.transfers", 77L, "kind=committed"), seen);
        Assert.Contains(("anthost.kernel.refusals", 2L, "reason=quota_pages"), seen);
        Assert.Contains(("anthost.kernel.process.deaths", 1L, null), seen);
        meter.Close();
        seen.Clear();
        listener.RecordObservableInstruments();
        Assert.Empty(seen);
    }

    [RootFact]
    public void The_ring_depth_gauge_names_each_live_process_and_its_two_rings()
    {
        using var b = BrokerProcess.Start();
        using var app = b.Connect("meter-app");
        using var pool = IcaPool.Open(b.PoolPath);
        var meter = new BrokerMeter(_ => 0, pool);
        var seen = new List<(long Value, string Process, string Ring)>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (i, l) => { if (i.Name == "anthost.kernel.ring.depth") l.EnableMeasurementEvents(i); };
        listener.SetMeasurementEventCallback<long>((i, v, tags, _) =>
        {
            string? process = null, ring = null;
            foreach (var t in tags)
            {
                if (t.Key == "process") process = (string?)t.Value;
                if (t.Key == "ring") ring = (string?)t.Value;
            }
            lock (seen) seen.Add((v, process!, ring!));
        });
        listener.Start();
        listener.RecordObservableInstruments();
        Assert.Contains(seen, m => m.Process.StartsWith("meter-app:", StringComparison.Ordinal) && m.Ring == "uplink" && m.Value >= 0);
        Assert.Contains(seen, m => m.Process.StartsWith("meter-app:", StringComparison.Ordinal) && m.Ring == "downlink" && m.Value >= 0);
        Assert.All(seen, m => Assert.InRange(m.Value, 0, pool.Layout.RingCapacity));
        meter.Close();
    }
}
