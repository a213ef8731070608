using AntHost.Inet.Core.Tcp;
using AntHost.Inet.Core.Tests.Tcp.Support;
using AntHost.Inet.Core.Wire;

namespace AntHost.Inet.Core.Tests.Tcp.FinWait2;

/// <summary>RFC 9293 3.10.7.4 in FIN-WAIT-2: half-close, the peer's FIN, the orphan timeout.</summary>
public class FinWait2Tests
{
    [Fact]
    public void Half_closed_connection_keeps_receiving()
    {
        var h = new TcpHarness();
        var c = h.FinWait2();
        h.Feed(c.In with { Payload = "still talking"u8.ToArray() });
        Assert.Equal("still talking"u8.ToArray(), h.ReadAll(c.Socket));
        Assert.Equal(TcpState.FinWait2, h.Tcp.GetState(c.Socket));
    }

    [Fact]
    public void Fin_enters_time_wait_with_an_ack()
    {
        var h = new TcpHarness();
        var c = h.TimeWait();
        Assert.True(h.Tcp.GetReadiness(c.Socket).HasFlag(TcpReadiness.Closed));
    }

    [Fact]
    public void Orphaned_connection_in_fin_wait_2_is_dropped_after_the_timeout()
    {
        var h = new TcpHarness(TcpHarness.Plain with { FinWait2Timeout = TimeSpan.FromSeconds(5) });
        var c = h.FinWait2();
        h.Tcp.Close(c.Socket, h.Now);
        Assert.Equal(1, h.Tcp.ConnectionCount);
        h.RunNextTimer();
        Assert.Equal(0, h.Tcp.ConnectionCount);
        h.ExpectNothing();
    }

    [Fact]
    public void Data_for_an_app_that_closed_its_socket_is_answered_with_a_reset()
    {
        var h = new TcpHarness();
        var c = h.FinWait2();
        h.Tcp.Close(c.Socket, h.Now);
        h.Feed(c.In with { Payload = "anyone?"u8.ToArray() });
        h.Expect(c.Out with { Flags = TcpFlags.Rst | TcpFlags.Ack, Window = 0 });
        Assert.Equal(0, h.Tcp.ConnectionCount);
    }
}
