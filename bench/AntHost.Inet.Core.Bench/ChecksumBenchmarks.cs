using AntHost.Inet.Core.Wire;
using BenchmarkDotNet.Attributes;

namespace AntHost.Inet.Core.Bench;

/// <summary>The Internet checksum, vectorised, against a plain 16-bit loop, at header and frame sizes.</summary>
[MemoryDiagnoser]
public class ChecksumBenchmarks
{
    private byte[] _data = [];

    [Params(20, 64, 1480, 9000)]
    public int Size { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _data = new byte[Size];
        new Randomness.SeededRandom(1).NextBytes(_data);
    }

    [Benchmark]
    public ushort Vectorised() => Checksum.Sum(_data);

    [Benchmark(Baseline = true)]
    public ushort Naive()
    {
        uint acc = 0;
        var d = _data;
        for (int i = 0; i + 1 < d.Length; i += 2) acc += (uint)(d[i] << 8 | d[i + 1]);
        if ((d.Length & 1) != 0) acc += (uint)d[^1] << 8;
        while (acc >> 16 != 0) acc = (acc & 0xFFFF) + (acc >> 16);
        return (ushort)acc;
    }
}
