using AntHost.Inet.Core.Tcp;
using AntHost.Inet.Core.Tests.Tcp.Support;

namespace AntHost.Inet.Core.Tests.Tcp.Established;

/// <summary>The receiving side of a closed window: the peer's probe or retransmission into it is answered.</summary>
public sealed class ZeroWindowReceiveTests
{
    [Fact]
    public void Data_at_RCV_NXT_into_a_closed_window_is_answered_with_an_ACK_of_the_window()
    {
        // RFC 9293 3.10.7.4: "If the RCV.WND is zero, no segments will be acceptable ... If an
        // incoming segment is not acceptable, an acknowledgment should be sent in reply": the
        // peer's zero-window probe (or a retransmission) learns the window from that ACK, and
        // without it backs off its timer, probe after probe.
        var h = new TcpHarness(TcpHarness.Plain);
        var c = h.Established();
        uint edge = c.RcvNxt + 65535;
        for (uint seq = c.In.Seq; seq != edge;)
        {
            int n = (int)Math.Min(1460, edge - seq);
            h.Feed(c.In with { Seq = seq, Payload = TcpHarness.Bytes(n) });
            seq += (uint)n;
        }
        h.Drain();
        h.Feed(c.In with { Seq = edge, Payload = TcpHarness.Bytes(1) });
        var ack = h.Expect(c.Out with { Ack = edge });
        Assert.Equal(0, (int)ack.Window!);
        h.Feed(c.In with { Seq = edge, Payload = TcpHarness.Bytes(1460) });
        Assert.Equal(0, (int)h.Expect(c.Out with { Ack = edge }).Window!);
    }
}
