using System.Buffers.Binary;

namespace AntHost.Inet.Core.Wire;

/// <summary>ARP opcodes (RFC 826).</summary>
public enum ArpOperation : ushort
{
    Request = 1,
    Reply = 2,
}

/// <summary>
/// A view over an ARP packet for IPv4 over Ethernet (RFC 826), the only kind the stack speaks.
/// </summary>
/// <remarks>
/// <code>
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |     Hardware type (1)         |     Protocol type (0x0800)    |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |  HLEN (6)     |  PLEN (4)     |          Operation            |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |          Sender hardware address (6)  ...                     |
/// |  ... | Sender protocol address (4) | Target hardware (6) ...  |
/// |  ... | Target protocol address (4)                            |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// </code>
/// <see cref="TryCreate"/> checks the length and that the types and address lengths are
/// Ethernet/IPv4; a packet for any other pairing is not representable by this view.
/// </remarks>
public readonly ref struct ArpPacket
{
    public const int Length = 28;
    public const ushort HardwareTypeEthernet = 1;

    private static class Field
    {
        public const int HardwareType = 0;
        public const int ProtocolType = 2;
        public const int HardwareLength = 4;
        public const int ProtocolLength = 5;
        public const int Operation = 6;
        public const int SenderHardware = 8;
        public const int SenderProtocol = 14;
        public const int TargetHardware = 18;
        public const int TargetProtocol = 24;
    }

    private readonly Span<byte> _b;

    private ArpPacket(Span<byte> b) => _b = b;

    /// <summary>A view over the first 28 bytes of <paramref name="bytes"/> when they hold an Ethernet/IPv4 ARP packet.</summary>
    public static bool TryCreate(Span<byte> bytes, out ArpPacket packet)
    {
        packet = default;
        if (bytes.Length < Length) return false;
        if (BinaryPrimitives.ReadUInt16BigEndian(bytes[Field.HardwareType..]) != HardwareTypeEthernet
            || BinaryPrimitives.ReadUInt16BigEndian(bytes[Field.ProtocolType..]) != (ushort)EtherType.Ipv4
            || bytes[Field.HardwareLength] != MacAddress.Length
            || bytes[Field.ProtocolLength] != Ipv4Address.Length)
            return false;
        packet = new ArpPacket(bytes[..Length]);
        return true;
    }

    /// <summary>Writes the fixed Ethernet/IPv4 fields and returns a view over the 28 bytes.</summary>
    public static ArpPacket Initialize(Span<byte> bytes)
    {
        var b = bytes[..Length];
        BinaryPrimitives.WriteUInt16BigEndian(b[Field.HardwareType..], HardwareTypeEthernet);
        BinaryPrimitives.WriteUInt16BigEndian(b[Field.ProtocolType..], (ushort)EtherType.Ipv4);
        b[Field.HardwareLength] = MacAddress.Length;
        b[Field.ProtocolLength] = Ipv4Address.Length;
        return new ArpPacket(b);
    }

    public ushort OperationValue
    {
        get => BinaryPrimitives.ReadUInt16BigEndian(_b[Field.Operation..]);
        set => BinaryPrimitives.WriteUInt16BigEndian(_b[Field.Operation..], value);
    }

    public ArpOperation Operation
    {
        get => (ArpOperation)OperationValue;
        set => OperationValue = (ushort)value;
    }

    public MacAddress SenderHardware
    {
        get => MacAddress.Read(_b[Field.SenderHardware..]);
        set => value.WriteTo(_b[Field.SenderHardware..]);
    }

    public Ipv4Address SenderProtocol
    {
        get => Ipv4Address.Read(_b[Field.SenderProtocol..]);
        set => value.WriteTo(_b[Field.SenderProtocol..]);
    }

    public MacAddress TargetHardware
    {
        get => MacAddress.Read(_b[Field.TargetHardware..]);
        set => value.WriteTo(_b[Field.TargetHardware..]);
    }

    public Ipv4Address TargetProtocol
    {
        get => Ipv4Address.Read(_b[Field.TargetProtocol..]);
        set => value.WriteTo(_b[Field.TargetProtocol..]);
    }
}

/// <summary>An Ethernet/IPv4 ARP packet as a value.</summary>
public readonly record struct ArpHeader(
    ArpOperation Operation,
    MacAddress SenderHardware,
    Ipv4Address SenderProtocol,
    MacAddress TargetHardware,
    Ipv4Address TargetProtocol)
{
    public int Length => ArpPacket.Length;

    public static bool TryParse(ReadOnlySpan<byte> bytes, out ArpHeader header)
    {
        header = default;
        Span<byte> copy = stackalloc byte[ArpPacket.Length];
        if (bytes.Length < ArpPacket.Length) return false;
        bytes[..ArpPacket.Length].CopyTo(copy);
        if (!ArpPacket.TryCreate(copy, out var p)) return false;
        header = new ArpHeader(p.Operation, p.SenderHardware, p.SenderProtocol, p.TargetHardware, p.TargetProtocol);
        return true;
    }

    public void WriteTo(Span<byte> destination)
    {
        var p = ArpPacket.Initialize(destination);
        p.Operation = Operation;
        p.SenderHardware = SenderHardware;
        p.SenderProtocol = SenderProtocol;
        p.TargetHardware = TargetHardware;
        p.TargetProtocol = TargetProtocol;
    }
}
