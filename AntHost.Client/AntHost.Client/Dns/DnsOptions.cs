// Where the resolver's name servers and search list come from: the app's own choice
// (InetStackOptions.Dns), else a resolv.conf: the one ANTHOST_RESOLV_CONF names, else the
// one `anthost up` wrote for the instance (/run/anthost/INSTANCE/resolv.conf: the sandbox
// peer's dnsmasq, or --dns), else the host's /etc/resolv.conf. The format is the one
// resolv.conf(5) describes: nameserver, search, domain, options ndots/timeout/attempts.
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace AntHost.Client;

/// <summary>The stub resolver's configuration (after resolv.conf(5)).</summary>
public sealed record DnsOptions
{
    /// <summary>The name servers, asked in order (port 53 unless given); IPv4 only, as the stack.</summary>
    public IReadOnlyList<IPEndPoint> Servers { get; init; } = [];

    /// <summary>Domains appended to a name with fewer than <see cref="Ndots"/> dots (tried before the name itself), or after it.</summary>
    public IReadOnlyList<string> Search { get; init; } = [];

    /// <summary>Dots a name needs to be tried as it is first (resolv.conf's ndots, default 1).</summary>
    public int Ndots { get; init; } = 1;

    /// <summary>How long one query waits for its answer (resolv.conf's timeout, default 5 s).</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Rounds over every server before a name is given up as unanswered (resolv.conf's attempts, default 2).</summary>
    public int Attempts { get; init; } = 2;

    /// <summary>The longest a record is cached, whatever its TTL says.</summary>
    public TimeSpan MaxCacheTtl { get; init; } = TimeSpan.FromHours(1);

    /// <summary>Where the configuration was read from (for messages), or null when the app made it.</summary>
    public string? Source { get; init; }

    /// <summary>The environment variable naming a resolv.conf to use instead of the instance's or the host's.</summary>
    public const string ResolvConfVariable = "ANTHOST_RESOLV_CONF";

    /// <summary>The resolv.conf `anthost up` writes for an instance.</summary>
    public static string InstanceResolvConf(string instance) => $"/run/anthost/{instance}/resolv.conf";

    /// <summary>
    /// The configuration an app of <paramref name="instance"/> uses by default: the file named by
    /// ANTHOST_RESOLV_CONF, else the instance's resolv.conf, else /etc/resolv.conf.
    /// </summary>
    public static DnsOptions ForInstance(string instance)
    {
        if (Environment.GetEnvironmentVariable(ResolvConfVariable) is { Length: > 0 } path) return FromResolvConf(path);
        string mine = InstanceResolvConf(instance);
        return FromResolvConf(File.Exists(mine) ? mine : "/etc/resolv.conf");
    }

    /// <summary>Reads a resolv.conf; a file that cannot be read gives no servers (every lookup then fails, saying so).</summary>
    public static DnsOptions FromResolvConf(string path)
    {
        string text;
        try { text = File.ReadAllText(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return new DnsOptions { Source = $"{path} (unreadable: {e.Message})" }; }
        return Parse(text) with { Source = path };
    }

    /// <summary>Parses resolv.conf text. Unknown lines and IPv6 servers are skipped (the stack is IPv4).</summary>
    public static DnsOptions Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var servers = new List<IPEndPoint>();
        var search = new List<string>();
        var o = new DnsOptions();
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.Split('#', ';')[0].Trim();
            var parts = line.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length < 2) continue;
            switch (parts[0])
            {
                case "nameserver" when IPAddress.TryParse(parts[1], out var ip) && ip.AddressFamily == AddressFamily.InterNetwork:
                    servers.Add(new IPEndPoint(ip, 53));
                    break;
                case "search" or "domain":
                    // The last search or domain line wins (resolv.conf(5)).
                    search = parts.Skip(1).Select(d => d.TrimEnd('.').ToLowerInvariant()).Where(d => d.Length > 0).ToList();
                    break;
                case "options":
                    foreach (var opt in parts.Skip(1))
                    {
                        var kv = opt.Split(':', 2);
                        if (kv.Length != 2 || !int.TryParse(kv[1], NumberStyles.None, CultureInfo.InvariantCulture, out int v)) continue;
                        o = kv[0] switch
                        {
                            "ndots" => o with { Ndots = Math.Min(v, 15) },
                            "timeout" => o with { Timeout = TimeSpan.FromSeconds(Math.Clamp(v, 1, 30)) },
                            "attempts" => o with { Attempts = Math.Clamp(v, 1, 5) },
                            _ => o,
                        };
                    }
                    break;
            }
        }
        return o with { Servers = servers, Search = search };
    }

    /// <summary>The text of a resolv.conf for these options (what `anthost up` writes).</summary>
    public string ToResolvConf()
    {
        var sb = new System.Text.StringBuilder();
        foreach (var s in Servers) sb.Append("nameserver ").Append(s.Address).Append('\n');
        if (Search.Count > 0) sb.Append("search ").AppendJoin(' ', Search).Append('\n');
        sb.Append(CultureInfo.InvariantCulture, $"options ndots:{Ndots} timeout:{(int)Math.Ceiling(Timeout.TotalSeconds)} attempts:{Attempts}\n");
        return sb.ToString();
    }
}
