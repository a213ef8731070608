using AntHost.Inet.Core.Tcp;
using AntHost.Inet.Core.Tests.Tcp.Support;
using AntHost.Inet.Core.Wire;

namespace AntHost.Inet.Core.Tests.Tcp.Established;

/// <summary>Receiving in ESTABLISHED: acceptance, delayed ACKs (RFC 9293 3.8.6.3, RFC 5681 4.2), reassembly.</summary>
public class ReceiveTests
{
    [Fact]
    public void In_order_data_is_delivered_zero_copy_and_acknowledged_after_the_delayed_ack_time()
    {
        var h = new TcpHarness();
        var c = h.Established();
        h.Feed(c.In with { Flags = TcpFlags.Ack | TcpFlags.Psh, Payload = "abc"u8.ToArray() });
        h.ExpectNothing();
        Assert.True(h.Tcp.GetReadiness(c.Socket).HasFlag(TcpReadiness.Readable));
        Assert.Equal(TcpError.None, h.Tcp.Receive(c.Socket, out var buf, h.Now));
        Assert.Equal("abc"u8.ToArray(), buf!.Data.ToArray());
        buf.Release();
        h.RunNextTimer();
        Assert.Equal(TimeSpan.FromMilliseconds(40), h.Now - Time.Instant.FromMilliseconds(10_000));
        h.Expect(c.Out with { Ack = c.RcvNxt + 3 });
        Assert.Equal(0, h.Pool.Outstanding);
    }

    [Fact]
    public void Every_second_full_segment_is_acknowledged_at_once()
    {
        var h = new TcpHarness();
        var c = h.Established();
        h.Feed(c.In with { Payload = TcpHarness.Bytes(1460) });
        h.ExpectNothing();
        h.Feed(c.In with { Seq = c.In.Seq + 1460, Payload = TcpHarness.Bytes(1460) });
        h.Expect(c.Out with { Ack = c.RcvNxt + 2920 });
    }

    [Fact]
    public void Out_of_order_segment_gets_an_immediate_duplicate_ack_and_the_hole_filled_an_immediate_ack()
    {
        var h = new TcpHarness();
        var c = h.Established();
        h.Feed(c.In with { Seq = c.In.Seq + 10, Payload = TcpHarness.Bytes(10, 10) });
        h.Expect(c.Out);
        h.Feed(c.In with { Seq = c.In.Seq + 30, Payload = TcpHarness.Bytes(5, 30) });
        h.Expect(c.Out);
        h.Feed(c.In with { Payload = TcpHarness.Bytes(10, 0) });
        h.Expect(c.Out with { Ack = c.RcvNxt + 20 });
        h.Feed(c.In with { Seq = c.In.Seq + 20, Payload = TcpHarness.Bytes(10, 20) });
        h.Expect(c.Out with { Ack = c.RcvNxt + 35 });
        var got = h.ReadAll(c.Socket);
        Assert.Equal(35, got.Length);
        for (int i = 0; i < 35; i++) Assert.Equal((byte)(i % 10 * 7 + i / 10 * 10), got[i]);
    }

    [Fact]
    public void Overlapping_retransmissions_deliver_each_byte_once()
    {
        var h = new TcpHarness();
        var c = h.Established();
        var data = TcpHarness.Bytes(100);
        h.Feed(c.In with { Seq = c.In.Seq + 50, Payload = data[50..80] });
        h.Feed(c.In with { Seq = c.In.Seq + 40, Payload = data[40..90] });
        h.Feed(c.In with { Seq = c.In.Seq + 60, Payload = data[60..100] });
        h.Feed(c.In with { Seq = c.In.Seq + 0, Payload = data[0..45] });
        h.Feed(c.In with { Seq = c.In.Seq + 0, Payload = data[0..100] });
        Assert.Equal(data, h.ReadAll(c.Socket));
        Assert.Equal(0, h.Tcp.GetInfo(c.Socket).OutOfOrderSegments);
    }

    [Fact]
    public void Segment_entirely_before_rcv_nxt_is_not_acceptable_and_is_answered_with_an_ack()
    {
        // RFC 9293 3.10.7.4: "If an incoming segment is not acceptable, an acknowledgment should be sent in reply"
        var h = new TcpHarness();
        var c = h.Established();
        h.Feed(c.In with { Payload = "abc"u8.ToArray() });
        h.Feed(c.In with { Payload = "abc"u8.ToArray() });
        h.Expect(c.Out with { Ack = c.RcvNxt + 3 });
        Assert.Equal(1, h.Tcp.Counters.Dropped(TcpDropReason.NotAcceptable));
    }

