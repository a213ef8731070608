using AntHost.Nic8139.Faults;

namespace AntHost.Nic8139.Tests;

/// <summary>The fault injector on its own: statistics, determinism, and each fault's shape. Time is a plain counter.</summary>
public class FaultInjectorTests
{
    private const int MaxFrame = 1518;

    private static byte[] Frame(int n, int length = 100)
    {
        var f = new byte[length];
        for (int i = 0; i < length; i++) f[i] = (byte)(i * 7 + 3);
        // A sequence number past the Ethernet header identifies the frame.
        f[14] = (byte)(n >> 24); f[15] = (byte)(n >> 16); f[16] = (byte)(n >> 8); f[17] = (byte)n;
        return f;
    }

    private static int Id(byte[] f) => (f[14] << 24) | (f[15] << 16) | (f[16] << 8) | f[17];

    /// <summary>Runs frames 0..count-1 through, one tick apart, releasing deadlines as time passes; returns what came out.</summary>
    private static List<byte[]> Run(FaultInjector injector, int count, int length = 100)
    {
        var output = new List<byte[]>();
        FrameSink sink = f => output.Add(f.ToArray());
        for (int i = 0; i < count; i++)
        {
            injector.ReleaseDue(i, sink);
            injector.Process(Frame(i, length), i, sink);
        }
        injector.Flush(sink);
        return output;
    }

    [Fact]
    public void Off_by_default_passes_every_frame_unchanged_and_in_order()
    {
        var injector = new FaultInjector(FaultSettings.None, MaxFrame, 1000);
        Assert.False(injector.Enabled);
        var output = Run(injector, 500);
        Assert.Equal(500, output.Count);
        for (int i = 0; i < 500; i++) Assert.Equal(Frame(i), output[i]);
        var s = injector.Statistics;
        Assert.Equal(500, s.Seen);
        Assert.Equal(500, s.Emitted);
        Assert.Equal(0, s.Dropped + s.Duplicated + s.Corrupted + s.Reordered + s.Delayed);
    }

    [Fact]
    public void The_same_seed_and_frames_give_the_same_output_and_another_seed_does_not()
    {
        var settings = new FaultSettings { Drop = 0.1, Duplicate = 0.1, Corrupt = 0.1, Reorder = 0.1, Delay = 0.1, DelayTime = TimeSpan.FromSeconds(3), Seed = 42 };
        var a = Run(new FaultInjector(settings, MaxFrame, 1), 2000);
        var b = Run(new FaultInjector(settings, MaxFrame, 1), 2000);
        Assert.Equal(a.Count, b.Count);
        for (int i = 0; i < a.Count; i++) Assert.Equal(a[i], b[i]);

        var c = Run(new FaultInjector(settings with { Seed = 43 }, MaxFrame, 1), 2000);
        Assert.False(a.Count == c.Count && a.Zip(c).All(p => p.First.AsSpan().SequenceEqual(p.Second)));
    }

    [Theory]
    [InlineData(0.05)]
    [InlineData(0.3)]
    public void Drop_rate_matches_its_probability(double p)
    {
        const int n = 20000;
        var injector = new FaultInjector(new FaultSettings { Drop = p, Seed = 7 }, MaxFrame, 1000);
        var output = Run(injector, n);
        var s = injector.Statistics;
        Assert.Equal(n - s.Dropped, output.Count);
        // Five standard deviations of a binomial: a correct injector is never outside.
        double sd = Math.Sqrt(n * p * (1 - p));
        Assert.InRange(s.Dropped, n * p - 5 * sd, n * p + 5 * sd);
        // The survivors keep their order and content.
        var ids = output.Select(Id).ToList();
        Assert.Equal(ids.OrderBy(x => x), ids);
    }

    [Fact]
    public void Duplicate_sends_each_chosen_frame_twice_identical()
    {
        var injector = new FaultInjector(new FaultSettings { Duplicate = 1, Seed = 3 }, MaxFrame, 1000);
        var output = Run(injector, 100);
        Assert.Equal(200, output.Count);
        for (int i = 0; i < 100; i++)
        {
            Assert.Equal(Frame(i), output[2 * i]);
            Assert.Equal(Frame(i), output[2 * i + 1]);
        }
        Assert.Equal(100, injector.Statistics.Duplicated);
    }

    [Fact]
    public void Corrupt_flips_bits_in_exactly_one_byte_past_the_ethernet_header()
    {
        var injector = new FaultInjector(new FaultSettings { Corrupt = 1, Seed = 5 }, MaxFrame, 1000);
        var positions = new HashSet<int>();
        var output = new List<byte[]>();
        for (int i = 0; i < 300; i++)
        {
            var original = Frame(1000, 60);
            injector.Process(original, i, f => output.Add(f.ToArray()));
            Assert.Equal(Frame(1000, 60), original); // the caller's buffer is never touched
            var got = output[^1];
            Assert.Equal(original.Length, got.Length);
            var diff = Enumerable.Range(0, got.Length).Where(k => got[k] != original[k]).ToList();
            Assert.Single(diff);
            Assert.True(diff[0] >= 14, $"byte {diff[0]} of the Ethernet header was corrupted");
            positions.Add(diff[0]);
        }
        Assert.Equal(300, injector.Statistics.Corrupted);
        Assert.True(positions.Count > 20, "corruption should land on many different bytes");
    }

