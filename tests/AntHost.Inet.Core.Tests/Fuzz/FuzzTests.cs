using AntHost.Inet.Core.Counters;
using AntHost.Inet.Core.Iface;
using AntHost.Inet.Core.Tests.Support;
using Xunit.Abstractions;

namespace AntHost.Inet.Core.Tests.Fuzz;

/// <summary>
/// A million random and mutated frames fed to an interface: never an exception, every frame
/// accounted for by the counters, and no buffer leaked. ANTHOST_FUZZ_FRAMES sets the count
/// (a soak); ANTHOST_FUZZ_SEED the seed.
/// </summary>
public class FuzzTests(ITestOutputHelper output)
{
    private static int Frames => int.TryParse(Environment.GetEnvironmentVariable("ANTHOST_FUZZ_FRAMES"), out var n) ? n : 1_000_000;

    private static ulong Seed => ulong.TryParse(Environment.GetEnvironmentVariable("ANTHOST_FUZZ_SEED"), out var s) ? s : 20261126;

    [Fact]
    public void A_million_frames_never_throw_are_all_counted_and_leak_nothing_with_tcp() => Run(Frames / 2, Seed, withTcp: true);

    [Fact]
    public void A_million_frames_never_throw_are_all_counted_and_leak_nothing_without_tcp() => Run(Frames - Frames / 2, Seed + 1, withTcp: false);

    private void Run(int frames, ulong seed, bool withTcp)
    {
        const ushort port = 5353;
        var s = new StackFixture(
            c => c with { Reassembly = new ReassemblyConfig { MemoryLimit = 256 * 1024 }, Udp = new UdpConfig { ReceiveQueueCapacity = 32 } },
            bufferSize: 4096,
            tcp: withTcp ? ip => new RecordingTransport(ip) : null);
        s.LearnPeer();
        using var sock = s.Iface.Udp.Open();
        Assert.Equal(Core.Udp.UdpError.Success, sock.Bind(port));
        using var ping = s.Iface.Icmp.OpenEchoSocket();
        var fuzzer = new FrameFuzzer(seed, Net.OurMac, Net.OurIp, Net.PeerMac, Net.PeerIp, port);
        long before = s.Counters[Counter.FramesIn];

        int i = 0;
        try
        {
            for (; i < frames; i++)
            {
                var frame = fuzzer.Next();
                s.Now += TimeSpan.FromMicroseconds(10);
                s.Iface.Receive(s.Buffer(frame), s.Now);
                if (s.Iface.PollAt is { } at && at <= s.Now) s.Iface.Poll(s.Now);
                if ((i & 63) == 0)
                {
                    while (s.Iface.TryDequeueTransmit(out var f)) f.FinishTransmit();
                    while (sock.TryReceiveFrom(out var d)) d.Payload.Release();
                    while (ping.TryReceive(out var r)) r.Payload?.Release();
                    // Everything out of the pool is something the interface holds.
                    Assert.Equal(s.Iface.HeldBuffers, s.Pool.Outstanding);
                }
            }
        }
        catch (Exception e) when (e is not Xunit.Sdk.XunitException)
        {
            throw new Xunit.Sdk.XunitException($"frame {i} (seed {seed}, replay with ANTHOST_FUZZ_SEED) threw: {e}");
        }

        var c = s.Counters;
        output.WriteLine($"{frames} frames, seed {seed}, tcp {withTcp}: {c}");
        Assert.Equal(frames, c[Counter.FramesIn] - before);
        Assert.True(c.ReceiveAccountingBalances, "a frame was neither consumed nor counted as a drop");
        // Each protocol path was reached.
        Assert.True(c[Counter.ArpIn] > 0 && c[Counter.IcmpIn] > 0 && c[Counter.UdpIn] > 0 && c[Counter.IpReassembled] > 0 && c[Counter.IpFragmentsHeld] > 0);
        Assert.True(withTcp ? c[Counter.TcpIn] > 0 : c[RxDrop.IpUnknownProtocol] > 0);

        // Close everything and let every timer run out: nothing may stay out of the pool.
        sock.Dispose();
        ping.Dispose();
        s.RunUntil(s.Now + TimeSpan.FromMinutes(5));
        while (s.Iface.TryDequeueTransmit(out var f)) f.FinishTransmit();
        s.RunUntil(s.Now + TimeSpan.FromMinutes(5));
        while (s.Iface.TryDequeueTransmit(out var f)) f.FinishTransmit();
        Assert.Equal(0, s.Iface.HeldBuffers);
        Assert.Equal(0, s.Pool.Outstanding);
    }
}
