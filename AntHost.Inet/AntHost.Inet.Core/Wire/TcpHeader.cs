using System.Buffers.Binary;
using AntHost.Inet.Core.Tcp;

namespace AntHost.Inet.Core.Wire;

/// <summary>The control bits of a TCP header (RFC 9293 3.1; CWR and ECE from RFC 3168).</summary>
[Flags]
public enum TcpFlags : byte
{
    None = 0,
    Fin = 0x01,
    Syn = 0x02,
    Rst = 0x04,
    Psh = 0x08,
    Ack = 0x10,
    Urg = 0x20,
    Ece = 0x40,
    Cwr = 0x80,
}

/// <summary>
/// A validated view of a TCP header (RFC 9293 3.1) over the bytes of a segment:
/// header, options and payload.
/// </summary>
/// <remarks>
/// <code>
///     0                   1                   2                   3
///     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
///    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///    |          Source Port          |       Destination Port        |
///    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///    |                        Sequence Number                        |
///    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///    |                    Acknowledgment Number                      |
///    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///    |  Data |       |C|E|U|A|P|R|S|F|                               |
///    | Offset| Rsrvd |W|C|R|C|S|S|Y|I|            Window             |
///    |       |       |R|E|G|K|H|T|N|N|                               |
///    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///    |           Checksum            |         Urgent Pointer        |
///    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///    |                           [Options]                           |
///    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///    |                                                               :
///    :                             Data                              :
///    :                                                               |
///    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// </code>
/// <see cref="TryCreate"/> checks the length, the data offset and the options once;
/// after that no accessor can throw. The checksum is checked separately
/// (<see cref="IsChecksumValid"/>) because it needs the IP addresses.
/// </remarks>
public readonly ref struct TcpHeader
{
    /// <summary>Field offsets, in one place.</summary>
    public static class Field
    {
        public const int SourcePort = 0;
        public const int DestinationPort = 2;
        public const int Sequence = 4;
        public const int Acknowledgment = 8;
        public const int DataOffset = 12;
        public const int Flags = 13;
        public const int Window = 14;
        public const int Checksum = 16;
        public const int UrgentPointer = 18;
        public const int Options = 20;
    }

    /// <summary>A header without options.</summary>
    public const int MinLength = 20;

    /// <summary>A header with 40 bytes of options.</summary>
    public const int MaxLength = 60;

    private readonly ReadOnlySpan<byte> _b;
    private readonly int _headerLength;

    private TcpHeader(ReadOnlySpan<byte> bytes, int headerLength, TcpOptions options)
    {
        _b = bytes;
        _headerLength = headerLength;
        Options = options;
    }

    /// <summary>Validates <paramref name="segment"/> (header, options, payload) and makes a view of it.</summary>
    public static bool TryCreate(ReadOnlySpan<byte> segment, out TcpHeader header)
    {
        header = default;
        if (segment.Length < MinLength) return false;
        int headerLength = (segment[Field.DataOffset] >> 4) * 4;
        if (headerLength < MinLength || headerLength > segment.Length) return false;
        var options = default(TcpOptions);
        if (headerLength > MinLength && !TcpOptions.TryParse(segment[Field.Options..headerLength], out options)) return false;
        header = new TcpHeader(segment, headerLength, options);
        return true;
    }

    public ushort SourcePort => BinaryPrimitives.ReadUInt16BigEndian(_b[Field.SourcePort..]);
    public ushort DestinationPort => BinaryPrimitives.ReadUInt16BigEndian(_b[Field.DestinationPort..]);
    public SeqNumber Sequence => new(BinaryPrimitives.ReadUInt32BigEndian(_b[Field.Sequence..]));
    public SeqNumber Acknowledgment => new(BinaryPrimitives.ReadUInt32BigEndian(_b[Field.Acknowledgment..]));

    /// <summary>Header length in bytes (data offset * 4).</summary>
    public int HeaderLength => _headerLength;

    public TcpFlags Flags => (TcpFlags)_b[Field.Flags];
    public bool Syn => (Flags & TcpFlags.Syn) != 0;
    public bool Ack => (Flags & TcpFlags.Ack) != 0;
    public bool Fin => (Flags & TcpFlags.Fin) != 0;
    public bool Rst => (Flags & TcpFlags.Rst) != 0;
    public bool Psh => (Flags & TcpFlags.Psh) != 0;
    public bool Urg => (Flags & TcpFlags.Urg) != 0;

    /// <summary>The window field as sent (not scaled).</summary>
    public ushort Window => BinaryPrimitives.ReadUInt16BigEndian(_b[Field.Window..]);
    public ushort Checksum => BinaryPrimitives.ReadUInt16BigEndian(_b[Field.Checksum..]);
    public ushort UrgentPointer => BinaryPrimitives.ReadUInt16BigEndian(_b[Field.UrgentPointer..]);

    /// <summary>The options, parsed by <see cref="TryCreate"/>.</summary>
    public TcpOptions Options { get; }

    /// <summary>The payload after the header.</summary>
    public ReadOnlySpan<byte> Payload => _b[_headerLength..];

    public int PayloadLength => _b.Length - _headerLength;

    /// <summary>RFC 9293 3.4: SEG.LEN counts the payload and one for each of SYN and FIN.</summary>
    public int SegmentLength => PayloadLength + (Syn ? 1 : 0) + (Fin ? 1 : 0);

    /// <summary>True when the checksum over the pseudo-header, header and payload is right.</summary>
    public bool IsChecksumValid(Ipv4Address source, Ipv4Address destination) =>
        Wire.Checksum.IsValid(_b, Wire.Checksum.PseudoHeader(source, destination, 6, (ushort)_b.Length));
}

