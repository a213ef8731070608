using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Globalization;
using AntHost.Inet.Core.Randomness;
using AntHost.Inet.Core.Tcp;
using AntHost.Inet.Core.Tests.Tcp.Sim;
using AntHost.Inet.Core.Wire;
using Xunit.Abstractions;

namespace AntHost.Inet.Core.Tests.Tcp.Fuzz;

/// <summary>
/// Hostile segments fed to a TCP layer with an established connection: it never throws, and
/// the connection's streams stay intact (data sent after the fuzzing still arrives exactly,
/// and both sides close cleanly with nothing leaked).
/// </summary>
/// <remarks>
/// CI feeds <see cref="DefaultSegments"/> segments in all, over <see cref="Runs"/> seeds;
/// <c>ANTHOST_FUZZ_SEGMENTS=n</c> feeds n (a soak), <c>ANTHOST_FUZZ_SEED=s</c> replays one seed.
/// </remarks>
public class FuzzTests(ITestOutputHelper output)
{
    public const long DefaultSegments = 1_000_000;
    public const int Runs = 8;

    private static long? Env(string name) =>
        long.TryParse(Environment.GetEnvironmentVariable(name), NumberStyles.Integer, CultureInfo.InvariantCulture, out long v) ? v : null;

    [Fact]
    public void A_million_hostile_segments_neither_throw_nor_corrupt_an_established_connection()
    {
        long total = Env("ANTHOST_FUZZ_SEGMENTS") ?? DefaultSegments;
        if (Env("ANTHOST_FUZZ_SEED") is long one)
        {
            output.WriteLine(RunOne((ulong)one, total));
            return;
        }
        var failures = new ConcurrentBag<string>();
        var reports = new ConcurrentBag<string>();
        Parallel.For(1, Runs + 1, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount }, seed =>
        {
            try
            {
                reports.Add(RunOne((ulong)seed, total / Runs));
            }
            catch (Exception e)
            {
                failures.Add($"seed {seed}: {e}\n  replay: ANTHOST_FUZZ_SEED={seed} ANTHOST_FUZZ_SEGMENTS={total / Runs}");
            }
        });
        foreach (var r in reports.OrderBy(x => x)) output.WriteLine(r);
        if (!failures.IsEmpty) Assert.Fail($"{failures.Count} of {Runs} fuzz runs failed; the first:\n{failures.First()}");
    }

    /// <summary>One connection under attack by <paramref name="segments"/> hostile segments.</summary>
    private static string RunOne(ulong seed, long segments)
    {
        var p = SimParameters.FromSeed(seed) with
        {
            ClientToServer = new LinkProfile { Delay = TimeSpan.FromMilliseconds(1) },
            ServerToClient = new LinkProfile { Delay = TimeSpan.FromMilliseconds(1) },
            Connections = 1,
            ClientBytes = 64 * 1024,
            ServerBytes = 64 * 1024,
            ClientReadProbability = 1,
            ServerReadProbability = 1,
        };
        var sim = new Simulation(p);
        sim.ServerIp.AllowStrangers = true;
        sim.OnlyTheLinkCorrupts = false;
        uint peerTsVal = 0;
        sim.ClientToServer.Tap = s => { if (TryTimestamp(s, out uint v)) peerTsVal = v; };

        const int Before = 16 * 1024;
        sim.ClientApp.SendAllowance = Before;
        sim.ServerApp.SendAllowance = Before;
        try
        {
            sim.RunUntil(() => sim.ServerApp.Received == Before && sim.ClientApp.Received == Before);
            sim.Settle(sim.Now + TimeSpan.FromSeconds(1));
        }
        catch (SimulationFailure e)
        {
            throw sim.Explain(e);
        }

        var server = sim.ServerApp.Socket;
        var client = sim.ClientApp.Socket;
        var random = new SeededRandom(seed * 31 + 9);
        var fuzzer = new SegmentFuzzer(random);
        var clientInfo = sim.Client.GetInfo(client);
        var local = sim.Client.GetLocalEndPoint(client);
        FuzzTarget target = default;
        SeqNumber acceptRight = default;
        for (long i = 0; i < segments; i++)
        {
            if ((i & 255) == 0)
            {
                sim.Settle(sim.Now);
                var info = sim.Server.GetInfo(server);
                clientInfo = sim.Client.GetInfo(client);
                if (info.State != TcpState.Established || clientInfo.State != TcpState.Established)
                    throw sim.Explain(new SimulationFailure($"after {i} hostile segments the connection left ESTABLISHED: server {info.State}, client {clientInfo.State}"));
                var edge = new SeqNumber(info.RcvNxt) + (int)Math.Min(info.RcvWnd, int.MaxValue);
                if (i == 0 || edge.IsAfter(acceptRight)) acceptRight = edge;
                target = new FuzzTarget(local.Port, Simulation.ServerPort, new SeqNumber(info.RcvNxt), info.RcvWnd, acceptRight,
                    new SeqNumber(info.SndUna), new SeqNumber(info.SndNxt), p.Seed * 11 + 4, Before,
                    (ushort)Math.Min(ushort.MaxValue, clientInfo.RcvWnd >> clientInfo.ReceiveWindowScale), peerTsVal, info.Timestamps);
            }
            var source = random.Next(50) == 0 ? new Ipv4Address(random.NextUInt32()) : Simulation.ClientAddress;
            var bytes = fuzzer.Next(target, source, Simulation.ServerAddress);
            var b = sim.ServerPool.Rent(AntHost.Inet.Core.Ip.IIpOutput.HeaderRoom, bytes.Length)!;
            bytes.CopyTo(b.Append(bytes.Length));
            try
            {
                sim.Server.Receive(source, Simulation.ServerAddress, b, sim.Now);
            }
            catch (Exception e)
            {
                throw new InvalidOperationException($"segment {i} threw: {Convert.ToHexString(bytes)}\n{Simulation.Describe(bytes)}", e);
            }
            // No forged segment may move RCV.NXT: the fuzzer never sends new data or an acceptable FIN.
            if (sim.Server.GetInfo(server).RcvNxt != target.RcvNxt.Value)
                throw new SimulationFailure($"segment {i} moved RCV.NXT from {target.RcvNxt} to {sim.Server.GetInfo(server).RcvNxt}: " +
                    $"{Simulation.Describe(bytes)}\n  {Convert.ToHexString(bytes)}");
            sim.Advance(TimeSpan.FromMicroseconds(10));
        }
        sim.Settle(sim.Now);

        var counters = sim.Server.Counters;
        // The fuzzing reached the parser's and the state machine's refusals (a vacuous run would not).
        if (segments >= 10_000)
        {
            Assert.True(counters.ChecksumFailures > 0, "no checksum failure seen");
            Assert.True(counters.Dropped(TcpDropReason.Malformed) > 0, "no malformed segment seen");
            Assert.True(counters.ChallengeAcks + counters.ChallengeAcksSuppressed > 0, "no challenge ACK (RFC 5961) seen");
        }

        sim.ClientApp.SendAllowance = long.MaxValue;
        sim.ServerApp.SendAllowance = long.MaxValue;
        sim.Run();
        return string.Create(CultureInfo.InvariantCulture,
            $"seed {seed}: {segments} segments ({fuzzer.RandomBytes} noise, {fuzzer.BadChecksums} bad checksums); server drops {counters.DropsTotal} " +
            $"(malformed {counters.Dropped(TcpDropReason.Malformed)}, checksum {counters.ChecksumFailures}, not acceptable {counters.Dropped(TcpDropReason.NotAcceptable)}, " +
            $"paws {counters.Dropped(TcpDropReason.Paws)}, no socket {counters.Dropped(TcpDropReason.NoSocket)}), challenge ACKs {counters.ChallengeAcks} (+{counters.ChallengeAcksSuppressed} suppressed), " +
            $"resets out {counters.ResetsOut}; then {p.ClientBytes - Before} + {p.ServerBytes - Before} bytes intact");
    }

    /// <summary>Reads the TSval of a segment's timestamps option, if it has one.</summary>
    private static bool TryTimestamp(ReadOnlySpan<byte> s, out uint tsVal)
    {
        tsVal = 0;
        if (s.Length < 20) return false;
        int hl = (s[12] >> 4) * 4;
        if (hl < 20 || hl > s.Length) return false;
        var o = s[20..hl];
        int i = 0;
        while (i < o.Length)
        {
            if (o[i] == 0) return false;
            if (o[i] == 1) { i++; continue; }
            if (i + 1 >= o.Length || o[i + 1] < 2 || i + o[i + 1] > o.Length) return false;
            if (o[i] == 8 && o[i + 1] == 10)
            {
                tsVal = BinaryPrimitives.ReadUInt32BigEndian(o[(i + 2)..]);
                return true;
            }
            i += o[i + 1];
        }
        return false;
    }
}
