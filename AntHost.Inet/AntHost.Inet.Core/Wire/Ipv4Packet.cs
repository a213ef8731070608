using System.Buffers.Binary;

namespace AntHost.Inet.Core.Wire;

/// <summary>Why bytes are not a well-formed IPv4 datagram (what <see cref="Ipv4Packet.Check"/> found first).</summary>
public enum Ipv4Malformation
{
    None,
    /// <summary>Fewer than 20 bytes.</summary>
    TooShort,
    /// <summary>The version field is not 4.</summary>
    BadVersion,
    /// <summary>IHL below 5, or the header is longer than the bytes.</summary>
    BadHeaderLength,
    /// <summary>Total length below the header length, or above the bytes received.</summary>
    BadTotalLength,
}

/// <summary>What an IPv4 options area holds, as far as a host needs to know (RFC 791 3.1, RFC 1122 3.2.1.8).</summary>
public enum Ipv4OptionsCheck
{
    /// <summary>No options, or only options a host may ignore.</summary>
    Ok,
    /// <summary>An option's length runs past the header or is below 2.</summary>
    Malformed,
    /// <summary>Loose or strict source routing is present.</summary>
    SourceRoute,
}

/// <summary>
/// A view over an IPv4 datagram (RFC 791 3.1): the header, its options, and the payload
/// up to the total length.
/// </summary>
/// <remarks>
/// <code>
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |Version|  IHL  |Type of Service|          Total Length         |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |         Identification        |Flags|      Fragment Offset    |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |  Time to Live |    Protocol   |         Header Checksum       |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                       Source Address                          |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                    Destination Address                        |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                    Options                    |    Padding    |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// </code>
/// <see cref="TryCreate"/> checks version, IHL and total length against the bytes once,
/// so no accessor can throw; the view ends at the total length, so Ethernet padding is
/// not part of it. The checksum and the options are checked by their own calls because
/// a receiver counts each failure apart.
/// </remarks>
public readonly ref struct Ipv4Packet
{
    public const int MinHeaderLength = 20;
    public const int MaxHeaderLength = 60;
    public const int MaxTotalLength = 65535;

    /// <summary>Flag bits in the 16-bit flags/fragment-offset word.</summary>
    public const ushort ReservedFlag = 0x8000, DontFragmentFlag = 0x4000, MoreFragmentsFlag = 0x2000, FragmentOffsetMask = 0x1FFF;

    private static class Field
    {
        public const int VersionIhl = 0;
        public const int Tos = 1;
        public const int TotalLength = 2;
        public const int Identification = 4;
        public const int FlagsFragment = 6;
        public const int Ttl = 8;
        public const int Protocol = 9;
        public const int Checksum = 10;
        public const int Source = 12;
        public const int Destination = 16;
        public const int Options = 20;
    }

    private readonly Span<byte> _b;

    private Ipv4Packet(Span<byte> b) => _b = b;

    /// <summary>Checks the length fields of the datagram at the start of <paramref name="bytes"/>.</summary>
    public static Ipv4Malformation Check(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length < MinHeaderLength) return Ipv4Malformation.TooShort;
        if (bytes[Field.VersionIhl] >> 4 != 4) return Ipv4Malformation.BadVersion;
        int ihl = (bytes[Field.VersionIhl] & 0xF) * 4;
        if (ihl < MinHeaderLength || ihl > bytes.Length) return Ipv4Malformation.BadHeaderLength;
        int total = BinaryPrimitives.ReadUInt16BigEndian(bytes[Field.TotalLength..]);
        if (total < ihl || total > bytes.Length) return Ipv4Malformation.BadTotalLength;
        return Ipv4Malformation.None;
    }

    /// <summary>A view over the datagram at the start of <paramref name="bytes"/>, ending at its total length.</summary>
    public static bool TryCreate(Span<byte> bytes, out Ipv4Packet packet)
    {
        packet = default;
        if (Check(bytes) != Ipv4Malformation.None) return false;
        packet = new Ipv4Packet(bytes[..BinaryPrimitives.ReadUInt16BigEndian(bytes[Field.TotalLength..])]);
        return true;
    }

    /// <summary>A view for writing a header without options: <paramref name="bytes"/> is the whole datagram.</summary>
    public static Ipv4Packet Initialize(Span<byte> bytes)
    {
        bytes[Field.VersionIhl] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(bytes[Field.TotalLength..], (ushort)bytes.Length);
        return new Ipv4Packet(bytes);
    }

    public byte Version => (byte)(_b[Field.VersionIhl] >> 4);
    public int HeaderLength => (_b[Field.VersionIhl] & 0xF) * 4;

    public byte Tos
    {
        get => _b[Field.Tos];
        set => _b[Field.Tos] = value;
    }

    public ushort TotalLength => BinaryPrimitives.ReadUInt16BigEndian(_b[Field.TotalLength..]);

    public ushort Identification
    {
        get => BinaryPrimitives.ReadUInt16BigEndian(_b[Field.Identification..]);
        set => BinaryPrimitives.WriteUInt16BigEndian(_b[Field.Identification..], value);
    }

    /// <summary>The flags and fragment offset word as a whole.</summary>
    public ushort FlagsFragment
    {
        get => BinaryPrimitives.ReadUInt16BigEndian(_b[Field.FlagsFragment..]);
        set => BinaryPrimitives.WriteUInt16BigEndian(_b[Field.FlagsFragment..], value);
    }

    public bool DontFragment => (FlagsFragment & DontFragmentFlag) != 0;
    public bool MoreFragments => (FlagsFragment & MoreFragmentsFlag) != 0;
    public bool ReservedFlagSet => (FlagsFragment & ReservedFlag) != 0;

    /// <summary>The fragment offset in bytes (the field counts 8-byte units).</summary>
    public int FragmentOffset => (FlagsFragment & FragmentOffsetMask) * 8;

    public bool IsFragment => (FlagsFragment & (MoreFragmentsFlag | FragmentOffsetMask)) != 0;

    public byte Ttl
    {
        get => _b[Field.Ttl];
        set => _b[Field.Ttl] = value;
    }

    public byte Protocol
    {
        get => _b[Field.Protocol];
        set => _b[Field.Protocol] = value;
    }

    public ushort HeaderChecksum
    {
        get => BinaryPrimitives.ReadUInt16BigEndian(_b[Field.Checksum..]);
        set => BinaryPrimitives.WriteUInt16BigEndian(_b[Field.Checksum..], value);
    }

    public Ipv4Address Source
    {
        get => Ipv4Address.Read(_b[Field.Source..]);
        set => value.WriteTo(_b[Field.Source..]);
    }

    public Ipv4Address Destination
    {
        get => Ipv4Address.Read(_b[Field.Destination..]);
        set => value.WriteTo(_b[Field.Destination..]);
    }

    public Span<byte> Header => _b[..HeaderLength];
    public Span<byte> Options => _b[Field.Options..HeaderLength];
    public Span<byte> Payload => _b[HeaderLength..];

    /// <summary>The whole datagram, header and payload, up to the total length.</summary>
    public Span<byte> Bytes => _b;

    public bool IsChecksumValid => Checksum.IsValid(Header);

    /// <summary>Computes and stores the header checksum.</summary>
    public void FillChecksum()
    {
        HeaderChecksum = 0;
        HeaderChecksum = Checksum.Compute(Header);
    }

    /// <summary>Walks the options: every option must fit in the header (RFC 791 3.1 "Options").</summary>
    public Ipv4OptionsCheck CheckOptions() => CheckOptions(Options);

    /// <inheritdoc cref="CheckOptions()"/>
    public static Ipv4OptionsCheck CheckOptions(ReadOnlySpan<byte> options) => CheckOptions(options, out _);

    /// <summary>Walks the options; <paramref name="badOffset"/> is where a malformed option starts (within the options).</summary>
    public static Ipv4OptionsCheck CheckOptions(ReadOnlySpan<byte> options, out int badOffset)
    {
        badOffset = 0;
        var result = Ipv4OptionsCheck.Ok;
        int i = 0;
        while (i < options.Length)
        {
            byte type = options[i];
            if (type == 0) break;              // end of option list
            if (type == 1) { i++; continue; }  // no-operation
            badOffset = i;
            if (i + 1 >= options.Length) return Ipv4OptionsCheck.Malformed;
            int len = options[i + 1];
            if (len < 2 || i + len > options.Length) return Ipv4OptionsCheck.Malformed;
            if (type is 0x83 or 0x89) result = Ipv4OptionsCheck.SourceRoute; // LSRR, SSRR
            i += len;
        }
        badOffset = 0;
        return result;
    }
}

