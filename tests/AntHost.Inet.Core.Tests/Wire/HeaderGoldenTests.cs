using AntHost.Inet.Core.Tests.Support;
using AntHost.Inet.Core.Wire;

namespace AntHost.Inet.Core.Tests.Wire;

/// <summary>Each header written and read against bytes taken from captures and the RFCs.</summary>
public class HeaderGoldenTests
{
    [Fact]
    public void Ethernet_header_golden()
    {
        var expected = Convert.FromHexString("ffffffffffff0200000000010806");
        var b = new byte[14];
        new EthernetHeader(MacAddress.Broadcast, Net.OurMac, EtherType.Arp).WriteTo(b);
        Assert.Equal(expected, b);
        Assert.True(EthernetFrame.TryCreate(b, out var f));
        Assert.Equal(MacAddress.Broadcast, f.Destination);
        Assert.Equal(Net.OurMac, f.Source);
        Assert.Equal(EtherType.Arp, f.EtherType);
        Assert.True(f.Payload.IsEmpty);
        Assert.False(EthernetFrame.TryCreate(b.AsSpan(0, 13), out _));
        Assert.True(EthernetHeader.TryParse(b, out var h));
        Assert.Equal(new EthernetHeader(MacAddress.Broadcast, Net.OurMac, EtherType.Arp), h);
    }

    [Fact]
    public void Arp_request_golden()
    {
        // who-has 198.18.0.2 tell 198.18.0.1
        var expected = Convert.FromHexString("0001080006040001" + "020000000001" + "c6120001" + "000000000000" + "c6120002");
        var b = new byte[28];
        new ArpHeader(ArpOperation.Request, Net.OurMac, Net.OurIp, MacAddress.Zero, Net.PeerIp).WriteTo(b);
        Assert.Equal(expected, b);
        Assert.True(ArpPacket.TryCreate(b, out var p));
        Assert.Equal(ArpOperation.Request, p.Operation);
        Assert.Equal(Net.OurMac, p.SenderHardware);
        Assert.Equal(Net.OurIp, p.SenderProtocol);
        Assert.Equal(Net.PeerIp, p.TargetProtocol);
        Assert.True(ArpHeader.TryParse(b, out var h));
        Assert.Equal(Net.PeerIp, h.TargetProtocol);
    }

    [Theory]
    [InlineData("0006080006040001", "hardware type 6 (IEEE 802)")]
    [InlineData("000186dd06040001", "protocol IPv6")]
    [InlineData("0001080008040001", "hardware length 8")]
    [InlineData("0001080006100001", "protocol length 16")]
    public void Arp_for_other_pairings_is_refused(string head, string why)
    {
        var b = Convert.FromHexString(head + new string('0', 40));
        Assert.False(ArpPacket.TryCreate(b, out _), why);
        Assert.False(ArpPacket.TryCreate(Convert.FromHexString("0001080006040001"), out _), "too short");
    }

    [Fact]
    public void Ipv4_header_golden()
    {
        var expected = Convert.FromHexString("45000073000040004011b861c0a80001c0a800c7");
        var b = new byte[20];
        new Ipv4Header(Ipv4Address.Parse("192.168.0.1"), Ipv4Address.Parse("192.168.0.199"), 17, 0x73, 0, 64, 0, DontFragment: true).WriteTo(b);
        Assert.Equal(expected, b);
        var datagram = new byte[0x73];
        expected.CopyTo(datagram, 0);
        Assert.True(Ipv4Packet.TryCreate(datagram, out var p));
        Assert.Equal(4, p.Version);
        Assert.Equal(20, p.HeaderLength);
        Assert.Equal(0x73, p.TotalLength);
        Assert.True(p.DontFragment);
        Assert.False(p.MoreFragments);
        Assert.False(p.IsFragment);
        Assert.Equal(64, p.Ttl);
        Assert.Equal(17, p.Protocol);
        Assert.True(p.IsChecksumValid);
        Assert.Equal(0x73 - 20, p.Payload.Length);
        Assert.True(Ipv4Header.TryParse(datagram, out var h, out int ihl));
        Assert.Equal(20, ihl);
        Assert.Equal(new Ipv4Header(Ipv4Address.Parse("192.168.0.1"), Ipv4Address.Parse("192.168.0.199"), 17, 0x73, 0, 64, 0, true), h);
    }

