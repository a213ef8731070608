// Where the server programs are. Each server runs from its own project's build output,
// with its own runtime configuration: a copy beside this command would share this
// command's dependency set (the sandbox library brings in the ASP.NET Core framework
// through the peer's servers, which drops the Microsoft.Extensions packages the broker
// and the inet server need from the copy). So the command finds the repository it was
// built in (the folder holding AntHost.slnx above its own output) and takes each server
// from PROJECT/bin/CONFIG/TFM, the configuration and framework it was built with itself.
// ANTHOST_BIN_DIR overrides that with one folder holding all of them (an installation).
namespace AntHost.Cli;

/// <summary>Paths of the server programs.</summary>
internal static class Binaries
{
    public const string Broker = "anthost-kernel.dll";
    public const string Inet = "anthost-inet.dll";
    public const string Nic = "anthost-nic.dll";
    public const string Peer = "anthost-peer.dll";

    private static string ProjectOf(string dll) => dll switch
    {
        Broker => "AntHost.Kernel/AntHost.Broker",
        Inet => "AntHost.Inet/AntHost.Inet",
        Nic => "AntHost.Nic8139/AntHost.Nic8139",
        Peer => "AntHost.Sandbox/AntHost.Peer",
        _ => throw new ArgumentException($"unknown program {dll}", nameof(dll)),
    };

    /// <summary>The full path of a sample's dll (samples/NAME, built with this command); throws <see cref="CliException"/> naming what to build.</summary>
    public static string FindSample(string name)
    {
        if (Environment.GetEnvironmentVariable("ANTHOST_BIN_DIR") is { Length: > 0 } dir)
        {
            string p = Path.Combine(dir, name + ".dll");
            return File.Exists(p) ? p : throw new CliException($"{name}.dll is not in ANTHOST_BIN_DIR ({dir})");
        }
        var tfmDir = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd('/'));
        string tfm = tfmDir.Name, config = tfmDir.Parent?.Name ?? "Release";
        for (var d = tfmDir; d is not null; d = d.Parent)
        {
            if (!File.Exists(Path.Combine(d.FullName, "AntHost.slnx"))) continue;
            string path = Path.Combine(d.FullName, "samples", name, "bin", config, tfm, name + ".dll");
            return File.Exists(path) ? path : throw new CliException($"the sample {name} is not built: expected {path} (run: dotnet build {Path.Combine(d.FullName, "samples", name)} -c {config})");
        }
        throw new CliException($"cannot find the sample {name}: this command is not inside an AntHost build tree; set ANTHOST_BIN_DIR");
    }

    /// <summary>
    /// The command that runs a server's dll: its native launcher, which the build puts beside
    /// the dll under the program's name, when there is one and the runtime's folder is known
    /// (<paramref name="dotnet"/> is a full path); else <c>dotnet DLL</c>. Started by its
    /// launcher, a server carries its program's name (ps, pgrep, and .NET's ProcessName, by
    /// which <c>dotnet-counters monitor -n anthost-inet</c> finds it) instead of "dotnet".
    /// </summary>
    public static string[] Command(string dotnet, string dllPath)
    {
        string launcher = Path.ChangeExtension(dllPath, null);
        return File.Exists(launcher) && Path.IsPathRooted(dotnet) ? [launcher] : [dotnet, dllPath];
    }

    /// <summary>What a server's command line holds whichever way it was started: its program's name.</summary>
    public static string Marker(string dll) => Path.GetFileNameWithoutExtension(dll);

    /// <summary>The full path of a server's dll; throws <see cref="CliException"/> naming what to build when it is missing.</summary>
    public static string Find(string dll)
    {
        if (Environment.GetEnvironmentVariable("ANTHOST_BIN_DIR") is { Length: > 0 } dir)
        {
            string p = Path.Combine(dir, dll);
            return File.Exists(p) ? p : throw new CliException($"{dll} is not in ANTHOST_BIN_DIR ({dir})");
        }
        var tfmDir = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd('/'));
        string tfm = tfmDir.Name, config = tfmDir.Parent?.Name ?? "Release";
        for (var d = tfmDir; d is not null; d = d.Parent)
        {
            if (!File.Exists(Path.Combine(d.FullName, "AntHost.slnx"))) continue;
            string path = Path.Combine(d.FullName, ProjectOf(dll), "bin", config, tfm, dll);
            if (File.Exists(path)) return path;
            throw new CliException($"{dll} is not built: expected {path} (run: dotnet build {Path.Combine(d.FullName, "AntHost.Cli/AntHost.Cli")} -c {config})");
        }
        throw new CliException($"cannot find {dll}: this command is not inside an AntHost build tree; set ANTHOST_BIN_DIR to the folder holding the server programs");
    }
}

/// <summary>A failure to report to the user as it is (no stack trace): what went wrong and what to do.</summary>
internal sealed class CliException(string message) : Exception(message);
