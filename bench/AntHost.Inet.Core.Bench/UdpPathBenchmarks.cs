using AntHost.Inet.Core.Buffers;
using AntHost.Inet.Core.Iface;
using AntHost.Inet.Core.Randomness;
using AntHost.Inet.Core.Time;
using AntHost.Inet.Core.Udp;
using AntHost.Inet.Core.Wire;
using BenchmarkDotNet.Attributes;

namespace AntHost.Inet.Core.Bench;

/// <summary>
/// A UDP datagram through the whole Interface: received (frame in, validated, demultiplexed,
/// queued on the socket, taken by the reader, released) and sent (headers written in place,
/// ARP hit, queued, taken by the "adapter", released). The frame copy into the buffer, which
/// the NIC driver does on receive, is measured apart as its own baseline.
/// </summary>
[MemoryDiagnoser]
public class UdpPathBenchmarks
{
    private static readonly MacAddress OurMac = new(0x0200_0000_0001), PeerMac = new(0x0200_0000_0002);
    private static readonly Ipv4Address OurIp = Ipv4Address.Parse("198.18.0.1"), PeerIp = Ipv4Address.Parse("198.18.0.2");

    private HeapBufferPool _pool = null!;
    private Interface _iface = null!;
    private UdpSocket _socket = null!;
    private byte[] _frame = [];
    private Instant _now = Instant.FromMilliseconds(1);

    [Params(64, 1472)]
    public int Payload { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _pool = new HeapBufferPool(2048);
        _iface = new Interface(new InterfaceConfig
        {
            Mac = OurMac,
            Address = OurIp,
            PrefixLength = 24,
            Pool = _pool,
            Random = new SeededRandom(1),
            Arp = new ArpConfig { Announcements = 0, ReachableTime = TimeSpan.FromDays(1) },
        });
        _iface.Up(_now);
        _socket = _iface.Udp.Open();
        _socket.Bind(53);

        // The peer's MAC, learned as from its ARP reply.
        var arp = new byte[60];
        new EthernetHeader(OurMac, PeerMac, EtherType.Arp).WriteTo(arp);
        new ArpHeader(ArpOperation.Request, PeerMac, PeerIp, MacAddress.Zero, OurIp).WriteTo(arp.AsSpan(14));
        Receive(arp);
        while (_iface.TryDequeueTransmit(out var f)) f.FinishTransmit();
        _socket.SendTo(new byte[1], PeerIp, 9, _now); // confirms the entry
        while (_iface.TryDequeueTransmit(out var f)) f.FinishTransmit();

        _frame = new byte[14 + 20 + 8 + Payload];
        new Randomness.SeededRandom(2).NextBytes(_frame.AsSpan(42));
        new UdpHeader(4000, 53, (ushort)(8 + Payload)).WriteTo(_frame.AsSpan(34), PeerIp, OurIp);
        new Ipv4Header(PeerIp, OurIp, 17, (ushort)(28 + Payload), 1, 64).WriteTo(_frame.AsSpan(14));
        new EthernetHeader(OurMac, PeerMac, EtherType.Ipv4).WriteTo(_frame);
    }

    private void Receive(byte[] frame)
    {
        var b = _pool.Rent(64, frame.Length)!;
        frame.CopyTo(b.Append(frame.Length));
        _iface.Receive(b, _now);
    }

    [Benchmark(Baseline = true)]
    public void CopyFrameOnly()
    {
        var b = _pool.Rent(64, _frame.Length)!;
        _frame.CopyTo(b.Append(_frame.Length));
        b.Release();
    }

    [Benchmark]
    public int ReceiveDatagram()
    {
        Receive(_frame);
        _socket.TryReceiveFrom(out var d);
        int n = d.Payload.Length;
        d.Payload.Release();
        return n;
    }

    [Benchmark]
    public int SendDatagram()
    {
        var b = _pool.Rent(UdpSocket.HeaderRoom, Payload)!;
        b.Append(Payload);
        _socket.SendTo(b, PeerIp, 4000, _now);
        _iface.TryDequeueTransmit(out var f);
        int n = f.Length;
        f.FinishTransmit();
        return n;
    }
}
