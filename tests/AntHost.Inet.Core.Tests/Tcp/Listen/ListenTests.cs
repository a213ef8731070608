using AntHost.Inet.Core.Tcp;
using AntHost.Inet.Core.Tests.Tcp.Support;
using AntHost.Inet.Core.Wire;

namespace AntHost.Inet.Core.Tests.Tcp.Listen;

/// <summary>RFC 9293 3.10.7.2 (LISTEN) and 3.10.7.1 (CLOSED), the SYN and accept queues.</summary>
public class ListenTests
{
    [Fact]
    public void Syn_gets_a_syn_ack_with_our_mss_and_the_connection_waits_in_syn_received()
    {
        var h = new TcpHarness();
        var l = h.Listen();
        h.Feed(TcpHarness.PeerSyn());
        var synAck = h.Next()!;
        TcpHarness.AssertMatches(new Seg
        {
            SrcPort = 80, DstPort = TcpHarness.RemotePort, Seq = synAck.Seq, Ack = TcpHarness.RemoteIss + 1,
            Flags = TcpFlags.Syn | TcpFlags.Ack, Mss = 1460, Window = 65535,
        }, synAck);
        Assert.Equal(TcpError.WouldBlock, h.Tcp.Accept(l, out _));
        Assert.Equal(1, h.Tcp.ConnectionCount);
        Assert.Equal(1, h.Tcp.Counters.PassiveOpens);
    }

    [Fact]
    public void Ack_to_a_listener_is_answered_with_a_reset_at_seg_ack()
    {
        // "An acceptable reset segment should be formed for any arriving ACK-bearing segment ... <SEQ=SEG.ACK><CTL=RST>"
        var h = new TcpHarness();
        h.Listen();
        h.Feed(new Seg { SrcPort = 5000, DstPort = 80, Seq = 77, Ack = 4242, Flags = TcpFlags.Ack });
        h.Expect(new Seg { SrcPort = 80, DstPort = 5000, Seq = 4242, Ack = 0, Flags = TcpFlags.Rst, Window = 0 });
        Assert.Equal(0, h.Tcp.ConnectionCount);
    }

    [Fact]
    public void Rst_to_a_listener_is_ignored()
    {
        var h = new TcpHarness();
        h.Listen();
        h.Feed(new Seg { SrcPort = 5000, DstPort = 80, Seq = 77, Flags = TcpFlags.Rst });
        h.ExpectNothing();
        Assert.Equal(1, h.Tcp.Counters.Dropped(TcpDropReason.BadRst));
    }

    [Fact]
    public void Segment_without_syn_ack_or_rst_to_a_listener_is_dropped()
    {
        var h = new TcpHarness();
        h.Listen();
        h.Feed(new Seg { SrcPort = 5000, DstPort = 80, Seq = 77, Flags = TcpFlags.Fin, Payload = [1, 2, 3] });
        h.ExpectNothing();
    }

    [Fact]
    public void Closed_port_answers_a_segment_without_ack_with_rst_ack()
    {
        // RFC 9293 3.10.7.1: "If the ACK bit is off, sequence number zero is used, <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>"
        var h = new TcpHarness();
        h.Feed(new Seg { SrcPort = 5000, DstPort = 81, Seq = 100, Flags = TcpFlags.Syn });
        h.Expect(new Seg { SrcPort = 81, DstPort = 5000, Seq = 0, Ack = 101, Flags = TcpFlags.Rst | TcpFlags.Ack, Window = 0 });
        h.Feed(new Seg { SrcPort = 5000, DstPort = 81, Seq = 100, Flags = TcpFlags.Fin, Payload = [1, 2, 3] });
        h.Expect(new Seg { SrcPort = 81, DstPort = 5000, Seq = 0, Ack = 104, Flags = TcpFlags.Rst | TcpFlags.Ack, Window = 0 });
        Assert.Equal(2, h.Tcp.Counters.ResetsOut);
    }

    [Fact]
    public void Closed_port_answers_a_segment_with_ack_with_rst_at_seg_ack()
    {
        var h = new TcpHarness();
        h.Feed(new Seg { SrcPort = 5000, DstPort = 81, Seq = 100, Ack = 999, Flags = TcpFlags.Ack, Payload = [9] });
        h.Expect(new Seg { SrcPort = 81, DstPort = 5000, Seq = 999, Ack = 0, Flags = TcpFlags.Rst, Window = 0 });
    }

    [Fact]
    public void Closed_port_never_answers_a_reset()
    {
        var h = new TcpHarness();
        h.Feed(new Seg { SrcPort = 5000, DstPort = 81, Seq = 100, Ack = 999, Flags = TcpFlags.Rst | TcpFlags.Ack });
        h.ExpectNothing();
        Assert.Equal(1, h.Tcp.Counters.Dropped(TcpDropReason.NoSocket));
    }

