using System.Net;
using AntHost.Nic8139.Driver;
using PacketDotNet;
using PacketDotNet.Utils;

namespace AntHost.Nic8139.Tests;

/// <summary>
/// Receive coalescing on frames PacketDotNet builds: what merges, what does not, and that the
/// merged frame is one PacketDotNet reads as a valid TCP segment carrying every payload in order.
/// </summary>
public sealed class ReceiveCoalescerTests
{
    internal static readonly byte[] Timestamps = [1, 1, 8, 10, 0, 0, 0, 7, 0, 0, 0, 9];

    internal static byte[] Segment(uint seq, int length, byte fill, bool push = false, uint ack = 5000, ushort window = 512,
        byte[]? options = null, bool syn = false, bool fin = false, ushort srcPort = 80)
    {
        var payload = new byte[length];
        for (int i = 0; i < length; i++) payload[i] = (byte)(fill + i);
        // The header (with its options) is laid out by hand: PacketDotNet cannot grow one in place.
        int thl = 20 + (options?.Length ?? 0);
        var header = new byte[thl];
        header[12] = (byte)(thl / 4 << 4);
        options?.CopyTo(header, 20);
        var tcp = new TcpPacket(new ByteArraySegment(header))
        {
            SourcePort = srcPort,
            DestinationPort = 40000,
            SequenceNumber = seq,
            AcknowledgmentNumber = ack,
            Acknowledgment = true,
            Push = push,
            Synchronize = syn,
            Finished = fin,
            WindowSize = window,
            PayloadData = payload,
        };
        var ip = new IPv4Packet(IPAddress.Parse("198.18.0.1"), IPAddress.Parse("198.18.0.2"))
        {
            PayloadPacket = tcp,
            TimeToLive = 64,
            Protocol = PacketDotNet.ProtocolType.Tcp,
            FragmentFlags = 2, // DF
        };
        var eth = new EthernetPacket(System.Net.NetworkInformation.PhysicalAddress.Parse("02-00-00-00-00-01"),
            System.Net.NetworkInformation.PhysicalAddress.Parse("02-00-00-00-00-02"), EthernetType.IPv4)
        { PayloadPacket = ip };
        eth.UpdateCalculatedValues();
        ip.UpdateIPChecksum();
        tcp.UpdateTcpChecksum();
        return eth.Bytes;
    }

    private static TcpPacket Parse(ReadOnlySpan<byte> frame)
    {
        var eth = new EthernetPacket(new ByteArraySegment(frame.ToArray()));
        var ip = (IPv4Packet)eth.PayloadPacket;
        Assert.True(ip.ValidIPChecksum, "IP checksum");
        var tcp = (TcpPacket)ip.PayloadPacket;
        Assert.True(tcp.ValidTcpChecksum, "TCP checksum");
        return tcp;
    }

    [Fact]
    public void Consecutive_segments_of_one_flow_become_one_valid_segment_with_every_payload_in_order()
    {
        var g = new ReceiveCoalescer();
        var buffer = new byte[16384];
        var a = Segment(1000, 1448, 1, options: Timestamps);
        var b = Segment(2448, 1448, 2, options: Timestamps);
        var c = Segment(3896, 700, 3, push: true, options: Timestamps);
        Assert.True(ReceiveCoalescer.IsCandidate(a));
        g.Start(a, buffer);
        Assert.True(g.TryAppend(b, buffer));
        Assert.True(g.TryAppend(c, buffer));
        Assert.True(g.Pushed); // PSH closes the merge
        Assert.False(g.TryAppend(Segment(4596, 100, 4, options: Timestamps), buffer));
        int length = g.Finish(buffer);
        Assert.Equal(3, g.Segments);

        var tcp = Parse(buffer.AsSpan(0, length));
        Assert.Equal(1000u, tcp.SequenceNumber);
        Assert.True(tcp.Push);
        Assert.Equal(Timestamps, tcp.Options);
        var expected = Parse(a).PayloadData.Concat(Parse(b).PayloadData).Concat(Parse(c).PayloadData).ToArray();
        Assert.Equal(expected, tcp.PayloadData);
        Assert.Equal(14 + 20 + 32 + 1448 + 1448 + 700, length);
    }

    [Fact]
    public void A_segment_that_does_not_continue_the_flow_exactly_is_not_merged()
    {
        var buffer = new byte[16384];
        var first = Segment(1000, 1000, 1);
        foreach (var other in new[]
        {
            Segment(2001, 1000, 2),                    // a gap
            Segment(1500, 1000, 2),                    // overlap (a retransmission)
            Segment(2000, 1000, 2, ack: 6000),         // a new acknowledgment
            Segment(2000, 1000, 2, window: 600),       // a window update
            Segment(2000, 1000, 2, options: Timestamps), // other options
            Segment(2000, 1000, 2, srcPort: 81),       // another flow
        })
        {
            var g = new ReceiveCoalescer();
            g.Start(first, buffer);
            Assert.False(g.TryAppend(other, buffer));
            int length = g.Finish(buffer);
            Assert.Equal(first.Length, length);
            Assert.Equal(first, buffer[..length]); // untouched
        }
    }

    [Fact]
    public void Control_segments_pure_acks_and_corrupted_segments_are_never_candidates()
    {
        Assert.False(ReceiveCoalescer.IsCandidate(Segment(1, 100, 1, syn: true)));
        Assert.False(ReceiveCoalescer.IsCandidate(Segment(1, 100, 1, fin: true)));
        Assert.False(ReceiveCoalescer.IsCandidate(Segment(1, 0, 1)));
        var corrupt = Segment(1, 100, 1);
        corrupt[^1] ^= 0x40;
        Assert.False(ReceiveCoalescer.IsCandidate(corrupt));
        var badIp = Segment(1, 100, 1);
        badIp[14 + 8] ^= 1; // TTL changed, IP checksum no longer matches
        Assert.False(ReceiveCoalescer.IsCandidate(badIp));
        Assert.False(ReceiveCoalescer.IsCandidate(new byte[20]));
    }

    [Fact]
    public void A_merge_stops_where_the_buffer_ends()
    {
        var g = new ReceiveCoalescer();
        var buffer = new byte[4096];
        g.Start(Segment(0, 1448, 1), buffer);
        Assert.True(g.TryAppend(Segment(1448, 1448, 2), buffer));
        Assert.False(g.TryAppend(Segment(2896, 1448, 3), buffer)); // 14+20+20+3*1448 > 4096
        Parse(buffer.AsSpan(0, g.Finish(buffer)));
    }
}
