using System.Buffers.Binary;
using AntHost.Inet.Core.Tcp;

namespace AntHost.Inet.Core.Wire;

/// <summary>One SACK block (RFC 2018 3): the left edge and the right edge (one past the last byte).</summary>
public readonly record struct SackBlock(SeqNumber Left, SeqNumber Right);

/// <summary>
/// The TCP options the stack understands, parsed once from a header or filled in to be
/// written: MSS (RFC 9293 3.7.1), window scale (RFC 7323 2), SACK-permitted and SACK
/// blocks (RFC 2018), timestamps (RFC 7323 3). A plain value: the SACK blocks are held
/// inline (at most four fit in 40 bytes of options), so parsing allocates nothing.
/// </summary>
/// <remarks>
/// Parsing follows RFC 9293 3.1 and RFC 1122 4.2.2.5: options of unknown kind are
/// skipped by their length; a length that is too short or runs past the header makes
/// the whole segment malformed (dropped and counted), because nothing after it can be
/// trusted. An option of known kind with the wrong length is ignored, as Linux does,
/// rather than dropping the segment. Options that only mean something on a SYN (MSS,
/// window scale, SACK-permitted) are parsed wherever they appear; the connection decides
/// whether to honour them.
///
/// Writing uses the layouts that middleboxes and Linux expect (each option aligned by
/// NOPs so the whole block is a multiple of 4 and the 32-bit fields are aligned):
/// SYN: MSS, SACK-permitted + timestamps (or NOP NOP + timestamps), NOP + window scale;
/// other segments: NOP NOP + timestamps, NOP NOP + SACK blocks.
/// </remarks>
public struct TcpOptions
{
    public const byte KindEnd = 0;
    public const byte KindNop = 1;
    public const byte KindMss = 2;
    public const byte KindWindowScale = 3;
    public const byte KindSackPermitted = 4;
    public const byte KindSack = 5;
    public const byte KindTimestamps = 8;

    /// <summary>Most bytes of options a header can carry (data offset 15 words).</summary>
    public const int MaxLength = 40;

    /// <summary>RFC 7323 2.3: a shift count above 14 is used as 14.</summary>
    public const byte MaxWindowScale = 14;

    /// <summary>Most SACK blocks written (or kept when parsing).</summary>
    public const int MaxSackBlocks = 4;

    public ushort Mss;
    public bool HasMss;
    public byte WindowScale;
    public bool HasWindowScale;
    public bool SackPermitted;
    public bool HasTimestamps;
    public uint TsVal;
    public uint TsEcr;
    private SackBlock _sack0, _sack1, _sack2, _sack3;
    private int _sackCount;

    /// <summary>Number of SACK blocks held.</summary>
    public readonly int SackCount => _sackCount;

    public readonly SackBlock GetSack(int i) => i switch
    {
        0 => _sack0,
        1 => _sack1,
        2 => _sack2,
        3 => _sack3,
        _ => throw new ArgumentOutOfRangeException(nameof(i)),
    };

    /// <summary>Adds a SACK block; false when there is no room left (4 blocks).</summary>
    public bool AddSack(SackBlock block)
    {
        switch (_sackCount)
        {
            case 0: _sack0 = block; break;
            case 1: _sack1 = block; break;
            case 2: _sack2 = block; break;
            case 3: _sack3 = block; break;
            default: return false;
        }
        _sackCount++;
        return true;
    }

    public void ClearSack() => _sackCount = 0;

    public void SetMss(ushort mss)
    {
        Mss = mss;
        HasMss = true;
    }

    public void SetWindowScale(byte shift)
    {
        WindowScale = shift;
        HasWindowScale = true;
    }

    public void SetTimestamps(uint tsVal, uint tsEcr)
    {
        TsVal = tsVal;
        TsEcr = tsEcr;
        HasTimestamps = true;
    }

