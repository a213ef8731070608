using AntHost.Inet.Core.Tcp;
using AntHost.Inet.Core.Tests.Tcp.Support;
using AntHost.Inet.Core.Wire;

namespace AntHost.Inet.Core.Tests.Tcp.CloseWait;

/// <summary>CLOSE-WAIT: the peer has finished; we may still send (half-close from the other side).</summary>
public class CloseWaitTests
{
    [Fact]
    public void We_can_still_send_after_the_peer_closed()
    {
        var h = new TcpHarness();
        var c = h.CloseWait();
        Assert.Equal(TcpError.None, h.Tcp.Send(c.Socket, "reply"u8, out _, h.Now));
        h.Expect(c.Out with { Flags = TcpFlags.Ack | TcpFlags.Psh, Payload = "reply"u8.ToArray() });
    }

    [Fact]
    public void Read_returns_end_of_stream()
    {
        var h = new TcpHarness();
        var c = h.CloseWait();
        Assert.Equal(TcpError.None, h.Tcp.Receive(c.Socket, new byte[10], out int n, h.Now));
        Assert.Equal(0, n);
        Assert.True(h.Tcp.GetReadiness(c.Socket).HasFlag(TcpReadiness.Readable | TcpReadiness.PeerClosed));
    }

    [Fact]
    public void Text_after_the_fin_is_ignored()
    {
        var h = new TcpHarness();
        var c = h.CloseWait();
        h.Feed(c.In with { Payload = "zombie"u8.ToArray() });
        Assert.Equal(0, h.Tcp.GetAvailable(c.Socket));
    }

    [Fact]
    public void Close_sends_the_fin_and_enters_last_ack()
    {
        var h = new TcpHarness();
        h.LastAck();
    }
}
