using AntHost.Inet.Core.Ip;
using AntHost.Inet.Core.Tcp;
using AntHost.Inet.Core.Tests.Tcp.Support;
using AntHost.Inet.Core.Wire;

namespace AntHost.Inet.Core.Tests.Tcp.SynSent;

/// <summary>RFC 9293 3.10.1 (active OPEN) and 3.10.7.3 (SYN-SENT).</summary>
public class SynSentTests
{
    private static (TcpHarness H, TcpSocket S, Seg Syn) Connecting(TcpConfig? config = null)
    {
        var h = new TcpHarness(config);
        Assert.Equal(TcpError.None, h.Tcp.Open(out var s));
        Assert.Equal(TcpError.None, h.Tcp.Connect(s, new TcpEndPoint(TcpHarness.RemoteAddress, 80), h.Now));
        var syn = h.Next()!;
        Assert.Equal(TcpState.SynSent, h.Tcp.GetState(s));
        return (h, s, syn);
    }

    [Fact]
    public void Connect_sends_a_syn_from_an_ephemeral_port_with_the_mss_of_the_path()
    {
        var (h, _, syn) = Connecting();
        TcpHarness.AssertMatches(new Seg { SrcPort = syn.SrcPort, DstPort = 80, Seq = syn.Seq, Ack = 0, Flags = TcpFlags.Syn, Mss = 1460, Window = 65535 }, syn);
        Assert.InRange(syn.SrcPort, 49152, 65535);
        Assert.Equal(1, h.Tcp.Counters.ActiveOpens);
    }

    [Fact]
    public void Syn_offers_window_scale_sack_and_timestamps_when_configured()
    {
        var (_, _, syn) = Connecting(TcpHarness.Plain with { WindowScaling = true, Sack = true, Timestamps = true, ReceiveBufferSize = 1 << 20 });
        Assert.Equal((ushort)1460, syn.Mss);
        Assert.True(syn.SackPermitted);
        Assert.True(syn.Timestamps);
        Assert.Equal(0u, syn.TsEcr);
        // RFC 7323 2.3: the shift lets the buffer (with its memory factor) be advertised.
        Assert.Equal((byte)5, syn.WindowScale);
        // RFC 7323 2.2: the SYN's own window is not scaled.
        Assert.Equal((ushort)65535, syn.Window);
    }

    [Fact]
    public void Syn_mss_follows_a_smaller_path_mtu()
    {
        var h = new TcpHarness();
        h.Ip.Mtu = 1280;
        h.Tcp.Open(out var s);
        h.Tcp.Connect(s, new TcpEndPoint(TcpHarness.RemoteAddress, 80), h.Now);
        Assert.Equal((ushort)1240, h.Next()!.Mss);
    }

    [Fact]
    public void Syn_ack_completes_the_handshake_with_an_ack()
    {
        var (h, s, syn) = Connecting();
        h.Feed(new Seg { SrcPort = 80, DstPort = syn.SrcPort, Seq = 5000, Ack = syn.Seq + 1, Flags = TcpFlags.Syn | TcpFlags.Ack, Window = 1000, Mss = 1000 });
        h.Expect(new Seg { SrcPort = syn.SrcPort, DstPort = 80, Seq = syn.Seq + 1, Ack = 5001, Flags = TcpFlags.Ack });
        Assert.Equal(TcpState.Established, h.Tcp.GetState(s));
        Assert.True(h.Tcp.GetReadiness(s).HasFlag(TcpReadiness.Connected | TcpReadiness.Writable));
        var info = h.Tcp.GetInfo(s);
        Assert.Equal(1000, info.Mss);
        Assert.Equal(1000u, info.SndWnd);
    }

