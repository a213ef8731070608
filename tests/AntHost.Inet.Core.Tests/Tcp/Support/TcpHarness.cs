using AntHost.Inet.Core.Buffers;
using AntHost.Inet.Core.Ip;
using AntHost.Inet.Core.Randomness;
using AntHost.Inet.Core.Tcp;
using AntHost.Inet.Core.Time;
using AntHost.Inet.Core.Wire;

namespace AntHost.Inet.Core.Tests.Tcp.Support;

/// <summary>
/// A TCP segment as the tests write and read it: the template for what is fed in and for
/// what is expected out (<c>Expected with { Seq = ... }</c>, as smoltcp's tests do).
/// Null fields of an expectation match anything (the window, a timestamp value).
/// </summary>
public sealed record Seg
{
    public ushort SrcPort { get; init; }
    public ushort DstPort { get; init; }
    public uint Seq { get; init; }
    public uint Ack { get; init; }
    public TcpFlags Flags { get; init; }
    public ushort? Window { get; init; }
    public byte[] Payload { get; init; } = [];
    public ushort? Mss { get; init; }
    public byte? WindowScale { get; init; }
    public bool SackPermitted { get; init; }
    public bool Timestamps { get; init; }
    public uint? TsVal { get; init; }
    public uint? TsEcr { get; init; }
    public SackBlock[] Sack { get; init; } = [];

    public override string ToString()
    {
        var o = new List<string>();
        if (Mss is { } m) o.Add($"mss={m}");
        if (WindowScale is { } w) o.Add($"ws={w}");
        if (SackPermitted) o.Add("sackOK");
        if (Timestamps) o.Add($"ts={TsVal}/{TsEcr}");
        if (Sack.Length > 0) o.Add("sack=" + string.Join(",", Sack.Select(b => $"{b.Left}-{b.Right}")));
        return $"{SrcPort}->{DstPort} [{Flags}] seq={Seq} ack={Ack} win={Window} len={Payload.Length} {string.Join(" ", o)}";
    }

    /// <summary>Parses a segment the layer sent (checking its checksum, unless the transmitter is to finish it: an offloaded send).</summary>
    public static Seg Parse(ReadOnlySpan<byte> bytes, Ipv4Address src, Ipv4Address dst, bool checksum = true)
    {
        Assert.True(TcpHeader.TryCreate(bytes, out var h), "the layer sent a malformed TCP segment");
        Assert.True(!checksum || h.IsChecksumValid(src, dst), "the layer sent a segment with a bad checksum");
        var o = h.Options;
        var sack = new SackBlock[o.SackCount];
        for (int i = 0; i < sack.Length; i++) sack[i] = o.GetSack(i);
        return new Seg
        {
            SrcPort = h.SourcePort,
            DstPort = h.DestinationPort,
            Seq = h.Sequence.Value,
            Ack = h.Acknowledgment.Value,
            Flags = h.Flags,
            Window = h.Window,
            Payload = h.Payload.ToArray(),
            Mss = o.HasMss ? o.Mss : null,
            WindowScale = o.HasWindowScale ? o.WindowScale : null,
            SackPermitted = o.SackPermitted,
            Timestamps = o.HasTimestamps,
            TsVal = o.HasTimestamps ? o.TsVal : null,
            TsEcr = o.HasTimestamps ? o.TsEcr : null,
            Sack = sack,
        };
    }

