using AntHost.Inet.Core.Randomness;
using AntHost.Inet.Core.Tests.Support;
using AntHost.Inet.Core.Wire;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;

namespace AntHost.Inet.Core.Tests.Wire;

public class ChecksumTests
{
    [Fact]
    public void Rfc1071_example_sums_to_ddf2()
    {
        // RFC 1071 3: the example bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2.
        byte[] b = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        Assert.Equal(0xddf2, Checksum.Sum(b));
        Assert.Equal(0x220d, Checksum.Compute(b));
    }

    [Fact]
    public void Golden_ipv4_header_checksum()
    {
        // A captured header (192.168.0.1 -> 192.168.0.199, UDP, TTL 64): checksum b861.
        byte[] h = Convert.FromHexString("450000730000400040110000c0a80001c0a800c7");
        Assert.Equal(0xb861, Checksum.Compute(h));
        h[10] = 0xb8; h[11] = 0x61;
        Assert.True(Checksum.IsValid(h));
        h[15] ^= 1;
        Assert.False(Checksum.IsValid(h));
    }

    [Fact]
    public void Empty_and_single_byte()
    {
        Assert.Equal(0, Checksum.Sum([]));
        Assert.Equal(0xAB00, Checksum.Sum([0xAB])); // an odd byte is the high byte of a zero-padded word
    }

    [Fact]
    public void All_ones_data_folds_correctly()
    {
        var b = new byte[4096];
        Array.Fill(b, (byte)0xFF);
        Assert.Equal(0xFFFF, Checksum.Sum(b));
        Assert.Equal(NaiveChecksum.Fold(NaiveChecksum.Sum(b)), Checksum.Sum(b));
    }

    [Property(MaxTest = 500)]
    public bool Matches_the_naive_reference(byte[] data, ushort initial) =>
        Checksum.Sum(data, initial) == NaiveChecksum.Fold(NaiveChecksum.Sum(data, initial)) || (Checksum.Sum(data, initial) == 0xFFFF && NaiveChecksum.Fold(NaiveChecksum.Sum(data, initial)) == 0);

    [Fact]
    public void Matches_the_naive_reference_at_every_length_across_the_vector_paths()
    {
        var rng = new SeededRandom(7);
        for (int len = 0; len <= 1600; len++)
        {
            var b = new byte[len];
            rng.NextBytes(b);
            ushort fast = Checksum.Sum(b), slow = NaiveChecksum.Fold(NaiveChecksum.Sum(b));
            // One's complement has two zeros (0x0000, 0xFFFF); equal as sums either way.
            Assert.True(fast == slow || (fast ^ slow) == 0xFFFF && (fast == 0 || slow == 0), $"length {len}: {fast:x4} vs {slow:x4}");
        }
    }

    [Property(MaxTest = 300)]
    public bool Chains_across_even_length_pieces(byte[] a, byte[] b)
    {
        var first = a.Length % 2 == 0 ? a : a[..^1];
        var whole = first.Concat(b).ToArray();
        return Equivalent(Checksum.Sum(b, Checksum.Sum(first)), Checksum.Sum(whole));
    }

    [Property(MaxTest = 300)]
    public bool Incremental_update_equals_recomputation(byte[] raw, ushort newWord, PositiveInt at)
    {
        var data = raw.Length % 2 == 0 ? raw : raw.Append((byte)0).ToArray();
        if (data.Length < 2) return true;
        int i = at.Get % (data.Length / 2) * 2;
        ushort field = Checksum.Compute(data);
        ushort old = (ushort)(data[i] << 8 | data[i + 1]);
        data[i] = (byte)(newWord >> 8);
        data[i + 1] = (byte)newWord;
        return Equivalent((ushort)~Checksum.Update(field, old, newWord), (ushort)~Checksum.Compute(data));
    }

    [Property(MaxTest = 300)]
    public bool Pseudo_header_matches_the_naive_one(uint src, uint dst, byte[] segment)
    {
        if (segment.Length > 65535) return true;
        var s = new Ipv4Address(src);
        var d = new Ipv4Address(dst);
        ushort fast = Checksum.Compute(segment, Checksum.PseudoHeader(s, d, 6, (ushort)segment.Length));
        return Equivalent(fast, NaiveChecksum.Transport(s, d, 6, segment));
    }

    [Property(MaxTest = 200)]
    public bool Data_with_its_checksum_is_valid(byte[] raw)
    {
        var data = raw.Length % 2 == 0 ? raw.Concat(new byte[2]).ToArray() : raw.Concat(new byte[3]).ToArray();
        // Put the checksum in the last (even-aligned) word.
        int at = data.Length % 2 == 0 ? data.Length - 2 : data.Length - 3;
        ushort c = Checksum.Compute(data);
        data[at] = (byte)(c >> 8);
        data[at + 1] = (byte)c;
        return Checksum.IsValid(data);
    }

    /// <summary>0x0000 and 0xFFFF are the same number in one's complement.</summary>
    private static bool Equivalent(ushort a, ushort b) => a == b || (a is 0 or 0xFFFF && b is 0 or 0xFFFF);
}
