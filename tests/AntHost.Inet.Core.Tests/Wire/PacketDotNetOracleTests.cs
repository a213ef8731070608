using System.Net;
using System.Net.NetworkInformation;
using AntHost.Inet.Core.Randomness;
using AntHost.Inet.Core.Wire;
using PacketDotNet;
using PacketDotNet.Utils;

namespace AntHost.Inet.Core.Tests.Wire;

/// <summary>
/// Random headers written by the stack and read by PacketDotNet, and the other way round:
/// PacketDotNet is an independent implementation, so agreement is evidence, not an echo.
/// </summary>
public class PacketDotNetOracleTests
{
    private const int Rounds = 300;

    private static PhysicalAddress Phys(MacAddress m)
    {
        var b = new byte[6];
        m.WriteTo(b);
        return new PhysicalAddress(b);
    }

    private static MacAddress Mac(PhysicalAddress p) => MacAddress.Read(p.GetAddressBytes());

    private static IPAddress Ip(Ipv4Address a)
    {
        var b = new byte[4];
        a.WriteTo(b);
        return new IPAddress(b);
    }

    private static Ipv4Address Ip(IPAddress a) => Ipv4Address.Read(a.GetAddressBytes());

    private static MacAddress RandomMac(SeededRandom r) => new(((ulong)r.NextUInt32() << 16 | (r.NextUInt32() & 0xFFFF)) & 0xFEFF_FFFF_FFFF);

    private static Ipv4Address RandomIp(SeededRandom r) => new(r.NextUInt32());

    [Fact]
    public void Ethernet_and_arp_ours_to_packetdotnet()
    {
        var r = new SeededRandom(1);
        for (int i = 0; i < Rounds; i++)
        {
            var arp = new ArpHeader(r.Next(2) == 0 ? Core.Wire.ArpOperation.Request : Core.Wire.ArpOperation.Reply, RandomMac(r), RandomIp(r), RandomMac(r), RandomIp(r));
            var eth = new EthernetHeader(RandomMac(r), RandomMac(r), EtherType.Arp);
            var frame = new byte[14 + 28];
            eth.WriteTo(frame);
            arp.WriteTo(frame.AsSpan(14));

            var parsed = Packet.ParsePacket(LinkLayers.Ethernet, frame);
            var pe = parsed.Extract<EthernetPacket>();
            Assert.Equal(eth.Destination, Mac(pe.DestinationHardwareAddress));
            Assert.Equal(eth.Source, Mac(pe.SourceHardwareAddress));
            Assert.Equal(EthernetType.Arp, pe.Type);
            var pa = parsed.Extract<PacketDotNet.ArpPacket>();
            Assert.Equal((ushort)arp.Operation, (ushort)pa.Operation);
            Assert.Equal(arp.SenderHardware, Mac(pa.SenderHardwareAddress));
            Assert.Equal(arp.SenderProtocol, Ip(pa.SenderProtocolAddress));
            Assert.Equal(arp.TargetHardware, Mac(pa.TargetHardwareAddress));
            Assert.Equal(arp.TargetProtocol, Ip(pa.TargetProtocolAddress));
        }
    }

    [Fact]
    public void Arp_packetdotnet_to_ours()
    {
        var r = new SeededRandom(2);
        for (int i = 0; i < Rounds; i++)
        {
            var op = r.Next(2) == 0 ? PacketDotNet.ArpOperation.Request : PacketDotNet.ArpOperation.Response;
            MacAddress sm = RandomMac(r), tm = RandomMac(r);
            Ipv4Address si = RandomIp(r), ti = RandomIp(r);
            var pa = new PacketDotNet.ArpPacket(op, Phys(tm), Ip(ti), Phys(sm), Ip(si));
            var pe = new EthernetPacket(Phys(sm), PhysicalAddress.Parse("FF-FF-FF-FF-FF-FF"), EthernetType.Arp) { PayloadPacket = pa };
            var bytes = pe.Bytes;
            Assert.True(EthernetFrame.TryCreate(bytes, out var f));
            Assert.Equal(EtherType.Arp, f.EtherType);
            Assert.Equal(sm, f.Source);
            Assert.True(Core.Wire.ArpPacket.TryCreate(f.Payload, out var a));
            Assert.Equal((ushort)op, a.OperationValue);
            Assert.Equal(sm, a.SenderHardware);
            Assert.Equal(si, a.SenderProtocol);
            Assert.Equal(tm, a.TargetHardware);
            Assert.Equal(ti, a.TargetProtocol);
        }
    }

