namespace AntHost.Client;

/// <summary>How an app connects to an AntHost instance.</summary>
public sealed record InetStackOptions
{
    /// <summary>The kernel instance; null takes ANTHOST_INSTANCE, then "default".</summary>
    public string? Instance { get; init; }

    /// <summary>The name this process registers under (shown by `anthost ps`); null: the program's name.</summary>
    public string? ProcessName { get; init; }

    /// <summary>The inet server's service name.</summary>
    public string Service { get; init; } = Inet.Abi.InetService.Name;

    /// <summary>
    /// How long a waiting thread spins (yielding) before it sleeps. The default spins briefly for
    /// short answers (a send, a receive with data waiting); zero never spins.
    /// </summary>
    public TimeSpan SpinBudget { get; init; } = TimeSpan.FromMicroseconds(20);

    /// <summary>
    /// Run the continuations of async calls on the dispatcher thread that took their replies,
    /// instead of on the thread pool: one thread wake-up less per async call. As .NET's own
    /// DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS, off by default, because while app code
    /// runs (or blocks) on the dispatcher, no other async call of the process completes.
    /// The default comes from the environment: ANTHOST_INLINE_COMPLETIONS=1 turns it on.
    /// </summary>
    public bool InlineCompletions { get; init; } = Environment.GetEnvironmentVariable(InlineCompletionsVariable) is "1" or "true";

    /// <summary>
    /// A blocking send of at most one segment on a stream socket returns once it is posted to
    /// inet, without waiting for its answer (as a kernel's send() returns once the bytes are in
    /// the socket buffer); an error it met is thrown by the socket's next send. A request and
    /// its response then cost the app one wake-up instead of two. On by default; off makes
    /// every send wait for its answer.
    /// </summary>
    public bool PostSmallSends { get; init; } = true;

    /// <summary>
    /// A blocking send that one call carries (up to three send ICAs: a 64 KiB write when inet
    /// offloads segmentation) is posted too, with <see cref="PostSmallSends"/>: the app copies
    /// its next write while inet sends the last one, instead of sleeping until inet has taken
    /// it. The app stays at most one send buffer (inet's, per socket) ahead of what inet took;
    /// an error is thrown by the socket's next send. On by default; off makes such a send wait
    /// for its answer (on the caller's thread).
    /// </summary>
    public bool PostLargeSends { get; init; } = true;

    /// <summary>
    /// The DNS stub resolver's servers and search list; null reads ANTHOST_RESOLV_CONF, else the
    /// instance's resolv.conf (written by <c>anthost up</c>), else /etc/resolv.conf.
    /// </summary>
    public DnsOptions? Dns { get; init; }

    /// <summary>
    /// How long an allocation the pool refuses for want of pages (every page taken, or only the
    /// servers' reserve left, or this app at its page limit) is tried again before the call fails
    /// with <see cref="System.Net.Sockets.SocketError.NoBufferSpaceAvailable"/>: the pages come
    /// back as inet frees acknowledged data, so a send waits for memory as a kernel socket's does.
    /// The process's own cache of other sizes is given back first. Zero fails at once.
    /// </summary>
    public TimeSpan PoolWait { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>The environment variable that turns <see cref="InlineCompletions"/> on by default.</summary>
    public const string InlineCompletionsVariable = "ANTHOST_INLINE_COMPLETIONS";

    /// <summary>The environment variable that names the instance when <see cref="Instance"/> is null.</summary>
    public const string InstanceVariable = "ANTHOST_INSTANCE";

    internal string ResolveInstance() =>
        Instance ?? (Environment.GetEnvironmentVariable(InstanceVariable) is { Length: > 0 } v ? v : "default");
}
