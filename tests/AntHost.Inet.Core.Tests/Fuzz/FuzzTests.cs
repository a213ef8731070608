using AntHost.Inet.Core.Counters;
using AntHost.Inet.Core.Iface;
using AntHost.Inet.Core.Tcp;
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
        // With TCP, the real TcpLayer, with a listener on the fuzzed port (SYN-RECEIVED
        // connections, resets, challenge ACKs), sharing the interface's pool.
        TcpLayer? tcp = null;
        var pool = new Buffers.HeapBufferPool(4096);
        var s = new StackFixture(
            c => c with
            {
                Reassembly = new ReassemblyConfig { MemoryLimit = 256 * 1024 },
                Udp = new UdpConfig { ReceiveQueueCapacity = 32 },
                Tcp = withTcp ? ip => tcp = new TcpLayer(ip, pool, new Randomness.SeededRandom(seed), new TcpConfig()) : null,
            },
            pool: pool);
        s.LearnPeer();
        var listener = TcpSocket.None;
        if (tcp is not null)
        {
            Assert.Equal(TcpError.None, tcp.Open(out listener));
            Assert.Equal(TcpError.None, tcp.Bind(listener, new TcpEndPoint(Net.OurIp, port)));
            Assert.Equal(TcpError.None, tcp.Listen(listener, 16));
        }
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
                    if (tcp is not null)
                        while (tcp.Accept(listener, out var accepted) == TcpError.None) tcp.Abort(accepted, s.Now);
                    // Everything out of the pool is something the interface (or, with TCP, the TCP layer) holds.
                    if (tcp is null) Assert.Equal(s.Iface.HeldBuffers, s.Pool.Outstanding);
                    else Assert.True(s.Pool.Outstanding >= s.Iface.HeldBuffers);
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
        if (tcp is not null)
        {
            while (tcp.Accept(listener, out var accepted) == TcpError.None) tcp.Abort(accepted, s.Now);
            tcp.Close(listener, s.Now);
        }
        s.RunUntil(s.Now + TimeSpan.FromMinutes(5));
        while (s.Iface.TryDequeueTransmit(out var f)) f.FinishTransmit();
        s.RunUntil(s.Now + TimeSpan.FromMinutes(5));
        while (s.Iface.TryDequeueTransmit(out var f)) f.FinishTransmit();
        Assert.Equal(0, s.Iface.HeldBuffers);
        if (tcp is not null) Assert.Equal(0, tcp.ConnectionCount);
        Assert.Equal(0, s.Pool.Outstanding);
    }
}
