using System.Buffers.Binary;

namespace AntHost.Inet.Core.Wire;

/// <summary>An Ethernet (EUI-48) address as a value: the six bytes in the low 48 bits, first byte most significant.</summary>
public readonly record struct MacAddress(ulong Value) : ISpanFormattable
{
    public const int Length = 6;

    public static MacAddress Broadcast => new(0xFFFF_FFFF_FFFF);
    public static MacAddress Zero => default;

    public static MacAddress Read(ReadOnlySpan<byte> b) =>
        new((ulong)BinaryPrimitives.ReadUInt16BigEndian(b) << 32 | BinaryPrimitives.ReadUInt32BigEndian(b[2..]));

    public void WriteTo(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt16BigEndian(destination, (ushort)(Value >> 32));
        BinaryPrimitives.WriteUInt32BigEndian(destination[2..], (uint)Value);
    }

    public bool IsBroadcast => Value == 0xFFFF_FFFF_FFFF;

    /// <summary>The group bit: the least significant bit of the first byte.</summary>
    public bool IsMulticast => ((Value >> 40) & 1) != 0;

    /// <summary>The locally-administered bit: the second least significant bit of the first byte.</summary>
    public bool IsLocallyAdministered => ((Value >> 40) & 2) != 0;

    public bool IsUnicast => !IsMulticast;

    public static bool TryParse(ReadOnlySpan<char> s, out MacAddress mac)
    {
        mac = default;
        ulong v = 0;
        int parts = 0;
        foreach (var range in s.SplitAny(":-"))
        {
            var part = s[range];
            if (parts == 6 || part.Length != 2 || !byte.TryParse(part, System.Globalization.NumberStyles.HexNumber, null, out var b))
                return false;
            v = v << 8 | b;
            parts++;
        }
        if (parts != 6) return false;
        mac = new MacAddress(v);
        return true;
    }

    public static MacAddress Parse(string s) =>
        TryParse(s, out var m) ? m : throw new FormatException($"'{s}' is not a MAC address (six hex pairs, e.g. 02:00:00:00:00:01).");

    public override string ToString() =>
        $"{Value >> 40 & 0xFF:x2}:{Value >> 32 & 0xFF:x2}:{Value >> 24 & 0xFF:x2}:{Value >> 16 & 0xFF:x2}:{Value >> 8 & 0xFF:x2}:{Value & 0xFF:x2}";

    public string ToString(string? format, IFormatProvider? formatProvider) => ToString();

    public bool TryFormat(Span<char> destination, out int charsWritten, ReadOnlySpan<char> format, IFormatProvider? provider) =>
        destination.TryWrite(
            $"{Value >> 40 & 0xFF:x2}:{Value >> 32 & 0xFF:x2}:{Value >> 24 & 0xFF:x2}:{Value >> 16 & 0xFF:x2}:{Value >> 8 & 0xFF:x2}:{Value & 0xFF:x2}",
            out charsWritten);
}
