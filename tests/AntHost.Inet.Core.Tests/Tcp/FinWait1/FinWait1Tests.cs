using AntHost.Inet.Core.Tcp;
using AntHost.Inet.Core.Tests.Tcp.Support;
using AntHost.Inet.Core.Wire;

namespace AntHost.Inet.Core.Tests.Tcp.FinWait1;

/// <summary>RFC 9293 3.10.4 (CLOSE) and 3.10.7.4 in FIN-WAIT-1.</summary>
public class FinWait1Tests
{
    [Fact]
    public void Shutdown_sends_a_fin_and_enters_fin_wait_1()
    {
        var h = new TcpHarness();
        var c = h.FinWait1();
        Assert.Equal(TcpError.Shutdown, h.Tcp.Send(c.Socket, "x"u8, out _, h.Now));
        Assert.False(h.Tcp.GetReadiness(c.Socket).HasFlag(TcpReadiness.Writable));
    }

    [Fact]
    public void Fin_rides_on_the_last_data_segment()
    {
        var h = new TcpHarness();
        var c = h.Established();
        h.Tcp.Send(c.Socket, TcpHarness.Bytes(100), out _, h.Now);
        h.Drain();
        h.Feed(c.In with { Ack = c.SndNxt + 100 });
        h.Tcp.SetOption(c.Socket, TcpOption.NoDelay, 0, h.Now);
        h.Tcp.Send(c.Socket, TcpHarness.Bytes(10), out _, h.Now);
        h.Drain();
        // Queue more data and shut down before it goes (Nagle holds it while 10 bytes are out).
        h.Tcp.Send(c.Socket, "tail"u8, out _, h.Now);
        h.ExpectNothing();
        h.Tcp.Shutdown(c.Socket, h.Now);
        h.Expect(c.Out with { Seq = c.SndNxt + 110, Flags = TcpFlags.Ack | TcpFlags.Psh | TcpFlags.Fin, Payload = "tail"u8.ToArray() });
    }

    [Fact]
    public void Ack_of_the_fin_enters_fin_wait_2()
    {
        var h = new TcpHarness();
        h.FinWait2();
    }

    [Fact]
    public void Ack_that_does_not_cover_the_fin_stays_in_fin_wait_1()
    {
        var h = new TcpHarness();
        var c = h.Established();
        h.Tcp.Send(c.Socket, "abc"u8, out _, h.Now);
        h.Tcp.Shutdown(c.Socket, h.Now);
        h.Drain();
        h.Feed(c.In with { Ack = c.SndNxt + 3 });
        Assert.Equal(TcpState.FinWait1, h.Tcp.GetState(c.Socket));
    }

    [Fact]
    public void Fin_with_the_ack_of_ours_goes_to_time_wait()
    {
        var h = new TcpHarness();
        var c = h.FinWait1();
        h.Feed(c.In with { Ack = c.SndNxt + 1, Flags = TcpFlags.Fin | TcpFlags.Ack });
        h.Expect(c.Out with { Seq = c.SndNxt + 1, Ack = c.RcvNxt + 1 });
        Assert.Equal(TcpState.TimeWait, h.Tcp.GetState(c.Socket));
    }

    [Fact]
    public void Fin_without_the_ack_of_ours_is_a_simultaneous_close_into_closing()
    {
        var h = new TcpHarness();
        h.Closing();
    }

    [Fact]
    public void Data_is_still_received_in_fin_wait_1()
    {
        var h = new TcpHarness();
        var c = h.FinWait1();
        h.Feed(c.In with { Payload = "more"u8.ToArray() });
        Assert.Equal("more"u8.ToArray(), h.ReadAll(c.Socket));
    }

    [Fact]
    public void Fin_is_retransmitted_on_timeout()
    {
        var h = new TcpHarness();
        var c = h.FinWait1();
        h.RunNextTimer();
        h.Expect(c.Out with { Flags = TcpFlags.Fin | TcpFlags.Ack });
    }
}
