using AntHost.Inet.Core.Ip;
using AntHost.Inet.Core.Tcp;
using AntHost.Inet.Core.Tests.Tcp.Support;
using AntHost.Inet.Core.Wire;

namespace AntHost.Inet.Core.Tests.Tcp.Established;

/// <summary>Sending in ESTABLISHED: segmentation, zero copy, Nagle, silly-window avoidance, the peer's window.</summary>
public class SendTests
{
    [Fact]
    public void Large_send_is_cut_into_mss_sized_segments_within_the_initial_window()
    {
        var h = new TcpHarness();
        var c = h.Established();
        var data = TcpHarness.Bytes(20_000);
        Assert.Equal(TcpError.None, h.Tcp.Send(c.Socket, data, out int n, h.Now));
        Assert.Equal(20_000, n);
        // RFC 6928: an initial window of 10 segments.
        for (int i = 0; i < 10; i++)
            h.Expect(c.Out with { Seq = c.SndNxt + (uint)(i * 1460), Flags = TcpFlags.Ack | TcpFlags.Psh, Payload = data[(i * 1460)..((i + 1) * 1460)] });
        h.ExpectNothing();
    }

    [Fact]
    public void Full_segment_buffers_are_sent_in_place_and_released_only_when_acknowledged()
    {
        var h = new TcpHarness();
        h.Ip.HoldLentBuffers = true;
        var c = h.Established();
        Assert.Equal(TcpError.None, h.Tcp.Send(c.Socket, TcpHarness.Bytes(1460 * 3), out _, h.Now));
        Assert.Equal(3, h.Ip.LentSends);
        Assert.Equal(3, h.Pool.Outstanding);
        h.Ip.ReleaseHeld();
        Assert.Equal(3, h.Pool.Outstanding); // kept for retransmission
        h.Feed(c.In with { Ack = c.SndNxt + 2920 });
        Assert.Equal(1, h.Pool.Outstanding);
        h.Feed(c.In with { Ack = c.SndNxt + 4380 });
        Assert.Equal(0, h.Pool.Outstanding);
    }

    [Fact]
    public void App_buffer_with_headroom_is_sent_without_a_copy()
    {
        var h = new TcpHarness();
        var c = h.Established();
        var b = h.Pool.Rent(TcpLayer.SendHeadroom, 1000)!;
        "zero-copy"u8.CopyTo(b.Append(9));
        Assert.Equal(TcpError.None, h.Tcp.Send(c.Socket, b, h.Now));
        h.Expect(c.Out with { Flags = TcpFlags.Ack | TcpFlags.Psh, Payload = "zero-copy"u8.ToArray() });
        Assert.Equal(1, h.Ip.LentSends);
    }

    [Fact]
    public void Retransmission_of_a_buffer_still_lent_is_sent_from_a_copy()
    {
        var h = new TcpHarness();
        h.Ip.HoldLentBuffers = true;
        var c = h.Established();
        h.Tcp.Send(c.Socket, TcpHarness.Bytes(1460), out _, h.Now);
        var first = h.Next()!;
        h.RunNextTimer(); // RTO while the first transmission has not left
        var again = h.Next()!;
        Assert.Equal(first.Payload, again.Payload);
        Assert.Equal(1, h.Ip.LentSends);
        h.Ip.ReleaseHeld();
        h.Feed(c.In with { Ack = c.SndNxt + 1460 });
        Assert.Equal(0, h.Pool.Outstanding);
    }

    [Fact]
    public void Nagle_holds_a_small_segment_while_data_is_unacknowledged()
    {
        // RFC 9293 3.7.4 / RFC 1122 4.2.3.4.
        var h = new TcpHarness();
        var c = h.Established();
        h.Tcp.Send(c.Socket, "a"u8, out _, h.Now);
        h.Expect(c.Out with { Flags = TcpFlags.Ack | TcpFlags.Psh, Payload = "a"u8.ToArray() });
        h.Tcp.Send(c.Socket, "b"u8, out _, h.Now);
        h.Tcp.Send(c.Socket, "c"u8, out _, h.Now);
        h.ExpectNothing();
        h.Feed(c.In with { Ack = c.SndNxt + 1 });
        h.Expect(c.Out with { Seq = c.SndNxt + 1, Flags = TcpFlags.Ack | TcpFlags.Psh, Payload = "bc"u8.ToArray() });
    }