/// <summary>
/// The fixed fields of a TCP header as a value, to be written with <see cref="WriteTo"/>
/// in front of a payload that is already in place.
/// </summary>
public readonly record struct TcpHeaderFields(
    ushort SourcePort,
    ushort DestinationPort,
    SeqNumber Sequence,
    SeqNumber Acknowledgment,
    TcpFlags Flags,
    ushort Window,
    ushort UrgentPointer = 0)
{
    /// <summary>The header length with <paramref name="options"/>.</summary>
    public static int LengthWith(in TcpOptions options) => TcpHeader.MinLength + options.WrittenLength;

    /// <summary>
    /// Writes the header and options into <paramref name="header"/>, which must be exactly
    /// <see cref="LengthWith"/> bytes, with the checksum field zero. The checksum is
    /// filled in afterwards over header and payload (<see cref="FillChecksum"/>).
    /// </summary>
    public void WriteTo(Span<byte> header, in TcpOptions options)
    {
        int length = header.Length;
        BinaryPrimitives.WriteUInt16BigEndian(header[TcpHeader.Field.SourcePort..], SourcePort);
        BinaryPrimitives.WriteUInt16BigEndian(header[TcpHeader.Field.DestinationPort..], DestinationPort);
        BinaryPrimitives.WriteUInt32BigEndian(header[TcpHeader.Field.Sequence..], Sequence.Value);
        BinaryPrimitives.WriteUInt32BigEndian(header[TcpHeader.Field.Acknowledgment..], Acknowledgment.Value);
        header[TcpHeader.Field.DataOffset] = (byte)(length / 4 << 4);
        header[TcpHeader.Field.Flags] = (byte)Flags;
        BinaryPrimitives.WriteUInt16BigEndian(header[TcpHeader.Field.Window..], Window);
        BinaryPrimitives.WriteUInt16BigEndian(header[TcpHeader.Field.Checksum..], 0);
        BinaryPrimitives.WriteUInt16BigEndian(header[TcpHeader.Field.UrgentPointer..], UrgentPointer);
        if (length > TcpHeader.MinLength)
        {
            int written = options.WriteTo(header[TcpHeader.Field.Options..]);
            System.Diagnostics.Debug.Assert(written == length - TcpHeader.MinLength, "header span does not match the options");
        }
    }

    /// <summary>Computes and stores the checksum of a whole segment (header first, then payload).</summary>
    public static void FillChecksum(Span<byte> segment, Ipv4Address source, Ipv4Address destination)
    {
        segment[TcpHeader.Field.Checksum] = 0;
        segment[TcpHeader.Field.Checksum + 1] = 0;
        ushort pseudo = Checksum.PseudoHeader(source, destination, 6, (ushort)segment.Length);
        BinaryPrimitives.WriteUInt16BigEndian(segment[TcpHeader.Field.Checksum..], Checksum.Compute(segment, pseudo));
    }
}
