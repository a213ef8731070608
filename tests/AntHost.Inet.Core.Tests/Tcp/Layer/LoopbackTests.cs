using AntHost.Inet.Core.Buffers;
using AntHost.Inet.Core.Ip;
using AntHost.Inet.Core.Randomness;
using AntHost.Inet.Core.Tcp;
using AntHost.Inet.Core.Tests.Tcp.Support;
using AntHost.Inet.Core.Time;
using AntHost.Inet.Core.Wire;

namespace AntHost.Inet.Core.Tests.Tcp.Layer;

/// <summary>
/// Two layers joined back to back by a perfect wire (the seeded lossy link with its many
/// seeds is the simulation's): a bulk transfer both ways with every option on, half-close
/// and close, and no buffer left behind.
/// </summary>
public class LoopbackTests
{
    private sealed class Wire(Ipv4Address address) : IIpOutput
    {
        public readonly Queue<(Ipv4Address Src, Ipv4Address Dst, byte[] Bytes)> Out = new();
        public int PathMtu(Ipv4Address destination) => 1500;
        public Ipv4Address SourceFor(Ipv4Address destination) => address;
        public bool IsLocal(Ipv4Address a) => a == address;

        public IpSendStatus Send(Ipv4Address source, Ipv4Address destination, IpProtocol protocol, PacketBuffer packet, in IpSendOptions options, Instant now)
        {
            Out.Enqueue((source, destination, packet.Data.ToArray()));
            packet.FinishTransmit();
            return IpSendStatus.Sent;
        }
    }

    [Theory]
    [InlineData(CongestionControlKind.NewReno)]
    [InlineData(CongestionControlKind.Cubic)]
    public void Bulk_transfer_both_ways_with_half_close(CongestionControlKind cc)
    {
        var a = new Ipv4Address(198, 18, 1, 1);
        var b = new Ipv4Address(198, 18, 1, 2);
        var pool = new HeapBufferPool();
        var cfg = new TcpConfig { CongestionControl = cc };
        var wa = new Wire(a);
        var wb = new Wire(b);
        var ta = new TcpLayer(wa, pool, new SeededRandom(1), cfg);
        var tb = new TcpLayer(wb, pool, new SeededRandom(2), cfg);
        var now = Instant.FromMilliseconds(1);

        tb.Open(out var l);
        tb.Bind(l, new TcpEndPoint(b, 7));
        tb.Listen(l, 4);
        ta.Open(out var ca);
        Assert.Equal(TcpError.None, ta.Connect(ca, new TcpEndPoint(b, 7), now));

        var up = TcpHarness.Bytes(3_000_000, 1);
        var down = TcpHarness.Bytes(1_000_000, 2);
        int upSent = 0, downSent = 0;
        var upGot = new MemoryStream();
        var downGot = new MemoryStream();
        TcpSocket cb = default;
        var scratch = new byte[70_000];
        bool aShut = false, bShut = false;

        for (int round = 0; round < 200_000; round++)
        {
            now += TimeSpan.FromMicroseconds(50);
            while (wa.Out.TryDequeue(out var p)) Deliver(tb, pool, p, now);
            while (wb.Out.TryDequeue(out var p)) Deliver(ta, pool, p, now);
            if (cb == default && tb.Accept(l, out var accepted) == TcpError.None) cb = accepted;
            if (upSent < up.Length && ta.Send(ca, up.AsSpan(upSent, Math.Min(50_000, up.Length - upSent)), out int n1, now) == TcpError.None) upSent += n1;
            if (upSent == up.Length && !aShut) { ta.Shutdown(ca, now); aShut = true; }
            if (cb != default)
            {
                if (downSent < down.Length && tb.Send(cb, down.AsSpan(downSent, Math.Min(30_000, down.Length - downSent)), out int n2, now) == TcpError.None) downSent += n2;
                if (downSent == down.Length && !bShut) { tb.Shutdown(cb, now); bShut = true; }
                while (tb.Receive(cb, scratch, out int r, now) == TcpError.None && r > 0) upGot.Write(scratch, 0, r);
            }
            while (ta.Receive(ca, scratch, out int r2, now) == TcpError.None && r2 > 0) downGot.Write(scratch, 0, r2);
            if (cb != default && Finished(ta.GetState(ca), tb.GetState(cb))) break;
            if (wa.Out.Count == 0 && wb.Out.Count == 0 && ta.PollAt is { } t1 && tb.PollAt is { } t2) now = Instant.Min(t1, t2) > now ? Instant.Min(t1, t2) : now;
            ta.Poll(now);
            tb.Poll(now);
        }
        Assert.Equal(up, upGot.ToArray());
        Assert.Equal(down, downGot.ToArray());
        Assert.True(Finished(ta.GetState(ca), tb.GetState(cb)), $"{ta.GetState(ca)} / {tb.GetState(cb)}");
        Assert.True(ta.Counters.RetransmitsTimeout + tb.Counters.RetransmitsTimeout == 0,
            $"timeouts on a perfect wire: a {ta.Counters.RetransmitsTimeout} b {tb.Counters.RetransmitsTimeout}; drops a [{string.Join(",", ta.Counters.Drops)}] b [{string.Join(",", tb.Counters.Drops)}]; probes {ta.Counters.ZeroWindowProbes}/{tb.Counters.ZeroWindowProbes}");
        ta.Close(ca, now);
        tb.Close(cb, now);
        tb.Close(l, now);
        now += TimeSpan.FromMinutes(5);
        ta.Poll(now);
        tb.Poll(now);
        Assert.Equal(0, ta.ConnectionCount + tb.ConnectionCount);
        Assert.Equal(0, pool.Outstanding);
    }

    /// <summary>One side closed first and waits in TIME-WAIT; the other is CLOSED.</summary>
    private static bool Finished(TcpState a, TcpState b) =>
        (a, b) is (TcpState.TimeWait, TcpState.Closed) or (TcpState.Closed, TcpState.TimeWait);

    private static void Deliver(TcpLayer to, HeapBufferPool pool, (Ipv4Address Src, Ipv4Address Dst, byte[] Bytes) p, Instant now)
    {
        var buf = pool.Rent(IIpOutput.HeaderRoom, p.Bytes.Length)!;
        p.Bytes.CopyTo(buf.Append(p.Bytes.Length));
        to.Receive(p.Src, p.Dst, buf, now);
    }
}
