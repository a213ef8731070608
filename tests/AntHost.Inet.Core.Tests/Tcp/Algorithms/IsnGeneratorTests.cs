using AntHost.Inet.Core.Randomness;
using AntHost.Inet.Core.Tcp.Isn;
using AntHost.Inet.Core.Time;
using AntHost.Inet.Core.Wire;

namespace AntHost.Inet.Core.Tests.Tcp.Algorithms;

/// <summary>RFC 6528 ISNs, SipHash-2-4 and the RFC 7323 timestamp clock.</summary>
public class IsnGeneratorTests
{
    private static readonly Ipv4Address A = Ipv4Address.Parse("198.18.0.1");
    private static readonly Ipv4Address B = Ipv4Address.Parse("198.18.0.2");

    [Fact]
    public void SipHash_2_4_matches_the_reference_vectors()
    {
        Span<byte> key = stackalloc byte[16];
        for (int i = 0; i < 16; i++) key[i] = (byte)i;
        var h = new SipHash(key);
        Span<byte> msg = stackalloc byte[64];
        for (int i = 0; i < 64; i++) msg[i] = (byte)i;
        // The SipHash paper, appendix A, and the reference implementation's vectors.
        Assert.Equal(0x726fdb47dd0e0e31UL, h.Hash(msg[..0]));
        Assert.Equal(0x74f839c593dc67fdUL, h.Hash(msg[..1]));
        Assert.Equal(0xa129ca6149be45e5UL, h.Hash(msg[..15]));
        Assert.Equal(0x958a324ceb064572UL, h.Hash(msg[..63]));
    }

    [Fact]
    public void Isn_is_clock_plus_keyed_hash_and_the_clock_ticks_every_4_us()
    {
        var g = new IsnGenerator(new SeededRandom(1));
        var t = new Instant(1_000_000);
        var isn1 = g.Generate(A, 1000, B, 80, t);
        var isn2 = g.Generate(A, 1000, B, 80, t + TimeSpan.FromMicroseconds(400));
        Assert.Equal(100, isn2 - isn1);
        Assert.Equal(unchecked(250_000u + g.HashComponent(A, 1000, B, 80)), isn1.Value);
        Assert.Equal(250_000u, IsnGenerator.ClockComponent(t));
    }

    [Fact]
    public void Different_tuples_get_unrelated_isns_and_the_same_seed_replays()
    {
        var t = new Instant(123_456_789);
        var g = new IsnGenerator(new SeededRandom(7));
        var x = g.Generate(A, 1000, B, 80, t);
        var y = g.Generate(A, 1001, B, 80, t);
        var z = g.Generate(B, 1000, A, 80, t);
        Assert.NotEqual(x, y);
        Assert.NotEqual(x, z);
        Assert.Equal(x, new IsnGenerator(new SeededRandom(7)).Generate(A, 1000, B, 80, t));
        Assert.NotEqual(x, new IsnGenerator(new SeededRandom(8)).Generate(A, 1000, B, 80, t));
    }

    [Fact]
    public void Hash_spreads_over_the_sequence_space()
    {
        var g = new IsnGenerator(new SeededRandom(3));
        int high = 0;
        var seen = new HashSet<uint>();
        for (ushort p = 1; p <= 4096; p++)
        {
            uint h = g.HashComponent(A, p, B, 443);
            seen.Add(h);
            if ((h & 0x8000_0000) != 0) high++;
        }
        Assert.Equal(4096, seen.Count);
        Assert.InRange(high, 1800, 2300);                       // the top bit is set about half the time
    }

    [Fact]
    public void Timestamp_offsets_are_per_tuple_stable_and_independent_of_the_isn()
    {
        var g = new IsnGenerator(new SeededRandom(5));
        uint o1 = g.TimestampOffset(A, 1000, B, 80);
        Assert.Equal(o1, g.TimestampOffset(A, 1000, B, 80));
        Assert.NotEqual(o1, g.TimestampOffset(A, 1001, B, 80));
        Assert.NotEqual(o1, g.HashComponent(A, 1000, B, 80));
    }

    [Fact]
    public void Timestamp_clock_ticks_per_millisecond_and_measures_rtt_from_echoes()
    {
        uint offset = 0xFFFF_FFF0;                              // wraps within the test
        var t = Instant.FromMilliseconds(10);
        uint v = TimestampClock.TsVal(t, offset);
        Assert.Equal(unchecked(10u + offset), v);
        Assert.Equal(unchecked(v + 25), TimestampClock.TsVal(t + TimeSpan.FromMilliseconds(25.9), offset));
        Assert.True(TimestampClock.IsBefore(v, TimestampClock.TsVal(t + TimeSpan.FromMilliseconds(30), offset)));
        Assert.Equal(TimeSpan.FromMilliseconds(42), TimestampClock.RttFromEcho(v, t + TimeSpan.FromMilliseconds(42), offset));
        Assert.Null(TimestampClock.RttFromEcho(unchecked(v + 5), t, offset));   // an echo from the future
    }
}
