namespace AntHost.Nic8139.Faults;

/// <summary>
/// What the fault injector does to one direction of traffic. Every probability is per frame,
/// independent of the others, in [0, 1]; all zero (the default) means the injector is off and
/// frames pass untouched without drawing a random number.
/// </summary>
public sealed record FaultSettings
{
    /// <summary>Probability that a frame is dropped.</summary>
    public double Drop { get; init; }

    /// <summary>Probability that a frame is sent twice.</summary>
    public double Duplicate { get; init; }

    /// <summary>Probability that one random byte past the Ethernet header has bits flipped.</summary>
    public double Corrupt { get; init; }

    /// <summary>Probability that a frame is held back and released after the next frame.</summary>
    public double Reorder { get; init; }

    /// <summary>Probability that a frame is delayed by <see cref="DelayTime"/> (plus jitter).</summary>
    public double Delay { get; init; }

    /// <summary>How long a delayed frame waits.</summary>
    public TimeSpan DelayTime { get; init; } = TimeSpan.FromMilliseconds(10);

    /// <summary>A uniformly drawn extra delay in [0, jitter) per delayed frame.</summary>
    public TimeSpan DelayJitter { get; init; }

    /// <summary>The longest a frame held for reordering waits for a successor before it goes anyway.</summary>
    public TimeSpan ReorderHold { get; init; } = TimeSpan.FromMilliseconds(20);

    /// <summary>How many delayed frames can wait at once; a frame that finds the queue full goes undelayed (and is counted).</summary>
    public int QueueCapacity { get; init; } = 64;

    /// <summary>The seed: the same seed and the same frame sequence give the same faults.</summary>
    public ulong Seed { get; init; } = 1;

    /// <summary>True when any fault has a non-zero probability.</summary>
    public bool Enabled => Drop > 0 || Duplicate > 0 || Corrupt > 0 || Reorder > 0 || Delay > 0;

    /// <summary>No faults.</summary>
    public static FaultSettings None { get; } = new();

    /// <summary>Throws <see cref="ArgumentException"/> with a message naming the bad setting.</summary>
    public void Validate()
    {
        Check(Drop, nameof(Drop));
        Check(Duplicate, nameof(Duplicate));
        Check(Corrupt, nameof(Corrupt));
        Check(Reorder, nameof(Reorder));
        Check(Delay, nameof(Delay));
        if (DelayTime < TimeSpan.Zero) throw new ArgumentException($"fault DelayTime must not be negative (got {DelayTime})");
        if (DelayJitter < TimeSpan.Zero) throw new ArgumentException($"fault DelayJitter must not be negative (got {DelayJitter})");
        if (ReorderHold < TimeSpan.Zero) throw new ArgumentException($"fault ReorderHold must not be negative (got {ReorderHold})");
        if (QueueCapacity is < 1 or > 65536) throw new ArgumentException($"fault QueueCapacity must be 1..65536 (got {QueueCapacity})");

        static void Check(double p, string name)
        {
            if (!(p >= 0 && p <= 1)) throw new ArgumentException($"fault probability {name} must be in [0, 1] (got {p})");
        }
    }
}
