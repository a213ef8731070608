using AntHost.Inet.Core.Tcp;
using AntHost.Inet.Core.Tests.Tcp.Support;
using AntHost.Inet.Core.Wire;

namespace AntHost.Inet.Core.Tests.Tcp.Established;

/// <summary>
/// Spurious timeouts and their undo: timestamps tell which transmission an ACK is for (Eifel
/// detection, RFC 3522); without timestamps F-RTO (RFC 5682) sends new data after the timeout
/// and looks at what the next ACKs acknowledge. A spurious timeout restores cwnd and stops
/// the go-back-N resending of data that had arrived.
/// </summary>
public class SpuriousRetransmissionTests
{
    private static readonly TimeSpan Rtt = TimeSpan.FromMilliseconds(10);

    private static Seg Data(Conn c, byte[] data, int i, int mss, bool ts = false) =>
        c.Out with { Seq = c.SndNxt + (uint)(i * mss), Flags = TcpFlags.Ack | TcpFlags.Psh, Payload = data[(i * mss)..Math.Min(data.Length, (i + 1) * mss)], Timestamps = ts };

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Timestamps_show_a_timeout_was_spurious_and_the_window_comes_back(bool undo)
    {
        // RFC 3522: the ACK that covers the retransmitted segment echoes the TSval of the first
        // transmission, so the first transmission arrived and the timeout was spurious (the
        // ACKs were only late). Segments carry 1448 bytes (the timestamp option takes 12).
        const int mss = 1448;
        var h = new TcpHarness(TcpHarness.Plain with { Sack = true, Timestamps = true, SpuriousRetransmissionUndo = undo });
        var syn = TcpHarness.PeerSyn() with { SackPermitted = true, Timestamps = true, TsVal = 5000 };
        var c = h.Established(syn, rtt: Rtt);
        var data = TcpHarness.Bytes(6 * mss);
        h.Tcp.Send(c.Socket, data, out _, h.Now);
        uint original = h.Expect(Data(c, data, 0, mss, ts: true)).TsVal!.Value;
        for (int i = 1; i < 6; i++) h.Expect(Data(c, data, i, mss, ts: true));
        int cwnd = h.Tcp.GetInfo(c.Socket).Cwnd;

        h.RunNextTimer();                                  // the loss probe (RFC 8985 7.3): the last segment
        h.Expect(Data(c, data, 5, mss, ts: true));
        h.RunNextTimer();                                  // then the retransmission timeout
        h.Expect(Data(c, data, 0, mss, ts: true));
        h.ExpectNothing();
        Assert.Equal(mss, h.Tcp.GetInfo(c.Socket).Cwnd);

        // The ACKs of the first transmissions, late: they echo the first TSval.
        h.Feed(c.In with { Ack = c.SndNxt + (uint)(3 * mss), Timestamps = true, TsVal = 5010, TsEcr = original });
        if (undo)
        {
            h.ExpectNothing();                             // segments 3 to 5 are in flight: not sent again
            Assert.Equal(1, h.Tcp.Counters.UndosTimestamp);
            Assert.Equal(1, h.Tcp.Counters.SpuriousTimeouts);
            Assert.True(h.Tcp.GetInfo(c.Socket).Cwnd >= cwnd, "cwnd is restored");
        }
        else
        {
            // Go-back-N goes on, in slow start from one segment: 3 and 4 again.
            h.Expect(Data(c, data, 3, mss, ts: true));
            h.Expect(Data(c, data, 4, mss, ts: true));
            Assert.Equal(0, h.Tcp.Counters.UndosTimestamp);
            Assert.True(h.Tcp.GetInfo(c.Socket).Cwnd < cwnd);
        }
    }

    [Fact]
    public void Timestamps_of_the_retransmission_keep_the_reduction()
    {
        // The ACK echoes the retransmission's TSval: the retransmission was needed.
        const int mss = 1448;
        var h = new TcpHarness(TcpHarness.Plain with { Sack = true, Timestamps = true });
        var c = h.Established(TcpHarness.PeerSyn() with { SackPermitted = true, Timestamps = true, TsVal = 5000 }, rtt: Rtt);
        var data = TcpHarness.Bytes(4 * mss);
        h.Tcp.Send(c.Socket, data, out _, h.Now);
        h.Drain();
        h.RunNextTimer();                                  // the loss probe
        h.Expect(Data(c, data, 3, mss, ts: true));
        h.RunNextTimer();                                  // the timeout
        uint rtx = h.Expect(Data(c, data, 0, mss, ts: true)).TsVal!.Value;
        h.Drain();
        h.Feed(c.In with { Ack = c.SndNxt + (uint)mss, Timestamps = true, TsVal = 5010, TsEcr = rtx });
        Assert.Equal(0, h.Tcp.Counters.UndosTimestamp);
        h.Expect(Data(c, data, 1, mss, ts: true));         // go-back-N goes on
    }

