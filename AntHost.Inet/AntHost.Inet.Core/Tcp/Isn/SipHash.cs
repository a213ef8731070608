using System.Buffers.Binary;

namespace AntHost.Inet.Core.Tcp.Isn;

/// <summary>
/// SipHash-2-4 (Aumasson and Bernstein, 2012): a keyed 64-bit pseudo-random function, the
/// keyed hash RFC 6528 asks for and the one Linux uses for the same purpose. Inputs here are
/// a dozen bytes (a TCP 4-tuple), so the one-shot form over a span, with no allocation, is all
/// that is needed.
/// </summary>
public readonly struct SipHash
{
    private readonly ulong _k0;
    private readonly ulong _k1;

    public SipHash(ulong k0, ulong k1)
    {
        _k0 = k0;
        _k1 = k1;
    }

    /// <summary>A key of 16 bytes, little-endian as in the reference implementation.</summary>
    public SipHash(ReadOnlySpan<byte> key)
    {
        if (key.Length != 16) throw new ArgumentException("a SipHash key is 16 bytes", nameof(key));
        _k0 = BinaryPrimitives.ReadUInt64LittleEndian(key);
        _k1 = BinaryPrimitives.ReadUInt64LittleEndian(key[8..]);
    }

    /// <summary>SipHash-2-4 of <paramref name="data"/>.</summary>
    public ulong Hash(ReadOnlySpan<byte> data)
    {
        ulong v0 = 0x736f6d6570736575UL ^ _k0;
        ulong v1 = 0x646f72616e646f6dUL ^ _k1;
        ulong v2 = 0x6c7967656e657261UL ^ _k0;
        ulong v3 = 0x7465646279746573UL ^ _k1;

        int end = data.Length & ~7;
        for (int i = 0; i < end; i += 8)
        {
            ulong m = BinaryPrimitives.ReadUInt64LittleEndian(data[i..]);
            v3 ^= m;
            Round(ref v0, ref v1, ref v2, ref v3);
            Round(ref v0, ref v1, ref v2, ref v3);
            v0 ^= m;
        }

        ulong last = (ulong)data.Length << 56;
        for (int i = 0; i < (data.Length & 7); i++) last |= (ulong)data[end + i] << (8 * i);
        v3 ^= last;
        Round(ref v0, ref v1, ref v2, ref v3);
        Round(ref v0, ref v1, ref v2, ref v3);
        v0 ^= last;

        v2 ^= 0xff;
        Round(ref v0, ref v1, ref v2, ref v3);
        Round(ref v0, ref v1, ref v2, ref v3);
        Round(ref v0, ref v1, ref v2, ref v3);
        Round(ref v0, ref v1, ref v2, ref v3);
        return v0 ^ v1 ^ v2 ^ v3;
    }

    private static void Round(ref ulong v0, ref ulong v1, ref ulong v2, ref ulong v3)
    {
        v0 += v1; v1 = ulong.RotateLeft(v1, 13); v1 ^= v0; v0 = ulong.RotateLeft(v0, 32);
        v2 += v3; v3 = ulong.RotateLeft(v3, 16); v3 ^= v2;
        v0 += v3; v3 = ulong.RotateLeft(v3, 21); v3 ^= v0;
        v2 += v1; v1 = ulong.RotateLeft(v1, 17); v1 ^= v2; v2 = ulong.RotateLeft(v2, 32);
    }
}
