namespace AntHost.Inet.Core.Randomness;

/// <summary>
/// Where the core gets randomness (ISNs, ephemeral ports, ARP jitter). Injected so
/// that every test and simulation is reproducible from a seed.
/// </summary>
public interface IRandomSource
{
    uint NextUInt32();

    /// <summary>Fills <paramref name="destination"/> with random bytes (e.g. an ISN secret).</summary>
    void NextBytes(Span<byte> destination);
}

/// <summary>A deterministic source (xoshiro128**) for tests and simulations.</summary>
public sealed class SeededRandom : IRandomSource
{
    private uint _s0, _s1, _s2, _s3;

    public SeededRandom(ulong seed)
    {
        // splitmix64 spreads any seed, 0 included, over the state.
        ulong z = seed;
        _s0 = (uint)Next(ref z); _s1 = (uint)Next(ref z); _s2 = (uint)Next(ref z); _s3 = (uint)Next(ref z);

        static ulong Next(ref ulong x)
        {
            ulong r = x += 0x9E3779B97F4A7C15;
            r = (r ^ (r >> 30)) * 0xBF58476D1CE4E5B9;
            r = (r ^ (r >> 27)) * 0x94D049BB133111EB;
            return r ^ (r >> 31);
        }
    }

    public uint NextUInt32()
    {
        uint result = uint.RotateLeft(_s1 * 5, 7) * 9;
        uint t = _s1 << 9;
        _s2 ^= _s0; _s3 ^= _s1; _s1 ^= _s2; _s0 ^= _s3;
        _s2 ^= t;
        _s3 = uint.RotateLeft(_s3, 11);
        return result;
    }

    /// <summary>A number in [0, 1).</summary>
    public double NextDouble() => NextUInt32() / 4294967296.0;

    /// <summary>A number in [0, max).</summary>
    public int Next(int max) => (int)((ulong)NextUInt32() * (uint)max >> 32);

    public void NextBytes(Span<byte> destination)
    {
        for (int i = 0; i < destination.Length; i++) destination[i] = (byte)NextUInt32();
    }
}

/// <summary>The process shell's source: the operating system's CSPRNG.</summary>
public sealed class SystemRandom : IRandomSource
{
    public uint NextUInt32()
    {
        Span<byte> b = stackalloc byte[4];
        System.Security.Cryptography.RandomNumberGenerator.Fill(b);
        return System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(b);
    }

    public void NextBytes(Span<byte> destination) => System.Security.Cryptography.RandomNumberGenerator.Fill(destination);
}
