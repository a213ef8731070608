namespace AntHost.Nic8139.Faults;

/// <summary>What the injector did, frame by frame. A frame can count in several rows (corrupted and duplicated).</summary>
public readonly record struct FaultStatistics(
    long Seen,
    long Emitted,
    long Dropped,
    long Duplicated,
    long Corrupted,
    long Reordered,
    long Delayed,
    long DelayQueueFull,
    long PassedUntouchedTooLong,
    int Pending);
