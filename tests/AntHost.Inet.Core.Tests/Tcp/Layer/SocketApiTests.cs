using AntHost.Inet.Core.Buffers;
using AntHost.Inet.Core.Tcp;
using AntHost.Inet.Core.Tests.Tcp.Support;
using AntHost.Inet.Core.Wire;

namespace AntHost.Inet.Core.Tests.Tcp.Layer;

/// <summary>The socket API: handles, typed errors, binding, readiness and the dirty queue, scale.</summary>
public class SocketApiTests
{
    [Fact]
    public void Stale_handle_is_refused_after_its_slot_is_reused()
    {
        var h = new TcpHarness();
        h.Tcp.Open(out var a);
        h.Tcp.Close(a, h.Now);
        h.Tcp.Open(out var b);
        Assert.Equal(a.Index, b.Index);
        Assert.NotEqual(a, b);
        Assert.Equal(TcpError.InvalidHandle, h.Tcp.Bind(a, new TcpEndPoint(TcpHarness.LocalAddress, 1)));
        Assert.Equal(TcpError.None, h.Tcp.Bind(b, new TcpEndPoint(TcpHarness.LocalAddress, 1)));
        Assert.Equal(b, TcpSocket.FromValue(b.Value));
        Assert.Equal(TcpError.InvalidHandle, h.Tcp.Close(default, h.Now));
    }

    [Fact]
    public void Calls_that_do_not_fit_the_state_get_typed_errors()
    {
        var h = new TcpHarness();
        h.Tcp.Open(out var s);
        Assert.Equal(TcpError.NotConnected, h.Tcp.Send(s, "x"u8, out _, h.Now));
        Assert.Equal(TcpError.NotConnected, h.Tcp.Receive(s, new byte[1], out _, h.Now));
        Assert.Equal(TcpError.InvalidState, h.Tcp.Accept(s, out _));
        Assert.Equal(TcpError.InvalidArgument, h.Tcp.Connect(s, new TcpEndPoint(TcpHarness.RemoteAddress, 0), h.Now));
        Assert.Equal(TcpError.AddressNotAvailable, h.Tcp.Bind(s, new TcpEndPoint(new Ipv4Address(10, 0, 0, 9), 80)));
        var l = h.Listen(81);
        Assert.Equal(TcpError.InvalidState, h.Tcp.Connect(l, new TcpEndPoint(TcpHarness.RemoteAddress, 80), h.Now));
        Assert.Equal(TcpError.InvalidState, h.Tcp.Send(l, "x"u8, out _, h.Now));
        var c = h.Connected();
        Assert.Equal(TcpError.AlreadyConnected, h.Tcp.Connect(c.Socket, new TcpEndPoint(TcpHarness.RemoteAddress, 80), h.Now));
        Assert.Equal(TcpError.InvalidArgument, h.Tcp.SetOption(c.Socket, TcpOption.SendBufferSize, 10, h.Now));
    }

    [Fact]
    public void Binding_a_port_in_use_fails_unless_both_sockets_reuse_it()
    {
        var h = new TcpHarness();
        h.Listen(80);
        h.Tcp.Open(out var s);
        Assert.Equal(TcpError.AddressInUse, h.Tcp.Bind(s, new TcpEndPoint(Ipv4Address.Any, 80)));
        h.Tcp.Open(out var a);
        h.Tcp.Open(out var b);
        h.Tcp.SetOption(a, TcpOption.ReuseAddress, 1, h.Now);
        h.Tcp.SetOption(b, TcpOption.ReuseAddress, 1, h.Now);
        Assert.Equal(TcpError.None, h.Tcp.Bind(a, new TcpEndPoint(TcpHarness.LocalAddress, 90)));
        Assert.Equal(TcpError.None, h.Tcp.Bind(b, new TcpEndPoint(TcpHarness.LocalAddress, 90)));
        Assert.Equal(TcpError.None, h.Tcp.Listen(a, 1));
        Assert.Equal(TcpError.AddressInUse, h.Tcp.Listen(b, 1));
    }

