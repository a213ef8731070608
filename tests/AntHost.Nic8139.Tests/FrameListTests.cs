using System.Buffers.Binary;
using System.Net;
using AntHost.Inet.Abi;
using PacketDotNet;

namespace AntHost.Nic8139.Tests;

/// <summary>
/// Frame lists on frames PacketDotNet builds: which frames a list may carry, that a list gives
/// back exactly the frames put in, and that a forged record is refused, not read past.
/// </summary>
public sealed class FrameListTests
{
    private static byte[] Ack(uint ack, bool push = false) => ReceiveCoalescerTests.Segment(1000, 0, 0, push: push, ack: ack, options: ReceiveCoalescerTests.Timestamps);

    [Fact]
    public void Only_header_only_tcp_segments_with_ack_and_no_syn_fin_or_rst_go_in_a_list()
    {
        Assert.True(FrameList.IsHeaderOnlyTcp(Ack(5000)));
        Assert.True(FrameList.IsHeaderOnlyTcp(Ack(5000, push: true)));
        Assert.True(FrameList.IsHeaderOnlyTcp(ReceiveCoalescerTests.Segment(1000, 0, 0)));
        // Payload, connection control: each goes in an ICA of its own.
        Assert.False(FrameList.IsHeaderOnlyTcp(ReceiveCoalescerTests.Segment(1000, 1, 0)));
        Assert.False(FrameList.IsHeaderOnlyTcp(ReceiveCoalescerTests.Segment(1000, 0, 0, syn: true)));
        Assert.False(FrameList.IsHeaderOnlyTcp(ReceiveCoalescerTests.Segment(1000, 0, 0, fin: true)));
        var rst = Ack(5000);
        rst[14 + 20 + 13] |= 0x04;
        Assert.False(FrameList.IsHeaderOnlyTcp(rst));
        var noAck = Ack(5000);
        noAck[14 + 20 + 13] &= 0xEF;
        Assert.False(FrameList.IsHeaderOnlyTcp(noAck));
        // A fragment, a length that claims payload the frame does not have, a UDP datagram, ARP.
        var fragment = Ack(5000);
        fragment[14 + 6] |= 0x20;
        Assert.False(FrameList.IsHeaderOnlyTcp(fragment));
        var forged = Ack(5000);
        BinaryPrimitives.WriteUInt16BigEndian(forged.AsSpan(14 + 2), 200);
        Assert.False(FrameList.IsHeaderOnlyTcp(forged));
        Assert.False(FrameList.IsHeaderOnlyTcp(Udp()));
        var arp = Ack(5000);
        arp[12] = 0x08;
        arp[13] = 0x06;
        Assert.False(FrameList.IsHeaderOnlyTcp(arp));
        Assert.False(FrameList.IsHeaderOnlyTcp(Ack(5000).AsSpan(0, 40)));
    }

    [Fact]
    public void A_page_carries_sixty_acks_and_gives_back_each_byte_for_byte_in_order()
    {
        var page = new byte[4096];
        int used = 0;
        var frames = new List<byte[]>();
        for (uint i = 0; ; i++)
        {
            var f = Ack(5000 + i * 1448);
            if (!FrameList.TryAppend(page, ref used, f)) break;
            frames.Add(f);
        }
        Assert.Equal(4096 / FrameList.RecordSize(frames[0].Length), frames.Count);
        Assert.Equal(60, frames.Count); // 66-byte ACKs with timestamps
        int offset = 0, n = 0;
        while (FrameList.Next(page, used, ref offset, out int start, out int length) == FrameList.Read.Frame)
        {
            Assert.Equal(frames[n], page.AsSpan(start, length).ToArray());
            Assert.Equal(0, (start + 14) % 4); // the IP header is 4-aligned
            var tcp = (TcpPacket)((IPv4Packet)new EthernetPacket(new PacketDotNet.Utils.ByteArraySegment(page, start, length)).PayloadPacket).PayloadPacket;
            Assert.Equal(5000 + (uint)n * 1448, tcp.AcknowledgmentNumber);
            n++;
        }
        Assert.Equal(frames.Count, n);
        Assert.Equal(used, offset);
    }

    [Fact]
    public void A_forged_record_is_malformed_and_nothing_past_it_is_read()
    {
        var page = new byte[4096];
        int used = 0;
        Assert.True(FrameList.TryAppend(page, ref used, Ack(1)));
        int good = used;
        // A length that runs past the list's end, then one shorter than an Ethernet header, then one longer than a list frame may be.
        foreach (ushort forged in new ushort[] { 200, 9, FrameList.MaxFrameLength + 1 })
        {
            BinaryPrimitives.WriteUInt16LittleEndian(page.AsSpan(good), forged);
            int length = forged == 200 ? good + 100 : 4096;
            int offset = 0;
            Assert.Equal(FrameList.Read.Frame, FrameList.Next(page, length, ref offset, out _, out _));
            Assert.Equal(FrameList.Read.Malformed, FrameList.Next(page, length, ref offset, out int s, out int l));
            Assert.Equal((0, 0), (s, l));
        }
        // A list length beyond the ICA is clamped to it; a zero length ends the list.
        BinaryPrimitives.WriteUInt16LittleEndian(page.AsSpan(good), 200);
        int o = 0;
        Assert.Equal(FrameList.Read.Frame, FrameList.Next(page.AsSpan(0, good + 10), int.MaxValue, ref o, out _, out _));
        Assert.Equal(FrameList.Read.Malformed, FrameList.Next(page.AsSpan(0, good + 10), int.MaxValue, ref o, out _, out _));
        BinaryPrimitives.WriteUInt16LittleEndian(page.AsSpan(good), 0);
        o = good;
        Assert.Equal(FrameList.Read.End, FrameList.Next(page, 4096, ref o, out _, out _));
        // A frame too long for a list is not written.
        int u = 0;
        Assert.False(FrameList.TryAppend(page, ref u, new byte[FrameList.MaxFrameLength + 1]));
        Assert.Equal(0, u);
    }

    private static byte[] Udp()
    {
        var udp = new UdpPacket(53, 40000) { PayloadData = [] };
        var ip = new IPv4Packet(IPAddress.Parse("198.18.0.1"), IPAddress.Parse("198.18.0.2")) { PayloadPacket = udp, TimeToLive = 64 };
        var eth = new EthernetPacket(System.Net.NetworkInformation.PhysicalAddress.Parse("02-00-00-00-00-01"),
            System.Net.NetworkInformation.PhysicalAddress.Parse("02-00-00-00-00-02"), EthernetType.IPv4)
        { PayloadPacket = ip };
        eth.UpdateCalculatedValues();
        return eth.Bytes;
    }
}
