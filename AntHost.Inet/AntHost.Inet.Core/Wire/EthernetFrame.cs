using System.Buffers.Binary;

namespace AntHost.Inet.Core.Wire;

/// <summary>EtherType values the stack knows (IEEE 802 numbers).</summary>
public enum EtherType : ushort
{
    Ipv4 = 0x0800,
    Arp = 0x0806,
    Vlan = 0x8100,
    Ipv6 = 0x86DD,
}

/// <summary>
/// A view over an Ethernet II frame (no preamble, no FCS: what libpcap and a veth hand over).
/// </summary>
/// <remarks>
/// <code>
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                  Destination MAC (6 bytes)                    |
/// +                               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                               |                               |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               +
/// |                    Source MAC (6 bytes)                       |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |          EtherType            |  Payload ...
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// </code>
/// A frame shorter than 60 bytes is padded on the wire; the layer above trims the
/// padding with its own length field.
/// </remarks>
public readonly ref struct EthernetFrame
{
    public const int HeaderLength = 14;

    /// <summary>The shortest frame the medium carries, without FCS; shorter frames are padded.</summary>
    public const int MinimumFrameLength = 60;

    private static class Field
    {
        public const int Destination = 0;
        public const int Source = 6;
        public const int EtherType = 12;
        public const int Payload = 14;
    }

    private readonly Span<byte> _b;

    private EthernetFrame(Span<byte> b) => _b = b;

    /// <summary>A view over <paramref name="bytes"/>, which must hold at least the header.</summary>
    public static bool TryCreate(Span<byte> bytes, out EthernetFrame frame)
    {
        frame = default;
        if (bytes.Length < HeaderLength) return false;
        frame = new EthernetFrame(bytes);
        return true;
    }

    public MacAddress Destination
    {
        get => MacAddress.Read(_b[Field.Destination..]);
        set => value.WriteTo(_b[Field.Destination..]);
    }

    public MacAddress Source
    {
        get => MacAddress.Read(_b[Field.Source..]);
        set => value.WriteTo(_b[Field.Source..]);
    }

    public ushort EtherTypeValue
    {
        get => BinaryPrimitives.ReadUInt16BigEndian(_b[Field.EtherType..]);
        set => BinaryPrimitives.WriteUInt16BigEndian(_b[Field.EtherType..], value);
    }

    public EtherType EtherType => (EtherType)EtherTypeValue;

    public Span<byte> Payload => _b[Field.Payload..];

    public int Length => _b.Length;
}

/// <summary>An Ethernet II header as a value.</summary>
public readonly record struct EthernetHeader(MacAddress Destination, MacAddress Source, EtherType EtherType)
{
    public int Length => EthernetFrame.HeaderLength;

    public static bool TryParse(ReadOnlySpan<byte> bytes, out EthernetHeader header)
    {
        header = default;
        if (bytes.Length < EthernetFrame.HeaderLength) return false;
        header = new EthernetHeader(MacAddress.Read(bytes), MacAddress.Read(bytes[6..]),
            (EtherType)BinaryPrimitives.ReadUInt16BigEndian(bytes[12..]));
        return true;
    }

    /// <summary>Writes the 14 header bytes at the start of <paramref name="destination"/>.</summary>
    public void WriteTo(Span<byte> destination)
    {
        Destination.WriteTo(destination);
        Source.WriteTo(destination[6..]);
        BinaryPrimitives.WriteUInt16BigEndian(destination[12..], (ushort)EtherType);
    }
}
