namespace AntHost.Inet.Core.Tests.Tcp.Sim;

/// <summary>
/// A pseudo-random byte stream that is a pure function of (key, offset), so a sender can
/// produce any part of it and a receiver (or a fuzzer) can check or forge any part of it
/// without keeping a copy.
/// </summary>
public static class StreamPattern
{
    public static byte At(ulong key, long offset) => (byte)(Word(key, offset >> 3) >> (int)((offset & 7) * 8));

    public static void Fill(ulong key, long offset, Span<byte> destination)
    {
        for (int i = 0; i < destination.Length; i++) destination[i] = At(key, offset + i);
    }

    /// <summary>Index of the first byte of <paramref name="data"/> that differs from the stream at <paramref name="offset"/>, or -1.</summary>
    public static int FirstMismatch(ulong key, long offset, ReadOnlySpan<byte> data)
    {
        for (int i = 0; i < data.Length; i++)
            if (data[i] != At(key, offset + i)) return i;
        return -1;
    }

    private static ulong Word(ulong key, long index)
    {
        ulong z = key ^ ((ulong)index * 0x9E3779B97F4A7C15UL);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
