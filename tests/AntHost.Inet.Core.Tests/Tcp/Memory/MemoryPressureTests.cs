using AntHost.Inet.Core.Tcp;
using AntHost.Inet.Core.Tests.Tcp.Support;
using AntHost.Inet.Core.Wire;

namespace AntHost.Inet.Core.Tests.Tcp.Memory;

/// <summary>
/// TCP under the shell's memory pressure (<see cref="TcpMemory"/>): windows and send space
/// follow each connection's share of the limit, the right edge already advertised never moves
/// left and data within it is taken (RFC 9293 3.8.6), the peer is told the smaller window,
/// a floor keeps every connection moving, and new connections wait while memory is exhausted.
/// Segments are 1460 bytes in 4096-byte buffers, so the memory bound counts 4096 per 1460.
/// </summary>
public sealed class MemoryPressureTests
{
    private static TcpConfig Config(int floor = 8192) => TcpHarness.Plain with { PressureFloorBytes = floor };

    [Fact]
    public void Under_pressure_the_advertised_edge_holds_data_within_it_is_taken_and_the_peer_is_told_the_smaller_window()
    {
        var h = new TcpHarness(Config());
        var c = h.Established();
        uint edge = c.RcvNxt + 65535; // the SYN-ACK's window, before any pressure
        // The pool runs short: TCP may hold 32 KiB, so this connection 16 KiB of receive memory.
        h.Tcp.Memory.SetLimit(32 * 1024);
        h.Feed(c.In with { Payload = TcpHarness.Bytes(1460) });
        h.Feed(c.In with { Seq = c.In.Seq + 1460, Payload = TcpHarness.Bytes(1460) });
        var ack = h.Expect(c.Out with { Ack = c.RcvNxt + 2920 });
        // The share would offer (16384 - 8192) * 1460 / 4096 = 2920 bytes: less than advertised,
        // so the right edge stays where it was (RFC 9293 3.8.6: the window is not shrunk).
        Assert.Equal(edge, ack.Ack + (uint)ack.Window!);
        Assert.True(h.Tcp.Counters.PressureWindowClamps >= 1);

        // The peer fills the window it was given, far past the share: every byte is taken.
        uint seq = c.In.Seq + 2920;
        while (seq != edge)
        {
            int n = (int)Math.Min(1460, edge - seq);
            h.Feed(c.In with { Seq = seq, Payload = TcpHarness.Bytes(n) });
            seq += (uint)n;
        }
        Assert.Equal(65535, h.Tcp.GetAvailable(c.Socket));
        Assert.Equal(0, h.Tcp.Counters.Dropped(TcpDropReason.OutOfMemory));
        Assert.Equal(45 * 4096, h.Tcp.Memory.Used);
        h.Drain();

        // The app reads it all: the window reopens to the share, and the peer is told at once.
        Assert.Equal(65535, h.ReadAll(c.Socket).Length);
        Assert.Equal(0, h.Tcp.Memory.Used);
        var update = h.Expect(c.Out with { Ack = edge });
        Assert.Equal(16384 * 1460 / 4096, (int)update.Window!);

        // The pressure ends: the next ACK offers the whole buffer again.
        h.Tcp.Memory.ClearLimit();
        h.Feed(c.In with { Seq = edge, Payload = TcpHarness.Bytes(1460) });
        h.Feed(c.In with { Seq = edge + 1460, Payload = TcpHarness.Bytes(1460) });
        var after = h.Expect(c.Out with { Ack = edge + 2920 });
        Assert.Equal(65535 - 2920, (int)after.Window!);
    }

