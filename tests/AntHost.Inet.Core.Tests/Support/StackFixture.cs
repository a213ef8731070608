using AntHost.Inet.Core.Buffers;
using AntHost.Inet.Core.Iface;
using AntHost.Inet.Core.Ip;
using AntHost.Inet.Core.Randomness;
using AntHost.Inet.Core.Time;
using AntHost.Inet.Core.Wire;

namespace AntHost.Inet.Core.Tests.Support;

/// <summary>Addresses used by the tests (198.18.0.0/15, RFC 2544).</summary>
public static class Net
{
    public static readonly MacAddress OurMac = MacAddress.Parse("02:00:00:00:00:01");
    public static readonly Ipv4Address OurIp = Ipv4Address.Parse("198.18.0.1");
    public static readonly MacAddress PeerMac = MacAddress.Parse("02:00:00:00:00:02");
    public static readonly Ipv4Address PeerIp = Ipv4Address.Parse("198.18.0.2");
    public static readonly MacAddress GatewayMac = MacAddress.Parse("02:00:00:00:00:fe");
    public static readonly Ipv4Address GatewayIp = Ipv4Address.Parse("198.18.0.254");
    public static readonly Ipv4Address RemoteIp = Ipv4Address.Parse("198.19.7.9");   // off-link
    public static readonly Ipv4Address SubnetBroadcast = Ipv4Address.Parse("198.18.0.255");
    public const int Prefix = 24;
}

/// <summary>
/// One interface fed frames by hand at a virtual time: <see cref="Receive"/> puts a frame in,
/// <see cref="Drain"/> takes out (copies of) what it sent and finishes their transmission.
/// </summary>
public sealed class StackFixture
{
    public StackFixture(Func<InterfaceConfig, InterfaceConfig>? configure = null, int bufferSize = 4096, int poolLimit = int.MaxValue, bool up = true,
        Func<IIpOutput, ITransportLayer>? tcp = null, HeapBufferPool? pool = null)
    {
        Pool = pool ?? new HeapBufferPool(bufferSize, poolLimit);
        var config = new InterfaceConfig
        {
            Mac = Net.OurMac,
            Address = Net.OurIp,
            PrefixLength = Net.Prefix,
            Gateway = Net.GatewayIp,
            Pool = Pool,
            Random = new SeededRandom(42),
            Tcp = tcp,
            Arp = new ArpConfig { Announcements = 0 },
        };
        if (configure is not null) config = configure(config);
        Iface = new Interface(config);
        if (up) Iface.Up(Now);
    }

    public HeapBufferPool Pool { get; }
    public Interface Iface { get; }
    public Instant Now { get; set; } = Instant.FromMilliseconds(1_000);

    public void Advance(TimeSpan d)
    {
        Now += d;
        Iface.Poll(Now);
    }

    /// <summary>Runs the interface's timers up to <paramref name="until"/>, deadline by deadline.</summary>
    public void RunUntil(Instant until)
    {
        for (int guard = 0; guard < 100_000; guard++)
        {
            var at = Iface.PollAt;
            if (at is null || at.Value > until) break;
            Now = at.Value > Now ? at.Value : Now;
            Iface.Poll(Now);
        }
        Now = until;
        Iface.Poll(Now);
    }

    public PacketBuffer Buffer(ReadOnlySpan<byte> bytes, int headroom = 64)
    {
        var b = Pool.Rent(headroom, bytes.Length) ?? throw new InvalidOperationException("test pool exhausted");
        bytes.CopyTo(b.Append(bytes.Length));
        return b;
    }

    public void Receive(byte[] frame) => Iface.Receive(Buffer(frame), Now);

    public List<byte[]> Drain()
    {
        var list = new List<byte[]>();
        while (Iface.TryDequeueTransmit(out var f))
        {
            list.Add(f.Data.ToArray());
            f.FinishTransmit();
        }
        return list;
    }

    /// <summary>Teaches the interface a neighbour's MAC the way a resolution does: our request, its answer (the entry is then Reachable).</summary>
    public void LearnPeer(MacAddress mac, Ipv4Address ip)
    {
        Iface.Arp.Solicit(ip, Now);
        Drain();
        Receive(Frames.Ethernet(Net.OurMac, mac, 0x0806, Frames.Arp(2, mac, ip, Net.OurMac, Net.OurIp)));
        Drain();
    }

    public void LearnPeer() => LearnPeer(Net.PeerMac, Net.PeerIp);

    public void LearnGateway() => LearnPeer(Net.GatewayMac, Net.GatewayIp);

    public Counters.CountersSnapshot Counters => Iface.Counters.Snapshot();
}