    /// <summary>Writes this segment into a pool buffer, with a correct checksum unless <paramref name="corrupt"/>.</summary>
    public PacketBuffer Build(IPacketBufferPool pool, Ipv4Address src, Ipv4Address dst, bool corrupt = false)
    {
        var opt = default(TcpOptions);
        if (Mss is { } m) opt.SetMss(m);
        if (WindowScale is { } w) opt.SetWindowScale(w);
        opt.SackPermitted = SackPermitted;
        if (Timestamps) opt.SetTimestamps(TsVal ?? 0, TsEcr ?? 0);
        foreach (var b in Sack) opt.AddSack(b);
        int hlen = TcpHeaderFields.LengthWith(opt);
        var buf = pool.Rent(IIpOutput.HeaderRoom + hlen, Payload.Length) ?? throw new InvalidOperationException("test pool exhausted");
        Payload.CopyTo(buf.Append(Payload.Length));
        var header = buf.Prepend(hlen);
        new TcpHeaderFields(SrcPort, DstPort, new SeqNumber(Seq), new SeqNumber(Ack), Flags, Window ?? 65535).WriteTo(header, opt);
        TcpHeaderFields.FillChecksum(buf.Data, src, dst);
        if (corrupt) buf.Data[^1] ^= 0x40;
        if (corrupt && Payload.Length == 0) buf.Data[TcpHeader.Field.Window] ^= 0x01;
        return buf;
    }
}

/// <summary>An IP layer that records what TCP sends, hands buffers back at once (or holds lent ones), and has one address.</summary>
public sealed class FakeIp : IIpOutput
{
    public readonly List<(Ipv4Address Src, Ipv4Address Dst, byte[] Bytes)> Sent = new();
    public readonly List<PacketBuffer> Held = new();
    public int Mtu = 1500;
    public Ipv4Address Address;
    public bool HoldLentBuffers;
    public int LentSends;
    public IpSendStatus Status = IpSendStatus.Sent;

    public int PathMtu(Ipv4Address destination) => Mtu;

    public Ipv4Address SourceFor(Ipv4Address destination) => Address;

    public bool IsLocal(Ipv4Address address) => address == Address;

    public IpSendStatus Send(Ipv4Address source, Ipv4Address destination, IpProtocol protocol, PacketBuffer packet, in IpSendOptions options, Instant now)
    {
        Assert.Equal(IpProtocol.Tcp, protocol);
        Assert.True(options.Ttl == 64 && options.DontFragment, $"TCP asked IP for TTL {options.Ttl}, DF {options.DontFragment}");
        Assert.True(packet.Headroom >= IIpOutput.HeaderRoom, "TCP left less headroom than IP and Ethernet need");
        Sent.Add((source, destination, packet.Data.ToArray()));
        if (packet.IsLent) LentSends++;
        // What the IP layer does to a buffer: prepend its header in the headroom.
        packet.Prepend(IIpOutput.HeaderRoom);
        if (HoldLentBuffers && packet.IsLent) Held.Add(packet);
        else packet.FinishTransmit();
        return Status;
    }

    public void ReleaseHeld()
    {
        foreach (var b in Held) b.FinishTransmit();
        Held.Clear();
    }
}

/// <summary>A connection built by a fixture, with its sequence numbers and segment templates.</summary>
public sealed class Conn
{
    public TcpSocket Socket;
    public ushort LocalPort;
    public uint LocalIss;
    public uint RemoteIss;

    /// <summary>What the layer sends: an ACK from the local port, at the current sequence numbers.</summary>
    public Seg Out = new();

    /// <summary>What the test feeds: an ACK from the remote port.</summary>
    public Seg In = new();

    /// <summary>Local SND.NXT and the peer's next sequence number, kept by the tests.</summary>
    public uint SndNxt => Out.Seq;

    public uint RcvNxt => Out.Ack;
}

/// <summary>
/// One TcpLayer against a fake IP layer, with a virtual clock: feed segments, poll timers,
/// and check the exact segments that come out.
/// </summary>
public sealed class TcpHarness
{
    public static readonly Ipv4Address LocalAddress = new(198, 18, 0, 1);
    public static readonly Ipv4Address RemoteAddress = new(198, 18, 0, 2);
    public const ushort ServerPort = 80;
    public const ushort RemotePort = 40000;
    public const uint RemoteIss = 1_000_000;

    public readonly FakeIp Ip = new() { Address = LocalAddress };
    public readonly HeapBufferPool Pool;
    public readonly TcpLayer Tcp;
    public Instant Now = Instant.FromMilliseconds(10_000);
    private int _read;

