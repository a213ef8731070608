using AntHost.Inet.Core.Buffers;
using AntHost.Inet.Core.Ip;
using AntHost.Inet.Core.Randomness;
using AntHost.Inet.Core.Tcp;
using AntHost.Inet.Core.Time;
using AntHost.Inet.Core.Wire;

namespace AntHost.Inet.Core.Tests.Tcp.Layer;

/// <summary>
/// The established data path allocates nothing per segment (no allocation per packet on
/// the hot path). Counted on this thread with
/// <see cref="GC.GetAllocatedBytesForCurrentThread"/> after a warm-up, so queues and pools
/// have reached their size; the count does not depend on the machine's speed.
/// </summary>
public class AllocationTests
{
    private sealed class Wire(Ipv4Address address, int dropEvery = 0) : IIpOutput
    {
        private readonly Queue<(Ipv4Address, Ipv4Address, PacketBuffer)> _q = new(64);
        private long _sent;
        public int PathMtu(Ipv4Address d) => 1500;
        public Ipv4Address SourceFor(Ipv4Address d) => address;
        public bool IsLocal(Ipv4Address x) => x == address;

        public IpSendStatus Send(Ipv4Address s, Ipv4Address d, IpProtocol p, PacketBuffer packet, in IpSendOptions o, Instant now)
        {
            // Every dropEvery-th segment with data is lost on the way.
            if (dropEvery > 0 && packet.Length > 40 && ++_sent % dropEvery == 0)
            {
                packet.FinishTransmit();
                return IpSendStatus.Sent;
            }
            _q.Enqueue((s, d, packet));
            return IpSendStatus.Sent;
        }

        public void DeliverTo(TcpLayer to, HeapBufferPool pool, Instant now)
        {
            while (_q.TryDequeue(out var e))
            {
                var (s, d, p) = e;
                var copy = pool.Rent(IIpOutput.HeaderRoom, p.Length)!;
                p.Data.CopyTo(copy.Append(p.Length));
                p.FinishTransmit();
                to.Receive(s, d, copy, now);
            }
        }
    }

    /// <summary>Two TCP layers over <see cref="Wire"/>s, one connection established between them (no delay on A's side).</summary>
    private static (HeapBufferPool Pool, Wire Wa, Wire Wb, TcpLayer Ta, TcpLayer Tb, TcpSocket Ca, TcpSocket Cb, Instant Now) Connected(int dropEvery)
    {
        var a = new Ipv4Address(198, 18, 3, 1);
        var b = new Ipv4Address(198, 18, 3, 2);
        var pool = new HeapBufferPool();
        var wa = new Wire(a, dropEvery);
        var wb = new Wire(b);
        var ta = new TcpLayer(wa, pool, new SeededRandom(1), new TcpConfig());
        var tb = new TcpLayer(wb, pool, new SeededRandom(2), new TcpConfig());
        var now = Instant.FromMilliseconds(1);
        tb.Open(out var l);
        tb.Bind(l, new TcpEndPoint(b, 7));
        tb.Listen(l, 1);
        ta.Open(out var ca);
        ta.Connect(ca, new TcpEndPoint(b, 7), now);
        for (int i = 0; i < 4; i++)
        {
            wa.DeliverTo(tb, pool, now);
            wb.DeliverTo(ta, pool, now);
        }
        Assert.Equal(TcpError.None, tb.Accept(l, out var cb));
        ta.SetOption(ca, TcpOption.NoDelay, 1, now);
        return (pool, wa, wb, ta, tb, ca, cb, now);
    }

    [Theory]
    [InlineData(256, false)]
    [InlineData(1448, false)]
    [InlineData(1448, true)]
    public void Established_send_receive_and_ack_allocate_nothing_per_segment(int size, bool zeroCopy)
    {
        var (pool, wa, wb, ta, tb, ca, cb, now) = Connected(dropEvery: 0);
        var payload = new byte[size];

        void Round()
        {
            if (zeroCopy)
            {
                var buf = pool.Rent(TcpLayer.SendHeadroom, size)!;
                payload.CopyTo(buf.Append(size));
                // Not Assert.Equal: xunit's comparer allocates, and this loop is measured.
                if (ta.Send(ca, buf, now) != TcpError.None) throw new InvalidOperationException("send refused");
            }
            else
            {
                ta.Send(ca, payload, out _, now);
            }
            wa.DeliverTo(tb, pool, now);
            while (tb.Receive(cb, out var got, now) == TcpError.None && got is not null) got.Release();
            wb.DeliverTo(ta, pool, now);
            now += TimeSpan.FromMicroseconds(20);
            tb.Poll(now);
            ta.Poll(now);
        }

        for (int i = 0; i < 20_000; i++) Round();
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 10_000; i++) Round();
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(allocated == 0, $"{allocated} bytes allocated over 10,000 segments; outstanding {pool.Outstanding}, unacked {ta.GetUnacknowledged(ca)}, info {ta.GetInfo(ca)}");
        Assert.Equal(0, ta.Counters.RetransmitsTimeout);
    }

    [Fact]
    public void Loss_recovery_allocates_nothing_per_segment()
    {
        // One data segment in 50 is lost: RACK marks it (or its tail probe fires), PRR paces
        // the recovery, the retransmission fills the hole, all inside the measured rounds.
        var (pool, wa, wb, ta, tb, ca, cb, now) = Connected(dropEvery: 50);
        var payload = new byte[1448];

        void Round()
        {
            // Four segments a round, so that several are in flight when one is lost.
            for (int k = 0; k < 4; k++) ta.Send(ca, payload, out _, now);
            wa.DeliverTo(tb, pool, now);
            while (tb.Receive(cb, out var got, now) == TcpError.None && got is not null) got.Release();
            now += TimeSpan.FromMicroseconds(100);
            wb.DeliverTo(ta, pool, now);
            now += TimeSpan.FromMicroseconds(100);
            tb.Poll(now);
            ta.Poll(now);
        }

        for (int i = 0; i < 20_000; i++) Round();
        long rack = ta.Counters.RetransmitsRack + ta.Counters.RetransmitsTlp;
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 10_000; i++) Round();
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(allocated == 0, $"{allocated} bytes allocated over 40,000 segments with loss; info {ta.GetInfo(ca)}");
        Assert.True(ta.Counters.RetransmitsRack + ta.Counters.RetransmitsTlp > rack, "no RACK or TLP retransmission in the measured rounds");
    }
}
