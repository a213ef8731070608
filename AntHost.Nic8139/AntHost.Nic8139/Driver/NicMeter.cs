// The NIC driver's Meter, anthost-nic: its counters for dotnet-counters and OpenTelemetry
// (`dotnet-counters monitor -n anthost-nic --counters anthost-nic`), read from the live
// counters on the collector's thread (the data path does nothing for it).
using System.Runtime.Versioning;
using AntHost.Inet.Abi;
using AntHost.Kernel.Diagnostics;

namespace AntHost.Nic8139.Driver;

[SupportedOSPlatform("linux")]
internal sealed class NicMeter : IDisposable
{
    public const string Name = "anthost-nic";
    private readonly CounterMeter _meter;

    /// <param name="read">The counters: <see cref="NicStat"/> order, then frames captured and capture drops.</param>
    public NicMeter(Func<long[]?> read) => _meter = new CounterMeter(Name, read, Specs);

    /// <summary>The running driver's meter: its live counters, read on the collector's thread.</summary>
    public static NicMeter For(InetDriver driver) => new(() =>
        {
            // Pages owned: as the loop last counted them (it scans the ownership table at most once a second).
            var v = new long[(int)NicStat.Count + 2];
            driver.ReadCounters(v.AsSpan(0, (int)NicStat.Count), refresh: false);
            lock (driver.PanelLock)
            {
                if (driver.Panel is { } p)
                {
                    v[(int)NicStat.Count] = p.CapturedFrames;
                    v[(int)NicStat.Count + 1] = p.CaptureDrops;
                }
            }
            return v;
        });

    public System.Diagnostics.Metrics.Meter Meter => _meter.Meter;

    /// <summary>Which counter goes to which instrument (the two after NicStat.Count: frames captured, capture drops).</summary>
    internal static readonly CounterSpec[] Specs =
    [
        new("anthost.nic.frames", (int)NicStat.RxFrames, "direction", "in", "{frame}"),
        new("anthost.nic.frames", (int)NicStat.TxFrames, "direction", "out", "{frame}"),
        new("anthost.nic.bytes", (int)NicStat.RxBytes, "direction", "in", "By"),
        new("anthost.nic.bytes", (int)NicStat.TxBytes, "direction", "out", "By"),
        new("anthost.nic.drops", (int)NicStat.RxOversize, "reason", "oversize", "{frame}"),
        new("anthost.nic.drops", (int)NicStat.RxTruncated, "reason", "truncated", "{frame}"),
        new("anthost.nic.drops", (int)NicStat.RxRunt, "reason", "runt", "{frame}"),
        new("anthost.nic.drops", (int)NicStat.RxNotForUs, "reason", "not_for_us", "{frame}"),
        new("anthost.nic.drops", (int)NicStat.RxHandlerErrors, "reason", "handler_error", "{frame}"),
        new("anthost.nic.drops", (int)NicStat.KernelDrops, "reason", "kernel_ring_full", "{frame}"),
        new("anthost.nic.drops", (int)NicStat.InterfaceDrops, "reason", "interface", "{frame}"),
        new("anthost.nic.drops", (int)NicStat.RxNoInet, "reason", "no_inet", "{frame}"),
        new("anthost.nic.drops", (int)NicStat.RxNoIca, "reason", "no_ica", "{frame}"),
        new("anthost.nic.drops", (int)NicStat.RxPostFailed, "reason", "post_failed", "{frame}"),
        new("anthost.nic.drops", (int)NicStat.TxErrors, "reason", "tx_error", "{frame}"),
        new("anthost.nic.drops", (int)NicStat.TxRejected, "reason", "tx_rejected", "{frame}"),
        new("anthost.nic.drops", (int)NicStat.TxLinkDown, "reason", "tx_link_down", "{frame}"),
        new("anthost.nic.drops", (int)NicStat.FaultsDropped, "reason", "fault_injected", "{frame}"),
        new("anthost.nic.ipc.messages", (int)NicStat.EthInputs, "kind", "ethinput", "{message}"),
        new("anthost.nic.ipc.messages", (int)NicStat.TransmitRequests, "kind", "transmit", "{message}"),
        new("anthost.nic.ipc.messages", (int)NicStat.CompletionsRiding, "kind", "completion_riding", "{message}"),
        new("anthost.nic.ipc.messages", (int)NicStat.CompletionsAlone, "kind", "completion_alone", "{message}"),
        new("anthost.nic.ipc.messages", (int)NicStat.BadRequests, "kind", "bad_request", "{message}"),
        new("anthost.nic.frames_to_inet", (int)NicStat.FramesPosted, Unit: "{frame}"),
        new("anthost.nic.gro.segments_merged", (int)NicStat.SegmentsCoalesced, Unit: "{segment}"),
        new("anthost.nic.faults", (int)NicStat.FaultsDuplicated, "fault", "duplicate", "{frame}"),
        new("anthost.nic.faults", (int)NicStat.FaultsCorrupted, "fault", "corrupt", "{frame}"),
        new("anthost.nic.faults", (int)NicStat.FaultsReordered, "fault", "reorder", "{frame}"),
        new("anthost.nic.faults", (int)NicStat.FaultsDelayed, "fault", "delay", "{frame}"),
        new("anthost.nic.link.down_events", (int)NicStat.LinkDownEvents, Unit: "{event}"),
        new("anthost.nic.inet.attaches", (int)NicStat.Attaches, Unit: "{attach}"),
        new("anthost.nic.link.up", (int)NicStat.LinkUp, Gauge: true),
        new("anthost.nic.pages_owned", (int)NicStat.PagesOwned, Unit: "{page}", Gauge: true),
        new("anthost.nic.capture.frames", (int)NicStat.Count, Unit: "{frame}"),
        new("anthost.nic.capture.drops", (int)NicStat.Count + 1, Unit: "{frame}"),
    ];

    public void Dispose() => _meter.Dispose();
}