    /// <summary>Options off, so that the segments are the RFC 9293 basics; tests of options turn them on.</summary>
    public static TcpConfig Plain => new()
    {
        Timestamps = false,
        Sack = false,
        WindowScaling = false,
        ReceiveBufferSize = 65535,
        SendBufferSize = 256 * 1024,
        CongestionControl = CongestionControlKind.NewReno,
    };

    public TcpHarness(TcpConfig? config = null, int bufferSize = 4096)
    {
        Pool = new HeapBufferPool(bufferSize);
        Tcp = new TcpLayer(Ip, Pool, new SeededRandom(7), config ?? Plain);
    }

    // ------------------------------------------------------------ feeding and reading

    public void Feed(Seg s, bool corrupt = false, Ipv4Address? from = null) =>
        Tcp.Receive(from ?? RemoteAddress, LocalAddress, s.Build(Pool, from ?? RemoteAddress, LocalAddress, corrupt), Now);

    /// <summary>The next segment the layer sent, or null.</summary>
    public Seg? Next()
    {
        if (_read >= Ip.Sent.Count) return null;
        var (src, dst, bytes) = Ip.Sent[_read++];
        return Seg.Parse(bytes, src, dst);
    }

    /// <summary>
    /// Asserts the next send is an offloaded one matching <paramref name="expected"/> in its
    /// header: the payload is lent to the transmitter as a fragment (not in the header's buffer),
    /// and the checksum is the transmitter's to finish.
    /// </summary>
    public Seg ExpectOffloaded(Seg expected)
    {
        Assert.True(_read < Ip.Sent.Count, $"expected {expected}, nothing was sent");
        var (src, dst, bytes) = Ip.Sent[_read++];
        var actual = Seg.Parse(bytes, src, dst, checksum: false);
        AssertMatches(expected with { Payload = [] }, actual);
        return actual;
    }

    /// <summary>Asserts the next segment sent matches <paramref name="expected"/> and returns it.</summary>
    public Seg Expect(Seg expected)
    {
        var actual = Next();
        Assert.True(actual is not null, $"expected {expected}, nothing was sent");
        AssertMatches(expected, actual!);
        return actual!;
    }

    public void ExpectNothing()
    {
        var actual = Next();
        Assert.True(actual is null, $"expected nothing, the layer sent {actual}");
    }

    /// <summary>Skips everything sent so far.</summary>
    public void Drain() => _read = Ip.Sent.Count;

    public static void AssertMatches(Seg e, Seg a)
    {
        string ctx = $"\n expected {e}\n   actual {a}";
        Assert.True(e.SrcPort == a.SrcPort, "source port" + ctx);
        Assert.True(e.DstPort == a.DstPort, "destination port" + ctx);
        Assert.True(e.Flags == a.Flags, "flags" + ctx);
        Assert.True(e.Seq == a.Seq, "sequence number" + ctx);
        Assert.True(e.Ack == a.Ack, "acknowledgment number" + ctx);
        if (e.Window is { } w) Assert.True(w == a.Window, "window" + ctx);
        Assert.True(e.Payload.AsSpan().SequenceEqual(a.Payload), "payload" + ctx);
        Assert.True(e.Mss == a.Mss, "MSS option" + ctx);
        Assert.True(e.WindowScale == a.WindowScale, "window scale option" + ctx);
        Assert.True(e.SackPermitted == a.SackPermitted, "SACK-permitted option" + ctx);
        Assert.True(e.Timestamps == a.Timestamps, "timestamps option" + ctx);
        if (e.TsVal is { } tv) Assert.True(tv == a.TsVal, "TSval" + ctx);
        if (e.TsEcr is { } te) Assert.True(te == a.TsEcr, "TSecr" + ctx);
        Assert.True(e.Sack.AsSpan().SequenceEqual(a.Sack), "SACK blocks" + ctx);
    }

    /// <summary>Moves the clock and runs the timers.</summary>
    public void Advance(TimeSpan d)
    {
        Now += d;
        Tcp.Poll(Now);
    }