    [Fact]
    public void Data_queued_before_the_handshake_follows_the_ack()
    {
        var (h, s, syn) = Connecting();
        Assert.Equal(TcpError.None, h.Tcp.Send(s, "hello"u8, out int n, h.Now));
        Assert.Equal(5, n);
        h.ExpectNothing();
        h.Feed(new Seg { SrcPort = 80, DstPort = syn.SrcPort, Seq = 5000, Ack = syn.Seq + 1, Flags = TcpFlags.Syn | TcpFlags.Ack, Window = 1000, Mss = 1000 });
        h.Expect(new Seg { SrcPort = syn.SrcPort, DstPort = 80, Seq = syn.Seq + 1, Ack = 5001, Flags = TcpFlags.Ack | TcpFlags.Psh, Payload = "hello"u8.ToArray() });
        h.ExpectNothing();
    }

    [Fact]
    public void Rst_with_an_acceptable_ack_refuses_the_connection()
    {
        var (h, s, syn) = Connecting();
        h.Feed(new Seg { SrcPort = 80, DstPort = syn.SrcPort, Seq = 0, Ack = syn.Seq + 1, Flags = TcpFlags.Rst | TcpFlags.Ack });
        h.ExpectNothing();
        Assert.Equal(TcpState.Closed, h.Tcp.GetState(s));
        Assert.Equal(TcpError.ConnectionRefused, h.Tcp.GetError(s));
        Assert.True(h.Tcp.GetReadiness(s).HasFlag(TcpReadiness.Error));
        Assert.Equal(0, h.Tcp.ConnectionCount);
    }

    [Fact]
    public void Rst_without_ack_is_dropped()
    {
        var (h, s, syn) = Connecting();
        h.Feed(new Seg { SrcPort = 80, DstPort = syn.SrcPort, Seq = 0, Flags = TcpFlags.Rst });
        h.ExpectNothing();
        Assert.Equal(TcpState.SynSent, h.Tcp.GetState(s));
    }

    [Fact]
    public void Rst_with_an_unacceptable_ack_is_dropped()
    {
        var (h, s, syn) = Connecting();
        h.Feed(new Seg { SrcPort = 80, DstPort = syn.SrcPort, Seq = 0, Ack = syn.Seq + 7, Flags = TcpFlags.Rst | TcpFlags.Ack });
        h.ExpectNothing();
        Assert.Equal(TcpState.SynSent, h.Tcp.GetState(s));
    }

    [Fact]
    public void Unacceptable_ack_is_answered_with_a_reset_at_seg_ack()
    {
        // "If SEG.ACK =< ISS or SEG.ACK > SND.NXT, send a reset <SEQ=SEG.ACK><CTL=RST>"
        var (h, s, syn) = Connecting();
        h.Feed(new Seg { SrcPort = 80, DstPort = syn.SrcPort, Seq = 5000, Ack = syn.Seq, Flags = TcpFlags.Syn | TcpFlags.Ack });
        h.Expect(new Seg { SrcPort = syn.SrcPort, DstPort = 80, Seq = syn.Seq, Flags = TcpFlags.Rst, Window = 0 });
        Assert.Equal(TcpState.SynSent, h.Tcp.GetState(s));
    }

    [Fact]
    public void Simultaneous_open_goes_through_syn_received()
    {
        // RFC 9293 3.10.7.3: a SYN without ACK: "enter SYN-RECEIVED, form a SYN,ACK segment <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK>"
        var (h, s, syn) = Connecting();
        h.Feed(new Seg { SrcPort = 80, DstPort = syn.SrcPort, Seq = 7000, Flags = TcpFlags.Syn, Window = 4000, Mss = 1200 });
        h.Expect(new Seg { SrcPort = syn.SrcPort, DstPort = 80, Seq = syn.Seq, Ack = 7001, Flags = TcpFlags.Syn | TcpFlags.Ack, Mss = 1460 });
        Assert.Equal(TcpState.SynReceived, h.Tcp.GetState(s));
        // The peer's SYN-ACK (its answer to our SYN) completes it.
        h.Feed(new Seg { SrcPort = 80, DstPort = syn.SrcPort, Seq = 7001, Ack = syn.Seq + 1, Flags = TcpFlags.Ack, Window = 4000 });
        Assert.Equal(TcpState.Established, h.Tcp.GetState(s));
        h.Tcp.Send(s, "x"u8, out _, h.Now);
        h.Expect(new Seg { SrcPort = syn.SrcPort, DstPort = 80, Seq = syn.Seq + 1, Ack = 7001, Flags = TcpFlags.Ack | TcpFlags.Psh, Payload = "x"u8.ToArray() });
    }

