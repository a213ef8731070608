using AntHost.Inet.Core.Wire;
using AntHost.Nic8139.Faults;

namespace AntHost.Nic8139.Pcap;

/// <summary>How to open an adapter. Only <see cref="Adapter"/> is required.</summary>
public sealed record NicDeviceOptions
{
    /// <summary>Snaplen beyond MTU + Ethernet header: room for a VLAN tag and a little more, so a frame one tag too long is seen whole and counted, not cut.</summary>
    public const int SnaplenMargin = 64;

    /// <summary>The libpcap kernel ring: the default (2 MiB, ~32 frames with a 64 KiB snaplen) drops under load.</summary>
    public const int DefaultBufferBytes = 8 << 20;

    /// <summary>The interface name (e.g. <c>anthost0</c> in the sandbox, <c>enp3s0</c> on a real network).</summary>
    public required string Adapter { get; init; }

    /// <summary>The driver's MAC; null derives a locally administered one from <see cref="Adapter"/> and <see cref="Instance"/>.</summary>
    public MacAddress? Mac { get; init; }

    /// <summary>Which driver instance on this adapter (changes the derived MAC).</summary>
    public int Instance { get; init; }

    /// <summary>The IP MTU; null takes the adapter's. A received frame longer than MTU + 18 is counted as oversize and dropped.</summary>
    public int? Mtu { get; init; }

    /// <summary>libpcap's kernel buffer, in bytes.</summary>
    public int BufferBytes { get; init; } = DefaultBufferBytes;

    /// <summary>Promiscuous mode; null turns it on only when <see cref="Mac"/> is not the adapter's own address.</summary>
    public bool? Promiscuous { get; init; }

    /// <summary>Accept multicast frames (IPv4/IPv6 multicast) besides our unicast and broadcast.</summary>
    public bool AcceptMulticast { get; init; }

    /// <summary>Open the adapter inside this named network namespace (null: the process's own).</summary>
    public string? NetworkNamespace { get; init; }

    /// <summary>How often an idle receive loop asks the kernel about the link.</summary>
    public TimeSpan LinkCheckInterval { get; init; } = TimeSpan.FromMilliseconds(250);

    /// <summary>After the ring runs empty, keep polling it this long (yielding the CPU in between) before sleeping; 0 sleeps at once.</summary>
    public int SpinMicroseconds { get; init; }

    /// <summary>Faults applied to received frames (off by default).</summary>
    public FaultSettings ReceiveFaults { get; init; } = FaultSettings.None;

    /// <summary>Faults applied to transmitted frames (off by default).</summary>
    public FaultSettings TransmitFaults { get; init; } = FaultSettings.None;

    /// <summary>
    /// Hand a segmentation-offload send to the kernel as one large frame with a
    /// <c>virtio_net_hdr</c> (PACKET_VNET_HDR), so the kernel cuts it and fills in the checksums
    /// (its software GSO); off, or when the kernel refuses the socket, the device cuts the frames itself.
    /// </summary>
    public bool KernelSegmentation { get; init; } = true;
}
