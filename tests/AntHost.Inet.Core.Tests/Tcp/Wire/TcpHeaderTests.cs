using AntHost.Inet.Core.Randomness;
using AntHost.Inet.Core.Tcp;
using AntHost.Inet.Core.Wire;
using PacketDotNet;
using PacketDotNet.Utils;
using Pdn = PacketDotNet;

namespace AntHost.Inet.Core.Tests.Tcp.Wire;

/// <summary>The TCP header view and writer: golden bytes, malformed input, and PacketDotNet as an independent oracle.</summary>
public class TcpHeaderTests
{
    private static readonly Ipv4Address Src = new(198, 18, 0, 1);
    private static readonly Ipv4Address Dst = new(198, 18, 0, 2);

    // A SYN as Linux lays it out: MSS, SACK-permitted + timestamps, NOP + window scale.
    private static readonly byte[] GoldenSyn =
    [
        0xC0, 0x00, 0x00, 0x50,             // ports 49152 -> 80
        0x11, 0x22, 0x33, 0x44,             // sequence number
        0x00, 0x00, 0x00, 0x00,             // acknowledgment number
        0xA0, 0x02, 0xFA, 0xF0,             // data offset 10 words, SYN, window 64240
        0x00, 0x00, 0x00, 0x00,             // checksum (filled in below), urgent pointer
        0x02, 0x04, 0x05, 0xB4,             // MSS 1460
        0x04, 0x02, 0x08, 0x0A,             // SACK-permitted, timestamps...
        0x01, 0x02, 0x03, 0x04,             // TSval
        0x00, 0x00, 0x00, 0x00,             // TSecr
        0x01, 0x03, 0x03, 0x07,             // NOP, window scale 7
    ];

    private static TcpOptions SynOptions()
    {
        var o = default(TcpOptions);
        o.SetMss(1460);
        o.SackPermitted = true;
        o.SetTimestamps(0x01020304, 0);
        o.SetWindowScale(7);
        return o;
    }

    [Fact]
    public void Syn_with_options_is_written_byte_for_byte()
    {
        var o = SynOptions();
        Assert.Equal(40, TcpHeaderFields.LengthWith(o));
        var bytes = new byte[40];
        new TcpHeaderFields(49152, 80, new SeqNumber(0x11223344), default, TcpFlags.Syn, 64240).WriteTo(bytes, o);
        Assert.Equal(GoldenSyn, bytes);
        TcpHeaderFields.FillChecksum(bytes, Src, Dst);
        Assert.True(TcpHeader.TryCreate(bytes, out var h));
        Assert.True(h.IsChecksumValid(Src, Dst));
        // The same checksum as an independent computation over pseudo-header and segment.
        var pseudo = new byte[12 + 40];
        Src.WriteTo(pseudo);
        Dst.WriteTo(pseudo.AsSpan(4));
        pseudo[9] = 6;
        pseudo[11] = 40;
        bytes.CopyTo(pseudo, 12);
        pseudo[12 + 16] = pseudo[12 + 17] = 0;
        uint sum = 0;
        for (int i = 0; i < pseudo.Length; i += 2) sum += (uint)(pseudo[i] << 8 | pseudo[i + 1]);
        while (sum > 0xFFFF) sum = (sum & 0xFFFF) + (sum >> 16);
        Assert.Equal((ushort)~sum, h.Checksum);
    }

    [Fact]
    public void Golden_syn_is_parsed_with_every_option()
    {
        Assert.True(TcpHeader.TryCreate(GoldenSyn, out var h));
        Assert.Equal(49152, h.SourcePort);
        Assert.Equal(80, h.DestinationPort);
        Assert.Equal(0x11223344u, h.Sequence.Value);
        Assert.Equal(40, h.HeaderLength);
        Assert.Equal(TcpFlags.Syn, h.Flags);
        Assert.True(h.Syn);
        Assert.Equal(64240, h.Window);
        Assert.Equal(1, h.SegmentLength);
        var o = h.Options;
        Assert.True(o.HasMss);
        Assert.Equal(1460, o.Mss);
        Assert.True(o.SackPermitted);
        Assert.True(o.HasTimestamps);
        Assert.Equal(0x01020304u, o.TsVal);
        Assert.Equal(0u, o.TsEcr);
        Assert.True(o.HasWindowScale);
        Assert.Equal(7, o.WindowScale);
    }

