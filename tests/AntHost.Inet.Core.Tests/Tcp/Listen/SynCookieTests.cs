using AntHost.Inet.Core.Tcp;
using AntHost.Inet.Core.Tests.Tcp.Support;
using AntHost.Inet.Core.Wire;

namespace AntHost.Inet.Core.Tests.Tcp.Listen;

/// <summary>
/// RFC 4987 3.6 SYN cookies: a listener whose SYN queue a flood of half-open connections has
/// filled still answers, keeps nothing for the answer, and makes the connection from the ACK
/// that returns a valid cookie.
/// </summary>
public class SynCookieTests
{
    private const int Backlog = 4;

    private static TcpConfig All => TcpHarness.Plain with { WindowScaling = true, Timestamps = true, Sack = true, ReceiveBufferSize = 1 << 20 };

    /// <summary>Fills the listener's SYN queue with SYNs from addresses that never answer (as a spoofed flood does).</summary>
    private static void Flood(TcpHarness h, int count = Backlog)
    {
        for (int i = 0; i < count; i++)
            h.Feed(TcpHarness.PeerSyn((ushort)(30000 + i), 7_000_000u + (uint)i), from: new Ipv4Address(198, 18, 1, (byte)(10 + i)));
        h.Drain();
    }

    /// <summary>The ACK that completes a handshake answered by <paramref name="synAck"/> (timestamps when it had them).</summary>
    private static Seg AckOf(Seg syn, Seg synAck) => new()
    {
        SrcPort = syn.SrcPort, DstPort = TcpHarness.ServerPort, Seq = syn.Seq + 1, Ack = synAck.Seq + 1, Flags = TcpFlags.Ack, Window = syn.Window,
        Timestamps = synAck.Timestamps, TsVal = synAck.Timestamps ? (syn.TsVal ?? 0) + 1 : null, TsEcr = synAck.Timestamps ? synAck.TsVal : null,
    };

    [Fact]
    public void A_full_syn_queue_answers_the_next_syn_with_a_cookie_and_its_ack_makes_the_connection()
    {
        var h = new TcpHarness();
        var l = h.Listen(backlog: Backlog);
        Flood(h);
        Assert.Equal(Backlog, h.Tcp.ConnectionCount);
        Assert.Equal(0, h.Tcp.Counters.SynCookiesSent);

        // The real client's SYN: answered, and nothing is kept for it.
        var syn = TcpHarness.PeerSyn();
        h.Feed(syn);
        var synAck = h.Next()!;
        TcpHarness.AssertMatches(new Seg
        {
            SrcPort = 80, DstPort = TcpHarness.RemotePort, Seq = synAck.Seq, Ack = TcpHarness.RemoteIss + 1,
            Flags = TcpFlags.Syn | TcpFlags.Ack, Mss = 1460, Window = 65535,
        }, synAck);
        h.ExpectNothing();
        Assert.Equal(Backlog, h.Tcp.ConnectionCount);
        Assert.Equal(1, h.Tcp.Counters.SynCookiesSent);
        Assert.Equal(0, h.Tcp.Counters.Dropped(TcpDropReason.BacklogFull));

        // Its ACK, carrying data: the connection is made in ESTABLISHED and queued for accept.
        h.Feed(AckOf(syn, synAck) with { Payload = [1, 2, 3] });
        Assert.Equal(TcpReadiness.AcceptReady, h.Tcp.GetReadiness(l));
        Assert.Equal(TcpError.None, h.Tcp.Accept(l, out var s));
        Assert.Equal(TcpState.Established, h.Tcp.GetState(s));
        Assert.Equal(new TcpEndPoint(TcpHarness.RemoteAddress, TcpHarness.RemotePort), h.Tcp.GetRemoteEndPoint(s));
        Assert.Equal(1, h.Tcp.Counters.SynCookiesAccepted);
        Assert.Equal(Backlog + 1, h.Tcp.ConnectionCount);
        var got = new byte[8];
        Assert.Equal(TcpError.None, h.Tcp.Receive(s, got, out int read, h.Now));
        Assert.Equal([1, 2, 3], got[..read]);

        // Data flows both ways from the cookie's sequence numbers.
        h.Drain();
        Assert.Equal(TcpError.None, h.Tcp.Send(s, "hello"u8, out _, h.Now));
        h.Expect(new Seg { SrcPort = 80, DstPort = TcpHarness.RemotePort, Seq = synAck.Seq + 1, Ack = TcpHarness.RemoteIss + 4, Flags = TcpFlags.Ack | TcpFlags.Psh, Payload = "hello"u8.ToArray() });
        Assert.Equal(1460, h.Tcp.GetInfo(s).Mss);
    }