    /// <summary>Jumps to the layer's next deadline and runs it.</summary>
    public void RunNextTimer()
    {
        var at = Tcp.PollAt;
        Assert.True(at is not null, "no timer is armed");
        if (at!.Value > Now) Now = at.Value;
        Tcp.Poll(Now);
    }

    public static byte[] Bytes(int n, int seed = 0)
    {
        var b = new byte[n];
        for (int i = 0; i < n; i++) b[i] = (byte)(i * 7 + seed);
        return b;
    }

    // ------------------------------------------------------------ fixtures

    public TcpSocket Listen(ushort port = ServerPort, int backlog = 8)
    {
        Assert.Equal(TcpError.None, Tcp.Open(out var s));
        Assert.Equal(TcpError.None, Tcp.Bind(s, new TcpEndPoint(LocalAddress, port)));
        Assert.Equal(TcpError.None, Tcp.Listen(s, backlog));
        return s;
    }

    /// <summary>The peer's SYN to the listener.</summary>
    public static Seg PeerSyn(ushort remotePort = RemotePort, uint iss = RemoteIss) =>
        new() { SrcPort = remotePort, DstPort = ServerPort, Seq = iss, Flags = TcpFlags.Syn, Window = 65535, Mss = 1460 };

    /// <summary>
    /// A connection accepted from a listener: SYN in, SYN-ACK out, ACK in, accept. The peer
    /// offers a 65535-byte window and MSS 1460; no options unless <paramref name="peerSyn"/> says.
    /// The peer's ACK arrives <paramref name="rtt"/> after the SYN-ACK left (the first RTT sample).
    /// </summary>
    public Conn Established(Seg? peerSyn = null, TcpSocket? listener = null, TimeSpan rtt = default)
    {
        var l = listener ?? Listen();
        var syn = peerSyn ?? PeerSyn();
        Feed(syn);
        var synAck = Next();
        Assert.NotNull(synAck);
        Assert.Equal(TcpFlags.Syn | TcpFlags.Ack, synAck!.Flags);
        var c = new Conn { LocalPort = ServerPort, LocalIss = synAck.Seq, RemoteIss = syn.Seq };
        c.In = new Seg { SrcPort = syn.SrcPort, DstPort = ServerPort, Seq = syn.Seq + 1, Ack = synAck.Seq + 1, Flags = TcpFlags.Ack, Window = syn.Window };
        c.Out = new Seg { SrcPort = ServerPort, DstPort = syn.SrcPort, Seq = synAck.Seq + 1, Ack = syn.Seq + 1, Flags = TcpFlags.Ack };
        var ack = c.In;
        if (syn.Timestamps) ack = ack with { Timestamps = true, TsVal = (syn.TsVal ?? 0) + 1, TsEcr = synAck.TsVal };
        Now += rtt;
        Feed(ack);
        Assert.Equal(TcpError.None, Tcp.Accept(l, out c.Socket));
        Assert.Equal(TcpState.Established, Tcp.GetState(c.Socket));
        ExpectNothing();
        return c;
    }

    /// <summary>An active open: connect, SYN out, SYN-ACK in, ACK out.</summary>
    public Conn Connected(ushort peerWindow = 65535, ushort peerMss = 1460)
    {
        Assert.Equal(TcpError.None, Tcp.Open(out var s));
        Assert.Equal(TcpError.None, Tcp.Connect(s, new TcpEndPoint(RemoteAddress, ServerPort), Now));
        var syn = Next();
        Assert.NotNull(syn);
        var c = new Conn { Socket = s, LocalPort = syn!.SrcPort, LocalIss = syn.Seq, RemoteIss = RemoteIss };
        Feed(new Seg { SrcPort = ServerPort, DstPort = syn.SrcPort, Seq = RemoteIss, Ack = syn.Seq + 1, Flags = TcpFlags.Syn | TcpFlags.Ack, Window = peerWindow, Mss = peerMss });
        c.Out = new Seg { SrcPort = syn.SrcPort, DstPort = ServerPort, Seq = syn.Seq + 1, Ack = RemoteIss + 1, Flags = TcpFlags.Ack };
        c.In = new Seg { SrcPort = ServerPort, DstPort = syn.SrcPort, Seq = RemoteIss + 1, Ack = syn.Seq + 1, Flags = TcpFlags.Ack, Window = peerWindow };
        Expect(c.Out);
        Assert.Equal(TcpState.Established, Tcp.GetState(s));
        return c;
    }

