using AntHost.Inet.Core.Tcp;
using AntHost.Inet.Core.Tests.Tcp.Support;
using AntHost.Inet.Core.Wire;

namespace AntHost.Inet.Core.Tests.Tcp.LastAck;

/// <summary>LAST-ACK: "If our FIN is now acknowledged, delete the TCB, enter the CLOSED state, and return."</summary>
public class LastAckTests
{
    [Fact]
    public void Ack_of_our_fin_closes_the_connection()
    {
        var h = new TcpHarness();
        var c = h.LastAck();
        h.Feed(c.In with { Ack = c.SndNxt + 1 });
        h.ExpectNothing();
        Assert.Equal(TcpState.Closed, h.Tcp.GetState(c.Socket));
        Assert.Equal(TcpError.None, h.Tcp.GetError(c.Socket));
        Assert.Equal(0, h.Tcp.ConnectionCount);
        Assert.True(h.Tcp.GetReadiness(c.Socket).HasFlag(TcpReadiness.Closed));
        h.Tcp.Close(c.Socket, h.Now);
        Assert.Equal(0, h.Pool.Outstanding);
    }

    [Fact]
    public void Fin_is_retransmitted_until_acknowledged()
    {
        var h = new TcpHarness();
        var c = h.LastAck();
        h.RunNextTimer();
        h.Expect(c.Out with { Flags = TcpFlags.Fin | TcpFlags.Ack });
        h.Feed(c.In with { Ack = c.SndNxt + 1 });
        Assert.Equal(TcpState.Closed, h.Tcp.GetState(c.Socket));
    }
}
