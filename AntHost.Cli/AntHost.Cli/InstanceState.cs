// The state of one running instance, as `anthost up` recorded it: which processes it
// started (pid, the kernel's start time of that pid, the command line), where their logs
// are, which namespaces it made. `down` and `ps` trust nothing else: a pid is only ever
// signalled when its start time and command line still match what was recorded, so a
// recycled pid belonging to someone else is never touched. The file is rewritten after
// every step of `up`, so a crash of `up` itself leaves enough for `down` to clean up.
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;

namespace AntHost.Cli;

/// <summary>One process started by <c>anthost up</c>.</summary>
internal sealed record ProcessRecord
{
    public required string Name { get; init; }
    public required int Pid { get; init; }
    /// <summary>Field 22 of /proc/PID/stat (clock ticks after boot): with the pid, it names one process for good.</summary>
    public required long StartTicks { get; init; }
    /// <summary>The program and its arguments as started (the same arguments start it again by hand).</summary>
    public required string[] CommandLine { get; init; }
    /// <summary>A string the process's /proc/PID/cmdline must contain (its dll).</summary>
    public required string Marker { get; init; }
    public required string Log { get; init; }
    public string? Namespace { get; init; }
    public DateTime StartedUtc { get; init; }
    /// <summary>What the process says in its log once it is ready (the supervisor waits for it after a restart).</summary>
    public string? Ready { get; init; }
    /// <summary>How often the supervisor restarted it.</summary>
    public int Restarts { get; init; }
    /// <summary>Why its last run ended (exit code or signal), as the supervisor saw it; null while it never died.</summary>
    public string? LastExit { get; init; }
}

/// <summary>The state file of an instance.</summary>
internal sealed record InstanceState
{
    public required string Instance { get; init; }
    /// <summary>"sandbox" or "adapter".</summary>
    public required string Network { get; init; }
    public string? Prefix { get; init; }
    public string[] Namespaces { get; init; } = [];
    public string? Adapter { get; init; }
    public required string Address { get; init; }
    public string? Gateway { get; init; }
    public string? PeerAddress { get; init; }
    public required string Transfer { get; init; }
    public int SpinUs { get; init; }
    public required string LogDirectory { get; init; }
    public DateTime CreatedUtc { get; init; }
    /// <summary>True once every process is ready.</summary>
    public bool Complete { get; init; }
    public List<ProcessRecord> Processes { get; init; } = [];

    /// <summary>The group whose members may use the instance besides root (state directory 0770 root:GROUP).</summary>
    public string Group { get; init; } = "root";

    public string PoolPath => $"/dev/shm/anthost-{Instance}.pool";
    public string TablesPath => $"/dev/shm/anthost-{Instance}.tables";
    public string SocketPath => $"/run/anthost/{Instance}.sock";

    internal static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    public const string RunRoot = "/run/anthost";

    public static string DirectoryFor(string instance) => Path.Combine(RunRoot, instance);
    public static string PathFor(string instance) => Path.Combine(DirectoryFor(instance), "state.json");
    public static string DefaultLogDirectory(string instance) => Path.Combine("/var/log/anthost", instance);

    public static InstanceState? Load(string instance)
    {
        string path = PathFor(instance);
        if (!File.Exists(path)) return null;
        try
        {
            return JsonSerializer.Deserialize<InstanceState>(File.ReadAllText(path), Json)
                ?? throw new CliException($"state file {path} is empty");
        }
        catch (JsonException e)
        {
            throw new CliException($"state file {path} is not readable ({e.Message}); remove it by hand after checking no AntHost process of '{instance}' runs");
        }
    }

    /// <summary>Writes the file atomically (a temporary file renamed over it).</summary>
    public void Save()
    {
        string dir = DirectoryFor(Instance);
        Directory.CreateDirectory(dir);
        // Root and the instance's group: its members may read the state, nobody else.
        File.SetUnixFileMode(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
            | UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute);
        if (AntHost.Kernel.Interop.UnixAccess.TryResolveGroup(Group, out uint gid)) AntHost.Kernel.Interop.UnixAccess.SetGroup(dir, gid);
        string path = PathFor(Instance), tmp = path + ".tmp";
        File.WriteAllText(tmp, JsonSerializer.Serialize(this, Json));
        File.Move(tmp, path, overwrite: true);
    }

    public static void Remove(string instance)
    {
        string dir = DirectoryFor(instance);
        if (!Directory.Exists(dir)) return;
        foreach (var f in new[] { "state.json", "state.json.tmp", "peer.stdin", "resolv.conf", "hosts", Supervisor.SocketName })
            File.Delete(Path.Combine(dir, f));
        try { Directory.Delete(dir); }
        catch (IOException) { } // someone put something else there: leave it
    }

    /// <summary>Every instance that has a state file.</summary>
    public static IEnumerable<InstanceState> All()
    {
        if (!Directory.Exists(RunRoot)) yield break;
        foreach (var d in Directory.GetDirectories(RunRoot))
        {
            InstanceState? s = null;
            try { s = Load(Path.GetFileName(d)); }
            catch (CliException) { }
            if (s is not null) yield return s;
        }
    }

    /// <summary>Throws <see cref="CliException"/> unless the name is 1-32 of a-z, 0-9, '-' (it becomes file names).</summary>
    public static void ValidateName(string instance)
    {
        if (!Regex.IsMatch(instance, "^[a-z0-9][a-z0-9-]{0,31}$"))
            throw new CliException($"instance name '{instance}' must be 1-32 of a-z, 0-9 and '-', starting with a letter or digit");
    }
}
