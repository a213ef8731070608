namespace AntHost.Nic8139.Faults;

/// <summary>Receives the frames the injector lets through. The span is valid only during the call.</summary>
public delegate void FrameSink(ReadOnlySpan<byte> frame);

/// <summary>
/// The NIC driver's fault injector: drop, delay, reorder, duplicate and corrupt, each with its
/// own probability, for one direction. It stands in for <c>tc netem</c>, which this kind of
/// machine's kernel lacks (loss on the wire comes from nftables on the peer instead).
///
/// It is pure: no clock, no thread, no allocation after construction. The caller passes
/// <c>now</c> (any monotonic tick, <see cref="FaultInjector(FaultSettings, int, long)"/> says
/// how many per second), asks <see cref="NextDeadline"/> when it must come back, and calls
/// <see cref="ReleaseDue"/> then. For one seed and one sequence of frames and times the output
/// is always the same, which is what makes a fault test reproducible.
///
/// Per frame, in this order, each decision drawn only when the one before let the frame on:
/// drop; corrupt (a copy, one byte past the 14-byte Ethernet header gets a non-zero XOR mask);
/// duplicate (the frame goes out twice); then for each copy: delay (into a bounded queue,
/// released by its deadline) or reorder (held in one slot until the next frame has gone out,
/// or until <see cref="FaultSettings.ReorderHold"/> passes). Delayed frames come out in
/// deadline order, ties in arrival order. A frame longer than the injector's buffers passes
/// untouched and is counted.
/// </summary>
public sealed class FaultInjector
{
    private const int EthernetHeaderLength = 14;

    private readonly FaultSettings _settings;
    private readonly int _maxFrame;
    private readonly long _delayTicks;
    private readonly long _jitterTicks;
    private readonly long _holdTicks;
    private Xoshiro256 _rng;

    // The delay queue: fixed slots, each a frame buffer with its deadline and arrival number.
    private readonly byte[] _slots;
    private readonly int[] _slotLength;
    private readonly long[] _slotDeadline;
    private readonly long[] _slotSequence;
    private readonly bool[] _slotUsed;
    private int _queued;
    private long _sequence;

    // The reorder slot.
    private readonly byte[] _held;
    private int _heldLength = -1;
    private long _heldDeadline;

    private readonly byte[] _scratch;

    private long _seen, _emitted, _dropped, _duplicated, _corrupted, _reordered, _delayed, _queueFull, _tooLong;

