namespace AntHost.Kernel.Tests.Infrastructure;

/// <summary>The checksum the test actors report (FNV-1a 64).</summary>
internal static class Fnv
{
    public static ulong Hash(ReadOnlySpan<byte> b)
    {
        ulong h = 14695981039346656037;
        foreach (byte x in b) { h ^= x; h *= 1099511628211; }
        return h;
    }
}
