using AntHost.Inet.Core.Buffers;
using AntHost.Inet.Core.Iface;
using AntHost.Inet.Core.Randomness;
using AntHost.Inet.Core.Tcp;
using AntHost.Inet.Core.Tests.Tcp.Support;
using AntHost.Inet.Core.Time;
using AntHost.Inet.Core.Wire;

namespace AntHost.Inet.Core.Tests.Tcp.Layer;

/// <summary>
/// TCP over the whole core: two Interfaces (ARP, IPv4, Ethernet) joined by a wire that
/// copies frames, as the NIC driver does, and hands each transmitted frame back with
/// FinishTransmit, so TCP's zero-copy lending meets the real IPv4 layer's prepends and
/// queues.
/// </summary>
public class InterfaceTransferTests
{
    [Fact]
    public void Bulk_transfer_through_arp_ipv4_and_ethernet_both_ways()
    {
        var pool = new HeapBufferPool(2048);
        var cfg = new TcpConfig();
        TcpLayer? ta = null, tb = null;
        var a = new Interface(new InterfaceConfig
        {
            Mac = new MacAddress(0x02_00_00_00_00_01), Address = new Ipv4Address(198, 18, 2, 1), PrefixLength = 24,
            Pool = pool, Random = new SeededRandom(1), Tcp = ip => ta = new TcpLayer(ip, pool, new SeededRandom(11), cfg),
        });
        var b = new Interface(new InterfaceConfig
        {
            Mac = new MacAddress(0x02_00_00_00_00_02), Address = new Ipv4Address(198, 18, 2, 2), PrefixLength = 24,
            Pool = pool, Random = new SeededRandom(2), Tcp = ip => tb = new TcpLayer(ip, pool, new SeededRandom(12), cfg),
        });
        var now = Instant.FromMilliseconds(100);
        a.Up(now);
        b.Up(now);

        tb!.Open(out var l);
        tb.Bind(l, new TcpEndPoint(b.Address, 9));
        tb.Listen(l, 1);
        ta!.Open(out var ca);
        Assert.Equal(TcpError.None, ta.Connect(ca, new TcpEndPoint(b.Address, 9), now));

        var up = TcpHarness.Bytes(1_000_000, 3);
        var down = TcpHarness.Bytes(500_000, 4);
        var upGot = new MemoryStream();
        var downGot = new MemoryStream();
        int upSent = 0, downSent = 0;
        TcpSocket cb = default;
        var scratch = new byte[65536];
        bool aShut = false, bShut = false;
        for (int round = 0; round < 100_000; round++)
        {
            now += TimeSpan.FromMicroseconds(100);
            bool moved = Move(a, b, pool, now) | Move(b, a, pool, now);
            if (cb == default && tb.Accept(l, out var acc) == TcpError.None) cb = acc;
            if (upSent < up.Length && ta.Send(ca, up.AsSpan(upSent, Math.Min(20_000, up.Length - upSent)), out int n1, now) == TcpError.None) upSent += n1;
            if (upSent == up.Length && !aShut) { ta.Shutdown(ca, now); aShut = true; }
            if (cb != default)
            {
                if (downSent < down.Length && tb.Send(cb, down.AsSpan(downSent, Math.Min(20_000, down.Length - downSent)), out int n2, now) == TcpError.None) downSent += n2;
                if (downSent == down.Length && !bShut) { tb.Shutdown(cb, now); bShut = true; }
                while (tb.Receive(cb, scratch, out int r, now) == TcpError.None && r > 0) upGot.Write(scratch, 0, r);
            }
            while (ta.Receive(ca, scratch, out int r2, now) == TcpError.None && r2 > 0) downGot.Write(scratch, 0, r2);
            if (aShut && bShut && upGot.Length == up.Length && downGot.Length == down.Length
                && ta.GetState(ca) is TcpState.TimeWait or TcpState.Closed && tb.GetState(cb) is TcpState.TimeWait or TcpState.Closed) break;
            if (!moved && Instant.Earliest(a.PollAt, b.PollAt) is { } t && t > now) now = t;
            a.Poll(now);
            b.Poll(now);
        }
        Assert.Equal(up, upGot.ToArray());
        Assert.Equal(down, downGot.ToArray());
        Assert.Equal(0, ta.Counters.RetransmitsTimeout + tb.Counters.RetransmitsTimeout);
        Assert.Equal(0, ta.Counters.DropsTotal + tb.Counters.DropsTotal);

        ta.Close(ca, now);
        tb.Close(cb, now);
        tb.Close(l, now);
        now += TimeSpan.FromMinutes(5);
        a.Poll(now);
        b.Poll(now);
        Move(a, b, pool, now);
        Move(b, a, pool, now);
        Assert.Equal(0, ta.ConnectionCount + tb.ConnectionCount);
        Assert.Equal(0, a.HeldBuffers + b.HeldBuffers);
        Assert.Equal(0, pool.Outstanding);
    }

    /// <summary>Copies every frame <paramref name="from"/> transmits into a fresh buffer for <paramref name="to"/>, as an adapter would.</summary>
    private static bool Move(Interface from, Interface to, HeapBufferPool pool, Instant now)
    {
        bool any = false;
        while (from.TryDequeueTransmit(out var frame))
        {
            var copy = pool.Rent(0, frame.Length)!;
            frame.Data.CopyTo(copy.Append(frame.Length));
            frame.FinishTransmit();
            to.Receive(copy, now);
            any = true;
        }
        return any;
    }
}
