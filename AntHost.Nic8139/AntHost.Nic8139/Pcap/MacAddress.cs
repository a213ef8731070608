using System.Buffers.Binary;
using System.Globalization;

namespace AntHost.Nic8139.Pcap;

/// <summary>
/// A 48-bit Ethernet address as a value. The driver's own address defaults to a locally
/// administered unicast address derived from the adapter name and the instance, so two
/// drivers on two adapters (or two instances on one) never collide and a restarted driver
/// comes back with the same address (the peer's ARP cache stays right across a restart).
/// </summary>
public readonly record struct MacAddress
{
    private readonly ulong _value;

    private MacAddress(ulong value) => _value = value & 0xFFFF_FFFF_FFFFUL;

    /// <summary>ff:ff:ff:ff:ff:ff.</summary>
    public static MacAddress Broadcast { get; } = new(0xFFFF_FFFF_FFFFUL);

    /// <summary>The address as the low 48 bits of a number (first octet most significant).</summary>
    public ulong Value => _value;

    /// <summary>The I/G bit: a group (multicast or broadcast) address.</summary>
    public bool IsMulticast => ((_value >> 40) & 0x01) != 0;

    /// <summary>The U/L bit: a locally administered address.</summary>
    public bool IsLocallyAdministered => ((_value >> 40) & 0x02) != 0;

    public static MacAddress FromValue(ulong value) => new(value);

    /// <summary>Reads six octets.</summary>
    public static MacAddress Read(ReadOnlySpan<byte> six)
    {
        if (six.Length < 6) throw new ArgumentException("a MAC address needs 6 bytes", nameof(six));
        return new(((ulong)BinaryPrimitives.ReadUInt16BigEndian(six) << 32) | BinaryPrimitives.ReadUInt32BigEndian(six[2..]));
    }

    /// <summary>Writes six octets.</summary>
    public void WriteTo(Span<byte> six)
    {
        BinaryPrimitives.WriteUInt16BigEndian(six, (ushort)(_value >> 32));
        BinaryPrimitives.WriteUInt32BigEndian(six[2..], (uint)_value);
    }

    /// <summary>True when the six octets at the start of <paramref name="span"/> are this address.</summary>
    public bool Matches(ReadOnlySpan<byte> span) =>
        span.Length >= 6
        && BinaryPrimitives.ReadUInt16BigEndian(span) == (ushort)(_value >> 32)
        && BinaryPrimitives.ReadUInt32BigEndian(span[2..]) == (uint)_value;

    /// <summary>Parses <c>02:00:5e:10:00:01</c> (or with dashes).</summary>
    public static bool TryParse(string? text, out MacAddress mac)
    {
        mac = default;
        if (text is null || text.Length != 17) return false;
        ulong v = 0;
        for (int i = 0; i < 6; i++)
        {
            if (i > 0 && text[i * 3 - 1] is not (':' or '-')) return false;
            if (!byte.TryParse(text.AsSpan(i * 3, 2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out byte b))
                return false;
            v = (v << 8) | b;
        }
        mac = new(v);
        return true;
    }

    public static MacAddress Parse(string text) =>
        TryParse(text, out var mac) ? mac
            : throw new FormatException($"'{text}' is not a MAC address (expected six hex octets like 02:00:5e:10:00:01)");

    /// <summary>
    /// A locally administered unicast address derived from the adapter name and instance:
    /// 02 (U/L set, I/G clear) followed by 40 bits of an FNV-1a hash of both.
    /// </summary>
    public static MacAddress DeriveLocallyAdministered(string adapter, int instance)
    {
        ArgumentNullException.ThrowIfNull(adapter);
        ulong h = 14695981039346656037UL;
        foreach (char c in adapter) { h ^= c; h *= 1099511628211UL; }
        h ^= 0xFF; h *= 1099511628211UL;
        for (int i = 0; i < 4; i++) { h ^= (byte)(instance >> (8 * i)); h *= 1099511628211UL; }
        return new((0x02UL << 40) | (h & 0xFF_FFFF_FFFFUL));
    }

    public override string ToString() =>
        string.Create(17, _value, static (span, v) =>
        {
            const string hex = "0123456789abcdef";
            for (int i = 0; i < 6; i++)
            {
                byte b = (byte)(v >> (40 - 8 * i));
                if (i > 0) span[i * 3 - 1] = ':';
                span[i * 3] = hex[b >> 4];
                span[i * 3 + 1] = hex[b & 0xF];
            }
        });
}