    [Fact]
    public void Segment_beyond_the_window_is_not_acceptable()
    {
        var h = new TcpHarness();
        var c = h.Established();
        h.Feed(c.In with { Seq = c.In.Seq + 70000, Payload = "abc"u8.ToArray() });
        h.Expect(c.Out);
        Assert.Equal(0, h.Tcp.GetAvailable(c.Socket));
    }

    [Fact]
    public void Segment_without_ack_bit_is_dropped()
    {
        var h = new TcpHarness();
        var c = h.Established();
        h.Feed(c.In with { Flags = TcpFlags.Psh, Payload = "abc"u8.ToArray() });
        h.ExpectNothing();
        Assert.Equal(0, h.Tcp.GetAvailable(c.Socket));
    }

    [Fact]
    public void Corrupted_segment_is_dropped_and_counted()
    {
        var h = new TcpHarness();
        var c = h.Established();
        h.Feed(c.In with { Payload = "abc"u8.ToArray() }, corrupt: true);
        h.ExpectNothing();
        Assert.Equal(1, h.Tcp.Counters.ChecksumFailures);
        Assert.Equal(0, h.Tcp.GetAvailable(c.Socket));
    }

    [Fact]
    public void Span_receive_copies_and_a_partial_read_keeps_the_rest()
    {
        var h = new TcpHarness();
        var c = h.Established();
        h.Feed(c.In with { Payload = "hello world"u8.ToArray() });
        var buf = new byte[5];
        Assert.Equal(TcpError.None, h.Tcp.Receive(c.Socket, buf, out int n, h.Now));
        Assert.Equal("hello"u8.ToArray(), buf[..n]);
        Assert.Equal(6, h.Tcp.GetAvailable(c.Socket));
        Assert.Equal(" world"u8.ToArray(), h.ReadAll(c.Socket));
        Assert.Equal(TcpError.WouldBlock, h.Tcp.Receive(c.Socket, buf, out n, h.Now));
    }

    [Fact]
    public void Fin_makes_the_stream_end_after_the_data()
    {
        var h = new TcpHarness();
        var c = h.Established();
        h.Feed(c.In with { Flags = TcpFlags.Ack | TcpFlags.Fin, Payload = "bye"u8.ToArray() });
        h.Expect(c.Out with { Ack = c.RcvNxt + 4 });
        Assert.Equal(TcpState.CloseWait, h.Tcp.GetState(c.Socket));
        Assert.Equal("bye"u8.ToArray(), h.ReadAll(c.Socket));
        Assert.Equal(TcpError.None, h.Tcp.Receive(c.Socket, out var b, h.Now));
        Assert.Null(b);
        Assert.True(h.Tcp.GetReadiness(c.Socket).HasFlag(TcpReadiness.PeerClosed));
    }

    [Fact]
    public void Out_of_order_fin_is_held_until_the_hole_is_filled()
    {
        var h = new TcpHarness();
        var c = h.Established();
        h.Feed(c.In with { Seq = c.In.Seq + 3, Flags = TcpFlags.Ack | TcpFlags.Fin, Payload = "def"u8.ToArray() });
        h.Expect(c.Out);
        Assert.Equal(TcpState.Established, h.Tcp.GetState(c.Socket));
        h.Feed(c.In with { Payload = "abc"u8.ToArray() });
        h.Expect(c.Out with { Ack = c.RcvNxt + 7 });
        Assert.Equal(TcpState.CloseWait, h.Tcp.GetState(c.Socket));
        Assert.Equal("abcdef"u8.ToArray(), h.ReadAll(c.Socket));
    }

    [Fact]
    public void Receive_window_shrinks_as_data_waits_and_reopens_with_an_update_when_the_app_reads()
    {
        var h = new TcpHarness(TcpHarness.Plain with { ReceiveBufferSize = 8192 });
        var c = h.Established();
        h.Feed(c.In with { Payload = TcpHarness.Bytes(1460) });
        h.Feed(c.In with { Seq = c.In.Seq + 1460, Payload = TcpHarness.Bytes(1460) });
        var ack = h.Expect(c.Out with { Ack = c.RcvNxt + 2920 });
        Assert.Equal(8192 - 2920, (int)ack.Window!);
        h.Feed(c.In with { Seq = c.In.Seq + 2920, Payload = TcpHarness.Bytes(1460) });
        h.Feed(c.In with { Seq = c.In.Seq + 4380, Payload = TcpHarness.Bytes(1460) });
        ack = h.Expect(c.Out with { Ack = c.RcvNxt + 5840 });
        Assert.Equal(8192 - 5840, (int)ack.Window!);
        Assert.Equal(5840, h.ReadAll(c.Socket).Length);
        // The window opened by more than min(buffer / 2, MSS) while it was small: an update goes out.
        var update = h.Expect(c.Out with { Ack = c.RcvNxt + 5840 });
        Assert.Equal(8192, (int)update.Window!);
    }