    [Fact]
    public void Changed_sockets_are_reported_once_each_through_the_dirty_queue()
    {
        var h = new TcpHarness();
        var c = h.Established();
        while (h.Tcp.TryGetChanged(out _)) { }
        h.Feed(c.In with { Payload = "1"u8.ToArray() });
        h.Feed(c.In with { Seq = c.In.Seq + 1, Payload = "2"u8.ToArray() });
        Assert.True(h.Tcp.TryGetChanged(out var s));
        Assert.Equal(c.Socket, s);
        Assert.False(h.Tcp.TryGetChanged(out _));
        h.Feed(c.In with { Seq = c.In.Seq + 2, Flags = TcpFlags.Rst });
        Assert.True(h.Tcp.TryGetChanged(out s));
        Assert.Equal(c.Socket, s);
        Assert.True(h.Tcp.GetReadiness(s).HasFlag(TcpReadiness.Error));
    }

    [Fact]
    public void Poll_at_is_the_earliest_deadline_of_all_connections()
    {
        var h = new TcpHarness();
        var l = h.Listen();
        var a = h.Established(TcpHarness.PeerSyn(40001), l);
        h.Feed(a.In with { Payload = "x"u8.ToArray() }); // a delayed ACK in 40 ms
        var b = h.Established(TcpHarness.PeerSyn(40002), l);
        h.Tcp.Send(b.Socket, "y"u8, out _, h.Now);        // a retransmission in 200 ms (the RTO floor)
        Assert.Equal(h.Now + TimeSpan.FromMilliseconds(40), h.Tcp.PollAt);
        h.RunNextTimer();
        Assert.Equal(h.Now + TimeSpan.FromMilliseconds(160), h.Tcp.PollAt);
        h.Feed(b.In with { Ack = b.SndNxt + 1 });          // acknowledged: no timer left anywhere
        Assert.Null(h.Tcp.PollAt);
    }

    [Fact]
    public void Ten_thousand_connections_are_demultiplexed_and_timed_independently()
    {
        var h = new TcpHarness(TcpHarness.Plain with { MaximumBacklog = 20_000 });
        var l = h.Listen(backlog: 20_000);
        const int n = 10_000;
        var conns = new Conn[n];
        for (int i = 0; i < n; i++)
        {
            var syn = TcpHarness.PeerSyn((ushort)(1024 + i));
            conns[i] = h.Established(syn, l);
        }
        Assert.Equal(n, h.Tcp.ConnectionCount);
        // One byte to every tenth connection; each acknowledges its own after the delayed-ACK time.
        for (int i = 0; i < n; i += 10) h.Feed(conns[i].In with { Payload = [(byte)i] });
        h.ExpectNothing();
        h.RunNextTimer();
        int acks = 0;
        while (h.Next() is { } ack)
        {
            int i = ack.DstPort - 1024;
            Assert.Equal(0, i % 10);
            Assert.Equal(conns[i].RcvNxt + 1, ack.Ack);
            acks++;
        }
        Assert.Equal(n / 10, acks);
        Assert.Null(h.Tcp.PollAt);
        for (int i = 0; i < n; i += 10) Assert.Equal(new[] { (byte)i }, h.ReadAll(conns[i].Socket));
    }

    [Fact]
    public void Malformed_segments_are_dropped_and_counted_never_thrown()
    {
        var h = new TcpHarness();
        h.Listen();
        foreach (var bytes in new[] { new byte[5], new byte[20], Enumerable.Repeat((byte)0xFF, 40).ToArray() })
        {
            var b = h.Pool.Rent(40, bytes.Length)!;
            bytes.CopyTo(b.Append(bytes.Length));
            h.Tcp.Receive(TcpHarness.RemoteAddress, TcpHarness.LocalAddress, b, h.Now);
        }
        Assert.Equal(3, h.Tcp.Counters.DropsTotal);
        Assert.Equal(0, h.Pool.Outstanding);
        h.ExpectNothing();
    }

