// The measuring loops, one per figure of the paper, the same for every stack:
//   RTT (the paper's figure 9): N bytes out, 1 byte back, one round at a time, against the
//     peer's RTT responder (after a 4-byte size header). Frugal runs leave a gap between
//     rounds so every process goes to sleep before the next request.
//   Send processing time (table 3, figure 8): one send call of N bytes on a connection to
//     the peer's discard server, from the call until the result is back in the app; for
//     AntHost also each stage's share from the control ICA's trace.
//   Throughput: bulk TCP to the discard server (until the peer has read it all: the FIN is
//     answered only after the last byte) and from the source server.
// Warm-up first in each: tiered JIT and first page touches land in the first rounds.
using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using AntHost.Bench.Ipc;
using AntHost.Inet.Abi;
using AntHost.Kernel.Ipc;

namespace AntHost.Bench.Net;

/// <summary>One interval of a send's timeline: from one stamped stage to the next.</summary>
public sealed record StageResult(string From, string To, string Row, Percentiles Time);

public sealed record RttPoint(string Tuning, string Stack, int PayloadBytes, Percentiles Rtt);

public sealed record SendPoint(string Stack, int PayloadBytes, Percentiles Total, IReadOnlyList<StageResult> Stages)
{
    /// <summary>
    /// The share of sends whose timeline took the path the stages describe (the most common
    /// sequence of stamps: e.g. direct return from the driver, or a reply from inet when the
    /// segment could not leave at once); null when the stack keeps no timeline.
    /// </summary>
    public double? TimelineShare { get; init; }
}

public sealed record ThroughputResult(string Stack, string Direction, long Bytes, double Seconds)
{
    public double Gbps => Seconds > 0 ? Bytes * 8 / Seconds / 1e9 : 0;

    /// <summary>CPU of every watched process (the app, the servers; the peer's excluded) during the transfer, milliseconds per MB (10^6 bytes).</summary>
    public double? CpuMsPerMb { get; init; }

    /// <summary>
    /// The whole machine's busy CPU during the transfer, milliseconds per MB: both ends (the
    /// sandbox peer included), every process and the kernel's interrupt work. The watched
    /// processes' figure leaves out what the far end's threads run on the near end's behalf.
    /// </summary>
    public double? MachineCpuMsPerMb { get; init; }

    /// <summary>Sleep/wake cycles of the watched processes per MB.</summary>
    public double? SleepsPerMb { get; init; }

    /// <summary>
    /// IPC messages per MB through the inet server (AntHost only): app calls and their answers,
    /// ethinputs, transmit requests and their completions, from inet's counters.
    /// </summary>
    public double? MessagesPerMb { get; init; }

    /// <summary>The messages per MB by kind, and the frames they carried (AntHost only), e.g. for the run's log.</summary>
    public string? MessageKinds { get; init; }

    /// <summary>The watched thread that used the most CPU during the transfer ("process/thread").</summary>
    public string? BusiestThread { get; init; }

    /// <summary>Its CPU over the transfer's time: 1.0 is one CPU all the time.</summary>
    public double? BusiestThreadShare { get; init; }

    /// <summary>This result with the CPU figures of its transfer: the watched processes' use and the machine's busy seconds.</summary>
    public ThroughputResult WithCpu(IReadOnlyList<CpuUse> use, double machineSeconds)
    {
        double mb = Bytes / 1e6;
        if (mb <= 0) return this;
        var busiest = use.SelectMany(p => p.Threads.Select(t => (p.Process, t.Thread, t.Seconds))).OrderByDescending(x => x.Seconds).FirstOrDefault();
        return this with
        {
            CpuMsPerMb = use.Sum(u => u.Seconds) * 1e3 / mb,
            MachineCpuMsPerMb = machineSeconds * 1e3 / mb,
            SleepsPerMb = use.Sum(u => u.Sleeps) / mb,
            BusiestThread = busiest.Thread is null ? null : $"{busiest.Process}/{busiest.Thread}",
            BusiestThreadShare = busiest.Thread is null || Seconds <= 0 ? null : busiest.Seconds / Seconds,
        };
    }
}

public sealed record CpuResult(string Tuning, string Stack, int Rounds, double WallSeconds, IReadOnlyList<CpuUse> Processes)
{
    /// <summary>The payload sizes whose round trips this covers, e.g. "256 B-1 KiB".</summary>
    public string Sizes { get; init; } = "";

    /// <summary>True for the paper's sizes (256 B to 1 KiB), the group the targets are judged on.</summary>
    public bool PaperSizes => Sizes.StartsWith("256 B", StringComparison.Ordinal);

