// The command line every sample shares: --instance NAME (the AntHost instance, default
// ANTHOST_INSTANCE or "default"), --to ADDRESS (the remote host, default the sandbox
// peer 198.18.0.1) and a few numbers of their own, --name value each.
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using AntHost.Client;

[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]

namespace AntHost.Samples;

internal sealed class SampleArgs
{
    private readonly Dictionary<string, string> _values = new(StringComparer.Ordinal);

    private SampleArgs() { }

    public static SampleArgs Parse(string[] args, string usage, params string[] known)
    {
        var a = new SampleArgs();
        for (int i = 0; i < args.Length; i++)
        {
            string k = args[i];
            if (k is "-h" or "--help")
            {
                Console.WriteLine(usage);
                Environment.Exit(0);
            }
            if (!k.StartsWith("--", StringComparison.Ordinal) || (k[2..] is not ("instance" or "to") && !known.Contains(k[2..])) || i + 1 >= args.Length)
            {
                Console.Error.WriteLine($"error: unexpected argument '{k}'\n{usage}");
                Environment.Exit(2);
            }
            a._values[k[2..]] = args[++i];
        }
        _ = a.To; // a bad address is reported before anything is connected
        return a;
    }

    public string? Instance => _values.GetValueOrDefault("instance");

    public IPAddress To => Address("to", "198.18.0.1");

    public IPAddress Address(string name, string fallback)
    {
        string text = _values.GetValueOrDefault(name, fallback);
        if (IPAddress.TryParse(text, out var ip) && ip.AddressFamily == AddressFamily.InterNetwork) return ip;
        Console.Error.WriteLine($"error: --{name} wants an IPv4 address, not '{text}'");
        Environment.Exit(2);
        return null!;
    }

    public int Int(string name, int fallback)
    {
        if (!_values.TryGetValue(name, out var text)) return fallback;
        if (int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out int v) && v >= 0) return v;
        Console.Error.WriteLine($"error: --{name} wants a number, not '{text}'");
        Environment.Exit(2);
        return 0;
    }

    public string String(string name, string fallback) => _values.GetValueOrDefault(name, fallback);

    /// <summary>Connects to the instance, or says why not and exits 3.</summary>
    public InetStack Connect()
    {
        try
        {
            var stack = InetStack.Connect(Instance);
            Console.WriteLine($"connected to AntHost instance '{stack.Instance}' (inet server pid {stack.ServerPid})");
            return stack;
        }
        catch (SocketException e)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            Environment.Exit(3);
            return null!;
        }
    }

    /// <summary>Runs the sample's body; a socket error is printed and makes the exit code 1.</summary>
    public static int Run(Func<int> body)
    {
        try
        {
            return body();
        }
        catch (Exception e) when (e is SocketException or IOException or HttpRequestException or TimeoutException or OperationCanceledException)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 1;
        }
    }
}
