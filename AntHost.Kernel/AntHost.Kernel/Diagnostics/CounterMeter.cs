// A server's counters published through System.Diagnostics.Metrics: one Meter per server
// (anthost-kernel, anthost-inet, anthost-nic), whose observable instruments read a snapshot
// of the server's counters when a listener collects (dotnet-counters, OpenTelemetry, a
// MeterListener). Nothing runs while no one listens: the instruments are callbacks, and the
// snapshot is taken on the collector's thread, at most once per collection round.
using System.Diagnostics.Metrics;

namespace AntHost.Kernel.Diagnostics;

/// <summary>One counter of a server as a measurement of an instrument, with an optional tag (e.g. reason=oversize).</summary>
/// <param name="Instrument">The instrument's name, e.g. anthost.nic.drops.</param>
/// <param name="Index">The counter's index in the snapshot.</param>
/// <param name="TagKey">The tag's key, or null.</param>
/// <param name="TagValue">The tag's value.</param>
/// <param name="Unit">The instrument's unit ({frame}, By, {page}).</param>
/// <param name="Gauge">A level (pages owned, a queue's depth) rather than a monotonic count.</param>
public sealed record CounterSpec(string Instrument, int Index, string? TagKey = null, string? TagValue = null, string? Unit = null, bool Gauge = false);

/// <summary>A <see cref="Meter"/> over a server's counters (see the file comment).</summary>
public sealed class CounterMeter : IDisposable
{
    private readonly Func<long[]?> _read;
    private readonly object _lock = new();
    private long[]? _snapshot;
    private long _takenAt;

    /// <param name="name">The meter's name: anthost-kernel, anthost-inet or anthost-nic.</param>
    /// <param name="read">Takes a snapshot of the counters (null when they cannot be read now); called on the collector's thread.</param>
    /// <param name="specs">Which counter goes to which instrument.</param>
    public CounterMeter(string name, Func<long[]?> read, IEnumerable<CounterSpec> specs)
    {
        _read = read;
        Meter = new Meter(name, "1.0");
        foreach (var group in specs.GroupBy(s => s.Instrument))
        {
            var members = group.ToArray();
            var first = members[0];
            Func<IEnumerable<Measurement<long>>> observe = () => Observe(members);
            if (first.Gauge) Meter.CreateObservableGauge(first.Instrument, observe, first.Unit);
            else Meter.CreateObservableCounter(first.Instrument, observe, first.Unit);
        }
    }

    public Meter Meter { get; }

    private IEnumerable<Measurement<long>> Observe(CounterSpec[] members)
    {
        long[]? values;
        lock (_lock)
        {
            // One snapshot serves every instrument of a collection round.
            long now = Environment.TickCount64;
            if (_snapshot is null || now - _takenAt > 200)
            {
                _snapshot = _read();
                _takenAt = now;
            }
            values = _snapshot;
        }
        if (values is null) return [];
        var list = new List<Measurement<long>>(members.Length);
        foreach (var m in members)
        {
            if ((uint)m.Index >= (uint)values.Length) continue;
            list.Add(m.TagKey is null ? new Measurement<long>(values[m.Index]) : new Measurement<long>(values[m.Index], new KeyValuePair<string, object?>(m.TagKey, m.TagValue)));
        }
        return list;
    }

    public void Dispose() => Meter.Dispose();
}