/// <summary>An IPv4 header without options as a value (what the stack sends).</summary>
public readonly record struct Ipv4Header(
    Ipv4Address Source,
    Ipv4Address Destination,
    byte Protocol,
    ushort TotalLength,
    ushort Identification = 0,
    byte Ttl = 64,
    byte Tos = 0,
    bool DontFragment = false,
    bool MoreFragments = false,
    int FragmentOffset = 0)
{
    public int Length => Ipv4Packet.MinHeaderLength;

    /// <summary>Parses a header (options are skipped; the checksum is not checked here).</summary>
    public static bool TryParse(ReadOnlySpan<byte> bytes, out Ipv4Header header, out int headerLength)
    {
        header = default;
        headerLength = 0;
        if (Ipv4Packet.Check(bytes) != Ipv4Malformation.None) return false;
        headerLength = (bytes[0] & 0xF) * 4;
        ushort ff = BinaryPrimitives.ReadUInt16BigEndian(bytes[6..]);
        header = new Ipv4Header(
            Ipv4Address.Read(bytes[12..]), Ipv4Address.Read(bytes[16..]), bytes[9],
            BinaryPrimitives.ReadUInt16BigEndian(bytes[2..]), BinaryPrimitives.ReadUInt16BigEndian(bytes[4..]),
            bytes[8], bytes[1],
            (ff & Ipv4Packet.DontFragmentFlag) != 0, (ff & Ipv4Packet.MoreFragmentsFlag) != 0,
            (ff & Ipv4Packet.FragmentOffsetMask) * 8);
        return true;
    }

    /// <summary>Writes the 20-byte header, checksum included, at the start of <paramref name="destination"/>.</summary>
    public void WriteTo(Span<byte> destination)
    {
        var h = destination[..Ipv4Packet.MinHeaderLength];
        h[0] = 0x45;
        h[1] = Tos;
        BinaryPrimitives.WriteUInt16BigEndian(h[2..], TotalLength);
        BinaryPrimitives.WriteUInt16BigEndian(h[4..], Identification);
        ushort ff = (ushort)((FragmentOffset / 8) & Ipv4Packet.FragmentOffsetMask);
        if (DontFragment) ff |= Ipv4Packet.DontFragmentFlag;
        if (MoreFragments) ff |= Ipv4Packet.MoreFragmentsFlag;
        BinaryPrimitives.WriteUInt16BigEndian(h[6..], ff);
        h[8] = Ttl;
        h[9] = Protocol;
        h[10] = 0;
        h[11] = 0;
        Source.WriteTo(h[12..]);
        Destination.WriteTo(h[16..]);
        BinaryPrimitives.WriteUInt16BigEndian(h[10..], Checksum.Compute(h));
    }
}
