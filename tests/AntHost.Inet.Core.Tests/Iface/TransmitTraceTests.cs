using AntHost.Inet.Core.Buffers;
using AntHost.Inet.Core.Iface;
using AntHost.Inet.Core.Tests.Support;

namespace AntHost.Inet.Core.Tests.Iface;

/// <summary>
/// The optional transmit trace hook: called once per layer boundary of a packet being sent,
/// IP before Ethernet, with the packet as it is at that point, and never when not set.
/// </summary>
public sealed class TransmitTraceTests
{
    private sealed record Seen(TransmitBoundary Boundary, PacketBuffer Packet, byte[] Bytes);

    [Fact]
    public void A_datagram_crosses_ip_then_ethernet_with_each_header_in_place()
    {
        var seen = new List<Seen>();
        var s = new StackFixture(c => c with { TransmitTrace = (b, p) => seen.Add(new Seen(b, p, p.Data.ToArray())) });
        s.LearnPeer();
        seen.Clear(); // the ARP answers LearnPeer made
        using var sock = s.Iface.Udp.Open();
        sock.Bind(5555);
        sock.SendTo("timeline"u8, Net.PeerIp, 9, s.Now);

        Assert.Equal([TransmitBoundary.IpHeaderWritten, TransmitBoundary.EthernetHeaderWritten], seen.Select(x => x.Boundary));
        Assert.Same(seen[0].Packet, seen[1].Packet);
        Assert.Equal(0x45, seen[0].Bytes[0]);                        // IPv4, 20-byte header first
        Assert.Equal(20 + 8 + 8, seen[0].Bytes.Length);
        Assert.Equal(seen[0].Bytes, seen[1].Bytes[14..]);             // Ethernet in front of the same datagram
        Assert.Equal(Net.PeerMac.ToString(), string.Join(':', seen[1].Bytes[..6].Select(b => b.ToString("x2", System.Globalization.CultureInfo.InvariantCulture))));
        var frame = Assert.Single(s.Drain());
        Assert.Equal(seen[1].Bytes, frame);
    }

    [Fact]
    public void A_packet_waiting_for_arp_crosses_ethernet_only_once_resolved()
    {
        var seen = new List<TransmitBoundary>();
        var s = new StackFixture(c => c with { TransmitTrace = (b, _) => seen.Add(b) });
        using var sock = s.Iface.Udp.Open();
        sock.Bind(5555);
        sock.SendTo("x"u8, Net.PeerIp, 9, s.Now);
        // The ARP request is a frame of its own (Ethernet only); the datagram waits with its IP header.
        Assert.Equal([TransmitBoundary.IpHeaderWritten, TransmitBoundary.EthernetHeaderWritten], seen);
        Assert.Single(s.Drain());
        seen.Clear();
        s.LearnPeer();
        // Now the datagram goes out (beside the ARP answers): Ethernet only, its IP header was written before.
        Assert.NotEmpty(seen);
        Assert.All(seen, b => Assert.Equal(TransmitBoundary.EthernetHeaderWritten, b));
    }

    [Fact]
    public void Without_a_hook_the_same_frame_goes_out()
    {
        byte[] Send(TransmitTraceHook? hook)
        {
            var s = new StackFixture(c => c with { TransmitTrace = hook });
            s.LearnPeer();
            using var sock = s.Iface.Udp.Open();
            sock.Bind(5555);
            sock.SendTo("same"u8, Net.PeerIp, 9, s.Now);
            return Assert.Single(s.Drain());
        }
        Assert.Equal(Send(null), Send((_, _) => { }));
    }
}
