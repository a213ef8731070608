// The inet server's Meter, anthost-inet: its counters for dotnet-counters and OpenTelemetry
// (`dotnet-counters monitor -n anthost-inet --counters anthost-inet`), read on the
// collector's thread from what the request thread counts as it goes (no request, no wake-up).
using AntHost.Inet.Abi;
using AntHost.Inet.Sockets;
using AntHost.Kernel.Diagnostics;

namespace AntHost.Inet;

public sealed class InetMeter : IDisposable
{
    public const string Name = "anthost-inet";
    private readonly CounterMeter _meter;

    /// <param name="read">The counters in <see cref="InetStat"/> order (null when they cannot be read now).</param>
    public InetMeter(Func<long[]?> read) => _meter = new CounterMeter(Name, read, Specs);

    private readonly object _lock = new();
    private bool _closed;

    /// <summary>The server's meter over its protocol and socket managers, until <see cref="Close"/>.</summary>
    public static InetMeter For(ProtocolManager protocol, SocketManager sockets)
    {
        InetMeter? self = null;
        self = new InetMeter(() =>
        {
            lock (self!._lock)
            {
                if (self._closed) return null;
                var v = new long[(int)InetStat.Count];
                protocol.ReadLive(v);
                sockets.ReadLive(v);
                return v;
            }
        });
        return self;
    }

    /// <summary>No read after this returns (the pool is about to be unmapped).</summary>
    public void Close()
    {
        lock (_lock) _closed = true;
        Dispose();
    }

    public System.Diagnostics.Metrics.Meter Meter => _meter.Meter;

    public static readonly CounterSpec[] Specs =
    [
        new("anthost.inet.frames", (int)InetStat.IfaceFramesIn, "direction", "in", "{frame}"),
        new("anthost.inet.frames", (int)InetStat.IfaceFramesOut, "direction", "out", "{frame}"),
        new("anthost.inet.drops", (int)InetStat.IfaceRxDrops, "reason", "rx", "{frame}"),
        new("anthost.inet.drops", (int)InetStat.IfaceTxDrops, "reason", "tx", "{frame}"),
        new("anthost.inet.drops", (int)InetStat.TcpDropsIn, "reason", "tcp_in", "{segment}"),
        new("anthost.inet.drops", (int)InetStat.UdpNoPort, "reason", "udp_no_port", "{datagram}"),
        new("anthost.inet.drops", (int)InetStat.TxNoDriver, "reason", "tx_no_driver", "{frame}"),
        new("anthost.inet.drops", (int)InetStat.TxLostWithDriver, "reason", "tx_lost_with_driver", "{frame}"),
        new("anthost.inet.drops", (int)InetStat.TxSendFailures, "reason", "tx_ring_full", "{message}"),
        new("anthost.inet.drops", (int)InetStat.FramesNotSent, "reason", "driver_not_sent", "{frame}"),
        new("anthost.inet.drops", (int)InetStat.RepliesDropped, "reason", "reply_ring_full", "{message}"),
        new("anthost.inet.replies.parked", (int)InetStat.RepliesParked, Unit: "{message}"),
        new("anthost.inet.tcp.segments", (int)InetStat.TcpSegmentsIn, "direction", "in", "{segment}"),
        new("anthost.inet.tcp.segments", (int)InetStat.TcpSegmentsOut, "direction", "out", "{segment}"),
        new("anthost.inet.tcp.retransmissions", (int)InetStat.TcpRetransmitsTimeout, "cause", "timeout", "{segment}"),
        new("anthost.inet.tcp.retransmissions", (int)InetStat.TcpRetransmitsFast, "cause", "fast", "{segment}"),
        new("anthost.inet.tcp.retransmissions", (int)InetStat.TcpRetransmitsSack, "cause", "sack", "{segment}"),
        new("anthost.inet.tcp.retransmissions", (int)InetStat.TcpRetransmitsRack, "cause", "rack", "{segment}"),
        new("anthost.inet.tcp.retransmissions", (int)InetStat.TcpRetransmitsTlp, "cause", "tlp", "{segment}"),
        new("anthost.inet.tcp.resets", (int)InetStat.TcpResetsIn, "direction", "in", "{segment}"),
        new("anthost.inet.tcp.resets", (int)InetStat.TcpResetsOut, "direction", "out", "{segment}"),
        new("anthost.inet.ipc.messages", (int)InetStat.EthInputMessages, "kind", "ethinput", "{message}"),
        new("anthost.inet.ipc.messages", (int)InetStat.TransmitRequests, "kind", "transmit", "{message}"),
        new("anthost.inet.ipc.messages", (int)InetStat.SocketCalls, "kind", "socket_call", "{message}"),
        new("anthost.inet.ipc.messages", (int)InetStat.BadRequests, "kind", "bad_request", "{message}"),
        new("anthost.inet.ipc.messages", (int)InetStat.BadSocketRequests, "kind", "bad_socket_request", "{message}"),
        new("anthost.inet.transfers", (int)InetStat.DirectReturns, "kind", "direct_return", "{send}"),
        new("anthost.inet.transfers", (int)InetStat.SendsAnsweredByInet, "kind", "answered_by_inet", "{send}"),
        new("anthost.inet.transfers", (int)InetStat.ReceiveIcasToApps, "kind", "receive_ica_to_app", "{ica}"),
        new("anthost.inet.transfers", (int)InetStat.FramesToDriver, "kind", "frame_to_driver", "{frame}"),
        new("anthost.inet.transfers", (int)InetStat.FramesFromDriver, "kind", "frame_from_driver", "{frame}"),
        new("anthost.inet.app_deaths", (int)InetStat.AppDeaths, Unit: "{process}"),
        new("anthost.inet.sockets.open", (int)InetStat.SocketsOpen, Unit: "{socket}", Gauge: true),
        new("anthost.inet.tcp.connections", (int)InetStat.TcpConnections, Unit: "{connection}", Gauge: true),
        new("anthost.inet.driver.attached", (int)InetStat.Attached, Gauge: true),
        new("anthost.inet.pages_owned", (int)InetStat.PagesOwned, Unit: "{page}", Gauge: true),
        new("anthost.inet.tcp.memory", (int)InetStat.TcpMemoryLimit, "kind", "limit", "By", Gauge: true),
        new("anthost.inet.tcp.memory", (int)InetStat.TcpMemoryUsed, "kind", "used", "By", Gauge: true),
        new("anthost.inet.tcp.memory_holders", (int)InetStat.TcpMemoryHolders, Unit: "{connection}", Gauge: true),
        new("anthost.inet.tcp.pressure", (int)InetStat.TcpPressureWindowClamps, "kind", "window_clamped", "{segment}"),
        new("anthost.inet.tcp.pressure", (int)InetStat.TcpPressureSendRefusals, "kind", "send_held", "{send}"),
        new("anthost.inet.pool.free_pages_low", (int)InetStat.PoolFreePagesLow, Unit: "{page}", Gauge: true),
    ];

    public void Dispose() => _meter.Dispose();
}
