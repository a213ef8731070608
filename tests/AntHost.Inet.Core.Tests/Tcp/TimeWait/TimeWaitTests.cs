using AntHost.Inet.Core.Tcp;
using AntHost.Inet.Core.Tests.Tcp.Support;
using AntHost.Inet.Core.Wire;

namespace AntHost.Inet.Core.Tests.Tcp.TimeWait;

/// <summary>TIME-WAIT (RFC 9293 3.10.7.4, 3.10.8), with RFC 6191-style reuse.</summary>
public class TimeWaitTests
{
    [Fact]
    public void Time_wait_lasts_two_msl_then_the_connection_is_gone()
    {
        var h = new TcpHarness(TcpHarness.Plain with { Msl = TimeSpan.FromSeconds(10) });
        var c = h.TimeWait();
        var t = h.Now;
        h.RunNextTimer();
        Assert.Equal(TimeSpan.FromSeconds(20), h.Now - t);
        Assert.Equal(TcpState.Closed, h.Tcp.GetState(c.Socket));
        Assert.Equal(0, h.Tcp.ConnectionCount);
    }

    [Fact]
    public void Retransmitted_fin_is_acknowledged_and_restarts_the_timer()
    {
        // "The only thing that can arrive in this state is a retransmission of the remote FIN.
        // Acknowledge it, and restart the 2 MSL timeout."
        var h = new TcpHarness(TcpHarness.Plain with { Msl = TimeSpan.FromSeconds(10) });
        var c = h.TimeWait();
        h.Advance(TimeSpan.FromSeconds(15));
        h.Feed(c.In with { Seq = c.In.Seq - 1, Flags = TcpFlags.Fin | TcpFlags.Ack });
        h.Expect(c.Out);
        var t = h.Now;
        h.RunNextTimer();
        Assert.Equal(TimeSpan.FromSeconds(20), h.Now - t);
    }

    [Fact]
    public void New_syn_with_a_higher_sequence_number_reopens_through_the_listener()
    {
        var h = new TcpHarness();
        var l = h.Listen();
        var c = h.Established(null, l);
        h.Tcp.Shutdown(c.Socket, h.Now);
        h.Drain();
        h.Feed(c.In with { Ack = c.SndNxt + 1, Flags = TcpFlags.Fin | TcpFlags.Ack });
        h.Drain();
        Assert.Equal(TcpState.TimeWait, h.Tcp.GetState(c.Socket));
        h.Feed(TcpHarness.PeerSyn(iss: c.In.Seq + 100_000));
        var synAck = h.Next()!;
        Assert.Equal(TcpFlags.Syn | TcpFlags.Ack, synAck.Flags);
        Assert.Equal(c.In.Seq + 100_001, synAck.Ack);
    }

    [Fact]
    public void Old_syn_in_time_wait_is_not_acceptable_and_gets_an_ack()
    {
        var h = new TcpHarness();
        var l = h.Listen();
        var c = h.Established(null, l);
        h.Tcp.Shutdown(c.Socket, h.Now);
        h.Drain();
        h.Feed(c.In with { Ack = c.SndNxt + 1, Flags = TcpFlags.Fin | TcpFlags.Ack });
        h.Drain();
        h.Feed(TcpHarness.PeerSyn(iss: c.In.Seq));
        h.Expect(c.Out with { Seq = c.SndNxt + 1, Ack = c.RcvNxt + 1 });
        Assert.Equal(TcpState.TimeWait, h.Tcp.GetState(c.Socket));
    }

    [Fact]
    public void Port_in_time_wait_can_be_bound_again_with_reuse_address()
    {
        var h = new TcpHarness();
        var l = h.Listen();
        var c = h.Established(null, l);
        h.Tcp.Close(l, h.Now);
        h.Tcp.Shutdown(c.Socket, h.Now);
        h.Feed(c.In with { Ack = c.SndNxt + 1, Flags = TcpFlags.Fin | TcpFlags.Ack });
        Assert.Equal(TcpState.TimeWait, h.Tcp.GetState(c.Socket));
        h.Tcp.Open(out var s);
        Assert.Equal(TcpError.AddressInUse, h.Tcp.Bind(s, new TcpEndPoint(TcpHarness.LocalAddress, 80)));
        h.Tcp.SetOption(s, TcpOption.ReuseAddress, 1, h.Now);
        Assert.Equal(TcpError.None, h.Tcp.Bind(s, new TcpEndPoint(TcpHarness.LocalAddress, 80)));
    }
}
