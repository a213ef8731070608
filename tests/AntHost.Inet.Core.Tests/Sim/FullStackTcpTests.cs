using AntHost.Inet.Core.Randomness;
using AntHost.Inet.Core.Tcp;
using AntHost.Inet.Core.Tests.Tcp.Sim;
using AntHost.Inet.Core.Time;
using Xunit.Abstractions;

namespace AntHost.Inet.Core.Tests.Sim;

/// <summary>
/// The whole stack on both sides: TCP over IPv4 over ARP over a simulated Ethernet that
/// loses, reorders, duplicates and corrupts frames. The scripted applications of the TCP
/// simulation connect, send a pseudo-random stream each way, half-close, read to the end
/// and close; every byte must arrive once and in order, both sides must close, and no
/// buffer may leak. ANTHOST_SIM_SEEDS for a soak, ANTHOST_SIM_SEED to replay.
/// </summary>
public class FullStackTcpTests(ITestOutputHelper output)
{
    [Fact]
    public void Streams_both_ways_over_a_lossy_ethernet_arrive_exactly_once_in_order_and_close()
    {
        int failures = 0;
        foreach (var seed in SimSeeds.FromEnvironment(100))
        {
            var r = new SeededRandom(seed + 9000);
            var link = new LinkConfig
            {
                Loss = r.NextDouble() * 0.2,
                Reorder = r.NextDouble() * 0.2,
                Duplicate = r.NextDouble() * 0.05,
                Corrupt = r.NextDouble() * 0.05,
                Delay = TimeSpan.FromMicroseconds(200 + r.Next(3000)),
                BitsPerSecond = 100_000_000,
            };
            long clientBytes = 20_000 + r.Next(80_000), serverBytes = 20_000 + r.Next(80_000);
            if (!RunOne(seed, link, clientBytes, serverBytes)) failures++;
        }
        Assert.Equal(0, failures);
    }

    [Fact]
    public void With_segmentation_offload_streams_arrive_exactly_once_in_order_and_close()
    {
        // Large zero-copy buffers go down as one offload buffer each and the simulated adapter
        // cuts them (TcpSegmentation, as the NIC driver does); loss, reordering, duplication
        // and corruption hit the cut frames, so retransmissions split the offloaded ranges.
        int failures = 0;
        long offloaded = 0;
        foreach (var seed in SimSeeds.FromEnvironment(40))
        {
            var r = new SeededRandom(seed + 7000);
            var link = new LinkConfig
            {
                Loss = r.NextDouble() * 0.1,
                Reorder = r.NextDouble() * 0.1,
                Duplicate = r.NextDouble() * 0.03,
                Corrupt = r.NextDouble() * 0.03,
                Delay = TimeSpan.FromMicroseconds(200 + r.Next(3000)),
                BitsPerSecond = 1_000_000_000,
            };
            var config = new TcpConfig { SegmentationOffloadBytes = 16 * 1448 };
            if (!RunOne(seed, link, 100_000 + r.Next(400_000), 20_000 + r.Next(200_000), config, bufferSize: 32 * 1024, n => offloaded += n)) failures++;
        }
        Assert.Equal(0, failures);
        Assert.True(offloaded > 0, "no send went down as an offload buffer");
    }

    private bool RunOne(ulong seed, LinkConfig link, long clientBytes, long serverBytes, TcpConfig? config = null, int bufferSize = 4096, Action<long>? offloaded = null)
    {
        config ??= new TcpConfig();
        TcpLayer? clientTcp = null, serverTcp = null;
        var net = new SimNetwork(seed, link,
            (ip, pool) => clientTcp = new TcpLayer(ip, pool, new SeededRandom(seed * 5 + 2), config),
            (ip, pool) => serverTcp = new TcpLayer(ip, pool, new SeededRandom(seed * 7 + 3), config), bufferSize: bufferSize);
        var server = new TcpEndPoint(net.B.Address, 8080);
        ulong cKey = seed * 11 + 4, sKey = seed * 13 + 5;
        var client = new SimApp("client", clientTcp!, net.A.Pool, new SeededRandom(seed * 17 + 6), true, server, cKey, clientBytes, sKey, serverBytes, 0.9, false);
        var serverApp = new SimApp("server", serverTcp!, net.B.Pool, new SeededRandom(seed * 19 + 7), false, server, sKey, serverBytes, cKey, clientBytes, 0.9, false);

        string where = $"{net.Describe()} bytes={clientBytes}/{serverBytes}";
        try
        {
            // The server listens first.
            serverApp.Step(net.Now, force: true);
            var limit = net.Now + TimeSpan.FromMinutes(30);
            long steps = 0;
            while (!(client.Done && serverApp.Done))
            {
                if (net.Now >= limit || ++steps > 3_000_000)
                    throw new SimulationFailure($"no progress: {client.Status} | {serverApp.Status}");
                client.Step(net.Now, force: false);
                serverApp.Step(net.Now, force: false);
                net.Pump();
                var next = Instant.Earliest(net.NextEvent, Instant.Earliest(client.WakeAt, serverApp.WakeAt));
                if (next is null)
                {
                    client.Step(net.Now, force: true);
                    serverApp.Step(net.Now, force: true);
                    net.Pump();
                    if (net.NextEvent is null && !(client.Done && serverApp.Done))
                        throw new SimulationFailure($"stuck: {client.Status} | {serverApp.Status}");
                    continue;
                }
                net.Step(next.Value > net.Now ? next.Value : net.Now);
            }
            Assert.Equal(clientBytes, client.Sent);
            Assert.Equal(serverBytes, client.Received);
            Assert.Equal(serverBytes, serverApp.Sent);
            Assert.Equal(clientBytes, serverApp.Received);

            // TIME-WAIT, ARP aging and every other timer run out; then nothing may be left.
            Assert.True(net.RunToQuiescence(TimeSpan.FromHours(1)), "timers never went idle");
            Assert.Equal(0, clientTcp!.ConnectionCount);
            Assert.Equal(0, serverTcp!.ConnectionCount);
            Assert.Equal(0, net.A.Pool.Outstanding);
            Assert.Equal(0, net.B.Pool.Outstanding);
            Assert.True(net.A.Iface.Counters.Snapshot().ReceiveAccountingBalances);
            Assert.True(net.B.Iface.Counters.Snapshot().ReceiveAccountingBalances);
            offloaded?.Invoke(net.OffloadedFrames);
            output.WriteLine($"ok {where}: frames delivered {net.FramesDelivered}, lost {net.FramesLost}, corrupted {net.FramesCorrupted}, duplicated {net.FramesDuplicated}, offload buffers cut {net.OffloadedFrames}");
            return true;
        }
        catch (Exception e)
        {
            output.WriteLine($"FAILED {where}: {e.Message}");
            return false;
        }
    }
}
