using System.Buffers.Binary;
using AntHost.Inet.Core.Buffers;
using AntHost.Inet.Core.Ip;
using AntHost.Inet.Core.Randomness;
using AntHost.Inet.Core.Tcp;
using AntHost.Inet.Core.Time;
using AntHost.Inet.Core.Wire;

namespace AntHost.Inet.Core.Bench.Tcp;

/// <summary>
/// The IP layer under a benchmarked TCP layer: a perfect link (a ring of preallocated frames,
/// no delay, no loss) to the other layer, or, in capture mode, a sink that only notes what was
/// sent (sequence number, length, TSval) so that a benchmark can forge the peer's answer.
/// Either way no allocation happens per segment.
/// </summary>
internal sealed class BenchIp(Ipv4Address local, Ipv4Address peer, int mtu) : IIpOutput
{
    private const int Slots = 8192;
    private readonly byte[][] _ring = CreateRing();
    private readonly int[] _lengths = new int[Slots];
    private int _head, _tail;

    public bool Capture { get; set; }

    public long Segments;
    public uint LastSeq;
    public int LastPayload;
    public uint LastTsVal;

    public Ipv4Address Local => local;

    public int PathMtu(Ipv4Address destination) => mtu;

    public Ipv4Address SourceFor(Ipv4Address destination) => destination == peer ? local : Ipv4Address.Any;

    public bool IsLocal(Ipv4Address address) => address == local;

    public IpSendStatus Send(Ipv4Address source, Ipv4Address destination, IpProtocol protocol, PacketBuffer packet, in IpSendOptions options, Instant now)
    {
        Segments++;
        var data = packet.Data;
        Note(data);
        if (!Capture)
        {
            if (_tail - _head == Slots) throw new InvalidOperationException("the benchmark link is full: pump it more often");
            int slot = _tail++ & (Slots - 1);
            data.CopyTo(_ring[slot]);
            _lengths[slot] = data.Length;
        }
        packet.FinishTransmit();
        return IpSendStatus.Sent;
    }

    /// <summary>Delivers every queued segment to <paramref name="to"/>, each in a buffer of <paramref name="pool"/>; returns how many.</summary>
    public int DeliverTo(TcpLayer to, IPacketBufferPool pool, Instant now)
    {
        int n = 0;
        while (_head != _tail)
        {
            int slot = _head++ & (Slots - 1);
            int len = _lengths[slot];
            var b = pool.Rent(IIpOutput.HeaderRoom, len) ?? throw new InvalidOperationException("pool exhausted");
            _ring[slot].AsSpan(0, len).CopyTo(b.Append(len));
            to.Receive(local, peer, b, now);
            n++;
        }
        return n;
    }

    private void Note(ReadOnlySpan<byte> s)
    {
        if (s.Length < 20) return;
        LastSeq = BinaryPrimitives.ReadUInt32BigEndian(s[4..]);
        int hl = (s[12] >> 4) * 4;
        LastPayload = s.Length - hl;
        // Timestamps are written by this stack as NOP NOP TS(10) right after the header, or after MSS etc. on a SYN.
        for (int i = 20; i + 10 <= hl;)
        {
            byte kind = s[i];
            if (kind == 0) break;
            if (kind == 1) { i++; continue; }
            int len = s[i + 1];
            if (len < 2) break;
            if (kind == 8 && len == 10) { LastTsVal = BinaryPrimitives.ReadUInt32BigEndian(s[(i + 2)..]); break; }
            i += len;
        }
    }

    private static byte[][] CreateRing()
    {
        var r = new byte[Slots][];
        for (int i = 0; i < Slots; i++) r[i] = new byte[2048];
        return r;
    }
}

/// <summary>Two TCP layers with one established connection between them, over <see cref="BenchIp"/>.</summary>
internal sealed class BenchPair
{
    public static readonly Ipv4Address AddressA = Ipv4Address.Parse("198.18.0.1");
    public static readonly Ipv4Address AddressB = Ipv4Address.Parse("198.18.0.2");
    public const ushort Port = 5001;