    [Fact]
    public void Each_connection_holding_memory_gets_an_even_share_and_idle_ones_take_none()
    {
        var h = new TcpHarness(Config(floor: 4096));
        var l = h.Listen();
        var a = h.Established(listener: l);
        var b = h.Established(TcpHarness.PeerSyn(remotePort: 40001), listener: l);
        var idle = h.Established(TcpHarness.PeerSyn(remotePort: 40002), listener: l);
        h.Tcp.Memory.SetLimit(64 * 1024);
        // Nobody holds memory: a connection's share counts itself, half of it for sending.
        Assert.Equal(0, h.Tcp.Memory.Holders);
        Assert.Equal(32 * 1024, h.Tcp.GetSendSpace(a.Socket));

        h.Feed(a.In with { Payload = TcpHarness.Bytes(1460) });
        h.Feed(b.In with { Payload = TcpHarness.Bytes(1460) });
        Assert.Equal(2, h.Tcp.Memory.Holders);
        Assert.Equal(2 * 4096, h.Tcp.Memory.Used);
        // Two hold memory: 64 KiB / 2 each, 16 KiB of it for sending; the idle one would be a third.
        Assert.Equal(16 * 1024, h.Tcp.GetSendSpace(a.Socket));
        Assert.Equal(16 * 1024, h.Tcp.GetSendSpace(b.Socket));
        Assert.Equal(64 * 1024 / 3 / 2, h.Tcp.GetSendSpace(idle.Socket));
        Assert.True(h.Tcp.Memory.UnderPressure(h.Tcp.Config));

        // B's app reads: B holds nothing, A's share grows back.
        Assert.Equal(1460, h.ReadAll(b.Socket).Length);
        Assert.Equal(1, h.Tcp.Memory.Holders);
        Assert.Equal(32 * 1024, h.Tcp.GetSendSpace(a.Socket));
        Assert.Equal(1460, h.ReadAll(a.Socket).Length);
        Assert.Equal(0, h.Tcp.Memory.Holders);
        Assert.Equal(0, h.Tcp.Memory.Used);
        Assert.Equal(2 * 4096, h.Tcp.Memory.UsedPeak);
    }

    [Fact]
    public void A_floor_keeps_a_window_and_send_space_open_however_small_the_share()
    {
        var h = new TcpHarness(Config(floor: 8192));
        h.Listen();
        h.Tcp.Memory.SetLimit(1);
        h.Feed(TcpHarness.PeerSyn());
        var synAck = h.Next()!;
        // No segment seen yet: the floor's 8192 bytes of memory offered as they are.
        Assert.Equal(8192, (int)synAck.Window!);

        var c = new TcpHarness(Config(floor: 8192));
        var conn = c.Established();
        c.Tcp.Memory.SetLimit(1);
        Assert.Equal(8192, c.Tcp.GetSendSpace(conn.Socket));
        Assert.True(c.Tcp.NoteSendHeld(conn.Socket));
        Assert.Equal(1, c.Tcp.Counters.PressureSendRefusals);
        c.Tcp.Memory.ClearLimit();
        Assert.Equal(256 * 1024, c.Tcp.GetSendSpace(conn.Socket));
        Assert.False(c.Tcp.NoteSendHeld(conn.Socket));
        Assert.Equal(1, c.Tcp.Counters.PressureSendRefusals);
    }

    [Fact]
    public void When_the_share_grows_a_clamped_window_is_advertised_open_without_waiting_for_a_segment()
    {
        // The peer filled the window; the app read it all, but the share let the window reopen
        // only to 5840 bytes. Then the pool gets pages back and no segment comes: the shell's
        // next MemoryLimitSet tells the connection, and the peer hears of the whole window at
        // once (a peer facing a closed window would wait for its persist timer, which backs off).
        var h = new TcpHarness(Config());
        var c = h.Established();
        uint edge = c.RcvNxt + 65535;
        h.Tcp.Memory.SetLimit(32 * 1024);
        h.Tcp.MemoryLimitSet(h.Now);
        for (uint seq = c.In.Seq; seq != edge;)
        {
            int n = (int)Math.Min(1460, edge - seq);
            h.Feed(c.In with { Seq = seq, Payload = TcpHarness.Bytes(n) });
            seq += (uint)n;
        }
        h.Drain();
        Assert.Equal(65535, h.ReadAll(c.Socket).Length);
        Assert.Equal(16384 * 1460 / 4096, (int)h.Expect(c.Out with { Ack = edge }).Window!);
        Assert.Equal(1, h.Tcp.PressedConnections);
        // Held back by its share: the layer asks to be polled so that the shell looks at the pool again.
        Assert.Equal(h.Now + TcpLayer.PressureRecheck, h.Tcp.PollAt);

        h.Tcp.Memory.ClearLimit();
        h.Tcp.MemoryLimitSet(h.Now);
        Assert.Equal(65535, (int)h.Expect(c.Out with { Ack = edge }).Window!);
        h.ExpectNothing();
        Assert.Equal(0, h.Tcp.PressedConnections);
        Assert.Null(h.Tcp.PollAt);
    }