    /// <summary>
    /// Parses the options area of a header. False when it is malformed (a length byte
    /// under 2 or running past the end).
    /// </summary>
    public static bool TryParse(ReadOnlySpan<byte> area, out TcpOptions options)
    {
        options = default;
        int i = 0;
        while (i < area.Length)
        {
            byte kind = area[i];
            if (kind == KindEnd) break;
            if (kind == KindNop)
            {
                i++;
                continue;
            }
            if (i + 1 >= area.Length) return false;
            int len = area[i + 1];
            if (len < 2 || i + len > area.Length) return false;
            var body = area.Slice(i + 2, len - 2);
            switch (kind)
            {
                case KindMss when len == 4:
                    options.SetMss(BinaryPrimitives.ReadUInt16BigEndian(body));
                    break;
                case KindWindowScale when len == 3:
                    options.SetWindowScale(Math.Min(body[0], MaxWindowScale));
                    break;
                case KindSackPermitted when len == 2:
                    options.SackPermitted = true;
                    break;
                case KindTimestamps when len == 10:
                    options.SetTimestamps(BinaryPrimitives.ReadUInt32BigEndian(body), BinaryPrimitives.ReadUInt32BigEndian(body[4..]));
                    break;
                case KindSack when (len - 2) % 8 == 0 && len > 2:
                    for (int b = 0; b + 8 <= body.Length; b += 8)
                    {
                        var block = new SackBlock(
                            new SeqNumber(BinaryPrimitives.ReadUInt32BigEndian(body[b..])),
                            new SeqNumber(BinaryPrimitives.ReadUInt32BigEndian(body[(b + 4)..])));
                        if (!options.AddSack(block)) break;
                    }
                    break;
                default:
                    break; // unknown kind, or a known kind with a wrong length: skipped
            }
            i += len;
        }
        return true;
    }

    /// <summary>The bytes <see cref="WriteTo"/> writes (a multiple of 4, at most 40).</summary>
    public readonly int WrittenLength
    {
        get
        {
            int n = 0;
            if (HasMss) n += 4;
            if (HasTimestamps) n += 12;
            else if (SackPermitted) n += 4;
            if (HasWindowScale) n += 4;
            int blocks = SackBlocksThatFit(n);
            if (blocks > 0) n += 4 + 8 * blocks;
            return n;
        }
    }

    private readonly int SackBlocksThatFit(int used)
    {
        if (_sackCount == 0) return 0;
        int room = (MaxLength - used - 4) / 8;
        return Math.Max(0, Math.Min(_sackCount, room));
    }

    /// <summary>Writes the options (see the remarks for the layout); returns the bytes written.</summary>
    public readonly int WriteTo(Span<byte> destination)
    {
        int i = 0;
        if (HasMss)
        {
            destination[i] = KindMss;
            destination[i + 1] = 4;
            BinaryPrimitives.WriteUInt16BigEndian(destination[(i + 2)..], Mss);
            i += 4;
        }
        if (HasTimestamps)
        {
            if (SackPermitted)
            {
                destination[i] = KindSackPermitted;
                destination[i + 1] = 2;
            }
            else
            {
                destination[i] = KindNop;
                destination[i + 1] = KindNop;
            }
            destination[i + 2] = KindTimestamps;
            destination[i + 3] = 10;
            BinaryPrimitives.WriteUInt32BigEndian(destination[(i + 4)..], TsVal);
            BinaryPrimitives.WriteUInt32BigEndian(destination[(i + 8)..], TsEcr);
            i += 12;
        }
        else if (SackPermitted)
        {
            destination[i] = KindNop;
            destination[i + 1] = KindNop;
            destination[i + 2] = KindSackPermitted;
            destination[i + 3] = 2;
            i += 4;
        }
        if (HasWindowScale)
        {
            destination[i] = KindNop;
            destination[i + 1] = KindWindowScale;
            destination[i + 2] = 3;
            destination[i + 3] = WindowScale;
            i += 4;
        }
        int blocks = SackBlocksThatFit(i);
        if (blocks > 0)
        {
            destination[i] = KindNop;
            destination[i + 1] = KindNop;
            destination[i + 2] = KindSack;
            destination[i + 3] = (byte)(2 + 8 * blocks);
            i += 4;
            for (int b = 0; b < blocks; b++)
            {
                var block = GetSack(b);
                BinaryPrimitives.WriteUInt32BigEndian(destination[i..], block.Left.Value);
                BinaryPrimitives.WriteUInt32BigEndian(destination[(i + 4)..], block.Right.Value);
                i += 8;
            }
        }
        return i;
    }
}