    /// <param name="settings">What to do; validated here.</param>
    /// <param name="maxFrameLength">The longest frame the injector must be able to hold.</param>
    /// <param name="ticksPerSecond">The unit of every <c>now</c> passed in (e.g. <see cref="System.Diagnostics.Stopwatch.Frequency"/>).</param>
    public FaultInjector(FaultSettings settings, int maxFrameLength, long ticksPerSecond)
    {
        ArgumentNullException.ThrowIfNull(settings);
        settings.Validate();
        ArgumentOutOfRangeException.ThrowIfLessThan(maxFrameLength, EthernetHeaderLength + 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(ticksPerSecond, 1);
        _settings = settings;
        _maxFrame = maxFrameLength;
        _delayTicks = ToTicks(settings.DelayTime, ticksPerSecond);
        _jitterTicks = ToTicks(settings.DelayJitter, ticksPerSecond);
        _holdTicks = ToTicks(settings.ReorderHold, ticksPerSecond);
        _rng = new Xoshiro256(settings.Seed);
        int cap = settings.Enabled ? settings.QueueCapacity : 0;
        _slots = new byte[cap * maxFrameLength];
        _slotLength = new int[cap];
        _slotDeadline = new long[cap];
        _slotSequence = new long[cap];
        _slotUsed = new bool[cap];
        _held = new byte[settings.Enabled ? maxFrameLength : 0];
        _scratch = new byte[settings.Enabled ? maxFrameLength : 0];
    }

    private static long ToTicks(TimeSpan t, long perSecond) => (long)(t.Ticks * (decimal)perSecond / TimeSpan.TicksPerSecond);

    /// <summary>The settings in force.</summary>
    public FaultSettings Settings => _settings;

    /// <summary>True when any fault can happen; when false <see cref="Process"/> only counts and forwards.</summary>
    public bool Enabled => _settings.Enabled;

    /// <summary>Frames waiting in the delay queue or the reorder slot.</summary>
    public int Pending => _queued + (_heldLength >= 0 ? 1 : 0);

    /// <summary>The earliest time at which <see cref="ReleaseDue"/> has something to release, or null.</summary>
    public long? NextDeadline
    {
        get
        {
            long best = long.MaxValue;
            for (int i = 0; i < _slotUsed.Length; i++)
                if (_slotUsed[i] && _slotDeadline[i] < best) best = _slotDeadline[i];
            if (_heldLength >= 0 && _heldDeadline < best) best = _heldDeadline;
            return best == long.MaxValue ? null : best;
        }
    }

    /// <summary>A snapshot of the counts.</summary>
    public FaultStatistics Statistics => new(_seen, _emitted, _dropped, _duplicated, _corrupted, _reordered, _delayed, _queueFull, _tooLong, Pending);

    /// <summary>
    /// Passes one frame through the injector: <paramref name="emit"/> is called zero, one or
    /// more times (with this frame, a copy of it, or frames released earlier). Must not be
    /// called again from inside <paramref name="emit"/>.
    /// </summary>
    public void Process(ReadOnlySpan<byte> frame, long now, FrameSink emit)
    {
        ArgumentNullException.ThrowIfNull(emit);
        _seen++;
        if (!_settings.Enabled)
        {
            Emit(frame, emit);
            return;
        }
        ReleaseDue(now, emit);
        if (frame.Length > _maxFrame)
        {
            _tooLong++;
            EmitAndReleaseHeld(frame, emit);
            return;
        }

        if (_settings.Drop > 0 && _rng.NextDouble() < _settings.Drop)
        {
            _dropped++;
            return;
        }

        if (_settings.Corrupt > 0 && _rng.NextDouble() < _settings.Corrupt && frame.Length > EthernetHeaderLength)
        {
            frame.CopyTo(_scratch);
            int at = EthernetHeaderLength + _rng.NextInt(frame.Length - EthernetHeaderLength);
            _scratch[at] ^= (byte)(1 + _rng.NextInt(255));
            frame = _scratch.AsSpan(0, frame.Length);
            _corrupted++;
        }

        int copies = 1;
        if (_settings.Duplicate > 0 && _rng.NextDouble() < _settings.Duplicate)
        {
            copies = 2;
            _duplicated++;
        }

        for (int c = 0; c < copies; c++)
        {
            if (_settings.Delay > 0 && _rng.NextDouble() < _settings.Delay)
            {
                long deadline = now + _delayTicks + (_jitterTicks > 0 ? (long)(_rng.NextDouble() * _jitterTicks) : 0);
                if (Enqueue(frame, deadline))
                {
                    _delayed++;
                    continue;
                }
                _queueFull++;
            }
            else if (_settings.Reorder > 0 && _heldLength < 0 && _rng.NextDouble() < _settings.Reorder)
            {
                frame.CopyTo(_held);
                _heldLength = frame.Length;
                _heldDeadline = now + _holdTicks;
                _reordered++;
                continue;
            }
            EmitAndReleaseHeld(frame, emit);
        }
    }

    /// <summary>Emits every delayed or held frame whose deadline is at or before <paramref name="now"/>.</summary>
    public void ReleaseDue(long now, FrameSink emit)
    {
        ArgumentNullException.ThrowIfNull(emit);
        if (_heldLength >= 0 && _heldDeadline <= now) ReleaseHeld(emit);
        while (_queued > 0)
        {
            int best = -1;
            for (int i = 0; i < _slotUsed.Length; i++)
            {
                if (!_slotUsed[i] || _slotDeadline[i] > now) continue;
                if (best < 0 || _slotDeadline[i] < _slotDeadline[best]
                    || (_slotDeadline[i] == _slotDeadline[best] && _slotSequence[i] < _slotSequence[best]))
                    best = i;
            }
            if (best < 0) break;
            _slotUsed[best] = false;
            _queued--;
            EmitAndReleaseHeld(_slots.AsSpan(best * _maxFrame, _slotLength[best]), emit);
        }
    }

    /// <summary>Emits everything still waiting, in deadline order, at once (for a clean stop).</summary>
    public void Flush(FrameSink emit) => ReleaseDue(long.MaxValue, emit);

    /// <summary>Forgets everything waiting (counted as dropped), e.g. when the link went down.</summary>
    public void Clear()
    {
        for (int i = 0; i < _slotUsed.Length; i++)
        {
            if (_slotUsed[i]) _dropped++;
            _slotUsed[i] = false;
        }
        _queued = 0;
        if (_heldLength >= 0) _dropped++;
        _heldLength = -1;
    }

    private bool Enqueue(ReadOnlySpan<byte> frame, long deadline)
    {
        for (int i = 0; i < _slotUsed.Length; i++)
        {
            if (_slotUsed[i]) continue;
            frame.CopyTo(_slots.AsSpan(i * _maxFrame, _maxFrame));
            _slotLength[i] = frame.Length;
            _slotDeadline[i] = deadline;
            _slotSequence[i] = _sequence++;
            _slotUsed[i] = true;
            _queued++;
            return true;
        }
        return false;
    }

    private void EmitAndReleaseHeld(ReadOnlySpan<byte> frame, FrameSink emit)
    {
        Emit(frame, emit);
        if (_heldLength >= 0) ReleaseHeld(emit);
    }

    private void ReleaseHeld(FrameSink emit)
    {
        int n = _heldLength;
        _heldLength = -1;
        Emit(_held.AsSpan(0, n), emit);
    }

    private void Emit(ReadOnlySpan<byte> frame, FrameSink emit)
    {
        _emitted++;
        emit(frame);
    }
}
