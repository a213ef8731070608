using AntHost.Inet.Core.Tcp;
using AntHost.Inet.Core.Wire;

namespace AntHost.Inet;

/// <summary>The inet server's command line.</summary>
public sealed record InetOptions
{
    /// <summary>The kernel instance to join (the broker's --instance).</summary>
    public string Instance { get; init; } = "default";

    /// <summary>The service name to register (apps and the driver open it).</summary>
    public string Service { get; init; } = Abi.InetService.Name;

    public Ipv4Address Address { get; init; } = new(198, 18, 0, 2);

    public int PrefixLength { get; init; } = 24;

    public Ipv4Address? Gateway { get; init; }

    /// <summary>How long the request manager spins (yielding) before it sleeps on its doorbell.</summary>
    public TimeSpan SpinBudget { get; init; } = TimeSpan.FromMicroseconds(20);

    /// <summary>ICAs of one size kept in the process's cache.</summary>
    public int CachePerSize { get; init; } = 128;

    public bool Verbose { get; init; }

    /// <summary>Console log format: text or json (one object per line).</summary>
    public string LogFormat { get; init; } = "text";

    /// <summary>TCP's settings: buffer sizes, congestion control and socket limit from the command line, the rest RFC defaults.</summary>
    public TcpConfig Tcp { get; init; } = new() { SegmentationOffloadBytes = TcpConfig.MaximumSegmentationOffloadBytes };

    /// <summary>Sockets (TCP and UDP together) the socket manager keeps at most.</summary>
    public int MaxSockets { get; init; } = 65536;

    /// <summary>Sockets one app may hold open, under <see cref="MaxSockets"/> for all: one app cannot lock the others out.</summary>
    public int MaxSocketsPerProcess { get; init; } = 4096;

    /// <summary>TCP's part of the pool in pages: its buffers, all connections together (negative: half the pool; 0: no limit).</summary>
    public int TcpMemoryPages { get; init; } = -1;

    /// <summary>Pool pages TCP's windows leave for the NIC driver's receive ICAs (negative: an eighth of the pool).</summary>
    public int ReceiveReservePages { get; init; } = -1;

    /// <summary>
    /// One receive batch spans every ethinput of a round (the messages taken in one wake-up),
    /// so a connection answers them with one ACK; false: one batch per ethinput.
    /// </summary>
    public bool ReceiveBatchPerRound { get; init; } = true;

    /// <summary>Every option, for System.CommandLine (`anthost-inet --help`).</summary>
    internal static readonly AntHost.Kernel.Logging.ServerOption[] Options =
    [
        new("--instance", true, "the AntHost instance to join (default: default; the broker must run)"),
        new("--address", true, "our IPv4 address and prefix, A.B.C.D/N (default 198.18.0.2/24)"),
        new("--gateway", true, "default gateway, on the link (default: none)"),
        new("--service", true, "service name to register (default: inet)"),
        new("--spin-us", true, "spin before sleeping on the doorbell, microseconds (default 20; 0 = frugal)"),
        new("--cache", true, "ICAs per size kept in this process's cache (default 128)"),
        new("--tcp-sndbuf", true, "default TCP send buffer per socket, bytes (default 262144)"),
        new("--tcp-rcvbuf", true, "default TCP receive buffer (largest window) per socket, bytes (default 1048576)"),
        new("--tcp-cc", true, "congestion control: cubic (default) or newreno"),
        new("--tso-bytes", true, "segmentation offload: most payload per send the NIC driver cuts into frames (default 65415; 0 = off)"),
        new("--ack-per-segment", false, "answer each received segment at once (default: once per receive batch of in-order segments)"),
        new("--batch-per-ethinput", false, "a receive batch is one ethinput (default: every ethinput taken in one wake-up, answered with one ACK per connection)"),
        new("--tcp-mem-pages", true, "pool pages TCP's buffers may hold, all connections together; windows and send buffers shrink to a share of them (default: half the pool; 0 = no limit)"),
        new("--rx-reserve-pages", true, "pool pages TCP's windows leave for the NIC driver's receive ICAs (default: an eighth of the pool)"),
        new("--max-sockets", true, "sockets open at once, TCP and UDP together (default 65536)"),
        new("--max-sockets-per-process", true, "sockets one app may hold open (default 4096)"),
        new("--verbose", false, "debug logging"),
        new("--log-format", true, "text (default) or json: one object per line (timestamp, level, category, message, the template's fields)"),
    ];