    [Fact]
    public void Syn_beyond_the_backlog_is_dropped_without_answer_when_syn_cookies_are_off()
    {
        var h = new TcpHarness(TcpHarness.Plain with { SynCookies = false });
        h.Listen(backlog: 2);
        h.Feed(TcpHarness.PeerSyn(40001));
        h.Feed(TcpHarness.PeerSyn(40002));
        h.Drain();
        h.Feed(TcpHarness.PeerSyn(40003));
        h.ExpectNothing();
        Assert.Equal(1, h.Tcp.Counters.Dropped(TcpDropReason.BacklogFull));
        Assert.Equal(2, h.Tcp.ConnectionCount);
    }

    [Fact]
    public void Completed_handshakes_wait_in_the_accept_queue_and_make_the_listener_accept_ready()
    {
        var h = new TcpHarness();
        var l = h.Listen();
        Assert.Equal(TcpReadiness.None, h.Tcp.GetReadiness(l));
        h.Feed(TcpHarness.PeerSyn());
        var synAck = h.Next()!;
        h.Feed(new Seg { SrcPort = TcpHarness.RemotePort, DstPort = 80, Seq = TcpHarness.RemoteIss + 1, Ack = synAck.Seq + 1, Flags = TcpFlags.Ack });
        h.ExpectNothing();
        Assert.Equal(TcpReadiness.AcceptReady, h.Tcp.GetReadiness(l));
        Assert.True(h.Tcp.TryGetChanged(out var changed));
        Assert.Equal(l, changed);
        Assert.Equal(TcpError.None, h.Tcp.Accept(l, out var s));
        Assert.Equal(new TcpEndPoint(TcpHarness.RemoteAddress, TcpHarness.RemotePort), h.Tcp.GetRemoteEndPoint(s));
        Assert.Equal(new TcpEndPoint(TcpHarness.LocalAddress, 80), h.Tcp.GetLocalEndPoint(s));
        Assert.Equal(TcpError.WouldBlock, h.Tcp.Accept(l, out _));
    }

    [Fact]
    public void Handshake_completing_into_a_full_accept_queue_is_dropped_and_retried()
    {
        var h = new TcpHarness();
        var l = h.Listen(backlog: 1);
        h.Established(TcpHarness.PeerSyn(40001), l); // accepted: queue empty again
        h.Feed(TcpHarness.PeerSyn(40002));
        var a = h.Next()!;
        h.Feed(new Seg { SrcPort = 40002, DstPort = 80, Seq = TcpHarness.RemoteIss + 1, Ack = a.Seq + 1, Flags = TcpFlags.Ack });
        // The queue now holds 40002; 40003's final ACK finds it full.
        h.Feed(TcpHarness.PeerSyn(40003));
        var b = h.Next()!;
        h.Feed(new Seg { SrcPort = 40003, DstPort = 80, Seq = TcpHarness.RemoteIss + 1, Ack = b.Seq + 1, Flags = TcpFlags.Ack });
        h.ExpectNothing();
        Assert.Equal(1, h.Tcp.Counters.Dropped(TcpDropReason.BacklogFull));
        Assert.Equal(TcpError.None, h.Tcp.Accept(l, out var first));
        Assert.Equal(40002, h.Tcp.GetRemoteEndPoint(first).Port);
        Assert.Equal(TcpError.WouldBlock, h.Tcp.Accept(l, out _));
    }

    [Fact]
    public void Closing_a_listener_resets_connections_not_yet_accepted_and_frees_the_port()
    {
        var h = new TcpHarness();
        var l = h.Listen();
        h.Feed(TcpHarness.PeerSyn());
        var synAck = h.Next()!;
        Assert.Equal(TcpError.None, h.Tcp.Close(l, h.Now));
        h.Expect(new Seg { SrcPort = 80, DstPort = TcpHarness.RemotePort, Seq = synAck.Seq + 1, Ack = TcpHarness.RemoteIss + 1, Flags = TcpFlags.Rst | TcpFlags.Ack, Window = 0 });
        Assert.Equal(0, h.Tcp.ConnectionCount);
        Assert.Equal(TcpState.Closed, h.Tcp.GetState(l));
        Assert.Equal(TcpError.InvalidHandle, h.Tcp.Accept(l, out _));
        h.Listen(); // the port can be bound again
    }

    [Fact]
    public void Syn_queue_child_that_is_reset_goes_away()
    {
        var h = new TcpHarness();
        h.Listen();
        h.Feed(TcpHarness.PeerSyn());
        h.Drain();
        h.Feed(new Seg { SrcPort = TcpHarness.RemotePort, DstPort = 80, Seq = TcpHarness.RemoteIss + 1, Flags = TcpFlags.Rst });
        h.ExpectNothing();
        Assert.Equal(0, h.Tcp.ConnectionCount);
        Assert.Equal(1, h.Tcp.Counters.ResetsIn);
    }
}
