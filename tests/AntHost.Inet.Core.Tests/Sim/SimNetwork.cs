using AntHost.Inet.Core.Buffers;
using AntHost.Inet.Core.Iface;
using AntHost.Inet.Core.Ip;
using AntHost.Inet.Core.Randomness;
using AntHost.Inet.Core.Time;
using AntHost.Inet.Core.Wire;

namespace AntHost.Inet.Core.Tests.Sim;

/// <summary>What the simulated Ethernet does to frames, per direction.</summary>
public sealed record LinkConfig
{
    /// <summary>Propagation delay.</summary>
    public TimeSpan Delay { get; init; } = TimeSpan.FromMilliseconds(1);

    /// <summary>Bits per second (serialisation: a frame occupies the link for its length); 0 for infinite.</summary>
    public long BitsPerSecond { get; init; } = 100_000_000;

    /// <summary>Probability a frame is lost.</summary>
    public double Loss { get; init; }

    /// <summary>Probability a frame is held back by up to <see cref="ReorderWindow"/> extra, so later frames overtake it.</summary>
    public double Reorder { get; init; }

    public TimeSpan ReorderWindow { get; init; } = TimeSpan.FromMilliseconds(5);

    /// <summary>Probability a frame is delivered twice.</summary>
    public double Duplicate { get; init; }

    /// <summary>Probability one random bit of a frame is flipped.</summary>
    public double Corrupt { get; init; }

    public override string ToString() =>
        $"delay={Delay.TotalMilliseconds}ms bw={BitsPerSecond} loss={Loss} reorder={Reorder} dup={Duplicate} corrupt={Corrupt}";
}

/// <summary>One side of the simulation: an interface with its own buffer pool.</summary>
public sealed class SimNode
{
    internal SimNode(string name, Interface iface, HeapBufferPool pool)
    {
        Name = name;
        Iface = iface;
        Pool = pool;
    }

    public string Name { get; }
    public Interface Iface { get; }
    public HeapBufferPool Pool { get; }
    public Ipv4Address Address => Iface.Address;
    public MacAddress Mac => Iface.Mac;

    /// <summary>Frames this node put on the link.</summary>
    public long FramesSent { get; internal set; }
}

/// <summary>
/// Two interfaces joined by a simulated Ethernet link, driven by a virtual clock and one
/// seed: every run with the same seed and configuration is the same run.
/// </summary>
/// <remarks>
/// The loop takes the frames each interface queued (copies them onto the "wire" and
/// finishes their transmission, as an adapter would), decides each frame's fate from the
/// seeded random source (lost, corrupted, duplicated, held back), and delivers it at its
/// arrival time into a buffer rented from the receiver's own pool. Time jumps straight to
/// the next event: a frame's arrival or an interface's <see cref="Interface.PollAt"/>.
/// A node's TCP layer, when configured, is polled by its interface like any other timer.
/// </remarks>
public sealed class SimNetwork
{
    private readonly PriorityQueue<(SimNode To, byte[] Frame), (long At, long Seq)> _wire = new();
    private readonly SeededRandom _random;
    private readonly Instant[] _linkFree = new Instant[2];
    private long _seq;

    /// <param name="tcpA">Makes A's TCP layer from its IPv4 output and its buffer pool (e.g. <c>(ip, pool) =&gt; new TcpLayer(ip, pool, random, config)</c>); null for none.</param>
    public SimNetwork(ulong seed, LinkConfig? link = null, Func<IIpOutput, HeapBufferPool, ITransportLayer>? tcpA = null, Func<IIpOutput, HeapBufferPool, ITransportLayer>? tcpB = null,
        Func<InterfaceConfig, InterfaceConfig>? configure = null, int bufferSize = 4096)
    {
        Seed = seed;
        Link = link ?? new LinkConfig();
        _random = new SeededRandom(seed);
        A = MakeNode("A", Ipv4Address.Parse("198.18.1.1"), MacAddress.Parse("02:00:00:00:01:01"), seed * 2 + 1, tcpA, configure, bufferSize);
        B = MakeNode("B", Ipv4Address.Parse("198.18.1.2"), MacAddress.Parse("02:00:00:00:01:02"), seed * 2 + 2, tcpB, configure, bufferSize);
        A.Iface.Up(Now);
        B.Iface.Up(Now);
    }

    public ulong Seed { get; }
    public LinkConfig Link { get; }
    public SimNode A { get; }
    public SimNode B { get; }
    public Instant Now { get; private set; } = Instant.FromMilliseconds(1);

    public long FramesLost { get; private set; }
    public long FramesCorrupted { get; private set; }
    public long FramesDuplicated { get; private set; }
    public long FramesDelivered { get; private set; }

    /// <summary>What a failing run prints so it can be replayed.</summary>
    public string Describe() => $"seed={Seed} (replay: ANTHOST_SIM_SEED={Seed}) link: {Link}";

    private static SimNode MakeNode(string name, Ipv4Address ip, MacAddress mac, ulong seed, Func<IIpOutput, HeapBufferPool, ITransportLayer>? tcp,
        Func<InterfaceConfig, InterfaceConfig>? configure, int bufferSize)
    {
        var pool = new HeapBufferPool(bufferSize);
        var config = new InterfaceConfig
        {
            Mac = mac,
            Address = ip,
            PrefixLength = 24,
            Pool = pool,
            Random = new SeededRandom(seed),
            Tcp = tcp is null ? null : ipOutput => tcp(ipOutput, pool),
        };
        if (configure is not null) config = configure(config);
        return new SimNode(name, new Interface(config), pool);
    }