    [Fact]
    public void A_coalesced_segment_in_a_large_buffer_costs_the_window_its_payload_not_a_buffer_per_mss()
    {
        // The NIC driver merges consecutive segments into one buffer (GRO): 22 segments in 32 KiB.
        // The memory bound must count that buffer as the payload it carries; counted as one
        // buffer per MSS it closed the window to a few KiB after every merged frame.
        var h = new TcpHarness(TcpHarness.Plain with { ReceiveBufferSize = 60000 }, bufferSize: 32768);
        var c = h.Established();
        h.Feed(c.In with { Payload = TcpHarness.Bytes(22 * 1448) });
        var ack = h.Expect(c.Out with { Ack = c.RcvNxt + 22 * 1448 });
        Assert.Equal(60000 - 22 * 1448, (int)ack.Window!);
        // The app reads it all: the whole buffer is free again, and the window says so.
        Assert.Equal(22 * 1448, h.ReadAll(c.Socket).Length);
        var update = h.Expect(c.Out with { Ack = c.RcvNxt + 22 * 1448 });
        Assert.Equal(60000, (int)update.Window!);
    }

    [Fact]
    public void Window_is_never_shrunk_below_what_was_advertised()
    {
        // RFC 9293 3.8.6.2.2: the right edge does not move left.
        var h = new TcpHarness(TcpHarness.Plain with { ReceiveBufferSize = 4096 }, bufferSize: 4096);
        var c = h.Established();
        // Tiny segments in page-sized buffers cost memory out of proportion; the edge stays put anyway.
        uint right = 0;
        for (int i = 0; i < 6; i++)
        {
            h.Feed(c.In with { Seq = c.In.Seq + (uint)(i * 600), Payload = TcpHarness.Bytes(600) });
            h.RunNextTimer();
            var a = h.Next()!;
            uint r = a.Ack + (uint)a.Window!;
            Assert.True(r >= right, $"right edge moved left: {r} < {right}");
            right = r;
        }
    }

    [Fact]
    public void Small_reads_do_not_send_silly_window_updates()
    {
        // RFC 9293 3.8.6.2.2: the window moves right only by at least min(RCV.BUFF / 2, MSS).
        var h = new TcpHarness(TcpHarness.Plain with { ReceiveBufferSize = 8192 });
        var c = h.Established();
        h.Feed(c.In with { Payload = TcpHarness.Bytes(1460) });
        h.Feed(c.In with { Seq = c.In.Seq + 1460, Payload = TcpHarness.Bytes(1460) });
        h.Feed(c.In with { Seq = c.In.Seq + 2920, Payload = TcpHarness.Bytes(1460) });
        h.Feed(c.In with { Seq = c.In.Seq + 4380, Payload = TcpHarness.Bytes(1460) });
        h.Drain();
        var small = new byte[100];
        for (int i = 0; i < 5; i++) Assert.Equal(TcpError.None, h.Tcp.Receive(c.Socket, small, out _, h.Now));
        h.ExpectNothing();
        // The next data's ACK still offers the old right edge.
        h.Feed(c.In with { Seq = c.In.Seq + 5840, Payload = TcpHarness.Bytes(100) });
        h.RunNextTimer();
        var ack = h.Next()!;
        Assert.Equal(c.RcvNxt + 8192, ack.Ack + (uint)ack.Window!);
    }

    [Fact]
    public void Lent_buffer_cannot_be_queued_for_sending()
    {
        var h = new TcpHarness();
        var c = h.Established();
        var b = h.Pool.Rent(TcpLayer.SendHeadroom, 10)!;
        b.Append(10);
        b.Lend();
        Assert.Equal(TcpError.InvalidArgument, h.Tcp.Send(c.Socket, b, h.Now));
        b.EndLend();
        b.Release();
    }
}
