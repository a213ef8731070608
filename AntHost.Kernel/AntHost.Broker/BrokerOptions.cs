using AntHost.Kernel.Pool;

namespace AntHost.Broker;

/// <summary>How a broker (one kernel instance) is set up at start.</summary>
public sealed record BrokerOptions
{
    public string Instance { get; init; } = "default";
    /// <summary>Bytes of ICA data pages (the pool file adds its tables and rings).</summary>
    public long PoolBytes { get; init; } = 64L * 1024 * 1024;
    public TransferMode Transfer { get; init; } = TransferMode.Direct;
    /// <summary>Strict mode is the default of every process of the instance.</summary>
    public bool Strict { get; init; }

    /// <summary>Debug logging.</summary>
    public bool Verbose { get; init; }

    /// <summary>Console log format: text or json (one object per line).</summary>
    public string LogFormat { get; init; } = "text";
    /// <summary>
    /// How often the broker commits journals while they are not empty. Long on purpose: the
    /// broker is off the request path, a journal at least half full wakes it at once, an
    /// allocation that comes short commits first, and so does every reclaim.
    /// </summary>
    public int CommitIntervalMs { get; init; } = 100;
    /// <summary>The broker's own spin budget before it sleeps (0: sleep at once; matters for the mediated path).</summary>
    public TimeSpan SpinBudget { get; init; } = TimeSpan.Zero;
    public int MaxProcesses { get; init; } = 64;
    public int MaxChannels { get; init; } = 128;
    public int RingCapacity { get; init; } = 256;
    /// <summary>End a cut-off process with SIGKILL (its pages are reclaimed once it is gone).</summary>
    public bool KillOnFault { get; init; } = true;

    /// <summary>
    /// The group that may use the instance besides root: it owns the pool file and the socket
    /// (0660); registration checks the peer's uid and groups. Default: root's group (gid 0).
    /// </summary>
    public string Group { get; init; } = "root";

    /// <summary>Pages an app (any process not registered as a server) may hold; 0: a quarter of the pool.</summary>
    public int AppPages { get; init; }
    /// <summary>ICAs an app may hold.</summary>
    public int AppIcas { get; init; } = 4096;
    /// <summary>Channels an app may have open (those it opened).</summary>
    public int AppChannels { get; init; } = 32;
    /// <summary>Services an app may register.</summary>
    public int AppServices { get; init; } = 4;
    /// <summary>Registered processes per uid other than root's.</summary>
    public int RegistrationsPerUid { get; init; } = 16;
    /// <summary>
    /// Connections to the broker's socket one uid other than root may hold open (registered or
    /// not): a half-sent request holds a buffer of up to 16 KiB in the broker, so this bounds
    /// what one user can pin there.
    /// </summary>
    public int ConnectionsPerUid { get; init; } = 64;
    /// <summary>Pages only servers may take (the driver's receive ICAs, inet's control ICAs); -1: an eighth of the pool.</summary>
    public int ServerReserve { get; init; } = -1;

    /// <summary>Every option, for System.CommandLine (`anthost-kernel --help`).</summary>
    internal static readonly AntHost.Kernel.Logging.ServerOption[] Options =
    [
        new("--instance", true, "instance name (default: default); pool /dev/shm/anthost-NAME.pool, socket /run/anthost/NAME.sock"),
        new("--pool-size", true, "data pages of the pool, e.g. 64M, 256M, 1G (default 64M)"),
        new("--transfer", true, "direct (default) or mediated"),
        new("--strict", false, "every process keeps pages it does not own PROT_NONE (debug; slow)"),
        new("--commit-ms", true, "journal commit interval while journals are non-empty (default 100)"),
        new("--spin-us", true, "broker spin budget before sleeping (default 0)"),
        new("--max-processes", true, "processes registered at once (default 64)"),
        new("--max-channels", true, "channels open at once (default 128)"),
        new("--ring-slots", true, "slots per ring (default 256)"),
        new("--no-kill-on-fault", false, "do not SIGKILL a process that is cut off (only unregister it)"),
        new("--group", true, "the group that may use the instance besides root: it owns the pool file and the socket (0660) (default: root's group)"),
        new("--app-pages", true, "pages one app may hold (default: a quarter of the pool)"),
        new("--app-icas", true, "ICAs one app may hold (default 4096)"),
        new("--app-channels", true, "channels one app may have open (default 32)"),
        new("--app-services", true, "services one app may register (default 4)"),
        new("--registrations-per-uid", true, "processes one uid other than root may register (default 16)"),
        new("--connections-per-uid", true, "connections one uid other than root may hold open (default 64)"),
        new("--server-reserve", true, "pages only the servers (inet, drivers) may take (default: an eighth of the pool)"),
        new("--verbose", false, "debug logging"),
        new("--log-format", true, "text (default) or json: one object per line (timestamp, level, category, message, the template's fields)"),
    ];