    [Fact]
    public void Ipv4_fragment_fields_golden()
    {
        var b = new byte[20];
        new Ipv4Header(Net.OurIp, Net.PeerIp, 1, 20, 0xBEEF, 1, 0x10, MoreFragments: true, FragmentOffset: 1480).WriteTo(b);
        Assert.Equal(0x20, b[6]);            // MF
        Assert.Equal(1480 / 8, b[7] | (b[6] & 0x1F) << 8);
        Assert.True(Ipv4Packet.TryCreate(b, out var p));
        Assert.True(p.MoreFragments);
        Assert.Equal(1480, p.FragmentOffset);
        Assert.True(p.IsFragment);
        Assert.Equal(0xBEEF, p.Identification);
        Assert.Equal(0x10, p.Tos);
    }

    [Theory]
    [InlineData(19, Ipv4Malformation.TooShort)]
    public void Ipv4_check_reports_short_input(int length, Ipv4Malformation expected) =>
        Assert.Equal(expected, Ipv4Packet.Check(new byte[length]));

    [Fact]
    public void Ipv4_check_reports_each_malformation()
    {
        var ok = Frames.Ipv4(Net.PeerIp, Net.OurIp, 17, new byte[8]);
        Assert.Equal(Ipv4Malformation.None, Ipv4Packet.Check(ok));
        var v6 = (byte[])ok.Clone(); v6[0] = 0x65;
        Assert.Equal(Ipv4Malformation.BadVersion, Ipv4Packet.Check(v6));
        var ihl4 = (byte[])ok.Clone(); ihl4[0] = 0x44;
        Assert.Equal(Ipv4Malformation.BadHeaderLength, Ipv4Packet.Check(ihl4));
        var ihl15 = (byte[])ok.Clone(); ihl15[0] = 0x4F; // 60-byte header in 28 bytes
        Assert.Equal(Ipv4Malformation.BadHeaderLength, Ipv4Packet.Check(ihl15));
        var longer = (byte[])ok.Clone(); longer[3] = 29;
        Assert.Equal(Ipv4Malformation.BadTotalLength, Ipv4Packet.Check(longer));
        var shorter = (byte[])ok.Clone(); shorter[3] = 19;
        Assert.Equal(Ipv4Malformation.BadTotalLength, Ipv4Packet.Check(shorter));
        // Padding after the total length is not part of the view.
        var padded = ok.Concat(new byte[10]).ToArray();
        Assert.True(Ipv4Packet.TryCreate(padded, out var p));
        Assert.Equal(ok.Length, p.Bytes.Length);
    }

    [Theory]
    [InlineData("", Ipv4OptionsCheck.Ok)]
    [InlineData("01010100", Ipv4OptionsCheck.Ok)]                  // NOPs, end
    [InlineData("94040000", Ipv4OptionsCheck.Ok)]                  // router alert
    [InlineData("00ffffff", Ipv4OptionsCheck.Ok)]                  // end of list: the rest is padding
    [InlineData("0701", Ipv4OptionsCheck.Malformed)]               // length below 2
    [InlineData("070a0400", Ipv4OptionsCheck.Malformed)]           // length past the header
    [InlineData("07", Ipv4OptionsCheck.Malformed)]                 // type without a length
    [InlineData("830704c6120002" + "00", Ipv4OptionsCheck.SourceRoute)] // LSRR
    [InlineData("890704c6120002" + "00", Ipv4OptionsCheck.SourceRoute)] // SSRR
    public void Ipv4_options_walk(string hex, Ipv4OptionsCheck expected) =>
        Assert.Equal(expected, Ipv4Packet.CheckOptions(Convert.FromHexString(hex)));

    [Fact]
    public void Icmp_echo_golden()
    {
        // echo request id 0x1234 seq 1 payload "abcd": checksum over the whole message.
        var m = new byte[12];
        "abcd"u8.CopyTo(m.AsSpan(8));
        IcmpHeader.Echo(IcmpType.EchoRequest, 0x1234, 1).WriteTo(m);
        Assert.Equal(Convert.FromHexString("0800" + "2104" + "12340001" + "61626364"), m);
        Assert.True(IcmpPacket.TryCreate(m, out var p));
        Assert.Equal(IcmpType.EchoRequest, p.Type);
        Assert.Equal(0x1234, p.Identifier);
        Assert.Equal(1, p.Sequence);
        Assert.True(p.IsChecksumValid);
        Assert.Equal("abcd"u8.ToArray(), p.Body.ToArray());
        Assert.False(IcmpPacket.TryCreate(m.AsSpan(0, 7), out _));
    }