    /// <summary>Parses the command line; throws <see cref="ArgumentException"/> with a message for the user.</summary>
    public static InetOptions Parse(string[] args)
    {
        var o = new InetOptions();
        for (int i = 0; i < args.Length; i++)
        {
            string a = args[i];
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{a} needs a value");
            o = a switch
            {
                "--instance" => o with { Instance = Next() },
                "--service" => o with { Service = Next() },
                "--address" => WithAddress(o, Next()),
                "--gateway" => o with { Gateway = Ipv4Address.TryParse(Next(), out var g) ? g : throw new ArgumentException($"--gateway '{args[i]}' is not an IPv4 address") },
                "--spin-us" => o with { SpinBudget = TimeSpan.FromMicroseconds(ParseInt(a, Next(), 0, 100_000)) },
                "--cache" => o with { CachePerSize = ParseInt(a, Next(), 1, 4096) },
                "--tcp-sndbuf" => o with { Tcp = o.Tcp with { SendBufferSize = ParseInt(a, Next(), 4096, 1 << 30) } },
                "--tcp-rcvbuf" => o with { Tcp = o.Tcp with { ReceiveBufferSize = ParseInt(a, Next(), 1024, 1 << 30) } },
                "--tcp-cc" => o with { Tcp = o.Tcp with { CongestionControl = ParseCongestionControl(Next()) } },
                "--ack-per-segment" => o with { Tcp = o.Tcp with { OutputPerReceiveBatch = false } },
                "--batch-per-ethinput" => o with { ReceiveBatchPerRound = false },
                "--tso-bytes" => o with { Tcp = o.Tcp with { SegmentationOffloadBytes = ParseInt(a, Next(), 0, TcpConfig.MaximumSegmentationOffloadBytes) } },
                "--tcp-mem-pages" => o with { TcpMemoryPages = ParseInt(a, Next(), 0, int.MaxValue) },
                "--rx-reserve-pages" => o with { ReceiveReservePages = ParseInt(a, Next(), 0, int.MaxValue) },
                "--max-sockets" => o with { MaxSockets = ParseInt(a, Next(), 1, 1 << 20) },
                "--max-sockets-per-process" => o with { MaxSocketsPerProcess = ParseInt(a, Next(), 1, 1 << 20) },
                "--verbose" => o with { Verbose = true },
                "--log-format" => o with { LogFormat = AntHost.Kernel.Logging.ServerLogging.CheckFormat(Next()) },
                _ => throw new ArgumentException($"unknown option '{a}'"),
            };
        }
        if (o.Gateway is { } gw && !gw.IsInSubnet(o.Address, o.PrefixLength))
            throw new ArgumentException($"gateway {gw} is not on the link {o.Address}/{o.PrefixLength}");
        return o;
    }

    private static InetOptions WithAddress(InetOptions o, string text)
    {
        var parts = text.Split('/');
        if (parts.Length != 2 || !Ipv4Address.TryParse(parts[0], out var ip) || !int.TryParse(parts[1], out int len) || len is < 1 or > 32
            || ip.IsUnspecified || ip.IsBroadcast || ip.IsMulticast || ip.IsLoopback)
            throw new ArgumentException($"--address '{text}' is not a unicast IPv4 address with a prefix length, like 198.18.0.2/24");
        return o with { Address = ip, PrefixLength = len };
    }

    private static CongestionControlKind ParseCongestionControl(string v) => v switch
    {
        "cubic" => CongestionControlKind.Cubic,
        "newreno" => CongestionControlKind.NewReno,
        _ => throw new ArgumentException($"--tcp-cc takes cubic or newreno, not '{v}'"),
    };

    private static int ParseInt(string opt, string v, int min, int max) =>
        int.TryParse(v, out int n) && n >= min && n <= max ? n : throw new ArgumentException($"{opt} takes a number in {min}..{max}, not '{v}'");
}