    [Fact]
    public void Forged_cookies_are_dropped_and_counted_without_an_answer()
    {
        var h = new TcpHarness();
        var l = h.Listen(backlog: Backlog);
        Flood(h);
        var syn = TcpHarness.PeerSyn();
        h.Feed(syn);
        var synAck = h.Next()!;
        var ack = AckOf(syn, synAck);

        // A guessed cookie; the right cookie for another ISN, another port, another address.
        h.Feed(ack with { Ack = ack.Ack ^ 0x0100_0000 });
        h.Feed(ack with { Seq = ack.Seq + 1 });
        h.Feed(ack with { SrcPort = 40009 });
        h.Feed(ack, from: new Ipv4Address(198, 18, 0, 9));
        h.ExpectNothing();
        Assert.Equal(4, h.Tcp.Counters.Dropped(TcpDropReason.BadCookie));
        Assert.Equal(0, h.Tcp.Counters.SynCookiesAccepted);
        Assert.Equal(Backlog, h.Tcp.ConnectionCount);
        Assert.Equal(TcpError.WouldBlock, h.Tcp.Accept(l, out _));

        // The real one still works.
        h.Feed(ack);
        Assert.Equal(TcpError.None, h.Tcp.Accept(l, out _));
    }

    [Fact]
    public void A_cookie_is_good_for_one_key_lifetime_at_least_and_refused_after_two()
    {
        var h = new TcpHarness();
        var l = h.Listen(backlog: Backlog);
        Flood(h);
        var early = TcpHarness.PeerSyn(41000);
        h.Feed(early);
        var earlyAck = AckOf(early, h.Next()!);
        var late = TcpHarness.PeerSyn(41001);
        h.Feed(late);
        var lateAck = AckOf(late, h.Next()!);

        // One key lifetime later: still good.
        h.Now += SynCookieLifetime;
        h.Feed(earlyAck);
        Assert.Equal(TcpError.None, h.Tcp.Accept(l, out _));

        // Two lifetimes later (cookies still going out to the flood): refused.
        h.Now += SynCookieLifetime;
        h.Feed(TcpHarness.PeerSyn(41002));
        h.Drain();
        h.Feed(lateAck);
        h.ExpectNothing();
        Assert.Equal(1, h.Tcp.Counters.Dropped(TcpDropReason.BadCookie));
        Assert.Equal(TcpError.WouldBlock, h.Tcp.Accept(l, out _));
    }

    [Fact]
    public void Without_cookies_outstanding_an_ack_to_a_listener_still_gets_a_reset()
    {
        // Long after the last cookie, RFC 9293 3.10.7.2 applies again.
        var h = new TcpHarness();
        h.Listen(backlog: Backlog);
        Flood(h);
        h.Feed(TcpHarness.PeerSyn());
        h.Drain();
        h.Now += 3 * SynCookieLifetime;
        h.Feed(new Seg { SrcPort = 5000, DstPort = 80, Seq = 77, Ack = 4242, Flags = TcpFlags.Ack });
        h.Expect(new Seg { SrcPort = 80, DstPort = 5000, Seq = 4242, Ack = 0, Flags = TcpFlags.Rst, Window = 0 });
        Assert.Equal(0, h.Tcp.Counters.Dropped(TcpDropReason.BadCookie));
    }

