// The broker's Meter, anthost-kernel: its counters (the pool header's, which `anthost ps`
// also reads) for dotnet-counters and OpenTelemetry, read on the collector's thread.
using AntHost.Kernel.Diagnostics;
using AntHost.Kernel.Pool;

namespace AntHost.Broker;

internal sealed unsafe class BrokerMeter : IDisposable
{
    public const string Name = "anthost-kernel";
    private readonly CounterMeter _meter;
    private readonly object _lock = new();
    private Func<BrokerCounter, long>? _read;

    private IcaPool? _pool;

    /// <param name="read">One broker counter (the pool header's); called under this meter's lock until <see cref="Close"/>.</param>
    /// <param name="pool">The pool whose processes' ring depths the gauge anthost.kernel.ring.depth shows (tags process, ring uplink/downlink); null for none.</param>
    public BrokerMeter(Func<BrokerCounter, long> read, IcaPool? pool = null)
    {
        _read = read;
        _pool = pool;
        _meter = new CounterMeter(Name, () =>
        {
            lock (_lock)
            {
                if (_read is not { } r) return null;
                var v = new long[(int)BrokerCounter.Count];
                for (int i = 0; i < v.Length; i++) v[i] = r((BrokerCounter)i);
                return v;
            }
        }, Specs);
        _meter.Meter.CreateObservableGauge("anthost.kernel.ring.depth", RingDepths, "{message}");
    }

    /// <summary>Messages waiting on each live process's uplink and downlink ring (tail - head, as `anthost ps` shows them).</summary>
    private List<System.Diagnostics.Metrics.Measurement<long>> RingDepths()
    {
        var list = new List<System.Diagnostics.Metrics.Measurement<long>>();
        lock (_lock)
        {
            if (_pool is not { } pool) return list;
            var layout = pool.Layout;
            for (int slot = 0; slot < layout.MaxProcesses; slot++)
            {
                if (Volatile.Read(ref pool.Process(slot).State) != 1) continue;
                string name = pool.ProcessName(new ProcessId(pool.Process(slot).ProcessId));
                foreach (var (ring, which) in new[] { (layout.UplinkRing(slot), "uplink"), (layout.DownlinkRing(slot), "downlink") })
                {
                    byte* r = pool.Ring(ring);
                    long depth = Volatile.Read(ref *(long*)r) - Volatile.Read(ref *(long*)(r + 64));
                    list.Add(new(Math.Clamp(depth, 0, layout.RingCapacity),
                        new KeyValuePair<string, object?>("process", $"{name}:{slot}"), new KeyValuePair<string, object?>("ring", which)));
                }
            }
        }
        return list;
    }

    public System.Diagnostics.Metrics.Meter Meter => _meter.Meter;

    internal static readonly CounterSpec[] Specs =
    [
        new("anthost.kernel.pages.free", (int)BrokerCounter.FreePages, Unit: "{page}", Gauge: true),
        new("anthost.kernel.allocations", (int)BrokerCounter.Allocations, Unit: "{ica}"),
        new("anthost.kernel.frees", (int)BrokerCounter.Frees, Unit: "{ica}"),
        new("anthost.kernel.transfers", (int)BrokerCounter.TransfersCommitted, "kind", "committed", "{transfer}"),
        new("anthost.kernel.transfers", (int)BrokerCounter.MediatedForwarded, "kind", "mediated", "{transfer}"),
        new("anthost.kernel.journal_batches", (int)BrokerCounter.JournalBatches, Unit: "{batch}"),
        new("anthost.kernel.refusals", (int)BrokerCounter.Refused, "reason", "refused", "{request}"),
        new("anthost.kernel.refusals", (int)BrokerCounter.BadMessages, "reason", "bad_message", "{request}"),
        new("anthost.kernel.refusals", (int)BrokerCounter.BadSocketRequests, "reason", "bad_socket_request", "{request}"),
        new("anthost.kernel.refusals", (int)BrokerCounter.DuplicateRegistrations, "reason", "duplicate_registration", "{request}"),
        new("anthost.kernel.refusals", (int)BrokerCounter.UnknownServices, "reason", "unknown_service", "{request}"),
        new("anthost.kernel.refusals", (int)BrokerCounter.PermissionDenied, "reason", "permission_denied", "{request}"),
        new("anthost.kernel.refusals", (int)BrokerCounter.QuotaPages, "reason", "quota_pages", "{request}"),
        new("anthost.kernel.refusals", (int)BrokerCounter.QuotaIcas, "reason", "quota_icas", "{request}"),
        new("anthost.kernel.refusals", (int)BrokerCounter.QuotaReserve, "reason", "quota_reserve", "{request}"),
        new("anthost.kernel.refusals", (int)BrokerCounter.QuotaChannels, "reason", "quota_channels", "{request}"),
        new("anthost.kernel.refusals", (int)BrokerCounter.QuotaServices, "reason", "quota_services", "{request}"),
        new("anthost.kernel.refusals", (int)BrokerCounter.QuotaRegistrations, "reason", "quota_registrations", "{request}"),
        new("anthost.kernel.refusals", (int)BrokerCounter.QuotaConnections, "reason", "quota_connections", "{request}"),
        new("anthost.kernel.process.deaths", (int)BrokerCounter.Deaths, Unit: "{process}"),
        new("anthost.kernel.process.cut_offs", (int)BrokerCounter.CutOffs, Unit: "{process}"),
        new("anthost.kernel.pages.reclaimed", (int)BrokerCounter.PagesReclaimed, Unit: "{page}"),
        new("anthost.kernel.pages.loans_returned", (int)BrokerCounter.LoansReturned, Unit: "{page}"),
    ];

    /// <summary>No read after this returns (the pool is about to be unmapped).</summary>
    public void Close()
    {
        lock (_lock)
        {
            _read = null;
            _pool = null;
        }
        _meter.Dispose();
    }

    public void Dispose() => Close();
}
