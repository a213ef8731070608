namespace AntHost.Kernel;

/// <summary>Why a kernel operation was refused. Travels as a 32-bit status in replies.</summary>
public enum KernelError
{
    None = 0,
    /// <summary>The handle names no ICA (out of range, not a head page, free).</summary>
    InvalidHandle = 1,
    /// <summary>The handle's generation no longer matches the table: freed or reallocated since.</summary>
    StaleHandle = 2,
    /// <summary>The ICA belongs to another process.</summary>
    NotOwner = 3,
    /// <summary>The handle's transfer count is not the table's: an old copy of a handle.</summary>
    TransferOutOfOrder = 4,
    UnknownService = 5,
    ServiceNameTaken = 6,
    /// <summary>A length or count beyond what the pool, a ring slot or an ICA can hold.</summary>
    TooLarge = 7,
    OutOfPages = 8,
    OutOfSlots = 9,
    AlreadyRegistered = 10,
    NotRegistered = 11,
    /// <summary>A message or request that does not parse.</summary>
    Malformed = 12,
    /// <summary>The process at the other end of the channel died (or was cut off).</summary>
    PeerDied = 13,
    /// <summary>This process was cut off by the broker (it handed over an ICA it did not own).</summary>
    CutOff = 14,
    UnknownChannel = 15,
    Timeout = 16,
    PoolUnavailable = 17,
    BrokerUnavailable = 18,
    /// <summary>A ring stayed full past the caller's patience.</summary>
    RingFull = 19,
    /// <summary>The request was refused by the receiving server (application-level error).</summary>
    Refused = 20,
    WrongMode = 21,
    /// <summary>A per-process (or per-uid) limit of the broker was reached; the message names it.</summary>
    QuotaExceeded = 22,
    /// <summary>The process is neither root nor a member of the instance's group (or asked for what only root may).</summary>
    PermissionDenied = 23,
}

/// <summary>An API misuse or a refused operation, with the reason as a <see cref="KernelError"/>.</summary>
public sealed class KernelException : Exception
{
    public KernelError Error { get; }

    public KernelException(KernelError error, string message) : base(message) => Error = error;

    /// <summary>
    /// True when a send failed before the ICAs it named left this process (the peer died or its
    /// ring stayed full before the transfer was journaled): they are still the caller's, to free
    /// or to use again. False when they may have passed on (the broker settles them).
    /// </summary>
    public bool HandlesKept { get; init; }

    public KernelException() : this(KernelError.None, "kernel error") { }
    public KernelException(string message) : this(KernelError.None, message) { }
    public KernelException(string message, Exception inner) : base(message, inner) { }
}