    /// <summary>Moves queued frames onto the wire; call after the application did something.</summary>
    public void Pump()
    {
        Take(A, B, 0);
        Take(B, A, 1);
    }

    private void Take(SimNode from, SimNode to, int direction)
    {
        while (from.Iface.TryDequeueTransmit(out var frame))
        {
            if (frame.Fragment is null)
            {
                Carry(frame.Data.ToArray(), to, direction);
            }
            else
            {
                // Segmentation offload: the "adapter" cuts the frame, as the NIC driver does.
                var template = frame.Data;
                Assert.Equal(template.Length, TcpSegmentation.Validate(template));
                int n = TcpSegmentation.FrameCount(frame.FragmentLength, frame.SegmentSize);
                for (int i = 0; i < n; i++)
                {
                    var bytes = new byte[template.Length + frame.SegmentSize];
                    int length = TcpSegmentation.WriteFrame(template, frame.FragmentData, i, frame.SegmentSize, bytes);
                    Carry(bytes.AsSpan(0, length).ToArray(), to, direction);
                }
                OffloadedFrames++;
            }
            frame.FinishTransmit();
            from.FramesSent++;
        }
    }

    /// <summary>Frames that went down as one segmentation-offload buffer and were cut on the wire.</summary>
    public long OffloadedFrames { get; private set; }

    private void Carry(byte[] bytes, SimNode to, int direction)
    {
        // Serialisation: the link carries one frame at a time at its bit rate.
        var start = _linkFree[direction] > Now ? _linkFree[direction] : Now;
        var onWire = Link.BitsPerSecond > 0 ? TimeSpan.FromTicks(bytes.Length * 8L * TimeSpan.TicksPerSecond / Link.BitsPerSecond) : TimeSpan.Zero;
        _linkFree[direction] = start + onWire;
        var arrival = start + onWire + Link.Delay;

        if (_random.NextDouble() < Link.Loss)
        {
            FramesLost++;
            return;
        }
        if (_random.NextDouble() < Link.Corrupt && bytes.Length > 0)
        {
            int bit = _random.Next(bytes.Length * 8);
            bytes[bit / 8] ^= (byte)(1 << (bit % 8));
            FramesCorrupted++;
        }
        Schedule(to, bytes, arrival + Jitter());
        if (_random.NextDouble() < Link.Duplicate)
        {
            FramesDuplicated++;
            Schedule(to, (byte[])bytes.Clone(), arrival + Jitter());
        }
    }

    private TimeSpan Jitter() =>
        _random.NextDouble() < Link.Reorder ? TimeSpan.FromTicks((long)(_random.NextDouble() * Link.ReorderWindow.Ticks)) : TimeSpan.Zero;

    private void Schedule(SimNode to, byte[] frame, Instant at) => _wire.Enqueue((to, frame), (at.Microseconds, _seq++));

    /// <summary>The next instant something happens, or null when the network is idle.</summary>
    public Instant? NextEvent
    {
        get
        {
            Instant? at = Instant.Earliest(A.Iface.PollAt, B.Iface.PollAt);
            if (_wire.TryPeek(out _, out var p)) at = Instant.Earliest(at, new Instant(p.At));
            return at;
        }
    }

    /// <summary>Advances to the next event (no further than <paramref name="limit"/>) and runs it. False when nothing happened before the limit.</summary>
    public bool Step(Instant limit)
    {
        Pump();
        var next = NextEvent;
        if (next is null || next.Value > limit)
        {
            if (limit > Now) Now = limit;
            A.Iface.Poll(Now);
            B.Iface.Poll(Now);
            Pump();
            return false;
        }
        if (next.Value > Now) Now = next.Value;
        while (_wire.TryPeek(out var item, out var p) && p.At <= Now.Microseconds)
        {
            _wire.Dequeue();
            var buffer = item.To.Pool.Rent(64, item.Frame.Length);
            if (buffer is null) continue; // the receiver is out of buffers: the frame is lost, as a NIC's ring overflows
            item.Frame.CopyTo(buffer.Append(item.Frame.Length));
            FramesDelivered++;
            item.To.Iface.Receive(buffer, Now);
        }
        if (A.Iface.PollAt is { } pa && pa <= Now) A.Iface.Poll(Now);
        if (B.Iface.PollAt is { } pb && pb <= Now) B.Iface.Poll(Now);
        Pump();
        return true;
    }

    /// <summary>Runs until <paramref name="done"/> holds or <paramref name="duration"/> of virtual time passes; true when done.</summary>
    public bool RunUntil(Func<bool> done, TimeSpan duration)
    {
        var limit = Now + duration;
        while (!done())
        {
            if (Now >= limit) return false;
            Step(limit);
        }
        return true;
    }

    /// <summary>Runs for <paramref name="duration"/> of virtual time.</summary>
    public void RunFor(TimeSpan duration) => RunUntil(() => false, duration);

    /// <summary>Runs until nothing is scheduled (all timers idle, the wire empty), at most <paramref name="max"/>.</summary>
    public bool RunToQuiescence(TimeSpan max) => RunUntil(() => { Pump(); return NextEvent is null; }, max);
}
