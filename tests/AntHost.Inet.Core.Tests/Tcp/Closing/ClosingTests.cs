using AntHost.Inet.Core.Tcp;
using AntHost.Inet.Core.Tests.Tcp.Support;
using AntHost.Inet.Core.Wire;

namespace AntHost.Inet.Core.Tests.Tcp.Closing;

/// <summary>CLOSING (simultaneous close): "if the ACK acknowledges our FIN, then enter the TIME-WAIT state, otherwise, ignore the segment".</summary>
public class ClosingTests
{
    [Fact]
    public void Ack_of_our_fin_enters_time_wait()
    {
        var h = new TcpHarness();
        var c = h.Closing();
        h.Feed(c.In with { Ack = c.SndNxt });
        h.ExpectNothing();
        Assert.Equal(TcpState.TimeWait, h.Tcp.GetState(c.Socket));
    }

    [Fact]
    public void Ack_that_does_not_cover_our_fin_is_ignored()
    {
        var h = new TcpHarness();
        var c = h.Closing();
        h.Feed(c.In with { Ack = c.SndNxt - 1 });
        Assert.Equal(TcpState.Closing, h.Tcp.GetState(c.Socket));
    }

    [Fact]
    public void Rst_at_rcv_nxt_closes_without_an_error()
    {
        var h = new TcpHarness();
        var c = h.Closing();
        h.Feed(c.In with { Flags = TcpFlags.Rst });
        Assert.Equal(TcpState.Closed, h.Tcp.GetState(c.Socket));
        Assert.Equal(TcpError.None, h.Tcp.GetError(c.Socket));
    }
}
