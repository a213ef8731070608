// The copy-less paths. A send buffer is a data ICA the app writes its payload into,
// after SendHeadroom bytes the inet server fills with the Ethernet, IPv4 and TCP or UDP
// headers: a payload of one segment then goes to the wire from the app's own pages,
// and the ICA travels app -> inet -> NIC driver without a copy. A receive lease is the
// other direction: the data ICA the NIC driver copied the frame into, handed to the app
// with the payload's place in it, to read and then give back.
using System.Diagnostics;
using AntHost.Inet.Abi;
using AntHost.Kernel;

namespace AntHost.Client;

/// <summary>
/// A data ICA rented for a copy-less send (<see cref="InetSocket.RentSendBuffer"/>). Write the
/// payload into <see cref="Span"/>, then pass the buffer to <see cref="InetSocket.Send(SendBuffer, int, SendTrace?)"/>;
/// from that call on the pages belong to the inet server and the buffer must not be touched.
/// A buffer that is not sent is given back with <see cref="InetSocket.ReturnSendBuffer"/>.
/// </summary>
public readonly struct SendBuffer
{
    internal SendBuffer(IcaLease ica, int capacity)
    {
        Ica = ica;
        Capacity = capacity;
    }

    internal IcaLease Ica { get; }

    /// <summary>The payload bytes this buffer can hold.</summary>
    public int Capacity { get; }

    public bool IsEmpty => Ica.IsNone;

    /// <summary>Where the payload goes (behind the headroom for the headers).</summary>
    public Span<byte> Span => Ica.Span.Slice(InetService.SendHeadroom, Capacity);
}

/// <summary>
/// Received payload in the data ICA it arrived in (<see cref="InetSocket.ReceiveLease"/>): read
/// <see cref="Span"/>, then <see cref="Dispose"/> to give the ICA back. A lease of length 0
/// with <see cref="IsEndOfStream"/> means the peer closed its side.
/// </summary>
public struct ReceiveLease : IDisposable
{
    private readonly KernelConnection? _kernel;
    private IcaLease _ica;
    private readonly int _offset;

    internal ReceiveLease(KernelConnection kernel, IcaLease ica, int offset, int length)
    {
        _kernel = kernel;
        _ica = ica;
        _offset = offset;
        Length = length;
    }

    public int Length { get; }

    public readonly bool IsEndOfStream => _ica.IsNone;

    /// <summary>The payload (valid until <see cref="Dispose"/>).</summary>
    public readonly Span<byte> Span => _ica.IsNone ? Span<byte>.Empty : _ica.Span.Slice(_offset, Length);

    /// <summary>Gives the ICA back to the pool (idempotent for this copy of the lease).</summary>
    public void Dispose()
    {
        if (_ica.IsNone) return;
        _kernel?.Free(_ica);
        _ica = default;
    }
}

/// <summary>One stamp of a send's timeline.</summary>
public readonly record struct TraceStamp(long Timestamp, ushort Stage, uint Process)
{
    /// <summary>The stage's name (<see cref="InetTraceStage"/>).</summary>
    public string StageName => Stage switch
    {
        InetTraceStage.AppStart => "app start",
        InetTraceStage.AppRequest => "app request",
        InetTraceStage.AppReturned => "app returned",
        InetTraceStage.InetReceived => "inet received",
        InetTraceStage.InetSocket => "inet socket",
        InetTraceStage.InetTransport => "inet transport",
        InetTraceStage.InetIp => "inet ip",
        InetTraceStage.InetEthernet => "inet ethernet",
        InetTraceStage.InetTransmit => "inet transmit",
        InetTraceStage.NicReceived => "nic received",
        InetTraceStage.NicTransmitted => "nic transmitted",
        InetTraceStage.NicReturn => "nic return",
        _ => $"stage 0x{Stage:x2}",
    };
}

/// <summary>
/// The per-stage timeline of a send (the paper's send-time breakdown), copied from the
/// control ICA's trace area when the send returns. Pass one to a send to have it filled;
/// reuse it across sends (it allocates only when first made).
/// </summary>
public sealed class SendTrace
{
    private readonly TraceStamp[] _stamps = new TraceStamp[32];

    /// <summary>The number of stamps of the last send.</summary>
    public int Count { get; private set; }

    public ReadOnlySpan<TraceStamp> Stamps => _stamps.AsSpan(0, Count);

    /// <summary>The time from the first stamp of <paramref name="from"/> to the first of <paramref name="to"/>; null if either is missing.</summary>
    public TimeSpan? Between(ushort from, ushort to)
    {
        long? a = null, b = null;
        foreach (var s in Stamps)
        {
            if (a is null && s.Stage == from) a = s.Timestamp;
            if (b is null && s.Stage == to) b = s.Timestamp;
        }
        return a is null || b is null ? null : TimeSpan.FromTicks((long)((b.Value - a.Value) * (double)TimeSpan.TicksPerSecond / Stopwatch.Frequency));
    }

    /// <summary>The whole send, app start to app returned.</summary>
    public TimeSpan? Total => Between(InetTraceStage.AppStart, InetTraceStage.AppReturned);

    internal void CopyFrom(Kernel.Ipc.ControlIca c)
    {
        int n = Math.Min(c.TraceCount, _stamps.Length);
        int k = 0;
        for (int i = 0; i < n; i++)
            if (c.TryGetStamp(i, out long t, out ushort stage, out uint process)) _stamps[k++] = new TraceStamp(t, stage, process);
        Count = k;
    }

    public override string ToString()
    {
        if (Count == 0) return "(no stamps)";
        var sb = new System.Text.StringBuilder();
        long t0 = _stamps[0].Timestamp;
        foreach (var s in Stamps)
            sb.Append(System.Globalization.CultureInfo.InvariantCulture, $"{(s.Timestamp - t0) * 1e6 / Stopwatch.Frequency,9:F1} us  {s.StageName}\n");
        return sb.ToString();
    }
}