    [Fact]
    public void Segment_from_a_broadcast_address_is_never_answered()
    {
        var h = new TcpHarness();
        h.Feed(new Seg { SrcPort = 5, DstPort = 81, Seq = 1, Flags = TcpFlags.Syn }, from: Ipv4Address.Broadcast);
        h.ExpectNothing();
    }

    [Fact]
    public void Zero_copy_receive_then_release_leaves_nothing_outstanding()
    {
        var h = new TcpHarness();
        var c = h.Established();
        for (int i = 0; i < 5; i++) h.Feed(c.In with { Seq = c.In.Seq + (uint)(i * 1000), Payload = TcpHarness.Bytes(1000, i) });
        int total = 0;
        while (h.Tcp.Receive(c.Socket, out PacketBuffer? b, h.Now) == TcpError.None && b is not null)
        {
            total += b.Length;
            b.Release();
        }
        Assert.Equal(5000, total);
        h.Tcp.Close(c.Socket, h.Now);
        h.Feed(c.In with { Seq = c.In.Seq + 5000, Ack = c.SndNxt + 1, Flags = TcpFlags.Fin | TcpFlags.Ack });
        h.RunNextTimer();
        Assert.Equal(0, h.Tcp.ConnectionCount);
        Assert.Equal(0, h.Pool.Outstanding);
    }

    [Fact]
    public void Readiness_follows_the_connection_through_its_life()
    {
        var h = new TcpHarness(TcpHarness.Plain with { SendBufferSize = 16384 });
        h.Tcp.Open(out var s);
        Assert.Equal(TcpReadiness.None, h.Tcp.GetReadiness(s));
        h.Tcp.Connect(s, new TcpEndPoint(TcpHarness.RemoteAddress, 80), h.Now);
        var syn = h.Next()!;
        Assert.Equal(TcpReadiness.None, h.Tcp.GetReadiness(s));
        while (h.Tcp.TryGetChanged(out _)) { }
        h.Feed(new Seg { SrcPort = 80, DstPort = syn.SrcPort, Seq = 9, Ack = syn.Seq + 1, Flags = TcpFlags.Syn | TcpFlags.Ack, Window = 0, Mss = 1460 });
        Assert.True(h.Tcp.TryGetChanged(out var changed));
        Assert.Equal(s, changed);
        Assert.Equal(TcpReadiness.Connected | TcpReadiness.Writable, h.Tcp.GetReadiness(s));
        // Fill the send buffer (the peer's window is closed): no longer writable.
        while (h.Tcp.Send(s, TcpHarness.Bytes(1000), out int n, h.Now) == TcpError.None && n > 0) { }
        Assert.Equal(TcpReadiness.Connected, h.Tcp.GetReadiness(s));
        h.Feed(new Seg { SrcPort = 80, DstPort = syn.SrcPort, Seq = 10, Ack = syn.Seq + 1, Flags = TcpFlags.Ack | TcpFlags.Fin, Window = 0 });
        Assert.Equal(TcpReadiness.Connected | TcpReadiness.Readable | TcpReadiness.PeerClosed, h.Tcp.GetReadiness(s));
        h.Feed(new Seg { SrcPort = 80, DstPort = syn.SrcPort, Seq = 11, Flags = TcpFlags.Rst });
        Assert.Equal(TcpReadiness.Readable | TcpReadiness.PeerClosed | TcpReadiness.Closed | TcpReadiness.Error, h.Tcp.GetReadiness(s));
        Assert.Equal(TcpError.ConnectionReset, h.Tcp.GetError(s));
        Assert.Equal(0, h.Tcp.ConnectionCount);
        h.Tcp.Close(s, h.Now);
        Assert.Equal(0, h.Pool.Outstanding);
    }
}