    [Fact]
    public void Frto_finds_a_spurious_timeout_by_new_data()
    {
        // RFC 5682 2.1 without timestamps: after the timeout's retransmission, the first ACK
        // acknowledges more than was retransmitted (step 2b): two new segments go instead of
        // old ones. The next ACK acknowledges data that was never retransmitted (step 3b): the
        // timeout was spurious, cwnd comes back and segments 2 and 3 are never sent again.
        const int mss = 1460;
        var h = new TcpHarness();
        var c = h.Established(rtt: Rtt);
        var data = TcpHarness.Bytes(8 * mss);
        h.Tcp.Send(c.Socket, data.AsSpan(0, 4 * mss), out _, h.Now);
        for (int i = 0; i < 4; i++) h.Expect(Data(c, data, i, mss));
        int cwnd = h.Tcp.GetInfo(c.Socket).Cwnd;
        h.RunNextTimer();
        h.Expect(Data(c, data, 0, mss));
        h.Tcp.Send(c.Socket, data.AsSpan(4 * mss), out _, h.Now);
        h.ExpectNothing();                                 // cwnd is one segment

        h.Feed(c.In with { Ack = c.SndNxt + (uint)(2 * mss) });
        h.Expect(Data(c, data, 4, mss));
        h.Expect(Data(c, data, 5, mss));
        h.ExpectNothing();
        h.Feed(c.In with { Ack = c.SndNxt + (uint)(4 * mss) });
        h.Expect(Data(c, data, 6, mss));
        h.Expect(Data(c, data, 7, mss));
        Assert.Equal(1, h.Tcp.Counters.UndosFrto);
        Assert.Equal(1, h.Tcp.Counters.SpuriousTimeouts);
        Assert.Equal(1, h.Tcp.Counters.RetransmitsTimeout);
        Assert.True(h.Tcp.GetInfo(c.Socket).Cwnd >= cwnd, "cwnd is restored");
    }

    [Fact]
    public void Frto_falls_back_to_go_back_n_when_the_timeout_was_real()
    {
        // RFC 5682 2.1 step 3a: after the two new segments a duplicate ACK comes: segments
        // were lost after all; the sender resends from SND.UNA in slow start.
        const int mss = 1460;
        var h = new TcpHarness();
        var c = h.Established(rtt: Rtt);
        var data = TcpHarness.Bytes(8 * mss);
        h.Tcp.Send(c.Socket, data.AsSpan(0, 4 * mss), out _, h.Now);
        h.Drain();
        h.RunNextTimer();
        h.Expect(Data(c, data, 0, mss));
        h.Tcp.Send(c.Socket, data.AsSpan(4 * mss), out _, h.Now);
        h.Feed(c.In with { Ack = c.SndNxt + (uint)(2 * mss) });
        h.Expect(Data(c, data, 4, mss));
        h.Expect(Data(c, data, 5, mss));
        // cwnd is 2 MSS (slow start from the loss window), plus one for the duplicate ACK
        // (limited transmit): 2, 3 and 4 again.
        h.Feed(c.In with { Ack = c.SndNxt + (uint)(2 * mss) });
        h.Expect(Data(c, data, 2, mss));
        h.Expect(Data(c, data, 3, mss));
        h.Expect(Data(c, data, 4, mss));
        h.ExpectNothing();
        Assert.Equal(0, h.Tcp.Counters.UndosFrto);
        Assert.Equal(4, h.Tcp.Counters.RetransmitsTimeout);
    }

    [Fact]
    public void Frto_without_new_data_is_the_conventional_recovery()
    {
        // Step 2b needs new data to send; without it the sender goes on with go-back-N.
        const int mss = 1460;
        var h = new TcpHarness();
        var c = h.Established(rtt: Rtt);
        var data = TcpHarness.Bytes(4 * mss);
        h.Tcp.Send(c.Socket, data, out _, h.Now);
        h.Drain();
        h.RunNextTimer();
        h.Expect(Data(c, data, 0, mss));
        h.Feed(c.In with { Ack = c.SndNxt + (uint)(2 * mss) });
        h.Expect(Data(c, data, 2, mss));
        h.Expect(Data(c, data, 3, mss));
        Assert.Equal(0, h.Tcp.Counters.UndosFrto);
    }
}
