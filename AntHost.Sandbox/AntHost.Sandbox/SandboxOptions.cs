using System.Net;
using System.Text.RegularExpressions;

namespace AntHost.Sandbox;

/// <summary>How to build a sandbox network. Every field has a default.</summary>
public sealed partial record SandboxOptions
{
    /// <summary>The namespaces are <c>PREFIX-host</c> and <c>PREFIX-peer</c>; a prefix belongs to one sandbox at a time.</summary>
    public string Prefix { get; init; } = "anthost";

    /// <summary>The peer kernel's address on the veth.</summary>
    public string PeerAddress { get; init; } = "198.18.0.1/24";

    /// <summary>AntHost's address: the NIC driver's, never the host namespace kernel's.</summary>
    public string HostAddress { get; init; } = "198.18.0.2/24";

    /// <summary>
    /// An address for the host namespace's own kernel on AntHost's veth (e.g. <c>198.18.0.3/24</c>),
    /// or null (the default) for none. The benchmarks use it for their baseline: the host
    /// kernel's TCP over the very veth AntHost's NIC driver uses. AntHost's address stays the
    /// driver's alone: the kernel answers ARP only for addresses it holds on that interface
    /// (<c>arp_ignore=1</c> instead of 8), and frames for the driver's own MAC are "other
    /// host" to it, dropped even while the driver holds the veth promiscuous.
    /// </summary>
    public string? HostKernelAddress { get; init; }

    /// <summary>The veth's MTU, both ends.</summary>
    public int Mtu { get; init; } = 1500;

    /// <summary>Start the peer's servers (echo, discard, source, HTTP).</summary>
    public bool StartServers { get; init; } = true;

    /// <summary>The peer's server ports.</summary>
    public PeerPorts Ports { get; init; } = new();

    /// <summary>Turn segmentation, GRO and checksum offloads off on both ends (on: the peer hands libpcap super-frames with unfilled checksums).</summary>
    public bool OffloadsOff { get; init; } = true;

    /// <summary>Random loss of IP packets entering the peer, in percent (nftables numgen), or 0.</summary>
    public double LossInPercent { get; init; }

    /// <summary>Random loss of IP packets leaving the peer, in percent, or 0.</summary>
    public double LossOutPercent { get; init; }

    /// <summary>A tc tbf rate for both ends' egress (e.g. <c>100mbit</c>), or null for none.</summary>
    public string? RateLimit { get; init; }

    /// <summary>The interface name of AntHost's end (in <c>PREFIX-host</c>).</summary>
    public const string HostInterface = "anthost0";

    /// <summary>The interface name of the peer's end (in <c>PREFIX-peer</c>).</summary>
    public const string PeerInterface = "peer0";

    /// <summary>Checks every field; throws <see cref="ArgumentException"/> saying which is wrong.</summary>
    public void Validate()
    {
        if (!PrefixPattern().IsMatch(Prefix))
            throw new ArgumentException($"sandbox prefix '{Prefix}' must be 1-24 of a-z, 0-9 and '-', starting with a letter or digit");
        var peer = ParseCidr(PeerAddress, nameof(PeerAddress));
        var host = ParseCidr(HostAddress, nameof(HostAddress));
        if (peer.Address.Equals(host.Address)) throw new ArgumentException($"PeerAddress and HostAddress are both {peer.Address}");
        if (HostKernelAddress is not null)
        {
            var kernel = ParseCidr(HostKernelAddress, nameof(HostKernelAddress));
            if (kernel.Address.Equals(peer.Address) || kernel.Address.Equals(host.Address))
                throw new ArgumentException($"HostKernelAddress {kernel.Address} is already the peer's or AntHost's address");
        }
        if (Mtu is < 576 or > 9000) throw new ArgumentException($"MTU {Mtu} out of range 576..9000");
        if (LossInPercent is < 0 or > 100 || LossOutPercent is < 0 or > 100) throw new ArgumentException("loss must be 0..100 percent");
        if (RateLimit is not null && !RatePattern().IsMatch(RateLimit))
            throw new ArgumentException($"rate limit '{RateLimit}' is not a tc rate like 100mbit or 1gbit");
    }

    /// <summary>Parses <c>A.B.C.D/N</c> and requires it inside 198.18.0.0/15 (RFC 2544, reserved for benchmarks): the sandbox never uses an address that could be someone's.</summary>
    public static (IPAddress Address, int PrefixLength) ParseCidr(string text, string what)
    {
        var parts = (text ?? "").Split('/');
        if (parts.Length != 2 || !IPAddress.TryParse(parts[0], out var ip) || ip.AddressFamily != System.Net.Sockets.AddressFamily.InterNetwork
            || !int.TryParse(parts[1], out int len) || len is < 8 or > 30)
            throw new ArgumentException($"{what} '{text}' is not an IPv4 address with a prefix length 8..30 (like 198.18.0.1/24)");
        var b = ip.GetAddressBytes();
        if (b[0] != 198 || (b[1] & 0xFE) != 18)
            throw new ArgumentException($"{what} {ip} is outside 198.18.0.0/15, the range reserved for the sandbox");
        return (ip, len);
    }

    [GeneratedRegex("^[a-z0-9][a-z0-9-]{0,23}$")]
    private static partial Regex PrefixPattern();

    [GeneratedRegex("^[0-9]+(\\.[0-9]+)?(bit|kbit|mbit|gbit|tbit|bps|kbps|mbps|gbps)$")]
    private static partial Regex RatePattern();
}

/// <summary>The ports of the peer's servers.</summary>
public sealed record PeerPorts
{
    public int Echo { get; init; } = 7;
    public int Discard { get; init; } = 9;
    public int Source { get; init; } = 19;
    public int Http { get; init; } = 80;

    /// <summary>The RTT responder: after a 4-byte big-endian size N, answers every N bytes with 1 byte (the paper's RTT test).</summary>
    public int Rtt { get; init; } = 5001;
}