    [Fact]
    public void No_delay_sends_small_segments_at_once()
    {
        var h = new TcpHarness();
        var c = h.Established();
        Assert.Equal(TcpError.None, h.Tcp.SetOption(c.Socket, TcpOption.NoDelay, 1, h.Now));
        h.Tcp.Send(c.Socket, "a"u8, out _, h.Now);
        h.Tcp.Send(c.Socket, "b"u8, out _, h.Now);
        h.Expect(c.Out with { Flags = TcpFlags.Ack | TcpFlags.Psh, Payload = "a"u8.ToArray() });
        h.Expect(c.Out with { Seq = c.SndNxt + 1, Flags = TcpFlags.Ack | TcpFlags.Psh, Payload = "b"u8.ToArray() });
    }

    [Fact]
    public void Sender_does_not_send_a_silly_sliver_of_a_small_window()
    {
        // RFC 9293 3.8.6.2.1: a segment goes when it is full, when it holds all the queued data
        // (Nagle permitting), or when it is at least half the largest window the peer offered.
        var h = new TcpHarness();
        var c = h.Established(TcpHarness.PeerSyn() with { Window = 4000 });
        h.Tcp.Send(c.Socket, TcpHarness.Bytes(5000), out _, h.Now);
        h.Expect(c.Out with { Flags = TcpFlags.Ack | TcpFlags.Psh, Payload = TcpHarness.Bytes(5000)[..1460] });
        h.Expect(c.Out with { Seq = c.SndNxt + 1460, Flags = TcpFlags.Ack | TcpFlags.Psh, Payload = TcpHarness.Bytes(5000)[1460..2920] });
        // 1080 bytes of window left: more than half of 4000? no: held back.
        h.ExpectNothing();
        // The peer acknowledges everything and offers 4000 again: full segments go.
        h.Feed(c.In with { Ack = c.SndNxt + 2920, Window = 4000 });
        h.Expect(c.Out with { Seq = c.SndNxt + 2920, Flags = TcpFlags.Ack | TcpFlags.Psh, Payload = TcpHarness.Bytes(5000)[2920..4380] });
        // The last 620 bytes are all that is queued, but Nagle holds them while 1460 are in flight.
        h.ExpectNothing();
        h.Feed(c.In with { Ack = c.SndNxt + 4380, Window = 4000 });
        h.Expect(c.Out with { Seq = c.SndNxt + 4380, Flags = TcpFlags.Ack | TcpFlags.Psh, Payload = TcpHarness.Bytes(5000)[4380..] });
    }

    [Fact]
    public void Zero_window_is_probed_by_the_persist_timer_with_backoff()
    {
        // RFC 9293 3.8.6.1: probe with one octet of new data.
        var h = new TcpHarness();
        var c = h.Established(TcpHarness.PeerSyn() with { Window = 0 });
        h.Tcp.Send(c.Socket, "hello"u8, out _, h.Now);
        h.ExpectNothing();
        var t0 = h.Now;
        h.RunNextTimer();
        h.Expect(c.Out with { Flags = TcpFlags.Ack | TcpFlags.Psh, Payload = "h"u8.ToArray() });
        var first = h.Now - t0;
        // The peer still has no room: it does not take the byte.
        h.Feed(c.In with { Window = 0 });
        var t1 = h.Now;
        h.RunNextTimer();
        h.Expect(c.Out with { Flags = TcpFlags.Ack | TcpFlags.Psh, Payload = "h"u8.ToArray() });
        Assert.True(h.Now - t1 > first, "the persist interval backs off");
        Assert.Equal(2, h.Tcp.Counters.ZeroWindowProbes);
        // The window opens: everything goes.
        h.Feed(c.In with { Window = 1000 });
        h.Expect(c.Out with { Flags = TcpFlags.Ack | TcpFlags.Psh, Payload = "hello"u8.ToArray() });
    }

    [Fact]
    public void Probe_byte_accepted_by_the_peer_is_not_sent_again()
    {
        var h = new TcpHarness();
        var c = h.Established(TcpHarness.PeerSyn() with { Window = 0 });
        h.Tcp.Send(c.Socket, "hello"u8, out _, h.Now);
        h.RunNextTimer();
        h.Expect(c.Out with { Flags = TcpFlags.Ack | TcpFlags.Psh, Payload = "h"u8.ToArray() });
        h.Feed(c.In with { Ack = c.SndNxt + 1, Window = 100 });
        h.Expect(c.Out with { Seq = c.SndNxt + 1, Flags = TcpFlags.Ack | TcpFlags.Psh, Payload = "ello"u8.ToArray() });
    }

