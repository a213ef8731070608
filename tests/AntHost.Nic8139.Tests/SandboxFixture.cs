using System.Buffers.Binary;
using System.Net;
using System.Net.NetworkInformation;
using AntHost.Inet.Abi;
using AntHost.Inet.Core.Wire;
using AntHost.Nic8139.Pcap;
using AntHost.Sandbox;
using AntHost.TestSupport;
using PacketDotNet;

namespace AntHost.Nic8139.Tests;

/// <summary>
/// A sandbox network of the test class's own (prefix <c>aht-nNNNNN</c>, random per fixture, so
/// classes running in parallel never collide), without the peer's servers: these tests talk to
/// the peer's kernel directly. Removed when the class is done, also when a test failed.
/// </summary>
public sealed class SandboxFixture : IDisposable
{
    public SandboxFixture()
    {
        if (Requirements.PcapMissing is not null) return;
        Network = SandboxNetwork.Create(new SandboxOptions { Prefix = "aht-n" + Random.Shared.Next(10000, 100000), StartServers = false });
    }

    public SandboxNetwork? Network { get; }

    public SandboxNetwork Sandbox => Network ?? throw new InvalidOperationException(Requirements.PcapMissing);

    public static readonly IPAddress PeerIp = IPAddress.Parse("198.18.0.1");
    public static readonly IPAddress HostIp = IPAddress.Parse("198.18.0.2");

    /// <summary>The driver's device on AntHost's end of the veth.</summary>
    public NicDevice OpenHost(Func<NicDeviceOptions, NicDeviceOptions>? change = null)
    {
        var o = new NicDeviceOptions { Adapter = Sandbox.HostInterface, NetworkNamespace = Sandbox.HostNamespace };
        return NicDevice.Open(change is null ? o : change(o));
    }

    /// <summary>A tap on the peer's end, with the peer's own MAC (not promiscuous): injects frames as if from the peer, and sees what reaches it.</summary>
    public NicDevice OpenPeerTap(int? mtu = null) =>
        NicDevice.Open(new NicDeviceOptions
        {
            Adapter = Sandbox.PeerInterface,
            NetworkNamespace = Sandbox.PeerNamespace,
            Mac = MacAddress.Parse(Sandbox.PeerMac),
            Mtu = mtu,
        });

    public void Dispose() => Network?.Destroy();
}

/// <summary>Frames a device received, copied, with a bounded wait for one that matches (a guard against a hang, not a timing check).</summary>
public sealed class FrameLog
{
    private readonly List<byte[]> _frames = [];

    public static readonly TimeSpan Patience = TimeSpan.FromSeconds(20);

    public void Add(ReadOnlySpan<byte> frame)
    {
        lock (_frames)
        {
            _frames.Add(frame.ToArray());
            Monitor.PulseAll(_frames);
        }
    }

    public List<byte[]> Snapshot()
    {
        lock (_frames) return [.. _frames];
    }

    public byte[] WaitFor(Func<byte[], bool> match, string what)
    {
        var deadline = DateTime.UtcNow + Patience;
        lock (_frames)
        {
            while (true)
            {
                foreach (var f in _frames) if (match(f)) return f;
                var left = deadline - DateTime.UtcNow;
                if (left <= TimeSpan.Zero) throw new Xunit.Sdk.XunitException($"no frame arrived that is {what} (got {_frames.Count} others)");
                Monitor.Wait(_frames, left);
            }
        }
    }

    public int Count(Func<byte[], bool> match)
    {
        lock (_frames) return _frames.Count(match);
    }

    /// <summary>Waits until <paramref name="count"/> frames match (a receive loop under load may take a while to drain them).</summary>
    public void WaitForCount(Func<byte[], bool> match, int count, string what)
    {
        var deadline = DateTime.UtcNow + Patience;
        lock (_frames)
        {
            while (_frames.Count(match) < count)
            {
                var left = deadline - DateTime.UtcNow;
                if (left <= TimeSpan.Zero) throw new Xunit.Sdk.XunitException($"{_frames.Count(match)} of {count} frames that are {what} arrived");
                Monitor.Wait(_frames, left);
            }
        }
    }
}

/// <summary>Frames built and checked with PacketDotNet, an oracle independent of AntHost's own wire code.</summary>
public static class TestFrames
{
    public const ushort Experimental = 0x88B5;

    public static PhysicalAddress Phys(MacAddress mac)
    {
        var b = new byte[6];
        mac.WriteTo(b);
        return new PhysicalAddress(b);
    }

    public static byte[] ArpRequest(MacAddress from, IPAddress fromIp, IPAddress target)
    {
        var eth = new EthernetPacket(Phys(from), PhysicalAddress.Parse("FF-FF-FF-FF-FF-FF"), EthernetType.Arp)
        {
            PayloadPacket = new PacketDotNet.ArpPacket(PacketDotNet.ArpOperation.Request, PhysicalAddress.Parse("00-00-00-00-00-00"), target, Phys(from), fromIp),
        };
        return eth.Bytes;
    }

    public static PacketDotNet.ArpPacket? ArpReply(byte[] frame, IPAddress from)
    {
        var arp = Packet.ParsePacket(LinkLayers.Ethernet, frame).Extract<PacketDotNet.ArpPacket>();
        return arp is { Operation: PacketDotNet.ArpOperation.Response } && arp.SenderProtocolAddress.Equals(from) ? arp : null;
    }

    public static byte[] EchoRequest(MacAddress from, MacAddress to, IPAddress fromIp, IPAddress toIp, ushort id, ushort seq)
    {
        var icmpBytes = new byte[8 + 48];
        for (int i = 8; i < icmpBytes.Length; i++) icmpBytes[i] = (byte)i;
        var icmp = new IcmpV4Packet(new PacketDotNet.Utils.ByteArraySegment(icmpBytes))
        {
            TypeCode = IcmpV4TypeCode.EchoRequest,
            Id = id,
            Sequence = seq,
        };
        icmp.UpdateIcmpChecksum();
        var ip = new IPv4Packet(fromIp, toIp) { PayloadPacket = icmp, TimeToLive = 64, Protocol = PacketDotNet.ProtocolType.Icmp };
        ip.UpdateCalculatedValues();
        ip.UpdateIPChecksum();
        return new EthernetPacket(Phys(from), Phys(to), EthernetType.IPv4) { PayloadPacket = ip }.Bytes;
    }

    /// <summary>A frame of our own experimental EtherType carrying a number (to tell frames apart).</summary>
    public static byte[] Numbered(MacAddress dst, MacAddress src, int number, int length = 64)
    {
        var f = new byte[length];
        dst.WriteTo(f);
        src.WriteTo(f.AsSpan(6));
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(12), Experimental);
        BinaryPrimitives.WriteInt32BigEndian(f.AsSpan(14), number);
        return f;
    }

    /// <summary>The number of a <see cref="Numbered"/> frame, or -1.</summary>
    public static int NumberOf(byte[] f) =>
        f.Length >= 18 && BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(12)) == Experimental ? BinaryPrimitives.ReadInt32BigEndian(f.AsSpan(14)) : -1;
}
