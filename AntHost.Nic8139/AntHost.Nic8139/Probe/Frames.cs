using System.Net;
using AntHost.Inet.Core.Ip;
using AntHost.Inet.Core.Wire;

namespace AntHost.Nic8139.Probe;

/// <summary>
/// The handful of frames the probe needs to talk to a kernel on its own (an ARP request, an
/// ICMP echo request) and the checks of their answers, written and read with the protocol
/// core's wire types (AntHost.Inet.Core.Wire). The driver itself never parses protocols;
/// the inet server does.
/// </summary>
internal static class Frames
{
    private const int EthernetLength = EthernetFrame.HeaderLength;

    private static Ipv4Address V4(IPAddress ip)
    {
        Span<byte> b = stackalloc byte[4];
        ip.TryWriteBytes(b, out _);
        return Ipv4Address.Read(b);
    }

    /// <summary>Writes an ARP request "who has <paramref name="target"/>" and returns its length (42).</summary>
    public static int ArpRequest(Span<byte> f, MacAddress ourMac, IPAddress ourIp, IPAddress target)
    {
        new EthernetHeader(MacAddress.Broadcast, ourMac, EtherType.Arp).WriteTo(f);
        new ArpHeader(ArpOperation.Request, ourMac, V4(ourIp), MacAddress.Zero, V4(target)).WriteTo(f[EthernetLength..]);
        return EthernetLength + ArpPacket.Length;
    }

    /// <summary>If <paramref name="f"/> is an ARP reply from <paramref name="from"/>, its sender MAC.</summary>
    public static MacAddress? ArpReplySender(ReadOnlySpan<byte> f, IPAddress from) =>
        EthernetHeader.TryParse(f, out var eth) && eth.EtherType == EtherType.Arp
        && ArpHeader.TryParse(f[EthernetLength..], out var arp)
        && arp.Operation == ArpOperation.Reply && arp.SenderProtocol == V4(from)
            ? arp.SenderHardware : null;

    /// <summary>Writes an ICMP echo request of <paramref name="payload"/> bytes; returns the frame length.</summary>
    public static int EchoRequest(Span<byte> f, MacAddress dst, MacAddress src, IPAddress from, IPAddress to, ushort id, ushort seq, int payload)
    {
        new EthernetHeader(dst, src, EtherType.Ipv4).WriteTo(f);
        int ipLength = Ipv4Packet.MinHeaderLength + IcmpPacket.HeaderLength + payload;
        var ip = f.Slice(EthernetLength, ipLength);
        new Ipv4Header(V4(from), V4(to), (byte)IpProtocol.Icmp, (ushort)ipLength, Identification: seq, DontFragment: true).WriteTo(ip);
        var icmp = ip[Ipv4Packet.MinHeaderLength..];
        for (int i = 0; i < payload; i++) icmp[IcmpPacket.HeaderLength + i] = (byte)i;
        IcmpHeader.Echo(IcmpType.EchoRequest, id, seq).WriteTo(icmp); // the checksum covers the payload: written last
        return EthernetLength + ipLength;
    }

    /// <summary>If <paramref name="f"/> is an ICMP echo reply with this id, its sequence number.</summary>
    public static int EchoReplySequence(ReadOnlySpan<byte> f, ushort id)
    {
        if (!EthernetHeader.TryParse(f, out var eth) || eth.EtherType != EtherType.Ipv4) return -1;
        var ip = f[EthernetLength..];
        if (!Ipv4Header.TryParse(ip, out var h, out int headerLength) || h.Protocol != (byte)IpProtocol.Icmp) return -1;
        if (!IcmpHeader.TryParse(ip[headerLength..], out var icmp) || icmp.Type != IcmpType.EchoReply || icmp.Identifier != id) return -1;
        return icmp.Sequence;
    }
}