    /// <summary>Garbage collections in the app (this process) during the round trips (gen 0 counts every one).</summary>
    public int AppCollections { get; init; }

    /// <summary>The app's total GC pause during the round trips, milliseconds.</summary>
    public double AppGcPauseMs { get; init; }

    /// <summary>CPU microseconds of every watched process per round trip.</summary>
    public double MicrosecondsPerRound => Rounds == 0 ? 0 : Processes.Sum(p => p.Seconds) * 1e6 / Rounds;

    /// <summary>
    /// Sleeps the benchmark itself made in the app between round trips (the frugal tuning's
    /// gap, one each): not part of a round trip, left out of the figures below.
    /// </summary>
    public long BenchSleeps { get; init; }

    /// <summary>Sleep/wake cycles (voluntary context switches) of every watched thread per round trip.</summary>
    public double SleepsPerRound => Rounds == 0 ? 0 : (Processes.Sum(p => p.Sleeps) - BenchSleeps) / (double)Rounds;

    /// <summary>As <see cref="SleepsPerRound"/>, for one process.</summary>
    public double SleepsPerRoundOf(string process) =>
        Rounds == 0 ? 0 : (Processes.Where(p => p.Process == process).Sum(p => p.Sleeps) - (process == "app" ? BenchSleeps : 0)) / (double)Rounds;
}

/// <summary>The servers of a stack with nothing to do, over <paramref name="Seconds"/>.</summary>
public sealed record IdleResult(string Tuning, double Seconds, IReadOnlyList<CpuUse> Processes)
{
    public double WakeupsPerSecond(CpuUse p) => Seconds > 0 ? p.Sleeps / Seconds : 0;
}

public sealed record InjectionResult(int FrameBytes, double FramesPerSecond, double Seconds)
{
    public double Gbps => FramesPerSecond * FrameBytes * 8 / 1e9;
}

public static class Measure
{
    private static double Us(long ticks) => ticks * 1_000_000.0 / Stopwatch.Frequency;

    /// <summary>The paper's RTT test on one connection: <paramref name="size"/> bytes out, one byte back.</summary>
    public static Percentiles Rtt(IBenchStack stack, IPEndPoint responder, int size, int warmUp, int iterations, TimeSpan gap)
    {
        using var c = stack.Connect(responder);
        Span<byte> header = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(header, size);
        c.Send(header);
        var payload = new byte[size];
        var one = new byte[1];
        var samples = new List<long>(iterations);
        for (int i = 0; i < warmUp + iterations; i++)
        {
            if (gap > TimeSpan.Zero) Thread.Sleep(gap);
            long t0 = Stopwatch.GetTimestamp();
            c.Send(payload);
            if (c.Receive(one) != 1) throw new IOException($"the RTT responder at {responder} closed the connection");
            long t1 = Stopwatch.GetTimestamp();
            if (i >= warmUp) samples.Add(t1 - t0);
        }
        return Percentiles.Of(samples);
    }

    /// <summary>
    /// Send processing time of <paramref name="size"/>-byte sends to a discard server, and per
    /// stage when the stack keeps a timeline. A pause between sends lets the previous
    /// segments leave, so each send finds an idle connection, as the paper's did.
    /// </summary>
    public static SendPoint Send(IBenchStack stack, IPEndPoint discard, int size, int warmUp, int iterations)
    {
        using var c = stack.Connect(discard);
        var payload = new byte[size];
        var totals = new List<long>(iterations);
        var trace = new List<TraceStamp>(32);
        // Each traced send: its path (the sequence of intervals) and each interval's time,
        // summed over the calls a large send makes. The breakdown is built from the sends
        // that took the most common path, so stages of different paths are never stacked.
        var paths = new List<(string Path, Dictionary<(ushort, ushort), long> Sums, List<(ushort, ushort)> Order)>(iterations);
        for (int i = 0; i < warmUp + iterations; i++)
        {
            trace.Clear();
            long t0 = Stopwatch.GetTimestamp();
            bool traced = c.SendTraced(payload, trace);
            long t1 = Stopwatch.GetTimestamp();
            if (i >= warmUp)
            {
                if (traced && trace.Count >= 2)
                {
                    totals.Add(trace[^1].Timestamp - trace[0].Timestamp);
                    var sums = new Dictionary<(ushort, ushort), long>();
                    var order = new List<(ushort, ushort)>();
                    for (int k = 1; k < trace.Count; k++)
                    {
                        var key = (trace[k - 1].Stage, trace[k].Stage);
                        if (!sums.ContainsKey(key)) order.Add(key);
                        sums[key] = sums.GetValueOrDefault(key) + trace[k].Timestamp - trace[k - 1].Timestamp;
                    }
                    paths.Add((string.Join(',', order.Select(o => $"{o.Item1:x}-{o.Item2:x}")), sums, order));
                }
                else totals.Add(t1 - t0);
            }
            // Small sends: a 30 us pause, inside every spin budget of the latency tuning, so
            // the path stays hot. Larger ones: 1 ms, for their several segments to drain.
            if (size >= 4096) Thread.Sleep(1);
            else for (long until = Stopwatch.GetTimestamp() + Stopwatch.Frequency * 30 / 1_000_000; Stopwatch.GetTimestamp() < until;) Thread.SpinWait(20);
        }
        var stages = new List<StageResult>();
        double? share = null;
        if (paths.Count > 0)
        {
            var common = paths.GroupBy(p => p.Path).OrderByDescending(g => g.Count()).First().ToList();
            share = (double)common.Count / paths.Count;
            foreach (var key in common[0].Order)
                stages.Add(new StageResult(StageName(key.Item1), StageName(key.Item2), Row(key.Item1, key.Item2), Percentiles.Of(common.Select(p => p.Sums[key]).ToList())));
        }
        return new SendPoint(stack.Name, size, Percentiles.Of(totals), stages) { TimelineShare = share };
    }