    public readonly HeapBufferPool PoolA = new(4096), PoolB = new(4096);
    public readonly BenchIp IpA, IpB;
    public readonly TcpLayer A, B;
    public readonly TcpSocket SocketA, SocketB;
    public Instant Now = Instant.FromMilliseconds(1000);

    /// <param name="mtu">1512 leaves a 1460-byte payload next to the 12 bytes of timestamps.</param>
    public BenchPair(TcpConfig config, int mtu = 1512)
    {
        IpA = new BenchIp(AddressA, AddressB, mtu);
        IpB = new BenchIp(AddressB, AddressA, mtu);
        A = new TcpLayer(IpA, PoolA, new SeededRandom(1), config);
        B = new TcpLayer(IpB, PoolB, new SeededRandom(2), config);
        Check(B.Open(out var listener));
        Check(B.Bind(listener, new TcpEndPoint(AddressB, Port)));
        Check(B.Listen(listener, 1));
        Check(A.Open(out SocketA));
        Check(A.SetOption(SocketA, TcpOption.NoDelay, 1, Now));
        Check(A.Connect(SocketA, new TcpEndPoint(AddressB, Port), Now));
        TcpSocket accepted = default;
        for (int i = 0; i < 100 && accepted == default; i++)
        {
            Pump();
            if (B.Accept(listener, out var s) == TcpError.None) accepted = s;
        }
        if (accepted == default || A.GetState(SocketA) != TcpState.Established) throw new InvalidOperationException("the benchmark connection did not establish");
        SocketB = accepted;
        Check(B.SetOption(SocketB, TcpOption.NoDelay, 1, Now));
        Check(B.Close(listener, Now));
        Pump();
    }

    /// <summary>Moves the clock a little, delivers both ways until quiet, and runs due timers.</summary>
    public void Pump(long microseconds = 10)
    {
        Now = new Instant(Now.Microseconds + microseconds);
        while (IpA.DeliverTo(B, PoolB, Now) + IpB.DeliverTo(A, PoolA, Now) > 0) { }
        A.Poll(Now);
        B.Poll(Now);
        while (IpA.DeliverTo(B, PoolB, Now) + IpB.DeliverTo(A, PoolA, Now) > 0) { }
    }

    public static void Check(TcpError e)
    {
        if (e != TcpError.None) throw new InvalidOperationException($"benchmark setup failed: {e}");
    }
}

/// <summary>Writes the segments a benchmark forges as the peer: header, timestamps, checksum.</summary>
internal static class Forge
{
    /// <summary>Header length of a forged segment: 20 + NOP NOP TS.</summary>
    public const int HeaderLength = 32;

    public static void Header(Span<byte> s, ushort sport, ushort dport, uint seq, uint ack, byte flags, ushort window, uint tsVal, uint tsEcr)
    {
        BinaryPrimitives.WriteUInt16BigEndian(s, sport);
        BinaryPrimitives.WriteUInt16BigEndian(s[2..], dport);
        BinaryPrimitives.WriteUInt32BigEndian(s[4..], seq);
        BinaryPrimitives.WriteUInt32BigEndian(s[8..], ack);
        s[12] = HeaderLength / 4 << 4;
        s[13] = flags;
        BinaryPrimitives.WriteUInt16BigEndian(s[14..], window);
        BinaryPrimitives.WriteUInt32BigEndian(s[16..], 0);
        s[20] = 1; s[21] = 1; s[22] = 8; s[23] = 10;
        BinaryPrimitives.WriteUInt32BigEndian(s[24..], tsVal);
        BinaryPrimitives.WriteUInt32BigEndian(s[28..], tsEcr);
    }

    public static void FillChecksum(Span<byte> segment, Ipv4Address source, Ipv4Address destination)
    {
        BinaryPrimitives.WriteUInt16BigEndian(segment[16..], 0);
        ushort pseudo = Checksum.PseudoHeader(source, destination, 6, (ushort)segment.Length);
        BinaryPrimitives.WriteUInt16BigEndian(segment[16..], Checksum.Compute(segment, pseudo));
    }
}
