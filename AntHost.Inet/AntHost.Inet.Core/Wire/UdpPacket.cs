using System.Buffers.Binary;

namespace AntHost.Inet.Core.Wire;

/// <summary>
/// A view over a UDP datagram (RFC 768): the 8-byte header and the payload up to the
/// UDP length.
/// </summary>
/// <remarks>
/// <code>
///  0      7 8     15 16    23 24    31
/// +--------+--------+--------+--------+
/// |     Source      |   Destination   |
/// |      Port       |      Port       |
/// +--------+--------+--------+--------+
/// |                 |                 |
/// |     Length      |    Checksum     |
/// +--------+--------+--------+--------+
/// |          data octets ...
/// +---------------- ...
/// </code>
/// <see cref="TryCreate"/> checks that the length field is at least 8 and no more than
/// the bytes; the view ends at the length field (anything after it is not UDP's).
/// A zero checksum means "none" (RFC 768); a computed zero is sent as 0xFFFF.
/// </remarks>
public readonly ref struct UdpPacket
{
    public const int HeaderLength = 8;

    private static class Field
    {
        public const int SourcePort = 0;
        public const int DestinationPort = 2;
        public const int Length = 4;
        public const int Checksum = 6;
        public const int Payload = 8;
    }

    private readonly Span<byte> _b;

    private UdpPacket(Span<byte> b) => _b = b;

    public static bool TryCreate(Span<byte> bytes, out UdpPacket packet)
    {
        packet = default;
        if (bytes.Length < HeaderLength) return false;
        int len = BinaryPrimitives.ReadUInt16BigEndian(bytes[Field.Length..]);
        if (len < HeaderLength || len > bytes.Length) return false;
        packet = new UdpPacket(bytes[..len]);
        return true;
    }

    /// <summary>A view for writing: <paramref name="bytes"/> is the whole datagram; sets the length field.</summary>
    public static UdpPacket Initialize(Span<byte> bytes)
    {
        BinaryPrimitives.WriteUInt16BigEndian(bytes[Field.Length..], (ushort)bytes.Length);
        return new UdpPacket(bytes);
    }

    public ushort SourcePort
    {
        get => BinaryPrimitives.ReadUInt16BigEndian(_b[Field.SourcePort..]);
        set => BinaryPrimitives.WriteUInt16BigEndian(_b[Field.SourcePort..], value);
    }

    public ushort DestinationPort
    {
        get => BinaryPrimitives.ReadUInt16BigEndian(_b[Field.DestinationPort..]);
        set => BinaryPrimitives.WriteUInt16BigEndian(_b[Field.DestinationPort..], value);
    }

    public ushort Length => BinaryPrimitives.ReadUInt16BigEndian(_b[Field.Length..]);

    public ushort DatagramChecksum
    {
        get => BinaryPrimitives.ReadUInt16BigEndian(_b[Field.Checksum..]);
        set => BinaryPrimitives.WriteUInt16BigEndian(_b[Field.Checksum..], value);
    }

    public Span<byte> Payload => _b[Field.Payload..];

    public bool HasChecksum => DatagramChecksum != 0;

    /// <summary>True when the checksum is absent (zero) or sums correctly with the pseudo-header.</summary>
    public bool IsChecksumValid(Ipv4Address source, Ipv4Address destination) =>
        !HasChecksum || Checksum.IsValid(_b, Checksum.PseudoHeader(source, destination, 17, Length));

    /// <summary>Computes and stores the checksum over the pseudo-header and the datagram.</summary>
    public void FillChecksum(Ipv4Address source, Ipv4Address destination)
    {
        DatagramChecksum = 0;
        ushort c = Checksum.Compute(_b, Checksum.PseudoHeader(source, destination, 17, Length));
        DatagramChecksum = c == 0 ? (ushort)0xFFFF : c;
    }
}

/// <summary>A UDP header as a value.</summary>
public readonly record struct UdpHeader(ushort SourcePort, ushort DestinationPort, ushort DatagramLength, ushort Checksum = 0)
{
    public int Length => UdpPacket.HeaderLength;

    public static bool TryParse(ReadOnlySpan<byte> bytes, out UdpHeader header)
    {
        header = default;
        if (bytes.Length < UdpPacket.HeaderLength) return false;
        ushort len = BinaryPrimitives.ReadUInt16BigEndian(bytes[4..]);
        if (len < UdpPacket.HeaderLength || len > bytes.Length) return false;
        header = new UdpHeader(BinaryPrimitives.ReadUInt16BigEndian(bytes), BinaryPrimitives.ReadUInt16BigEndian(bytes[2..]),
            len, BinaryPrimitives.ReadUInt16BigEndian(bytes[6..]));
        return true;
    }

    /// <summary>
    /// Writes the header at the start of <paramref name="datagram"/> (header and payload,
    /// <see cref="DatagramLength"/> bytes) and fills the checksum over the pseudo-header.
    /// </summary>
    public void WriteTo(Span<byte> datagram, Ipv4Address source, Ipv4Address destination)
    {
        BinaryPrimitives.WriteUInt16BigEndian(datagram, SourcePort);
        BinaryPrimitives.WriteUInt16BigEndian(datagram[2..], DestinationPort);
        BinaryPrimitives.WriteUInt16BigEndian(datagram[4..], DatagramLength);
        BinaryPrimitives.WriteUInt16BigEndian(datagram[6..], 0);
        ushort c = Wire.Checksum.Compute(datagram[..DatagramLength], Wire.Checksum.PseudoHeader(source, destination, 17, DatagramLength));
        BinaryPrimitives.WriteUInt16BigEndian(datagram[6..], c == 0 ? (ushort)0xFFFF : c);
    }
}
