using AntHost.Inet.Core.Tcp;
using AntHost.Inet.Core.Tests.Tcp.Support;
using AntHost.Inet.Core.Wire;

namespace AntHost.Inet.Core.Tests.Tcp.Timers;

/// <summary>Keepalive (RFC 9293 3.8.4, RFC 1122 4.2.3.6) and the delayed-ACK bound.</summary>
public class KeepAliveTests
{
    [Fact]
    public void Keepalive_is_off_by_default()
    {
        var h = new TcpHarness();
        var c = h.Established();
        Assert.Null(h.Tcp.PollAt);
        Assert.Equal(0, h.Tcp.GetOption(c.Socket, TcpOption.KeepAlive, out long v) == TcpError.None ? v : -1);
    }

    [Fact]
    public void Idle_connection_is_probed_and_dropped_when_probes_go_unanswered()
    {
        var h = new TcpHarness();
        var c = h.Established();
        h.Tcp.SetOption(c.Socket, TcpOption.KeepAliveIdleMs, 10_000, h.Now);
        h.Tcp.SetOption(c.Socket, TcpOption.KeepAliveIntervalMs, 1_000, h.Now);
        h.Tcp.SetOption(c.Socket, TcpOption.KeepAliveCount, 2, h.Now);
        h.Tcp.SetOption(c.Socket, TcpOption.KeepAlive, 1, h.Now);
        var t = h.Now;
        h.RunNextTimer();
        Assert.Equal(TimeSpan.FromSeconds(10), h.Now - t);
        // <SEQ=SND.NXT-1><ACK=RCV.NXT>, no data.
        h.Expect(c.Out with { Seq = c.SndNxt - 1 });
        h.RunNextTimer();
        h.Expect(c.Out with { Seq = c.SndNxt - 1 });
        h.RunNextTimer();
        h.Expect(c.Out with { Flags = TcpFlags.Rst | TcpFlags.Ack, Window = 0 });
        Assert.Equal(TcpError.TimedOut, h.Tcp.GetError(c.Socket));
        Assert.Equal(2, h.Tcp.Counters.KeepAliveProbes);
    }

    [Fact]
    public void Answered_probe_keeps_the_connection()
    {
        var h = new TcpHarness();
        var c = h.Established();
        h.Tcp.SetOption(c.Socket, TcpOption.KeepAliveIdleMs, 10_000, h.Now);
        h.Tcp.SetOption(c.Socket, TcpOption.KeepAliveCount, 1, h.Now);
        h.Tcp.SetOption(c.Socket, TcpOption.KeepAlive, 1, h.Now);
        h.RunNextTimer();
        h.Expect(c.Out with { Seq = c.SndNxt - 1 });
        h.Feed(c.In);
        var t = h.Now;
        h.RunNextTimer();
        Assert.Equal(TimeSpan.FromSeconds(10), h.Now - t);
        h.Expect(c.Out with { Seq = c.SndNxt - 1 });
        Assert.Equal(TcpState.Established, h.Tcp.GetState(c.Socket));
    }

    [Fact]
    public void Delayed_ack_time_above_500_ms_is_refused()
    {
        Assert.Throws<ArgumentException>(() => new TcpHarness(TcpHarness.Plain with { DelayedAckTimeout = TimeSpan.FromMilliseconds(600) }));
    }
}
