using AntHost.Inet.Core.Tcp;
using AntHost.Inet.Core.Tests.Tcp.Support;

namespace AntHost.Inet.Core.Tests.Tcp.Established;

/// <summary>
/// RFC 5961 7, ACK throttling per connection: the ACK RFC 9293 sends in reply to an
/// unacceptable segment goes at most once per interval for bare segments (an ACK loop between
/// two ends that disagree about the window is cut), always for segments with data or a FIN.
/// </summary>
public class OutOfWindowAckTests
{
    [Fact]
    public void Bare_out_of_window_segments_are_answered_once_per_interval()
    {
        var h = new TcpHarness();
        var c = h.Established();
        var outside = c.In with { Seq = c.RcvNxt + 70_000 };
        h.Feed(outside);
        h.Expect(c.Out);
        for (int i = 0; i < 5; i++)
        {
            h.Now += TimeSpan.FromMilliseconds(50);
            h.Feed(outside);
            h.ExpectNothing();
        }
        Assert.Equal(5, h.Tcp.Counters.OutOfWindowAcksSuppressed);
        h.Now += TimeSpan.FromMilliseconds(250);           // 500 ms after the first answer
        h.Feed(outside);
        h.Expect(c.Out);
        Assert.Equal(7, h.Tcp.Counters.Dropped(TcpDropReason.NotAcceptable)); // every one dropped, answered or not
    }

    [Fact]
    public void Retransmitted_data_below_the_window_is_always_acknowledged()
    {
        // A peer that retransmits data we hold needs our ACK each time, or it times out.
        var h = new TcpHarness();
        var c = h.Established();
        h.Feed(c.In with { Payload = TcpHarness.Bytes(100) });
        h.Drain();
        for (int i = 0; i < 3; i++)
        {
            h.Feed(c.In with { Payload = TcpHarness.Bytes(100) });
            h.Expect(c.Out with { Ack = c.RcvNxt + 100 });
        }
        Assert.Equal(0, h.Tcp.Counters.OutOfWindowAcksSuppressed);
    }

    [Fact]
    public void Throttle_of_zero_answers_every_segment()
    {
        var h = new TcpHarness(TcpHarness.Plain with { OutOfWindowAckInterval = TimeSpan.Zero });
        var c = h.Established();
        for (int i = 0; i < 3; i++)
        {
            h.Feed(c.In with { Seq = c.RcvNxt + 70_000 });
            h.Expect(c.Out);
        }
    }
}
