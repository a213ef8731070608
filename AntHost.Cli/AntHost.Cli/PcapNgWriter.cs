// A small pcapng writer (https://www.ietf.org/archive/id/draft-ietf-opsawg-pcapng-03.html):
// one section header, one Ethernet interface with nanosecond timestamps, and an enhanced
// packet block per frame whose epb_flags option says its direction (inbound/outbound), which
// SharpPcap's capture-file writer (classic pcap through pcap_dump) cannot carry. Wireshark,
// tshark and libpcap read it.
using System.Buffers.Binary;
using System.Text;

namespace AntHost.Cli;

internal sealed class PcapNgWriter : IDisposable
{
    private const uint SectionHeader = 0x0A0D0D0A, InterfaceDescription = 1, EnhancedPacket = 6;
    private readonly Stream _out;
    private readonly byte[] _block = new byte[256 + 70_000];

    public PcapNgWriter(Stream output, string interfaceName, int snaplen, string application)
    {
        _out = output;
        // Section header block: byte-order magic, version 1.0, section length unknown; shb_userappl.
        var opts = new List<(ushort Code, byte[] Value)> { (4, Encoding.UTF8.GetBytes(application)) };
        WriteBlock(SectionHeader, w =>
        {
            w.U32(0x1A2B3C4D);
            w.U16(1);
            w.U16(0);
            w.I64(-1);
        }, opts);
        // Interface description block: Ethernet, snaplen; if_name, if_tsresol = 10^-9.
        WriteBlock(InterfaceDescription, w =>
        {
            w.U16(1);
            w.U16(0);
            w.U32((uint)snaplen);
        }, [(2, Encoding.UTF8.GetBytes(interfaceName)), (9, [9])]);
    }

    public long Frames { get; private set; }

    /// <summary>One frame: Unix time in ns, the bytes kept, the wire length, and its direction.</summary>
    public void Write(long unixNs, ReadOnlySpan<byte> data, int wireLength, bool inbound)
    {
        var flags = new byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(flags, inbound ? 1u : 2u);
        var copy = data.ToArray();
        WriteBlock(EnhancedPacket, w =>
        {
            w.U32(0);
            w.U32((uint)((ulong)unixNs >> 32));
            w.U32((uint)unixNs);
            w.U32((uint)copy.Length);
            w.U32((uint)wireLength);
            w.Bytes(copy);
            w.Pad();
        }, [(2, flags)]);
        Frames++;
    }

    private void WriteBlock(uint type, Action<BlockWriter> body, List<(ushort Code, byte[] Value)> options)
    {
        var w = new BlockWriter(_block);
        w.U32(type);
        w.U32(0); // total length, below
        body(w);
        foreach (var (code, value) in options)
        {
            w.U16(code);
            w.U16((ushort)value.Length);
            w.Bytes(value);
            w.Pad();
        }
        if (options.Count > 0)
        {
            w.U16(0); // opt_endofopt
            w.U16(0);
        }
        int total = w.Position + 4;
        w.U32((uint)total);
        BinaryPrimitives.WriteUInt32LittleEndian(_block.AsSpan(4), (uint)total);
        _out.Write(_block, 0, total);
    }

    public void Flush() => _out.Flush();

    public void Dispose() => _out.Dispose();

    private sealed class BlockWriter(byte[] buffer)
    {
        public int Position { get; private set; }
        public void U16(ushort v) { BinaryPrimitives.WriteUInt16LittleEndian(buffer.AsSpan(Position), v); Position += 2; }
        public void U32(uint v) { BinaryPrimitives.WriteUInt32LittleEndian(buffer.AsSpan(Position), v); Position += 4; }
        public void I64(long v) { BinaryPrimitives.WriteInt64LittleEndian(buffer.AsSpan(Position), v); Position += 8; }
        public void Bytes(ReadOnlySpan<byte> b) { b.CopyTo(buffer.AsSpan(Position)); Position += b.Length; }
        public void Pad() { while (Position % 4 != 0) buffer[Position++] = 0; }
    }
}