    [Fact]
    public void Ipv4_udp_ours_to_packetdotnet()
    {
        var r = new SeededRandom(3);
        for (int i = 0; i < Rounds; i++)
        {
            Ipv4Address s = RandomIp(r), d = RandomIp(r);
            var payload = new byte[r.Next(1400)];
            r.NextBytes(payload);
            ushort sp = (ushort)r.NextUInt32(), dp = (ushort)r.NextUInt32();
            var frame = new byte[14 + 20 + 8 + payload.Length];
            new EthernetHeader(RandomMac(r), RandomMac(r), EtherType.Ipv4).WriteTo(frame);
            payload.CopyTo(frame, 14 + 28);
            new UdpHeader(sp, dp, (ushort)(8 + payload.Length)).WriteTo(frame.AsSpan(34), s, d);
            var ipHeader = new Ipv4Header(s, d, 17, (ushort)(28 + payload.Length), (ushort)r.NextUInt32(), (byte)r.NextUInt32(), (byte)r.NextUInt32(), r.Next(2) == 0);
            ipHeader.WriteTo(frame.AsSpan(14));

            var parsed = Packet.ParsePacket(LinkLayers.Ethernet, frame);
            var pip = parsed.Extract<IPv4Packet>();
            Assert.Equal(s, Ip(pip.SourceAddress));
            Assert.Equal(d, Ip(pip.DestinationAddress));
            Assert.Equal(ipHeader.Ttl, pip.TimeToLive);
            Assert.Equal(ipHeader.Identification, pip.Id);
            Assert.Equal(ipHeader.TotalLength, pip.TotalLength);
            Assert.Equal(ipHeader.Tos, pip.TypeOfService);
            Assert.Equal(ipHeader.DontFragment ? 2 : 0, pip.FragmentFlags & 2);
            Assert.Equal(PacketDotNet.ProtocolType.Udp, pip.Protocol);
            Assert.True(pip.ValidIPChecksum);
            var pudp = parsed.Extract<PacketDotNet.UdpPacket>();
            Assert.Equal(sp, pudp.SourcePort);
            Assert.Equal(dp, pudp.DestinationPort);
            Assert.True(pudp.ValidUdpChecksum);
            Assert.Equal(payload, pudp.PayloadData);
        }
    }

    [Fact]
    public void Ipv4_udp_packetdotnet_to_ours()
    {
        var r = new SeededRandom(4);
        for (int i = 0; i < Rounds; i++)
        {
            Ipv4Address s = RandomIp(r), d = RandomIp(r);
            var payload = new byte[1 + r.Next(1400)];
            r.NextBytes(payload);
            var pudp = new PacketDotNet.UdpPacket((ushort)r.NextUInt32(), (ushort)r.NextUInt32()) { PayloadData = payload };
            var pip = new IPv4Packet(Ip(s), Ip(d)) { PayloadPacket = pudp, TimeToLive = 1 + r.Next(255), Id = (ushort)r.NextUInt32() };
            var pe = new EthernetPacket(Phys(RandomMac(r)), Phys(RandomMac(r)), EthernetType.IPv4) { PayloadPacket = pip };
            pip.UpdateCalculatedValues();
            pudp.UpdateCalculatedValues();
            pudp.UpdateUdpChecksum();
            pip.UpdateIPChecksum();
            var bytes = pe.Bytes;

            Assert.True(EthernetFrame.TryCreate(bytes, out var f));
            Assert.Equal(EtherType.Ipv4, f.EtherType);
            Assert.True(Ipv4Packet.TryCreate(f.Payload, out var ip));
            Assert.True(ip.IsChecksumValid);
            Assert.Equal(s, ip.Source);
            Assert.Equal(d, ip.Destination);
            Assert.Equal(pip.TimeToLive, ip.Ttl);
            Assert.Equal(pip.Id, ip.Identification);
            Assert.Equal(17, ip.Protocol);
            Assert.True(Core.Wire.UdpPacket.TryCreate(ip.Payload, out var u));
            Assert.Equal(pudp.SourcePort, u.SourcePort);
            Assert.Equal(pudp.DestinationPort, u.DestinationPort);
            Assert.True(u.IsChecksumValid(s, d));
            Assert.Equal(pudp.Checksum, u.DatagramChecksum);
            Assert.Equal(payload, u.Payload.ToArray());
        }
    }

    [Fact]
    public void Icmp_echo_both_ways()
    {
        var r = new SeededRandom(5);
        for (int i = 0; i < Rounds; i++)
        {
            var data = new byte[r.Next(600)];
            r.NextBytes(data);
            ushort id = (ushort)r.NextUInt32(), seq = (ushort)r.NextUInt32();
            var m = new byte[8 + data.Length];
            data.CopyTo(m, 8);
            IcmpHeader.Echo(IcmpType.EchoRequest, id, seq).WriteTo(m);

            var theirs = new IcmpV4Packet(new ByteArraySegment(m));
            Assert.Equal(IcmpV4TypeCode.EchoRequest, theirs.TypeCode);
            Assert.Equal(id, theirs.Id);
            Assert.Equal(seq, theirs.Sequence);
            Assert.True(theirs.ValidIcmpChecksum);
            Assert.Equal(data, theirs.Data);

            // Theirs to ours: PacketDotNet writes the checksum, we check it.
            theirs.TypeCode = IcmpV4TypeCode.EchoReply;
            theirs.UpdateIcmpChecksum();
            var back = theirs.Bytes;
            Assert.True(IcmpPacket.TryCreate(back, out var ours));
            Assert.Equal(IcmpType.EchoReply, ours.Type);
            Assert.True(ours.IsChecksumValid);
            Assert.Equal(id, ours.Identifier);
            Assert.Equal(seq, ours.Sequence);
        }
    }

    [Fact]
    public void Ipv4_checksum_agrees_with_packetdotnet_on_random_headers()
    {
        var r = new SeededRandom(6);
        for (int i = 0; i < Rounds; i++)
        {
            var pip = new IPv4Packet(Ip(RandomIp(r)), Ip(RandomIp(r)))
            {
                TimeToLive = r.Next(256),
                Id = (ushort)r.NextUInt32(),
                TypeOfService = (byte)r.NextUInt32(),
                Protocol = PacketDotNet.ProtocolType.Tcp,
            };
            pip.UpdateCalculatedValues();
            pip.UpdateIPChecksum();
            var bytes = pip.Bytes;
            Assert.True(Ipv4Packet.TryCreate(bytes, out var ours));
            Assert.True(ours.IsChecksumValid);
            ushort theirs = pip.Checksum;
            ours.FillChecksum();
            Assert.Equal(theirs, ours.HeaderChecksum);
        }
    }
}