    [Fact]
    public void When_the_share_grows_a_connection_whose_send_was_held_becomes_writable()
    {
        // A send held for the share (the app's call waits in the shell) on a connection with
        // nothing in flight: no ACK will come to wake it. The share's growth does.
        var h = new TcpHarness(Config(floor: 8192));
        var c = h.Established();
        h.Tcp.Memory.SetLimit(1);
        h.Tcp.MemoryLimitSet(h.Now);
        Assert.Equal(8192, h.Tcp.GetSendSpace(c.Socket));
        Assert.True(h.Tcp.NoteSendHeld(c.Socket));
        while (h.Tcp.TryGetChanged(out _)) { }

        // Nothing grew: no one is told, and the recheck backs off.
        h.Now += TcpLayer.PressureRecheck;
        h.Tcp.MemoryLimitSet(h.Now);
        Assert.False(h.Tcp.TryGetChanged(out _));
        Assert.Equal(h.Now + 2 * TcpLayer.PressureRecheck, h.Tcp.PollAt);

        h.Tcp.Memory.SetLimit(4 * 1024 * 1024);
        h.Tcp.MemoryLimitSet(h.Now);
        Assert.True(h.Tcp.TryGetChanged(out var changed));
        Assert.Equal(c.Socket, changed);
        Assert.True((h.Tcp.GetReadiness(c.Socket) & TcpReadiness.Writable) != 0);
        Assert.Equal(256 * 1024, h.Tcp.GetSendSpace(c.Socket));
        Assert.Equal(0, h.Tcp.PressedConnections);
    }

    [Fact]
    public void A_window_smaller_than_an_MSS_still_reopens_when_the_app_reads()
    {
        // Receiver SWS avoidance moves the edge by min(RCV.BUFF / 2, MSS). Under pressure the
        // share is the buffer: measured against the socket's own 64 KiB the threshold (one MSS)
        // was more than the share could ever offer, the window stayed at zero and the peer
        // backed off its probes for good (seen with 100 connections in a 16 MiB pool).
        var h = new TcpHarness(Config(floor: 4096), bufferSize: 8192);
        h.Tcp.Memory.SetLimit(1);
        var c = h.Established();
        // The SYN-ACK offered the floor's 4096 bytes; the peer sends them (each segment in 8 KiB).
        h.Feed(c.In with { Payload = TcpHarness.Bytes(1460) });
        h.Feed(c.In with { Seq = c.In.Seq + 1460, Payload = TcpHarness.Bytes(1460) });
        h.Feed(c.In with { Seq = c.In.Seq + 2920, Payload = TcpHarness.Bytes(1176) });
        h.RunNextTimer();
        Seg? last = null;
        for (var s = h.Next(); s is not null; s = h.Next()) last = s;
        Assert.Equal(c.RcvNxt + 4096, last!.Ack);
        Assert.Equal(0, (int)last.Window!);
        Assert.Equal(4096, h.ReadAll(c.Socket).Length);
        // 4096 bytes of memory hold 4096 * 1460 / 8192 = 730 bytes of window: less than an MSS,
        // more than half the buffer the share allows, so the update goes out.
        var update = h.Expect(c.Out with { Ack = c.RcvNxt + 4096 });
        Assert.Equal(730, (int)update.Window!);
    }

    [Fact]
    public void A_listener_drops_new_SYNs_while_memory_is_exhausted_and_takes_the_retransmitted_one()
    {
        var h = new TcpHarness(Config());
        var l = h.Listen();
        var established = h.Established(TcpHarness.PeerSyn(remotePort: 40001), listener: l);
        h.Feed(established.In with { Payload = TcpHarness.Bytes(1460) });
        h.Drain();
        // What TCP holds is all the pool can give: a new connection would take from this one.
        h.Tcp.Memory.SetLimit(h.Tcp.Memory.Used);
        Assert.True(h.Tcp.Memory.Exhausted);
        h.Feed(TcpHarness.PeerSyn());
        h.ExpectNothing();
        Assert.Equal(1, h.Tcp.Counters.Dropped(TcpDropReason.MemoryPressure));
        // The app reads; the memory is free again and the peer's SYN, sent again, is answered.
        Assert.Equal(1460, h.ReadAll(established.Socket).Length);
        Assert.False(h.Tcp.Memory.Exhausted);
        h.Drain();
        h.Feed(TcpHarness.PeerSyn());
        Assert.Equal(TcpFlags.Syn | TcpFlags.Ack, h.Next()!.Flags);
    }
}