    [Fact]
    public void Data_segment_options_carry_timestamps_and_at_most_three_sack_blocks()
    {
        var o = default(TcpOptions);
        o.SetTimestamps(5, 6);
        for (uint i = 0; i < 4; i++) o.AddSack(new SackBlock(new SeqNumber(100 * i), new SeqNumber(100 * i + 50)));
        Assert.Equal(40, o.WrittenLength);
        var area = new byte[40];
        Assert.Equal(40, o.WriteTo(area));
        Assert.Equal(new byte[] { 1, 1, 8, 10, 0, 0, 0, 5, 0, 0, 0, 6, 1, 1, 5, 26 }, area[..16]);
        Assert.True(TcpOptions.TryParse(area, out var back));
        Assert.Equal(3, back.SackCount);
        Assert.Equal(new SackBlock(new SeqNumber(200), new SeqNumber(250)), back.GetSack(2));

        var noTs = default(TcpOptions);
        for (uint i = 0; i < 4; i++) noTs.AddSack(new SackBlock(new SeqNumber(i), new SeqNumber(i + 1)));
        Assert.Equal(36, noTs.WrittenLength);
    }

    [Theory]
    [InlineData(new byte[] { 0, 80, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 2, 0, 0, 0, 0 })]                       // 18 bytes: too short
    [InlineData(new byte[] { 0, 80, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x40, 2, 0, 0, 0, 0, 0, 0 })]                 // data offset 4
    [InlineData(new byte[] { 0, 80, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x60, 2, 0, 0, 0, 0, 0, 0 })]                 // data offset past the end
    [InlineData(new byte[] { 0, 80, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x60, 2, 0, 0, 0, 0, 0, 0, 2, 1, 0, 0 })]     // option length 1
    [InlineData(new byte[] { 0, 80, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x60, 2, 0, 0, 0, 0, 0, 0, 1, 1, 8, 10 })]    // option past the header
    [InlineData(new byte[] { 0, 80, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x60, 2, 0, 0, 0, 0, 0, 0, 1, 1, 1, 2 })]     // kind byte without its length
    public void Malformed_headers_are_refused(byte[] bytes) => Assert.False(TcpHeader.TryCreate(bytes, out _));

    [Fact]
    public void Unknown_options_are_skipped_and_known_ones_of_the_wrong_length_ignored()
    {
        byte[] seg = [0, 80, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x70, 0x10, 0, 0, 0, 0, 0, 0,
                      30, 4, 0xAA, 0xBB,   // unknown kind 30, length 4
                      2, 3, 5,             // MSS with length 3: ignored
                      1,                   // NOP
                      0, 0, 0, 0];         // end of options
        Assert.True(TcpHeader.TryCreate(seg, out var h));
        Assert.False(h.Options.HasMss);
        Assert.Equal(28, h.HeaderLength);
    }

    [Fact]
    public void Window_scale_above_14_is_taken_as_14()
    {
        // RFC 7323 2.3.
        byte[] area = [1, 3, 3, 20];
        Assert.True(TcpOptions.TryParse(area, out var o));
        Assert.Equal(14, o.WindowScale);
    }

