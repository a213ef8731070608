using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace AntHost.Inet.Core.Wire;

/// <summary>
/// The Internet checksum (RFC 1071) and the TCP/UDP pseudo-header.
/// </summary>
/// <remarks>
/// RFC 1071 2(B): the one's complement sum is independent of byte order, so the
/// data is summed as little-endian 32-bit words into a 64-bit accumulator (which
/// cannot overflow below 2^32 words) and swapped once at the end. 32-bit words
/// can be summed for 16-bit ones because 2^16 = 1 (mod 0xFFFF). Large buffers
/// take a vector path that widens four or eight words at a time.
///
/// Partial sums (<see cref="Sum"/>) are folded 16-bit values in network order,
/// so they chain across buffers, as long as every buffer but the last has an
/// even length.
/// </remarks>
public static class Checksum
{
    /// <summary>Adds <paramref name="data"/> to the folded one's complement sum <paramref name="initial"/>.</summary>
    public static ushort Sum(ReadOnlySpan<byte> data, ushort initial = 0)
    {
        ulong acc = BinaryPrimitives.ReverseEndianness(initial);
        ref byte p = ref MemoryMarshal.GetReference(data);
        nint n = data.Length;
        nint i = 0;

        if (Vector256.IsHardwareAccelerated && n >= 64)
        {
            var v = Vector256<ulong>.Zero;
            for (; i <= n - 32; i += 32)
            {
                var words = Vector256.LoadUnsafe(ref Unsafe.AddByteOffset(ref p, i)).AsUInt32();
                var (lo, hi) = Vector256.Widen(words);
                v += lo + hi;
            }
            acc += Vector256.Sum(v); // each lane stays below 2^59 for any span length
        }
        else if (Vector128.IsHardwareAccelerated && n >= 32)
        {
            var v = Vector128<ulong>.Zero;
            for (; i <= n - 16; i += 16)
            {
                var words = Vector128.LoadUnsafe(ref Unsafe.AddByteOffset(ref p, i)).AsUInt32();
                var (lo, hi) = Vector128.Widen(words);
                v += lo + hi;
            }
            acc += Vector128.Sum(v); // each lane stays below 2^59 for any span length
        }

        for (; i <= n - 4; i += 4)
            acc += Unsafe.ReadUnaligned<uint>(ref Unsafe.AddByteOffset(ref p, i));
        if (i <= n - 2)
        {
            acc += Unsafe.ReadUnaligned<ushort>(ref Unsafe.AddByteOffset(ref p, i));
            i += 2;
        }
        if (i < n)
            acc += Unsafe.AddByteOffset(ref p, i); // odd trailing byte: the high byte of a zero-padded word

        return BinaryPrimitives.ReverseEndianness(Fold(acc));
    }

    /// <summary>Adds a 16-bit value (host order) to a folded sum.</summary>
    public static ushort Add(ushort sum, ushort value)
    {
        uint s = (uint)sum + value;
        return (ushort)((s & 0xFFFF) + (s >> 16));
    }

    /// <summary>The checksum field value for <paramref name="data"/>: the complement of its sum.</summary>
    public static ushort Compute(ReadOnlySpan<byte> data, ushort initial = 0) => (ushort)~Sum(data, initial);

    /// <summary>True when data that includes its checksum field sums to all ones.</summary>
    public static bool IsValid(ReadOnlySpan<byte> data, ushort initial = 0) => Sum(data, initial) == 0xFFFF;

    /// <summary>The folded sum of the IPv4 pseudo-header (RFC 9293 3.1, RFC 768).</summary>
    public static ushort PseudoHeader(Ipv4Address source, Ipv4Address destination, byte protocol, ushort length)
    {
        ulong acc = (ulong)(source.Value >> 16) + (source.Value & 0xFFFF)
                  + (destination.Value >> 16) + (destination.Value & 0xFFFF)
                  + protocol + length;
        return Fold(acc);
    }

    /// <summary>
    /// RFC 1624 incremental update: the new checksum field after a 16-bit word of the
    /// covered data changed from <paramref name="oldWord"/> to <paramref name="newWord"/>.
    /// </summary>
    public static ushort Update(ushort checksumField, ushort oldWord, ushort newWord)
    {
        // HC' = ~(~HC + ~m + m')
        uint s = (uint)(ushort)~checksumField + (ushort)~oldWord + newWord;
        s = (s & 0xFFFF) + (s >> 16);
        s = (s & 0xFFFF) + (s >> 16);
        return (ushort)~s;
    }

    private static ushort Fold(ulong acc)
    {
        acc = (acc & 0xFFFF_FFFF) + (acc >> 32);
        acc = (acc & 0xFFFF_FFFF) + (acc >> 32);
        acc = (acc & 0xFFFF) + (acc >> 16);
        acc = (acc & 0xFFFF) + (acc >> 16);
        acc = (acc & 0xFFFF) + (acc >> 16);
        return (ushort)acc;
    }
}
