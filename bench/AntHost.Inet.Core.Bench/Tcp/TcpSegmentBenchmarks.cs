using System.Buffers.Binary;
using AntHost.Inet.Core.Buffers;
using AntHost.Inet.Core.Ip;
using AntHost.Inet.Core.Tcp;
using AntHost.Inet.Core.Wire;
using BenchmarkDotNet.Attributes;

namespace AntHost.Inet.Core.Bench.Tcp;

/// <summary>
/// Cost per segment of TCP processing in ESTABLISHED, one side at a time (the AnT paper's
/// "TCP layer" figure: 2.67 us for 256 B on AnT, 1.48 us on FreeBSD). The other side is
/// forged: the send benchmark answers each segment with a pre-formed ACK, the receive
/// benchmark feeds pre-formed data segments whose sequence number and checksum are patched
/// in place (RFC 1624), so what is timed is the layer under test plus one buffer copy
/// standing in for the adapter's DMA. Timestamps, SACK and window scaling are on; the MTU
/// is 1512 so that a 1460-byte payload fits next to the timestamps option.
/// </summary>
[MemoryDiagnoser]
public class TcpSegmentBenchmarks
{
    [Params(256, 1460)]
    public int Payload;

    private BenchPair _p = null!;
    private byte[] _data = null!;
    private byte[] _ack = null!;
    private byte[] _segment = null!;
    private uint _peerSeq, _peerTsVal, _rxSeq;
    private ushort _localPort;

    [GlobalSetup]
    public void Setup()
    {
        _p = new BenchPair(new TcpConfig());
        _data = new byte[Payload];
        new Random(1).NextBytes(_data);
        _localPort = _p.A.GetLocalEndPoint(_p.SocketA).Port;
        var info = _p.A.GetInfo(_p.SocketA);
        _peerSeq = info.RcvNxt;                 // B sends no data: its sequence number stays put
        _peerTsVal = _p.IpB.LastTsVal;
        _ack = new byte[Forge.HeaderLength];

        // The receive side: B gets data "from A" that A never sent; both ends capture from now on.
        _p.IpA.Capture = true;
        _p.IpB.Capture = true;
        var bInfo = _p.B.GetInfo(_p.SocketB);
        _rxSeq = bInfo.RcvNxt;
        _segment = new byte[Forge.HeaderLength + Payload];
        Forge.Header(_segment, _localPort, BenchPair.Port, _rxSeq, bInfo.SndNxt, 0x18, 65535, _p.IpA.LastTsVal, _peerTsVal);
        _data.CopyTo(_segment.AsSpan(Forge.HeaderLength));
        Forge.FillChecksum(_segment, BenchPair.AddressA, BenchPair.AddressB);
        SelfCheck();
    }

    /// <summary>Makes sure each operation does what it claims (one segment out and acknowledged; one segment in and read), or the figures would mean nothing.</summary>
    private void SelfCheck()
    {
        const int N = 100;
        long segments = _p.IpA.Segments;
        for (int i = 0; i < N; i++) SendCopyAndAck();
        for (int i = 0; i < N; i++) SendZeroCopyAndAck();
        if (_p.IpA.Segments - segments != 2 * N || _p.A.GetUnacknowledged(_p.SocketA) != 0 || _p.IpA.LastPayload != Payload)
            throw new InvalidOperationException($"the send benchmark does not send one acknowledged {Payload}-byte segment per operation");
        uint rcvNxt = _p.B.GetInfo(_p.SocketB).RcvNxt;
        for (int i = 0; i < N; i++) Receive();
        if (_p.B.GetInfo(_p.SocketB).RcvNxt - rcvNxt != (uint)(N * Payload) || _p.B.GetAvailable(_p.SocketB) != 0)
            throw new InvalidOperationException("the receive benchmark does not deliver one segment per operation");
    }

    /// <summary>The app writes one segment's worth (copied into the send buffer); the layer segments and sends it; the peer's ACK comes back and frees it.</summary>
    [Benchmark]
    public void SendCopyAndAck()
    {
        _p.Now = new(_p.Now.Microseconds + 10);
        _p.A.Send(_p.SocketA, _data, out _, _p.Now);
        AckLast();
    }

    /// <summary>As <see cref="SendCopyAndAck"/>, with the app's own buffer sent in place (zero copy, lent to IP).</summary>
    [Benchmark]
    public void SendZeroCopyAndAck()
    {
        _p.Now = new(_p.Now.Microseconds + 10);
        var b = _p.PoolA.Rent(TcpLayer.SendHeadroom, Payload)!;
        _data.CopyTo(b.Append(Payload));
        _p.A.Send(_p.SocketA, b, _p.Now);
        AckLast();
    }

    private void AckLast()
    {
        var ip = _p.IpA;
        uint ack = ip.LastSeq + (uint)ip.LastPayload;
        var b = _p.PoolA.Rent(IIpOutput.HeaderRoom, Forge.HeaderLength)!;
        var s = b.Append(Forge.HeaderLength);
        Forge.Header(s, BenchPair.Port, _localPort, _peerSeq, ack, 0x10, 65535, _peerTsVal, ip.LastTsVal);
        Forge.FillChecksum(s, BenchPair.AddressB, BenchPair.AddressA);
        _p.A.Receive(BenchPair.AddressB, BenchPair.AddressA, b, _p.Now);
    }

    /// <summary>A data segment arrives in order; the app takes its payload buffer (zero copy); delayed ACKs go out as due.</summary>
    [Benchmark]
    public void Receive()
    {
        _p.Now = new(_p.Now.Microseconds + 10);
        var s = _segment.AsSpan();
        var b = _p.PoolB.Rent(IIpOutput.HeaderRoom, s.Length)!;
        s.CopyTo(b.Append(s.Length));
        _p.B.Receive(BenchPair.AddressA, BenchPair.AddressB, b, _p.Now);
        if (_p.B.Receive(_p.SocketB, out PacketBuffer? payload, _p.Now) == TcpError.None) payload?.Release();
        _p.B.Poll(_p.Now);

        // The next segment: patch the sequence number and the checksum in place (RFC 1624).
        uint old = _rxSeq, next = old + (uint)Payload;
        _rxSeq = next;
        ushort c = BinaryPrimitives.ReadUInt16BigEndian(s[16..]);
        c = Checksum.Update(c, (ushort)(old >> 16), (ushort)(next >> 16));
        c = Checksum.Update(c, (ushort)old, (ushort)next);
        BinaryPrimitives.WriteUInt32BigEndian(s[4..], next);
        BinaryPrimitives.WriteUInt16BigEndian(s[16..], c);
    }
}
