using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using AntHost.Inet.Abi;
using AntHost.Inet.Core.Wire;
using AntHost.Nic8139.Pcap;

namespace AntHost.Nic8139.Probe;

/// <summary>What <c>--probe</c> does beyond opening the adapter.</summary>
internal sealed record ProbeOptions(int ListenSeconds, IPAddress? OurAddress, IPAddress? Ping, int PingCount, int InjectSeconds, int InjectLength);

/// <summary>
/// The self-contained probe: opens the adapter, says what it sees, and optionally measures
/// the two raw figures the rest of AntHost is compared against (docs/targets.md): the frames/s
/// that injection reaches, and a pcap ping (inject an ICMP echo request, receive the reply) to
/// the kernel at the other end. A tool for people; it prints and allocates freely.
/// </summary>
internal static class ProbeRunner
{
    public static int Run(NicDevice device, ProbeOptions probe, TextWriter output)
    {
        output.WriteLine($"adapter {device.Adapter}: link {device.Link}, MTU {device.Mtu}, snaplen {device.Snaplen}, our MAC {device.Mac}, promiscuous {device.Promiscuous}");
        output.WriteLine($"filter: {device.Filter}");

        if (probe.Ping is not null || probe.InjectSeconds > 0)
            return Measure(device, probe, output);

        long seen = 0;
        device.LinkChanged += s => output.WriteLine($"link {s}");
        device.Start(frame =>
        {
            seen++;
            EthernetHeader.TryParse(frame, out var eth); // the device delivers no frame shorter than its header
            output.WriteLine($"{DateTime.UtcNow:HH:mm:ss.ffffff} {eth.Source} > {eth.Destination} type 0x{(ushort)eth.EtherType:x4} length {frame.Length}");
        });
        Thread.Sleep(TimeSpan.FromSeconds(probe.ListenSeconds));
        device.Stop();
        output.WriteLine($"{seen} frames; counters: {device.Counters}");
        return 0;
    }

    private static int Measure(NicDevice device, ProbeOptions probe, TextWriter output)
    {
        if (probe.Ping is { } target)
        {
            if (probe.OurAddress is not { } ours)
            {
                output.WriteLine("--ping needs --address (the address we speak as)");
                return 2;
            }
            var r = Ping(device, ours, target, probe.PingCount, output);
            if (r != 0) return r;
        }
        if (probe.InjectSeconds > 0) Inject(device, probe.InjectSeconds, probe.InjectLength, output);
        output.WriteLine($"counters: {device.Counters}");
        return 0;
    }

    private static int Ping(NicDevice device, IPAddress ours, IPAddress target, int count, TextWriter output)
    {
        long peerMacValue = -1; // -1 until the ARP reply comes
        int replySeq = -1;
        const ushort id = 0x4e49;
        device.Start(frame =>
        {
            if (Volatile.Read(ref peerMacValue) < 0 && Frames.ArpReplySender(frame, target) is { } m) Volatile.Write(ref peerMacValue, (long)m.Value);
            int s = Frames.EchoReplySequence(frame, id);
            if (s >= 0) Volatile.Write(ref replySeq, s);
        });
        try
        {
            var buffer = new byte[1514];
            var sw = Stopwatch.StartNew();
            for (int attempt = 0; Volatile.Read(ref peerMacValue) < 0 && attempt < 10; attempt++)
            {
                device.Transmit(buffer.AsSpan(0, Frames.ArpRequest(buffer, device.Mac, ours, target)));
                var until = sw.Elapsed + TimeSpan.FromMilliseconds(300);
                while (Volatile.Read(ref peerMacValue) < 0 && sw.Elapsed < until) Thread.Yield();
            }
            if (Volatile.Read(ref peerMacValue) < 0)
            {
                output.WriteLine($"no ARP reply from {target}");
                return 1;
            }
            var dst = new MacAddress((ulong)peerMacValue);
            output.WriteLine($"{target} is at {dst} (ARP)");
            var samples = new List<double>(count);
            int lost = 0;
            var budget = Stopwatch.StartNew();
            for (int i = 0; i < count + 200 && budget.Elapsed < TimeSpan.FromSeconds(60); i++) // a busy machine gets a bounded run
            {
                ushort seq = (ushort)i;
                int n = Frames.EchoRequest(buffer, dst, device.Mac, ours, target, id, seq, 56);
                long t0 = Stopwatch.GetTimestamp();
                device.Transmit(buffer.AsSpan(0, n));
                long limit = t0 + Stopwatch.Frequency;
                // Yield between looks: a pure busy spin can hold the very CPU the receive thread needs.
                while (Volatile.Read(ref replySeq) != seq && Stopwatch.GetTimestamp() < limit) Thread.Yield();
                long t1 = Stopwatch.GetTimestamp();
                if (Volatile.Read(ref replySeq) != seq) { lost++; continue; }
                if (i >= 200) samples.Add((t1 - t0) * 1e6 / Stopwatch.Frequency); // the first 200 warm up
            }
            samples.Sort();
            if (samples.Count == 0)
            {
                output.WriteLine("no echo replies");
                return 1;
            }
            output.WriteLine($"pcap ping {target}: {samples.Count} replies, {lost} lost, median {Pct(samples, 0.5):0.0} us, p99 {Pct(samples, 0.99):0.0} us, min {samples[0]:0.0} us (receive loop spin {device.SpinMicroseconds} us)");
            return 0;
        }
        finally
        {
            device.Stop();
        }
    }

    private static void Inject(NicDevice device, int seconds, int length, TextWriter output)
    {
        var frame = new byte[length];
        // To a locally administered address nobody holds: the peer drops it at L2, cheaply.
        new MacAddress(0x02_00_5E_FF_FF_FEUL).WriteTo(frame);
        device.Mac.WriteTo(frame.AsSpan(6));
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(12), 0x88B5); // IEEE local experimental
        var before = device.Counters;
        var sw = Stopwatch.StartNew();
        long sent = 0, failed = 0;
        var end = TimeSpan.FromSeconds(seconds);
        while (sw.Elapsed < end)
        {
            for (int i = 0; i < 1000; i++)
            {
                if (device.Transmit(frame) == TransmitResult.Sent) sent++; else failed++;
            }
        }
        double s = sw.Elapsed.TotalSeconds;
        var after = device.Counters;
        output.WriteLine($"inject {length} B: {sent / s:N0} frames/s, {sent * length * 8 / s / 1e9:0.00} Gbit/s over {s:0.0} s ({failed} failed; tx frames {after.TxFrames - before.TxFrames})");
    }

    private static double Pct(List<double> sorted, double p) => sorted[Math.Min(sorted.Count - 1, (int)(p * sorted.Count))];
}