    /// <summary>ESTABLISHED, then the app closes: FIN-WAIT-1 with the FIN sent.</summary>
    public Conn FinWait1()
    {
        var c = Established();
        Assert.Equal(TcpError.None, Tcp.Shutdown(c.Socket, Now));
        Expect(c.Out with { Flags = TcpFlags.Fin | TcpFlags.Ack });
        Assert.Equal(TcpState.FinWait1, Tcp.GetState(c.Socket));
        return c;
    }

    /// <summary>FIN-WAIT-1, then the peer acknowledges the FIN: FIN-WAIT-2.</summary>
    public Conn FinWait2()
    {
        var c = FinWait1();
        Feed(c.In with { Ack = c.Out.Seq + 1 });
        ExpectNothing();
        Assert.Equal(TcpState.FinWait2, Tcp.GetState(c.Socket));
        c.Out = c.Out with { Seq = c.Out.Seq + 1 };
        c.In = c.In with { Ack = c.Out.Seq };
        return c;
    }

    /// <summary>ESTABLISHED, then the peer's FIN: CLOSE-WAIT (the FIN acknowledged).</summary>
    public Conn CloseWait()
    {
        var c = Established();
        Feed(c.In with { Flags = TcpFlags.Fin | TcpFlags.Ack });
        c.Out = c.Out with { Ack = c.Out.Ack + 1 };
        c.In = c.In with { Seq = c.In.Seq + 1 };
        Expect(c.Out);
        Assert.Equal(TcpState.CloseWait, Tcp.GetState(c.Socket));
        return c;
    }

    /// <summary>CLOSE-WAIT, then the app closes: LAST-ACK with the FIN sent.</summary>
    public Conn LastAck()
    {
        var c = CloseWait();
        Assert.Equal(TcpError.None, Tcp.Shutdown(c.Socket, Now));
        Expect(c.Out with { Flags = TcpFlags.Fin | TcpFlags.Ack });
        Assert.Equal(TcpState.LastAck, Tcp.GetState(c.Socket));
        return c;
    }

    /// <summary>FIN-WAIT-1, then the peer's FIN without an ACK of ours: CLOSING (simultaneous close).</summary>
    public Conn Closing()
    {
        var c = FinWait1();
        Feed(c.In with { Flags = TcpFlags.Fin | TcpFlags.Ack });
        Expect(c.Out with { Seq = c.Out.Seq + 1, Ack = c.Out.Ack + 1 });
        Assert.Equal(TcpState.Closing, Tcp.GetState(c.Socket));
        c.Out = c.Out with { Seq = c.Out.Seq + 1, Ack = c.Out.Ack + 1 };
        c.In = c.In with { Seq = c.In.Seq + 1 };
        return c;
    }

    /// <summary>FIN-WAIT-2, then the peer's FIN: TIME-WAIT.</summary>
    public Conn TimeWait()
    {
        var c = FinWait2();
        Feed(c.In with { Flags = TcpFlags.Fin | TcpFlags.Ack });
        c.Out = c.Out with { Ack = c.Out.Ack + 1 };
        c.In = c.In with { Seq = c.In.Seq + 1 };
        Expect(c.Out);
        Assert.Equal(TcpState.TimeWait, Tcp.GetState(c.Socket));
        return c;
    }

    /// <summary>Reads everything available as bytes.</summary>
    public byte[] ReadAll(TcpSocket s)
    {
        var ms = new MemoryStream();
        var buf = new byte[65536];
        while (Tcp.Receive(s, buf, out int n, Now) == TcpError.None && n > 0) ms.Write(buf, 0, n);
        return ms.ToArray();
    }
}
