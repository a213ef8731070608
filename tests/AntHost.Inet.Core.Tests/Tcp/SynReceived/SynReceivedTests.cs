using AntHost.Inet.Core.Tcp;
using AntHost.Inet.Core.Tests.Tcp.Support;
using AntHost.Inet.Core.Wire;

namespace AntHost.Inet.Core.Tests.Tcp.SynReceived;

/// <summary>RFC 9293 3.10.7.4 in SYN-RECEIVED.</summary>
public class SynReceivedTests
{
    private static (TcpHarness H, TcpSocket L, Seg SynAck) HalfOpen(TcpConfig? config = null)
    {
        var h = new TcpHarness(config);
        var l = h.Listen();
        h.Feed(TcpHarness.PeerSyn());
        return (h, l, h.Next()!);
    }

    [Fact]
    public void Retransmitted_syn_gets_the_syn_ack_again()
    {
        var (h, _, synAck) = HalfOpen();
        h.Feed(TcpHarness.PeerSyn());
        h.Expect(synAck);
    }

    [Fact]
    public void Syn_ack_is_retransmitted_on_timeout_and_the_half_open_connection_dropped_at_last()
    {
        var (h, l, synAck) = HalfOpen(TcpHarness.Plain with { SynAckRetries = 2 });
        h.RunNextTimer();
        h.Expect(synAck);
        h.RunNextTimer();
        h.Expect(synAck);
        h.RunNextTimer();
        h.ExpectNothing();
        Assert.Equal(0, h.Tcp.ConnectionCount);
        Assert.Equal(TcpError.WouldBlock, h.Tcp.Accept(l, out _));
    }

    [Fact]
    public void Unacceptable_ack_is_answered_with_a_reset()
    {
        // "If the segment acknowledgment is not acceptable, form a reset segment <SEQ=SEG.ACK><CTL=RST>"
        var (h, _, synAck) = HalfOpen();
        h.Feed(new Seg { SrcPort = TcpHarness.RemotePort, DstPort = 80, Seq = TcpHarness.RemoteIss + 1, Ack = synAck.Seq + 5, Flags = TcpFlags.Ack });
        h.Expect(new Seg { SrcPort = 80, DstPort = TcpHarness.RemotePort, Seq = synAck.Seq + 5, Flags = TcpFlags.Rst, Window = 0 });
    }

    [Fact]
    public void Ack_carrying_data_establishes_and_delivers_it()
    {
        var (h, l, synAck) = HalfOpen();
        h.Feed(new Seg { SrcPort = TcpHarness.RemotePort, DstPort = 80, Seq = TcpHarness.RemoteIss + 1, Ack = synAck.Seq + 1, Flags = TcpFlags.Ack | TcpFlags.Psh, Payload = "GET /"u8.ToArray() });
        Assert.Equal(TcpError.None, h.Tcp.Accept(l, out var s));
        Assert.Equal("GET /"u8.ToArray(), h.ReadAll(s));
    }

    [Fact]
    public void Ack_with_fin_establishes_then_closes_the_peer_direction()
    {
        var (h, l, synAck) = HalfOpen();
        h.Feed(new Seg { SrcPort = TcpHarness.RemotePort, DstPort = 80, Seq = TcpHarness.RemoteIss + 1, Ack = synAck.Seq + 1, Flags = TcpFlags.Ack | TcpFlags.Fin });
        h.Expect(new Seg { SrcPort = 80, DstPort = TcpHarness.RemotePort, Seq = synAck.Seq + 1, Ack = TcpHarness.RemoteIss + 2, Flags = TcpFlags.Ack });
        Assert.Equal(TcpError.None, h.Tcp.Accept(l, out var s));
        Assert.Equal(TcpState.CloseWait, h.Tcp.GetState(s));
    }
}