    /// <summary>Bulk TCP from the stack to a discard server for about <paramref name="seconds"/>; timed until the peer has read everything.</summary>
    public static ThroughputResult Outbound(IBenchStack stack, IPEndPoint discard, double seconds)
    {
        using var c = stack.Connect(discard);
        return Outbound(c, seconds) with { Stack = stack.Name };
    }

    /// <summary>Bulk TCP on a connection already made to a discard server, as <see cref="Outbound(IBenchStack, IPEndPoint, double)"/>.</summary>
    public static ThroughputResult Outbound(IBenchConnection c, double seconds)
    {
        var chunk = new byte[64 * 1024];
        long sent = 0;
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed.TotalSeconds < seconds)
        {
            c.Send(chunk);
            sent += chunk.Length;
        }
        c.ShutdownSend();
        var sink = new byte[256];
        while (c.Receive(sink) > 0) { }
        return new ThroughputResult("", "out (to the peer)", sent, sw.Elapsed.TotalSeconds);
    }

    /// <summary>Bulk TCP from a source server to the stack for about <paramref name="seconds"/>.</summary>
    public static ThroughputResult Inbound(IBenchStack stack, IPEndPoint source, double seconds)
    {
        using var c = stack.Connect(source);
        return Inbound(c, seconds) with { Stack = stack.Name };
    }

    /// <summary>Bulk TCP on a connection already made to a source server, as <see cref="Inbound(IBenchStack, IPEndPoint, double)"/>.</summary>
    public static ThroughputResult Inbound(IBenchConnection c, double seconds)
    {
        var buffer = new byte[256 * 1024];
        long got = 0;
        // The first bytes start the clock: connection setup is not throughput.
        int n = c.Receive(buffer);
        if (n <= 0) throw new IOException("the source server sent nothing");
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed.TotalSeconds < seconds)
        {
            n = c.Receive(buffer);
            if (n <= 0) break;
            got += n;
        }
        return new ThroughputResult("", "in (from the peer)", got, sw.Elapsed.TotalSeconds);
    }

    /// <summary>The direction of the HttpClient row: a GET of <paramref name="bytes"/> from the peer's HTTP server.</summary>
    public static string HttpDirection(long bytes) => $"HttpClient GET of {bytes >> 20} MiB";

    /// <summary>
    /// An HttpClient GET of <paramref name="bytes"/> from the peer's HTTP server (its
    /// /bytes/N), read to the end through the stack's own handler; timed from the request to
    /// the last byte, on a keep-alive connection a small GET opened first.
    /// </summary>
    public static ThroughputResult HttpGet(IBenchStack stack, IPEndPoint http, long bytes)
    {
        using var client = new HttpClient(stack.CreateHttpHandler()) { Timeout = TimeSpan.FromMinutes(2) };
        string Url(long n) => $"http://{http.Address}:{http.Port}/bytes/{n}";
        client.GetByteArrayAsync(Url(1024)).GetAwaiter().GetResult();
        var buffer = new byte[256 * 1024];
        long got = 0;
        var sw = Stopwatch.StartNew();
        using (var response = client.GetAsync(Url(bytes), HttpCompletionOption.ResponseHeadersRead).GetAwaiter().GetResult())
        {
            response.EnsureSuccessStatusCode();
            using var body = response.Content.ReadAsStream();
            int n;
            while ((n = body.Read(buffer)) > 0) got += n;
        }
        sw.Stop();
        if (got != bytes) throw new IOException($"the GET of {bytes} bytes brought {got}");
        return new ThroughputResult(stack.Name, HttpDirection(bytes), got, sw.Elapsed.TotalSeconds);
    }

    /// <summary>What one stamp of the trace costs the stage that makes it (clock read and 16-byte write), in nanoseconds: median of batches.</summary>
    public static double StampCostNanoseconds()
    {
        var page = new byte[4096];
        var c = ControlIca.Initialize(page, 1, 1);
        const int batch = ControlIca.MaxTrace;
        var perStamp = new List<double>(2000);
        for (int round = 0; round < 2200; round++)
        {
            c.ClearTrace();
            long t0 = Stopwatch.GetTimestamp();
            for (int i = 0; i < batch; i++) c.Stamp(InetTraceStage.AppStart, 1);
            long t1 = Stopwatch.GetTimestamp();
            if (round >= 200) perStamp.Add(Us(t1 - t0) * 1000 / batch);
        }
        perStamp.Sort();
        return perStamp[perStamp.Count / 2];
    }

    /// <summary>The name of a trace stage.</summary>
    public static string StageName(ushort stage) => stage switch
    {
        InetTraceStage.AppStart => "AppStart",
        InetTraceStage.AppRequest => "AppRequest",
        InetTraceStage.AppReturned => "AppReturned",
        InetTraceStage.InetReceived => "InetReceived",
        InetTraceStage.InetSocket => "InetSocket",
        InetTraceStage.InetTransport => "InetTransport",
        InetTraceStage.InetIp => "InetIp",
        InetTraceStage.InetEthernet => "InetEthernet",
        InetTraceStage.InetTransmit => "InetTransmit",
        InetTraceStage.NicReceived => "NicReceived",
        InetTraceStage.NicTransmitted => "NicTransmitted",
        InetTraceStage.NicReturn => "NicReturn",
        _ => $"0x{stage:x2}",
    };

    /// <summary>
    /// The row of the paper's table 3 that the interval from <paramref name="from"/> to
    /// <paramref name="to"/> belongs to. The inet server stamps InetTransport after TCP took
    /// the payload, and the core's hook stamps InetIp and InetEthernet as each segment's
    /// headers are written inside that call, so the pairs say which layer's work lies between.
    /// </summary>
    public static string Row(ushort from, ushort to) => (from, to) switch
    {
        (InetTraceStage.AppStart, InetTraceStage.AppRequest) => "app: pre-request",
        (_, InetTraceStage.InetReceived) => "IPC app→inet (sync, data ICA)",
        (_, InetTraceStage.InetSocket) => "inet: request and socket manager",
        (InetTraceStage.InetSocket, InetTraceStage.InetIp) => "inet: TCP layer (segment built)",
        (InetTraceStage.InetEthernet, InetTraceStage.InetIp) => "inet: TCP layer (segment built)",
        (InetTraceStage.InetIp, InetTraceStage.InetEthernet) => "inet: IP layer (header, route, ARP) and Ethernet header",
        (InetTraceStage.InetEthernet, InetTraceStage.InetTransport) => "inet: TCP after the segments left",
        (InetTraceStage.InetSocket, InetTraceStage.InetTransport) => "inet: TCP, IP and Ethernet layers",
        (InetTraceStage.InetTransport, InetTraceStage.InetTransmit) => "inet: pre-request to the NIC driver",
        (_, InetTraceStage.InetTransmit) => "inet: pre-request to the NIC driver",
        (_, InetTraceStage.NicReceived) => "IPC inet→NIC (async, data ICA)",
        (_, InetTraceStage.NicTransmitted) => "NIC: I/O to the adapter (libpcap)",
        (_, InetTraceStage.NicReturn) => "NIC: pre-return",
        (InetTraceStage.NicReturn, InetTraceStage.AppReturned) => "IPC NIC→app (direct return)",
        (_, InetTraceStage.AppReturned) => "return to the app (inet replies)",
        (InetTraceStage.AppReturned, InetTraceStage.AppStart) => "app: between the calls of one send",
        _ => $"{StageName(from)} → {StageName(to)}",
    };
}
