using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;

namespace AntHost.Inet.Core.Wire;

/// <summary>An IPv4 address as a value, held in host order (the wire is big-endian).</summary>
public readonly record struct Ipv4Address(uint Value) : ISpanFormattable
{
    public const int Length = 4;

    public static Ipv4Address Any => default;
    public static Ipv4Address Broadcast => new(0xFFFF_FFFF);

    public Ipv4Address(byte a, byte b, byte c, byte d) : this((uint)(a << 24 | b << 16 | c << 8 | d)) { }

    public static Ipv4Address Read(ReadOnlySpan<byte> bytes) => new(BinaryPrimitives.ReadUInt32BigEndian(bytes));

    public void WriteTo(Span<byte> destination) => BinaryPrimitives.WriteUInt32BigEndian(destination, Value);

    public bool IsUnspecified => Value == 0;
    public bool IsBroadcast => Value == 0xFFFF_FFFF;
    public bool IsMulticast => (Value >> 28) == 0xE;
    public bool IsLoopback => (Value >> 24) == 127;

    /// <summary>True when both addresses share the first <paramref name="prefixLength"/> bits.</summary>
    public bool IsInSubnet(Ipv4Address network, int prefixLength) =>
        prefixLength == 0 || (Value ^ network.Value) >> (32 - prefixLength) == 0;

    /// <summary>The directed broadcast address of this address's subnet.</summary>
    public Ipv4Address SubnetBroadcast(int prefixLength) =>
        prefixLength >= 32 ? this : new(Value | (uint.MaxValue >> prefixLength));

    public static bool TryParse(ReadOnlySpan<char> s, out Ipv4Address address)
    {
        address = default;
        uint v = 0;
        int parts = 0;
        foreach (var range in s.Split('.'))
        {
            var part = s[range];
            if (parts == 4 || part.Length is 0 or > 3 || !byte.TryParse(part, System.Globalization.NumberStyles.None, null, out var b))
                return false;
            v = v << 8 | b;
            parts++;
        }
        if (parts != 4) return false;
        address = new Ipv4Address(v);
        return true;
    }

    public static Ipv4Address Parse(string s) =>
        TryParse(s, out var a) ? a : throw new FormatException($"'{s}' is not an IPv4 address in dotted-decimal form (a.b.c.d).");

    public override string ToString() => $"{Value >> 24}.{(Value >> 16) & 0xFF}.{(Value >> 8) & 0xFF}.{Value & 0xFF}";

    public string ToString(string? format, IFormatProvider? formatProvider) => ToString();

    public bool TryFormat(Span<char> destination, out int charsWritten, ReadOnlySpan<char> format, IFormatProvider? provider) =>
        destination.TryWrite($"{Value >> 24}.{(Value >> 16) & 0xFF}.{(Value >> 8) & 0xFF}.{Value & 0xFF}", out charsWritten);
}