    [Fact]
    public void Send_buffer_limit_counts_buffer_capacity()
    {
        var h = new TcpHarness(TcpHarness.Plain with { SendBufferSize = 16384 });
        var c = h.Established(TcpHarness.PeerSyn() with { Window = 0 });
        int accepted = 0;
        for (int i = 0; i < 10; i++)
        {
            var b = h.Pool.Rent(TcpLayer.SendHeadroom, 10)!;
            b.Append(10);
            if (h.Tcp.Send(c.Socket, b, h.Now) != TcpError.None)
            {
                b.Release();
                break;
            }
            accepted++;
        }
        // Four 4 KiB buffers fill 16 KiB, though they hold 40 bytes.
        Assert.Equal(4, accepted);
        Assert.Equal(0, h.Tcp.GetSendSpace(c.Socket));
        Assert.False(h.Tcp.GetReadiness(c.Socket).HasFlag(TcpReadiness.Writable));
    }

    [Fact]
    public void Path_mtu_lowered_by_icmp_shrinks_segments_and_resends_what_was_in_flight()
    {
        var h = new TcpHarness();
        var c = h.Established();
        var data = TcpHarness.Bytes(2920);
        h.Tcp.Send(c.Socket, data, out _, h.Now);
        h.Drain();
        var err = new IcmpError(IcmpErrorKind.FragmentationNeeded, 3, 4, TcpHarness.LocalAddress, TcpHarness.RemoteAddress, 80, TcpHarness.RemotePort, c.SndNxt, 1040);
        h.Tcp.ReceiveIcmpError(err, h.Now);
        h.Expect(c.Out with { Flags = TcpFlags.Ack | TcpFlags.Psh, Payload = data[..1000] });
        h.Expect(c.Out with { Seq = c.SndNxt + 1000, Flags = TcpFlags.Ack | TcpFlags.Psh, Payload = data[1000..2000] });
        h.Expect(c.Out with { Seq = c.SndNxt + 2000, Flags = TcpFlags.Ack | TcpFlags.Psh, Payload = data[2000..] });
        Assert.Equal(1000, h.Tcp.GetInfo(c.Socket).Mss);
    }

    [Fact]
    public void Icmp_error_with_a_sequence_number_outside_the_send_window_is_ignored()
    {
        var h = new TcpHarness();
        var c = h.Established();
        h.Tcp.Send(c.Socket, TcpHarness.Bytes(100), out _, h.Now);
        h.Drain();
        var err = new IcmpError(IcmpErrorKind.FragmentationNeeded, 3, 4, TcpHarness.LocalAddress, TcpHarness.RemoteAddress, 80, TcpHarness.RemotePort, c.SndNxt + 5000, 576);
        h.Tcp.ReceiveIcmpError(err, h.Now);
        h.ExpectNothing();
        Assert.Equal(1460, h.Tcp.GetInfo(c.Socket).Mss);
        Assert.Equal(1, h.Tcp.Counters.IcmpErrorsIgnored);
    }

    [Fact]
    public void Window_closed_with_data_in_flight_is_probed_and_a_live_peer_is_not_timed_out()
    {
        var h = new TcpHarness(TcpHarness.Plain with { DataRetries = 3 });
        var c = h.Established();
        var data = TcpHarness.Bytes(100);
        h.Tcp.Send(c.Socket, data, out _, h.Now);
        h.Drain();
        // The peer takes nothing and closes its window.
        h.Feed(c.In with { Window = 0 });
        for (int i = 0; i < 6; i++)
        {
            h.RunNextTimer();
            h.Expect(c.Out with { Flags = TcpFlags.Ack | TcpFlags.Psh, Payload = data[..1] });
            h.Feed(c.In with { Window = 0 });
        }
        Assert.Equal(TcpState.Established, h.Tcp.GetState(c.Socket));
        h.Feed(c.In with { Window = 1000 });
        h.Expect(c.Out with { Flags = TcpFlags.Ack | TcpFlags.Psh, Payload = data });
    }
}