    [Fact]
    public void Syn_is_retransmitted_with_exponential_backoff_then_the_connect_times_out()
    {
        var (h, s, syn) = Connecting(TcpHarness.Plain with { SynRetries = 3 });
        var sent = h.Now;
        var gaps = new List<double>();
        for (int i = 0; i < 3; i++)
        {
            h.RunNextTimer();
            h.Expect(syn);
            gaps.Add((h.Now - sent).TotalSeconds);
            sent = h.Now;
        }
        Assert.Equal([1.0, 2.0, 4.0], gaps);
        h.RunNextTimer();
        h.ExpectNothing();
        Assert.Equal(TcpError.TimedOut, h.Tcp.GetError(s));
        Assert.Equal(TcpState.Closed, h.Tcp.GetState(s));
        Assert.Equal(3, h.Tcp.Counters.RetransmitsTimeout);
    }

    [Fact]
    public void Icmp_port_unreachable_for_our_syn_refuses_the_connection()
    {
        var (h, s, syn) = Connecting();
        var err = new IcmpError(IcmpErrorKind.PortUnreachable, 3, 3, TcpHarness.LocalAddress, TcpHarness.RemoteAddress, syn.SrcPort, 80, syn.Seq, 0);
        h.Tcp.ReceiveIcmpError(err, h.Now);
        Assert.Equal(TcpError.ConnectionRefused, h.Tcp.GetError(s));
    }

    [Fact]
    public void Icmp_error_quoting_a_sequence_number_we_did_not_send_is_ignored()
    {
        // RFC 5927 4.1: the quoted sequence number must be in the send window.
        var (h, s, syn) = Connecting();
        var err = new IcmpError(IcmpErrorKind.Unreachable, 3, 1, TcpHarness.LocalAddress, TcpHarness.RemoteAddress, syn.SrcPort, 80, syn.Seq + 100, 0);
        h.Tcp.ReceiveIcmpError(err, h.Now);
        Assert.Equal(TcpState.SynSent, h.Tcp.GetState(s));
        Assert.Equal(1, h.Tcp.Counters.IcmpErrorsIgnored);
    }

    [Fact]
    public void Soft_icmp_error_is_reported_when_the_connect_times_out()
    {
        var (h, s, syn) = Connecting(TcpHarness.Plain with { SynRetries = 1 });
        var err = new IcmpError(IcmpErrorKind.Soft, 11, 0, TcpHarness.LocalAddress, TcpHarness.RemoteAddress, syn.SrcPort, 80, syn.Seq, 0);
        h.Tcp.ReceiveIcmpError(err, h.Now);
        Assert.Equal(TcpState.SynSent, h.Tcp.GetState(s));
        h.RunNextTimer();
        h.RunNextTimer();
        Assert.Equal(TcpError.HostUnreachable, h.Tcp.GetError(s));
    }

    [Fact]
    public void Close_in_syn_sent_deletes_the_tcb_silently()
    {
        var (h, s, _) = Connecting();
        Assert.Equal(TcpError.None, h.Tcp.Close(s, h.Now));
        h.ExpectNothing();
        Assert.Equal(0, h.Tcp.ConnectionCount);
        Assert.Null(h.Tcp.PollAt);
    }

    [Fact]
    public void Connect_without_a_route_times_out_as_network_unreachable()
    {
        var h = new TcpHarness(TcpHarness.Plain with { SynRetries = 1 });
        h.Ip.Status = IpSendStatus.NoRoute;
        h.Tcp.Open(out var s);
        h.Tcp.Connect(s, new TcpEndPoint(TcpHarness.RemoteAddress, 80), h.Now);
        h.RunNextTimer();
        h.RunNextTimer();
        Assert.Equal(TcpError.NetworkUnreachable, h.Tcp.GetError(s));
    }
}
