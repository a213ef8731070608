// One line per frame, as tcpdump prints it, decoded with PacketDotNet: Ethernet, ARP,
// IPv4, ICMP, UDP, and TCP with its flags, sequence and acknowledgment numbers, window and
// options.
using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using PacketDotNet;

namespace AntHost.Cli;

internal static class FrameFormatter
{
    private static readonly CultureInfo Ci = CultureInfo.InvariantCulture;

    /// <summary>"HH:mm:ss.ffffff In  IP a.p > b.q: Flags [S.], seq .., ack .., win .., options [..], length N".</summary>
    public static string Format(DateTime timestampUtc, bool inbound, ReadOnlySpan<byte> frame, int wireLength)
    {
        var sb = new StringBuilder();
        sb.Append(timestampUtc.ToString("HH:mm:ss.ffffff", Ci)).Append(inbound ? " In  " : " Out ");
        sb.Append(Describe(frame, wireLength));
        return sb.ToString();
    }

    public static string Describe(ReadOnlySpan<byte> frame, int wireLength)
    {
        Packet packet;
        try { packet = Packet.ParsePacket(LinkLayers.Ethernet, frame.ToArray()); }
        catch (Exception e) when (e is ArgumentException or IndexOutOfRangeException or InvalidOperationException) { return $"undecodable frame, length {wireLength}"; }
        if (packet is not EthernetPacket eth) return $"undecodable frame, length {wireLength}";
        try
        {
            switch (eth.PayloadPacket)
            {
                case ArpPacket arp:
                    return arp.Operation == ArpOperation.Request
                        ? $"ARP, Request who-has {arp.TargetProtocolAddress} tell {arp.SenderProtocolAddress}, length 28"
                        : $"ARP, Reply {arp.SenderProtocolAddress} is-at {Mac(arp.SenderHardwareAddress.GetAddressBytes())}, length 28";
                case IPv4Packet ip:
                    return Ip(ip);
                default:
                    return $"{Mac(eth.SourceHardwareAddress.GetAddressBytes())} > {Mac(eth.DestinationHardwareAddress.GetAddressBytes())}, ethertype 0x{(ushort)eth.Type:x4}, length {wireLength}";
            }
        }
        catch (Exception e) when (e is ArgumentException or IndexOutOfRangeException or InvalidOperationException or NullReferenceException)
        {
            return $"truncated or malformed {eth.Type} frame, length {wireLength}";
        }
    }

    private static string Ip(IPv4Packet ip)
    {
        string frag = (ip.FragmentFlags & 1) != 0 || ip.FragmentOffset != 0 ? $" (frag id {ip.Id} offset {ip.FragmentOffset * 8}{((ip.FragmentFlags & 1) != 0 ? "+" : "")})" : "";
        if (ip.FragmentOffset != 0) return $"IP {ip.SourceAddress} > {ip.DestinationAddress}:{frag} proto {ip.Protocol}, length {ip.TotalLength - ip.HeaderLength * 4}";
        switch (ip.PayloadPacket)
        {
            case TcpPacket tcp:
                {
                    var sb = new StringBuilder();
                    sb.Append(CultureInfo.InvariantCulture, $"IP {ip.SourceAddress}.{tcp.SourcePort} > {ip.DestinationAddress}.{tcp.DestinationPort}:{frag} Flags [{TcpFlags(tcp)}], seq {tcp.SequenceNumber}");
                    if (tcp.Acknowledgment) sb.Append(CultureInfo.InvariantCulture, $", ack {tcp.AcknowledgmentNumber}");
                    sb.Append(CultureInfo.InvariantCulture, $", win {tcp.WindowSize}");
                    string options = TcpOptions(tcp.Options);
                    if (options.Length > 0) sb.Append(", options [").Append(options).Append(']');
                    sb.Append(CultureInfo.InvariantCulture, $", length {ip.TotalLength - ip.HeaderLength * 4 - tcp.DataOffset * 4}");
                    return sb.ToString();
                }
            case UdpPacket udp:
                return $"IP {ip.SourceAddress}.{udp.SourcePort} > {ip.DestinationAddress}.{udp.DestinationPort}:{frag} UDP, length {udp.Length - 8}";
            case IcmpV4Packet icmp:
                string what = icmp.TypeCode switch
                {
                    IcmpV4TypeCode.EchoRequest => $"echo request, id {icmp.Id}, seq {icmp.Sequence}",
                    IcmpV4TypeCode.EchoReply => $"echo reply, id {icmp.Id}, seq {icmp.Sequence}",
                    var t => $"{t}",
                };
                return $"IP {ip.SourceAddress} > {ip.DestinationAddress}:{frag} ICMP {what}, length {ip.TotalLength - ip.HeaderLength * 4}";
            default:
                return $"IP {ip.SourceAddress} > {ip.DestinationAddress}:{frag} proto {ip.Protocol}, length {ip.TotalLength - ip.HeaderLength * 4}";
        }
    }

    /// <summary>tcpdump's letters: S F R P . (ACK) U E W.</summary>
    public static string TcpFlags(TcpPacket tcp)
    {
        var sb = new StringBuilder();
        if (tcp.Synchronize) sb.Append('S');
        if (tcp.Finished) sb.Append('F');
        if (tcp.Reset) sb.Append('R');
        if (tcp.Push) sb.Append('P');
        if (tcp.Urgent) sb.Append('U');
        if (tcp.ExplicitCongestionNotificationEcho) sb.Append('E');
        if (tcp.CongestionWindowReduced) sb.Append('W');
        if (tcp.Acknowledgment) sb.Append('.');
        return sb.Length == 0 ? "none" : sb.ToString();
    }

    /// <summary>The options as tcpdump names them: mss, nop, wscale, sackOK, sack, TS val/ecr, eol.</summary>
    public static string TcpOptions(ReadOnlySpan<byte> o)
    {
        var parts = new List<string>();
        int i = 0;
        while (i < o.Length)
        {
            byte kind = o[i];
            if (kind == 0) { parts.Add("eol"); break; }
            if (kind == 1) { parts.Add("nop"); i++; continue; }
            if (i + 1 >= o.Length || o[i + 1] < 2 || i + o[i + 1] > o.Length) { parts.Add("bad opt"); break; }
            int len = o[i + 1];
            var v = o.Slice(i + 2, len - 2);
            parts.Add(kind switch
            {
                2 when len == 4 => $"mss {BinaryPrimitives.ReadUInt16BigEndian(v)}",
                3 when len == 3 => $"wscale {v[0]}",
                4 when len == 2 => "sackOK",
                5 => Sack(v),
                8 when len == 10 => $"TS val {BinaryPrimitives.ReadUInt32BigEndian(v)} ecr {BinaryPrimitives.ReadUInt32BigEndian(v[4..])}",
                _ => $"opt-{kind}:{len}",
            });
            i += len;
        }
        return string.Join(',', parts);
    }

    private static string Sack(ReadOnlySpan<byte> v)
    {
        var sb = new StringBuilder("sack ").Append(v.Length / 8);
        for (int k = 0; k + 8 <= v.Length; k += 8)
            sb.Append(CultureInfo.InvariantCulture, $" {{{BinaryPrimitives.ReadUInt32BigEndian(v[k..])}:{BinaryPrimitives.ReadUInt32BigEndian(v[(k + 4)..])}}}");
        return sb.ToString();
    }

    private static string Mac(byte[] b) => string.Join(':', b.Select(x => x.ToString("x2", Ci)));
}