    [Fact]
    public void Icmp_fragmentation_needed_golden()
    {
        var m = new byte[8 + 28];
        new IcmpHeader(IcmpType.DestinationUnreachable, 4, 1400).WriteTo(m);
        Assert.True(IcmpPacket.TryCreate(m, out var p));
        Assert.Equal(1400, p.NextHopMtu);
        Assert.Equal(3, m[0]);
        Assert.Equal(4, m[1]);
        Assert.Equal(0x05, m[6]);
        Assert.Equal(0x78, m[7]);
        Assert.True(p.IsChecksumValid);
    }

    [Fact]
    public void Udp_golden()
    {
        // 198.18.0.1:1000 -> 198.18.0.2:53, payload "hi"; checksum computed by hand from the pseudo-header.
        var d = new byte[10];
        "hi"u8.CopyTo(d.AsSpan(8));
        new UdpHeader(1000, 53, 10).WriteTo(d, Net.OurIp, Net.PeerIp);
        Assert.Equal(Convert.FromHexString("03e80035000a"), d[..6]);
        Assert.Equal(NaiveChecksum.Transport(Net.OurIp, Net.PeerIp, 17, d.Select((b, i) => i is 6 or 7 ? (byte)0 : b).ToArray()), (ushort)(d[6] << 8 | d[7]));
        Assert.True(UdpPacket.TryCreate(d, out var u));
        Assert.Equal(1000, u.SourcePort);
        Assert.Equal(53, u.DestinationPort);
        Assert.Equal(10, u.Length);
        Assert.True(u.IsChecksumValid(Net.OurIp, Net.PeerIp));
        Assert.False(u.IsChecksumValid(Net.OurIp, Net.RemoteIp));
        Assert.Equal("hi"u8.ToArray(), u.Payload.ToArray());
    }

    [Fact]
    public void Udp_zero_checksum_means_none_and_computed_zero_is_sent_as_ffff()
    {
        var d = Frames.Udp(Net.PeerIp, Net.OurIp, 1, 2, "x"u8, checksum: false);
        Assert.True(UdpPacket.TryCreate(d, out var u));
        Assert.False(u.HasChecksum);
        Assert.True(u.IsChecksumValid(Net.PeerIp, Net.OurIp));

        // Find a payload whose checksum computes to zero: the field must then read ffff.
        for (ushort x = 0; x < ushort.MaxValue; x++)
        {
            var p = new byte[] { (byte)(x >> 8), (byte)x };
            var probe = Frames.Udp(Net.PeerIp, Net.OurIp, 1, 2, p, checksum: false);
            if (NaiveChecksum.Transport(Net.PeerIp, Net.OurIp, 17, probe) != 0) continue;
            var w = new byte[10];
            p.CopyTo(w, 8);
            new UdpHeader(1, 2, 10).WriteTo(w, Net.PeerIp, Net.OurIp);
            Assert.Equal(0xFF, w[6]);
            Assert.Equal(0xFF, w[7]);
            Assert.True(UdpPacket.TryCreate(w, out var wu));
            Assert.True(wu.IsChecksumValid(Net.PeerIp, Net.OurIp));
            return;
        }
        Assert.Fail("no payload with a zero checksum found");
    }

    [Fact]
    public void Udp_length_field_is_validated()
    {
        var d = Frames.Udp(Net.PeerIp, Net.OurIp, 1, 2, "abc"u8);
        var shortLen = (byte[])d.Clone(); shortLen[5] = 7;
        Assert.False(UdpPacket.TryCreate(shortLen, out _));
        var longLen = (byte[])d.Clone(); longLen[5] = 12;
        Assert.False(UdpPacket.TryCreate(longLen, out _));
        Assert.False(UdpPacket.TryCreate(d.AsSpan(0, 7), out _));
        // Trailing bytes beyond the UDP length are not payload.
        Assert.True(UdpPacket.TryCreate(d.Concat(new byte[5]).ToArray(), out var u));
        Assert.Equal(3, u.Payload.Length);
    }
}
