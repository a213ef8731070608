using AntHost.Inet.Core.Buffers;
using AntHost.Inet.Core.Tcp.Isn;
using AntHost.Inet.Core.Time;
using AntHost.Inet.Core.Wire;

namespace AntHost.Inet.Core.Tcp;

/// <summary>
/// A listener's SYN cookies (RFC 4987 3.6; the encoding is <see cref="SynCookies"/>'): the
/// SYN-ACK answered for a SYN that finds the SYN queue full, and the connection rebuilt from
/// the ACK that returns the cookie. The rebuilt connection is the SYN-RECEIVED child the SYN
/// would have made (ISS = the cookie, the peer's options from the cookie and the ACK's
/// TSecr), and the ACK then takes the same path into ESTABLISHED and the accept queue as any
/// child's.
/// </summary>
internal sealed partial class TcpConnection
{
    private long _lastCookieUs = long.MinValue;

    /// <summary>The SYN queue holds the backlog: a new SYN gets a cookie, if anything.</summary>
    public bool SynQueueFull => _synQueue is not null && _synQueue.Count >= Backlog;

    /// <summary>
    /// True when this listener sent a cookie recently enough for an ACK to carry a valid one
    /// (as Linux's <c>tcp_synq_no_recent_overflow</c>): only then is an ACK to a listener
    /// taken for a cookie; otherwise it is answered with a reset as RFC 9293 says.
    /// </summary>
    public bool CookiesOutstanding(Instant now) =>
        _lastCookieUs != long.MinValue && now.Microseconds - _lastCookieUs <= 2 * Us(SynCookies.KeyLifetime);

    /// <summary>Answers <paramref name="seg"/>, a SYN, with a cookie SYN-ACK; nothing is kept. <paramref name="payload"/> passes in.</summary>
    public void SendCookieSynAck(SynCookies cookies, in Segment seg, PacketBuffer payload, Ipv4Address remote, Ipv4Address local, Instant now)
    {
        payload.Release(); // data on a SYN is not kept
        var o = seg.Options;
        var iss = cookies.Make(local, Local.Port, remote, seg.SourcePort, seg.Seq, o.HasMss ? o.Mss : _cfg.DefaultMss, now, out _);

        // The options the child will have (TakePeerSynOptions, ChooseReceiveScale), offered
        // only where the cookie can bring them back: window scale and SACK need timestamps.
        var synAck = default(TcpOptions);
        int pmtu = _layer.Ip.PathMtu(remote);
        synAck.SetMss((ushort)Math.Clamp(pmtu - 40, _cfg.MinimumMss, 65535));
        bool timestamps = _cfg.Timestamps && o.HasTimestamps;
        if (timestamps)
        {
            bool ws = _cfg.WindowScaling && o.HasWindowScale;
            bool sack = _cfg.Sack && o.SackPermitted;
            if (ws) synAck.SetWindowScale(ReceiveScaleFor(_receiveLimit));
            synAck.SackPermitted = sack;
            uint offset = _layer.Isn.TimestampOffset(local, Local.Port, remote, seg.SourcePort);
            uint tsVal = SynCookies.EncodeTsVal(TimestampClock.TsVal(now, offset), ws ? o.WindowScale : null, sack);
            synAck.SetTimestamps(tsVal, o.TsVal);
        }
        // RFC 7323 2.2: the SYN-ACK's window is not scaled.
        ushort window = (ushort)Math.Min(_receiveLimit, 65535);
        if (_layer.SendControl(local, Local.Port, remote, seg.SourcePort, iss, seg.Seq + 1, TcpFlags.Syn | TcpFlags.Ack, window, in synAck, now))
        {
            _layer.Counters.SynCookiesSent++;
            _lastCookieUs = now.Microseconds;
        }
    }

    /// <summary>
    /// An ACK (no SYN, no RST) to this listener while cookies are outstanding. A valid cookie
    /// makes the connection, which the ACK then takes to ESTABLISHED (returned, for the
    /// layer's bookkeeping); an invalid one is dropped and counted, without the reset RFC
    /// 9293 would send (a flood of forged ACKs gets no answers). <paramref name="payload"/> passes in.
    /// </summary>
    public TcpConnection? AcceptCookie(SynCookies cookies, in Segment ack, PacketBuffer payload, Ipv4Address remote, Ipv4Address local, Instant now)
    {
        var peerIsn = ack.Seq - 1;
        var iss = ack.AckNumber - 1;
        if (!cookies.Check(local, Local.Port, remote, ack.SourcePort, peerIsn, iss, now, out int mss))
        {
            _layer.Drop(payload, TcpDropReason.BadCookie);
            return null;
        }
        if (!HasAcceptRoom)
        {
            // As for any child whose handshake finds the accept queue full: the ACK is forgotten.
            // The peer believes it is connected and will send again (data, or its ACK again),
            // and the cookie stays good for a key lifetime or two.
            _layer.Drop(payload, TcpDropReason.BacklogFull);
            return null;
        }

        // The SYN the cookie stands for: its sequence number, the MSS from the cookie, and,
        // when the ACK carries timestamps, window scale and SACK from its TSecr and its TSval as
        // TS.Recent (the SYN's own TSval is gone; the ACK's is no older).
        var synOptions = default(TcpOptions);
        synOptions.SetMss((ushort)mss);
        if (_cfg.Timestamps && ack.Options.HasTimestamps)
        {
            SynCookies.DecodeTsEcr(ack.Options.TsEcr, out var ws, out bool sack);
            if (ws is { } shift && _cfg.WindowScaling) synOptions.SetWindowScale(shift);
            synOptions.SackPermitted = sack && _cfg.Sack;
            synOptions.SetTimestamps(ack.Options.TsVal, 0);
        }
        var syn = new Segment(ack.SourcePort, ack.DestinationPort, peerIsn, default, TcpFlags.Syn, ack.Window, 0, in synOptions);

        if (AddChild(local, remote, ack.SourcePort) is not { } child)
        {
            payload.Release();
            return null;
        }
        _layer.Counters.SynCookiesAccepted++;

        // StartPassiveOpen, with the cookie for ISS and the SYN-ACK already sent.
        child.InitSendSpace(now);
        child._iss = iss;
        child._sndUna = iss;
        child._sndNxt = iss + 1;
        child._sndMax = iss + 1;
        child._send.Reset(iss + 1);
        child.ChooseReceiveScale();
        child.State = TcpState.SynReceived;
        child.AcceptPeerSyn(in syn, now);
        child.SetSendWindow(ack.Window, peerIsn, default, scaled: false);

        child.Input(in ack, payload, now);
        if (child.State == TcpState.SynReceived)
        {
            // The ACK did not complete it (nothing the cookie check lets through should do
            // this): nothing would retransmit a SYN-ACK for it, so it goes at once.
            child.EnterClosed(TcpError.None);
        }
        return child;
    }

    /// <summary><see cref="ChooseReceiveScale"/> for a receive buffer of <paramref name="receiveLimit"/> bytes.</summary>
    private byte ReceiveScaleFor(int receiveLimit)
    {
        byte shift = 0;
        while (shift < TcpOptions.MaxWindowScale && ((long)receiveLimit >> shift) > 65535) shift++;
        return shift;
    }
}
