using System.Buffers.Binary;

namespace AntHost.Inet.Core.Wire;

/// <summary>ICMPv4 message types the stack handles (RFC 792, RFC 1122 3.2.2).</summary>
public enum IcmpType : byte
{
    EchoReply = 0,
    DestinationUnreachable = 3,
    SourceQuench = 4,
    Redirect = 5,
    EchoRequest = 8,
    TimeExceeded = 11,
    ParameterProblem = 12,
    Timestamp = 13,
    TimestampReply = 14,
}

/// <summary>Destination-unreachable codes (RFC 792, RFC 1122 3.2.2.1, RFC 1812 5.2.7.1).</summary>
public enum IcmpUnreachableCode : byte
{
    Net = 0,
    Host = 1,
    Protocol = 2,
    Port = 3,
    FragmentationNeeded = 4,
    SourceRouteFailed = 5,
    NetUnknown = 6,
    HostUnknown = 7,
    HostIsolated = 8,
    NetProhibited = 9,
    HostProhibited = 10,
    NetTos = 11,
    HostTos = 12,
    AdminProhibited = 13,
}

/// <summary>
/// A view over an ICMPv4 message (RFC 792): the 8-byte header and its body.
/// </summary>
/// <remarks>
/// <code>
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |     Type      |     Code      |          Checksum             |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |  Identifier (echo) / unused   | Sequence (echo) / Next-hop MTU|
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |  Echo data, or for errors: the IP header + leading bytes of   |
/// |  the datagram that caused the error                           |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// </code>
/// The checksum covers the whole message. The second word is named per use:
/// identifier/sequence for echo, next-hop MTU (RFC 1191) for fragmentation-needed,
/// the pointer (first byte) for parameter problem.
/// </remarks>
public readonly ref struct IcmpPacket
{
    public const int HeaderLength = 8;

    private static class Field
    {
        public const int Type = 0;
        public const int Code = 1;
        public const int Checksum = 2;
        public const int Identifier = 4;
        public const int Sequence = 6;
        public const int Pointer = 4;
        public const int NextHopMtu = 6;
        public const int Body = 8;
    }

    private readonly Span<byte> _b;

    private IcmpPacket(Span<byte> b) => _b = b;

    /// <summary>A view over the whole message in <paramref name="bytes"/> (at least the 8-byte header).</summary>
    public static bool TryCreate(Span<byte> bytes, out IcmpPacket packet)
    {
        packet = default;
        if (bytes.Length < HeaderLength) return false;
        packet = new IcmpPacket(bytes);
        return true;
    }

    public byte TypeValue
    {
        get => _b[Field.Type];
        set => _b[Field.Type] = value;
    }

    public IcmpType Type
    {
        get => (IcmpType)_b[Field.Type];
        set => _b[Field.Type] = (byte)value;
    }

    public byte Code
    {
        get => _b[Field.Code];
        set => _b[Field.Code] = value;
    }

    public ushort MessageChecksum
    {
        get => BinaryPrimitives.ReadUInt16BigEndian(_b[Field.Checksum..]);
        set => BinaryPrimitives.WriteUInt16BigEndian(_b[Field.Checksum..], value);
    }

    public ushort Identifier
    {
        get => BinaryPrimitives.ReadUInt16BigEndian(_b[Field.Identifier..]);
        set => BinaryPrimitives.WriteUInt16BigEndian(_b[Field.Identifier..], value);
    }

    public ushort Sequence
    {
        get => BinaryPrimitives.ReadUInt16BigEndian(_b[Field.Sequence..]);
        set => BinaryPrimitives.WriteUInt16BigEndian(_b[Field.Sequence..], value);
    }

    /// <summary>Fragmentation needed: the next-hop MTU (RFC 1191 4), 0 from a router that predates it.</summary>
    public ushort NextHopMtu
    {
        get => BinaryPrimitives.ReadUInt16BigEndian(_b[Field.NextHopMtu..]);
        set => BinaryPrimitives.WriteUInt16BigEndian(_b[Field.NextHopMtu..], value);
    }

    /// <summary>Parameter problem: the offset of the offending byte in the quoted datagram.</summary>
    public byte Pointer
    {
        get => _b[Field.Pointer];
        set => _b[Field.Pointer] = value;
    }

    /// <summary>The 32-bit word after the checksum, as a whole.</summary>
    public uint RestOfHeader
    {
        get => BinaryPrimitives.ReadUInt32BigEndian(_b[Field.Identifier..]);
        set => BinaryPrimitives.WriteUInt32BigEndian(_b[Field.Identifier..], value);
    }

    public Span<byte> Body => _b[Field.Body..];

    public int Length => _b.Length;

    public bool IsChecksumValid => Checksum.IsValid(_b);

    public void FillChecksum()
    {
        MessageChecksum = 0;
        MessageChecksum = Checksum.Compute(_b);
    }

    /// <summary>True for the error messages that quote a datagram (RFC 1122 3.2.2).</summary>
    public static bool IsError(byte type) =>
        type is (byte)IcmpType.DestinationUnreachable or (byte)IcmpType.SourceQuench or (byte)IcmpType.Redirect
            or (byte)IcmpType.TimeExceeded or (byte)IcmpType.ParameterProblem;
}

/// <summary>An ICMP header as a value: type, code and the second word (rest of header).</summary>
public readonly record struct IcmpHeader(IcmpType Type, byte Code, uint RestOfHeader)
{
    public int Length => IcmpPacket.HeaderLength;

    public static IcmpHeader Echo(IcmpType type, ushort identifier, ushort sequence) =>
        new(type, 0, (uint)identifier << 16 | sequence);

    public ushort Identifier => (ushort)(RestOfHeader >> 16);
    public ushort Sequence => (ushort)RestOfHeader;

    public static bool TryParse(ReadOnlySpan<byte> bytes, out IcmpHeader header)
    {
        header = default;
        if (bytes.Length < IcmpPacket.HeaderLength) return false;
        header = new IcmpHeader((IcmpType)bytes[0], bytes[1], BinaryPrimitives.ReadUInt32BigEndian(bytes[4..]));
        return true;
    }

    /// <summary>
    /// Writes the header at the start of <paramref name="message"/>, which is the whole
    /// ICMP message (header and body), and fills the checksum over all of it.
    /// </summary>
    public void WriteTo(Span<byte> message)
    {
        message[0] = (byte)Type;
        message[1] = Code;
        message[2] = 0;
        message[3] = 0;
        BinaryPrimitives.WriteUInt32BigEndian(message[4..], RestOfHeader);
        BinaryPrimitives.WriteUInt16BigEndian(message[2..], Checksum.Compute(message));
    }
}