    [Fact]
    public void Reorder_holds_a_frame_until_the_next_has_gone_out()
    {
        var injector = new FaultInjector(new FaultSettings { Reorder = 1, ReorderHold = TimeSpan.FromSeconds(1000), Seed = 9 }, MaxFrame, 1);
        var output = Run(injector, 6);
        Assert.Equal([1, 0, 3, 2, 5, 4], output.Select(Id));
        Assert.Equal(3, injector.Statistics.Reordered);
    }

    [Fact]
    public void A_held_frame_without_successor_goes_at_its_hold_deadline()
    {
        var injector = new FaultInjector(new FaultSettings { Reorder = 1, ReorderHold = TimeSpan.FromSeconds(5), Seed = 9 }, MaxFrame, 1);
        var output = new List<byte[]>();
        FrameSink sink = f => output.Add(f.ToArray());
        injector.Process(Frame(0), 100, sink);
        Assert.Empty(output);
        Assert.Equal(105, injector.NextDeadline);
        injector.ReleaseDue(104, sink);
        Assert.Empty(output);
        injector.ReleaseDue(105, sink);
        Assert.Equal([0], output.Select(Id));
        Assert.Null(injector.NextDeadline);
    }

    [Fact]
    public void Delay_holds_frames_until_the_deadline_the_caller_drives()
    {
        var injector = new FaultInjector(new FaultSettings { Delay = 1, DelayTime = TimeSpan.FromSeconds(10), QueueCapacity = 4, Seed = 1 }, MaxFrame, 1);
        var output = new List<byte[]>();
        FrameSink sink = f => output.Add(f.ToArray());
        injector.Process(Frame(0), 0, sink);
        injector.Process(Frame(1), 2, sink);
        Assert.Empty(output);
        Assert.Equal(10, injector.NextDeadline);
        injector.ReleaseDue(9, sink);
        Assert.Empty(output);
        injector.ReleaseDue(10, sink);
        Assert.Equal([0], output.Select(Id));
        Assert.Equal(12, injector.NextDeadline);
        injector.ReleaseDue(100, sink);
        Assert.Equal([0, 1], output.Select(Id));
        Assert.Equal(2, injector.Statistics.Delayed);
        Assert.Equal(0, injector.Statistics.Pending);
    }

    [Fact]
    public void A_full_delay_queue_lets_the_frame_through_undelayed_and_counts_it()
    {
        var injector = new FaultInjector(new FaultSettings { Delay = 1, DelayTime = TimeSpan.FromSeconds(10), QueueCapacity = 2, Seed = 1 }, MaxFrame, 1);
        var output = new List<byte[]>();
        FrameSink sink = f => output.Add(f.ToArray());
        for (int i = 0; i < 3; i++) injector.Process(Frame(i), 0, sink);
        Assert.Equal([2], output.Select(Id));
        Assert.Equal(1, injector.Statistics.DelayQueueFull);
        Assert.Equal(2, injector.Statistics.Pending);
    }

    [Fact]
    public void Delayed_frames_with_jitter_come_out_in_deadline_order()
    {
        var injector = new FaultInjector(new FaultSettings { Delay = 1, DelayTime = TimeSpan.FromSeconds(10), DelayJitter = TimeSpan.FromSeconds(50), QueueCapacity = 64, Seed = 11 }, MaxFrame, 1000);
        var output = new List<(int Id, long At)>();
        long now = 0;
        FrameSink sink = f => output.Add((Id(f.ToArray()), now));
        for (int i = 0; i < 50; i++) injector.Process(Frame(i), 0, sink);
        while (injector.NextDeadline is { } d)
        {
            now = d;
            injector.ReleaseDue(now, sink);
        }
        Assert.Equal(50, output.Count);
        Assert.Equal(output.Select(o => o.At).OrderBy(x => x), output.Select(o => o.At));
        Assert.NotEqual(Enumerable.Range(0, 50), output.Select(o => o.Id)); // jitter reorders
        Assert.All(output, o => Assert.InRange(o.At, 10_000, 60_000));
    }

    [Fact]
    public void A_frame_longer_than_the_buffers_passes_untouched_and_is_counted()
    {
        var injector = new FaultInjector(new FaultSettings { Corrupt = 1, Seed = 1 }, 100, 1);
        var output = new List<byte[]>();
        injector.Process(Frame(0, 200), 0, f => output.Add(f.ToArray()));
        Assert.Equal(Frame(0, 200), Assert.Single(output));
        Assert.Equal(1, injector.Statistics.PassedUntouchedTooLong);
    }

    [Fact]
    public void Clear_forgets_waiting_frames_and_counts_them_dropped()
    {
        var injector = new FaultInjector(new FaultSettings { Delay = 1, Seed = 1 }, MaxFrame, 1000);
        for (int i = 0; i < 3; i++) injector.Process(Frame(i), 0, _ => Assert.Fail("nothing should come out"));
        injector.Clear();
        Assert.Equal(3, injector.Statistics.Dropped);
        Assert.Null(injector.NextDeadline);
    }

    [Theory]
    [InlineData(-0.1)]
    [InlineData(1.5)]
    [InlineData(double.NaN)]
    public void Probabilities_outside_zero_to_one_are_refused_with_a_message(double p)
    {
        var e = Assert.Throws<ArgumentException>(() => new FaultInjector(new FaultSettings { Duplicate = p }, MaxFrame, 1000));
        Assert.Contains("Duplicate", e.Message, StringComparison.Ordinal);
    }
}