    [Fact]
    public void Mss_window_scale_sack_and_timestamps_come_back_from_the_cookie()
    {
        var h = new TcpHarness(All);
        var l = h.Listen(backlog: Backlog);
        Flood(h);
        var syn = TcpHarness.PeerSyn() with { Mss = 1400, WindowScale = 7, SackPermitted = true, Timestamps = true, TsVal = 5000, TsEcr = 0 };
        h.Feed(syn);
        var synAck = h.Next()!;
        Assert.Equal(1, h.Tcp.Counters.SynCookiesSent);
        // Our own options, as any SYN-ACK: MSS, our shift for 1 MiB (5), SACK, timestamps echoing the SYN's.
        Assert.Equal((ushort)1460, synAck.Mss);
        Assert.Equal((byte)5, synAck.WindowScale);
        Assert.True(synAck.SackPermitted);
        Assert.Equal(5000u, synAck.TsEcr);
        // The peer's window scale and SACK-permitted ride in the TSval's low six bits.
        Assert.Equal(7u | 16u, synAck.TsVal!.Value & 63);

        h.Feed(AckOf(syn, synAck) with { Window = 1000 });
        Assert.Equal(TcpError.None, h.Tcp.Accept(l, out var s));
        var info = h.Tcp.GetInfo(s);
        Assert.Equal(TcpState.Established, info.State);
        Assert.Equal(1300, info.Mss);                    // 1400 rounded down to the table
        Assert.Equal((byte)7, info.SendWindowScale);
        Assert.Equal((byte)5, info.ReceiveWindowScale);
        Assert.Equal(1000u << 7, info.SndWnd);
        Assert.True(info.Timestamps);
        Assert.True(info.Sack);

        // Segments carry timestamps from the layer's clock, never behind the cookie's TSval.
        h.Tcp.Send(s, "x"u8, out _, h.Now);
        var data = h.Next()!;
        Assert.True(data.Timestamps);
        Assert.Equal(5001u, data.TsEcr);
        Assert.True((int)(data.TsVal!.Value - synAck.TsVal.Value) >= 0);
        Assert.Equal((ushort)((1 << 20) >> 5), data.Window);
    }

    [Fact]
    public void Without_timestamps_a_cookie_carries_only_the_mss()
    {
        var h = new TcpHarness(All);
        var l = h.Listen(backlog: Backlog);
        Flood(h);
        var syn = TcpHarness.PeerSyn() with { Mss = 1440, WindowScale = 7, SackPermitted = true };
        h.Feed(syn);
        var synAck = h.Next()!;
        // Nothing could bring window scale or SACK back: neither is offered.
        Assert.Null(synAck.WindowScale);
        Assert.False(synAck.SackPermitted);
        Assert.False(synAck.Timestamps);
        h.Feed(AckOf(syn, synAck));
        Assert.Equal(TcpError.None, h.Tcp.Accept(l, out var s));
        var info = h.Tcp.GetInfo(s);
        Assert.Equal(1440, info.Mss);
        Assert.Equal((byte)0, info.SendWindowScale);
        Assert.Equal((byte)0, info.ReceiveWindowScale);
        Assert.False(info.Sack);
        Assert.False(info.Timestamps);
    }

    [Fact]
    public void No_cookie_when_the_accept_queue_is_full()
    {
        var h = new TcpHarness();
        var l = h.Listen(backlog: 1);
        h.Established(TcpHarness.PeerSyn(40001), l);       // accepted
        h.Feed(TcpHarness.PeerSyn(40002));
        var a = h.Next()!;
        h.Feed(new Seg { SrcPort = 40002, DstPort = 80, Seq = TcpHarness.RemoteIss + 1, Ack = a.Seq + 1, Flags = TcpFlags.Ack });  // waits in the accept queue
        Flood(h, 1);
        h.Feed(TcpHarness.PeerSyn(40003));
        h.ExpectNothing();
        Assert.Equal(0, h.Tcp.Counters.SynCookiesSent);
        Assert.Equal(1, h.Tcp.Counters.Dropped(TcpDropReason.BacklogFull));
    }

    [Fact]
    public void The_cookie_tsval_is_never_ahead_of_the_clock()
    {
        uint[] clocks = [0, 5, 63, 64, 1000, 0xFFFF_FFC0, 0xFFFF_FFFF, 0x8000_0001];
        byte?[] scales = [null, 0, 7, 14];
        foreach (uint clock in clocks)
        {
            foreach (byte? ws in scales)
            {
                foreach (bool sack in new[] { false, true })
                {
                    uint ts = SynCookies.EncodeTsVal(clock, ws, sack);
                    Assert.InRange(unchecked(clock - ts), 0u, 63u);
                    SynCookies.DecodeTsEcr(ts, out var ws2, out bool sack2);
                    Assert.Equal(ws, ws2);
                    Assert.Equal(sack, sack2);
                }
            }
        }
    }

    private static TimeSpan SynCookieLifetime => SynCookies.KeyLifetime;
}
