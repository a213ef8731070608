using Xunit;

namespace AntHost.TestSupport;

/// <summary>
/// What a test needs from the machine, checked once. A test that needs root or
/// network namespaces is skipped with a reason that says exactly what is missing;
/// CI runs as root, so there it always runs.
/// </summary>
public static class Requirements
{
    private static readonly Lazy<string?> RootReason = new(() =>
        Environment.IsPrivilegedProcess ? null
            : "needs root (network namespaces, veth, pcap); run the tests as root, as CI does");

    private static readonly Lazy<string?> NetnsReason = new(() =>
    {
        if (RootReason.Value is { } r) return r;
        if (!File.Exists("/usr/sbin/ip") && !File.Exists("/sbin/ip") && !File.Exists("/usr/bin/ip"))
            return "needs iproute2 (`ip`); scripts/prereqs.sh installs it";
        if (!Directory.Exists("/proc/self/ns") || !File.Exists("/proc/self/ns/net"))
            return "needs network namespace support in the kernel (/proc/self/ns/net missing)";
        return null;
    });

    private static readonly Lazy<string?> PcapReason = new(() =>
    {
        if (NetnsReason.Value is { } r) return r;
        foreach (var dir in new[] { "/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib", "/usr/local/lib" })
        {
            if (File.Exists(Path.Combine(dir, "libpcap.so")) || File.Exists(Path.Combine(dir, "libpcap.so.1"))
                || File.Exists(Path.Combine(dir, "libpcap.so.0.8")))
                return null;
        }
        return "needs libpcap (libpcap0.8, libpcap-dev); scripts/prereqs.sh installs it";
    });

    /// <summary>Null when the process is root; otherwise why a root test cannot run.</summary>
    public static string? RootMissing => RootReason.Value;

    /// <summary>Null when network namespaces can be made; otherwise why not.</summary>
    public static string? NetnsMissing => NetnsReason.Value;

    /// <summary>Null when namespaces and libpcap are both available; otherwise why not.</summary>
    public static string? PcapMissing => PcapReason.Value;
}

/// <summary>A fact that runs only as root, and otherwise is skipped saying so.</summary>
public sealed class RootFactAttribute : FactAttribute
{
    public RootFactAttribute()
    {
        if (Requirements.RootMissing is { } why) Skip = why;
    }
}

/// <summary>A fact that needs network namespaces (root, iproute2).</summary>
public sealed class NetnsFactAttribute : FactAttribute
{
    public NetnsFactAttribute()
    {
        if (Requirements.NetnsMissing is { } why) Skip = why;
    }
}

/// <summary>A fact that needs network namespaces and libpcap.</summary>
public sealed class PcapFactAttribute : FactAttribute
{
    public PcapFactAttribute()
    {
        if (Requirements.PcapMissing is { } why) Skip = why;
    }
}

/// <summary>A theory that needs network namespaces and libpcap.</summary>
public sealed class PcapTheoryAttribute : TheoryAttribute
{
    public PcapTheoryAttribute()
    {
        if (Requirements.PcapMissing is { } why) Skip = why;
    }
}