    [Fact]
    public void Our_segments_read_by_packetdotnet()
    {
        var r = new SeededRandom(11);
        for (int round = 0; round < 500; round++)
        {
            var o = default(TcpOptions);
            bool syn = r.Next(2) == 0;
            if (syn)
            {
                if (r.Next(2) == 0) o.SetMss((ushort)r.NextUInt32());
                if (r.Next(2) == 0) o.SetWindowScale((byte)r.Next(15));
                o.SackPermitted = r.Next(2) == 0;
            }
            if (r.Next(2) == 0) o.SetTimestamps(r.NextUInt32(), r.NextUInt32());
            if (!syn) for (int i = r.Next(5); i > 0; i--) o.AddSack(new SackBlock(new SeqNumber(r.NextUInt32()), new SeqNumber(r.NextUInt32())));
            var payload = new byte[r.Next(200)];
            r.NextBytes(payload);
            int hlen = TcpHeaderFields.LengthWith(o);
            var seg = new byte[hlen + payload.Length];
            payload.CopyTo(seg, hlen);
            var f = new TcpHeaderFields((ushort)r.NextUInt32(), (ushort)r.NextUInt32(), new SeqNumber(r.NextUInt32()), new SeqNumber(r.NextUInt32()),
                (TcpFlags)(r.NextUInt32() & 0x3F), (ushort)r.NextUInt32());
            f.WriteTo(seg.AsSpan(0, hlen), o);
            TcpHeaderFields.FillChecksum(seg, Src, Dst);

            // An IPv4 packet around the segment, built and then parsed by PacketDotNet.
            var outer = new IPv4Packet(Ip(Src), Ip(Dst)) { Protocol = Pdn.ProtocolType.Tcp, PayloadData = seg };
            outer.UpdateIPChecksum();
            var parsed = new IPv4Packet(new ByteArraySegment(outer.Bytes));
            var theirs = Assert.IsType<TcpPacket>(parsed.PayloadPacket);
            Assert.Equal(f.SourcePort, theirs.SourcePort);
            Assert.Equal(f.DestinationPort, theirs.DestinationPort);
            Assert.Equal(f.Sequence.Value, theirs.SequenceNumber);
            Assert.Equal(f.Acknowledgment.Value, theirs.AcknowledgmentNumber);
            Assert.Equal(hlen / 4, theirs.DataOffset);
            Assert.Equal((byte)f.Flags, (byte)theirs.Flags);
            Assert.Equal(f.Window, theirs.WindowSize);
            Assert.Equal(payload, theirs.PayloadData ?? []);
            Assert.True(theirs.ValidTcpChecksum);
            Assert.Equal(TcpChecksumOf(seg), theirs.Checksum);
        }
    }

    [Fact]
    public void Packetdotnet_segments_read_by_ours()
    {
        var r = new SeededRandom(12);
        for (int round = 0; round < 500; round++)
        {
            var payload = new byte[r.Next(300)];
            r.NextBytes(payload);
            var tcp = new TcpPacket((ushort)r.NextUInt32(), (ushort)r.NextUInt32())
            {
                SequenceNumber = r.NextUInt32(),
                AcknowledgmentNumber = r.NextUInt32(),
                WindowSize = (ushort)r.NextUInt32(),
                Flags = (ushort)(r.NextUInt32() & 0x3F),
                PayloadData = payload,
            };
            var ip = new IPv4Packet(Ip(Src), Ip(Dst)) { PayloadPacket = tcp };
            tcp.UpdateTcpChecksum();
            var bytes = tcp.Bytes;
            Assert.True(TcpHeader.TryCreate(bytes, out var h));
            Assert.Equal(tcp.SourcePort, h.SourcePort);
            Assert.Equal(tcp.DestinationPort, h.DestinationPort);
            Assert.Equal(tcp.SequenceNumber, h.Sequence.Value);
            Assert.Equal(tcp.AcknowledgmentNumber, h.Acknowledgment.Value);
            Assert.Equal(tcp.WindowSize, h.Window);
            Assert.Equal((byte)tcp.Flags, (byte)h.Flags);
            Assert.Equal(payload, h.Payload.ToArray());
            Assert.True(h.IsChecksumValid(Src, Dst));
        }
    }

    private static ushort TcpChecksumOf(byte[] seg) => (ushort)(seg[16] << 8 | seg[17]);

    private static System.Net.IPAddress Ip(Ipv4Address a)
    {
        var b = new byte[4];
        a.WriteTo(b);
        return new System.Net.IPAddress(b);
    }
}
