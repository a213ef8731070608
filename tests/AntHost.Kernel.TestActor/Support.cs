using AntHost.Kernel;

namespace AntHost.Kernel.TestActor;

internal sealed class Args
{
    private readonly Dictionary<string, string> _named = new();

    public Args(string[] args)
    {
        Role = args.Length > 0 ? args[0] : "";
        for (int i = 1; i < args.Length; i++)
        {
            if (!args[i].StartsWith("--", StringComparison.Ordinal)) continue;
            string key = args[i][2..];
            string value = i + 1 < args.Length && !args[i + 1].StartsWith("--", StringComparison.Ordinal) ? args[++i] : "true";
            _named[key] = value;
        }
    }

    public string Role { get; }
    public string Get(string key, string fallback = "") => _named.TryGetValue(key, out var v) ? v : fallback;
    public int Int(string key, int fallback = 0) => _named.TryGetValue(key, out var v) ? int.Parse(v) : fallback;
    public ulong U64(string key) => ulong.Parse(Get(key));
    public bool Flag(string key) => _named.ContainsKey(key);

    public KernelConnection Connect(string defaultName) => KernelConnection.Connect(new KernelOptions
    {
        Instance = Get("instance", "default"),
        ProcessName = Get("name", defaultName),
        SpinBudget = TimeSpan.FromMicroseconds(Int("spin-us", 20)),
        Strict = Flag("strict") ? true : null,
    });
}

internal static class Out
{
    private static readonly object Gate = new();

    public static void Line(string s)
    {
        lock (Gate)
        {
            Console.Out.WriteLine(s);
            Console.Out.Flush();
        }
    }
}

/// <summary>The checksum the tests and the actors agree on (FNV-1a 64).</summary>
internal static class Fnv
{
    public static ulong Hash(ReadOnlySpan<byte> b)
    {
        ulong h = 14695981039346656037;
        foreach (byte x in b) { h ^= x; h *= 1099511628211; }
        return h;
    }
}
