namespace AntHost.Kernel;

/// <summary>How a process connects to a kernel instance.</summary>
public sealed record KernelOptions
{
    /// <summary>The instance (pool /dev/shm/anthost-NAME.pool, socket /run/anthost/NAME.sock).</summary>
    public string Instance { get; init; } = "default";

    /// <summary>The name this process registers under (shown by tools, at most 63 bytes).</summary>
    public required string ProcessName { get; init; }

    /// <summary>
    /// How long a waiting thread spins (yielding its CPU) before it sleeps on its doorbell.
    /// Zero is frugal: sleep at once, ~10-60 us more per message, no CPU while waiting.
    /// Must exceed the peer's wake-up time to help (5-20 us on these machines).
    /// </summary>
    public TimeSpan SpinBudget { get; init; } = TimeSpan.FromMicroseconds(20);

    /// <summary>
    /// Register as a server of the instance (the inet server, a NIC driver): the broker's
    /// per-app limits do not apply to it and it may draw on the pages reserved for servers.
    /// Only root may; anyone else is refused with <see cref="KernelError.PermissionDenied"/>.
    /// </summary>
    public bool Server { get; init; }

    /// <summary>Strict mode for this process; null takes the instance's setting.</summary>
    public bool? Strict { get; init; }

    /// <summary>
    /// Pages' worth of ICAs of one size kept in this process's cache (owned by it, not yet
    /// used): this many one-page ICAs, half as many two-page ones, and so on.
    /// </summary>
    public int CachePerSize { get; init; } = 32;

    /// <summary>ICAs asked of the broker at once when the cache is empty.</summary>
    public int AllocationBatch { get; init; } = 16;

    /// <summary>
    /// The most pages one refill from the broker may bring (0: <see cref="CachePerSize"/>).
    /// A process that allocates large ICAs steadily and passes them on (the NIC driver's
    /// merged receive ICAs of 16 pages) refills several per round trip on the broker's socket
    /// instead of the few its cache keeps; what it frees is still kept up to CachePerSize.
    /// </summary>
    public int RefillPages { get; init; }

    /// <summary>How long a send waits for room on a full ring before it fails with <see cref="KernelError.RingFull"/>.</summary>
    public TimeSpan SendTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>How long connecting waits for the broker to appear.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(5);
}
