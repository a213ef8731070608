using AntHost.Inet.Core.Wire;
using BenchmarkDotNet.Attributes;

namespace AntHost.Inet.Core.Bench;

/// <summary>Parsing and writing the headers of a UDP datagram in a frame (64 bytes of payload).</summary>
[MemoryDiagnoser]
public class HeaderBenchmarks
{
    private static readonly Ipv4Address Src = Ipv4Address.Parse("198.18.0.2"), Dst = Ipv4Address.Parse("198.18.0.1");
    private readonly byte[] _frame = new byte[14 + 20 + 8 + 64];

    [GlobalSetup]
    public void Setup() => WriteHeaders();

    /// <summary>Ethernet + IPv4 (with header checksum) + UDP (with checksum over the pseudo-header) written in place.</summary>
    [Benchmark]
    public void WriteHeaders()
    {
        var f = _frame.AsSpan();
        new UdpHeader(1000, 53, 8 + 64).WriteTo(f[34..], Src, Dst);
        new Ipv4Header(Src, Dst, 17, 20 + 8 + 64, 7, 64).WriteTo(f[14..]);
        new EthernetHeader(MacAddress.Broadcast, new MacAddress(0x0200_0000_0001), EtherType.Ipv4).WriteTo(f);
    }

    /// <summary>What the receive path checks: Ethernet, IPv4 lengths and checksum, UDP length and checksum.</summary>
    [Benchmark]
    public int ParseAndVerify()
    {
        if (!EthernetFrame.TryCreate(_frame, out var eth) || eth.EtherType != EtherType.Ipv4) return -1;
        if (!Ipv4Packet.TryCreate(eth.Payload, out var ip) || !ip.IsChecksumValid) return -2;
        if (!UdpPacket.TryCreate(ip.Payload, out var udp) || !udp.IsChecksumValid(ip.Source, ip.Destination)) return -3;
        return udp.DestinationPort + udp.Payload.Length;
    }
}