    /// <summary>Parses the command line; throws <see cref="ArgumentException"/> with a message for the user.</summary>
    public static BrokerOptions Parse(string[] args)
    {
        var o = new BrokerOptions();
        for (int i = 0; i < args.Length; i++)
        {
            string a = args[i];
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{a} needs a value");
            o = a switch
            {
                "--instance" => o with { Instance = Next() },
                "--pool-size" => o with { PoolBytes = ParseSize(Next()) },
                "--transfer" => o with
                {
                    Transfer = Next() switch
                    {
                        "direct" => TransferMode.Direct,
                        "mediated" => TransferMode.Mediated,
                        var v => throw new ArgumentException($"--transfer is direct or mediated, not '{v}'"),
                    },
                },
                "--strict" => o with { Strict = true },
                "--verbose" => o with { Verbose = true },
                "--log-format" => o with { LogFormat = AntHost.Kernel.Logging.ServerLogging.CheckFormat(Next()) },
                "--commit-ms" => o with { CommitIntervalMs = ParseInt(a, Next(), 1, 1000) },
                "--spin-us" => o with { SpinBudget = TimeSpan.FromMicroseconds(ParseInt(a, Next(), 0, 100_000)) },
                "--max-processes" => o with { MaxProcesses = ParseInt(a, Next(), 2, 1000) },
                "--max-channels" => o with { MaxChannels = ParseInt(a, Next(), 2, 60000) },
                "--ring-slots" => o with { RingCapacity = ParseInt(a, Next(), 8, 65536) },
                "--no-kill-on-fault" => o with { KillOnFault = false },
                "--group" => o with { Group = Next() is { Length: > 0 } g ? g : throw new ArgumentException("--group needs a group name") },
                "--app-pages" => o with { AppPages = ParseInt(a, Next(), 1, int.MaxValue) },
                "--app-icas" => o with { AppIcas = ParseInt(a, Next(), 1, int.MaxValue) },
                "--app-channels" => o with { AppChannels = ParseInt(a, Next(), 1, 60000) },
                "--app-services" => o with { AppServices = ParseInt(a, Next(), 0, 64) },
                "--registrations-per-uid" => o with { RegistrationsPerUid = ParseInt(a, Next(), 1, 1000) },
                "--connections-per-uid" => o with { ConnectionsPerUid = ParseInt(a, Next(), 1, 100_000) },
                "--server-reserve" => o with { ServerReserve = ParseInt(a, Next(), 0, int.MaxValue) },
                _ => throw new ArgumentException($"unknown option '{a}'"),
            };
        }
        return o;
    }

    private static int ParseInt(string opt, string v, int min, int max) =>
        int.TryParse(v, out int n) && n >= min && n <= max ? n : throw new ArgumentException($"{opt} takes a number in {min}..{max}, not '{v}'");

    public static long ParseSize(string v)
    {
        long mult = 1;
        string s = v.Trim();
        if (s.EndsWith('K') || s.EndsWith('k')) { mult = 1024; s = s[..^1]; }
        else if (s.EndsWith('M') || s.EndsWith('m')) { mult = 1024 * 1024; s = s[..^1]; }
        else if (s.EndsWith('G') || s.EndsWith('g')) { mult = 1024L * 1024 * 1024; s = s[..^1]; }
        if (!long.TryParse(s, out long n) || n <= 0) throw new ArgumentException($"--pool-size takes a size like 64M, not '{v}'");
        return n * mult;
    }
}
