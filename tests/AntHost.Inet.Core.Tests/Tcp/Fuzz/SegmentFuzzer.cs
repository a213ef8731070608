using System.Buffers.Binary;
using AntHost.Inet.Core.Randomness;
using AntHost.Inet.Core.Tcp;
using AntHost.Inet.Core.Tests.Tcp.Sim;
using AntHost.Inet.Core.Wire;

namespace AntHost.Inet.Core.Tests.Tcp.Fuzz;

/// <summary>What the fuzzer knows about the established connection it attacks (from the receiver's side).</summary>
public readonly record struct FuzzTarget(
    ushort SourcePort,
    ushort DestinationPort,
    SeqNumber RcvNxt,
    uint RcvWnd,
    SeqNumber AcceptRight,
    SeqNumber SndUna,
    SeqNumber SndNxt,
    ulong StreamKey,
    long StreamOffsetAtRcvNxt,
    ushort PeerWindowField,
    uint PeerTsVal,
    bool Timestamps);

/// <summary>
/// Makes hostile TCP segments for an established connection: mutations of a valid segment
/// (flags, sequence and acknowledgment numbers around the window edges, options, data offset,
/// lengths, window, urgent pointer, checksum) and plain random bytes.
/// </summary>
/// <remarks>
/// The oracle is that the connection's byte stream is never corrupted. A forger who knows the
/// sequence numbers can legitimately do harm that no stack may refuse (an exact-match RST,
/// an in-window FIN, data the real peer has not sent yet, a window update ahead of the real
/// peer's sequence number), so the fuzzer keeps its forgeries on the side of what a correct
/// stack must survive: payload bytes are always the true stream's bytes for their position and
/// never extend past RCV.NXT when they are in the window; FIN is only set out of the window; RST
/// never at exactly RCV.NXT; a window field with a sequence number ahead of RCV.NXT is the real
/// one; TSvals are never newer than the real peer's. Everything else is fair game, including
/// in-window SYNs (RFC 5961 4 says: challenge ACK, not reset), RSTs anywhere else in the window
/// (RFC 5961 3: challenge ACK), ACKs of unsent data, old ACKs, and garbage options.
/// </remarks>
public sealed class SegmentFuzzer(SeededRandom random)
{
    private readonly byte[] _buffer = new byte[60 + 1500];

    public long Generated, RandomBytes, BadChecksums, Mutated;

    /// <summary>Makes the next hostile segment; returns its bytes (valid until the next call).</summary>
    public ReadOnlySpan<byte> Next(in FuzzTarget t, Ipv4Address source, Ipv4Address destination)
    {
        Generated++;
        var r = random;
        int kind = r.Next(100);
        if (kind < 3)
        {
            // Pure noise of any length, sometimes shorter than a header.
            RandomBytes++;
            int n = r.Next(80);
            r.NextBytes(_buffer.AsSpan(0, n));
            return _buffer.AsSpan(0, n);
        }
        Mutated++;

        // Ports: mostly the connection's, sometimes another (a listener, a closed port).
        ushort sport = r.Next(20) == 0 ? (ushort)r.NextUInt32() : t.SourcePort;
        ushort dport = r.Next(20) == 0 ? (ushort)r.NextUInt32() : t.DestinationPort;

        SeqNumber seq = t.RcvNxt + PickOffset(r, (int)Math.Min(t.RcvWnd, int.MaxValue));
        SeqNumber ack = PickAck(r, t);
        byte flags = PickFlags(r);

        // Options.
        Span<byte> opts = stackalloc byte[40];
        int optLen = BuildOptions(r, opts, t);

        int payload = r.Next(4) switch { 0 => 0, 1 => 1 + r.Next(8), 2 => r.Next(600), _ => r.Next(1461) };

        int dataOffsetWords = -1;
        if (r.Next(50) == 0)
        {
            // A lying data offset turns options into payload or payload into options: keep such
            // a segment far outside the window, where neither may be accepted.
            dataOffsetWords = r.Next(16);
            seq = t.RcvNxt + (int.MinValue / 2 + r.Next(1000));
            flags &= 0xFA; // no FIN, no RST
        }

        // "In the window" here is up to the right edge ever advertised (a receiver must accept
        // that far even if its window shrank since: RFC 9293 3.8.6), with a margin.
        SeqNumber right = t.AcceptRight + 70_000;
        bool inWindow = seq.IsInRange(t.RcvNxt, right);
        // Never data beyond RCV.NXT that the receiver could accept. A SYN occupies the first
        // sequence number, so its data starts one later.
        if (payload > 0)
        {
            SeqNumber dataStart = (flags & 0x02) != 0 ? seq + 1 : seq;
            SeqNumber end = dataStart + payload;
            if (end.IsAfter(t.RcvNxt) && dataStart.IsBefore(right))
                payload = dataStart.IsBefore(t.RcvNxt) ? t.RcvNxt - dataStart : 0;
        }
        // Never a FIN the receiver could accept, never an exact-match RST.
        SeqNumber finSeq = seq + payload + ((flags & 0x02) != 0 ? 1 : 0);
        if ((flags & 0x01) != 0 && finSeq.IsInRange(t.RcvNxt - 70_000, right)) flags &= 0xFE;
        if ((flags & 0x04) != 0 && seq == t.RcvNxt) seq += 1;

        ushort window = (ushort)(r.Next(3) == 0 ? r.NextUInt32() : t.PeerWindowField);
        if (inWindow && seq != t.RcvNxt) window = t.PeerWindowField;

        int headerLen = 20 + optLen;
        int total = headerLen + payload;
        var s = _buffer.AsSpan(0, total);
        BinaryPrimitives.WriteUInt16BigEndian(s, sport);
        BinaryPrimitives.WriteUInt16BigEndian(s[2..], dport);
        BinaryPrimitives.WriteUInt32BigEndian(s[4..], seq.Value);
        BinaryPrimitives.WriteUInt32BigEndian(s[8..], ack.Value);
        if (dataOffsetWords < 0) dataOffsetWords = headerLen / 4;
        s[12] = (byte)(dataOffsetWords << 4 | (r.Next(30) == 0 ? r.Next(16) : 0));  // reserved bits, sometimes set
        s[13] = flags;
        BinaryPrimitives.WriteUInt16BigEndian(s[14..], window);
        BinaryPrimitives.WriteUInt16BigEndian(s[16..], 0);
        BinaryPrimitives.WriteUInt16BigEndian(s[18..], (ushort)(r.Next(10) == 0 ? r.NextUInt32() : 0));
        opts[..optLen].CopyTo(s[20..]);
        // The payload is the true stream at its position (or noise where the stream does not exist).
        long offset = t.StreamOffsetAtRcvNxt + (seq - t.RcvNxt) + ((flags & 0x02) != 0 ? 1 : 0);
        var data = s.Slice(headerLen, payload);
        if (offset >= 0) StreamPattern.Fill(t.StreamKey, offset, data);
        else r.NextBytes(data);

        if (r.Next(25) == 0)
        {
            BadChecksums++;
            BinaryPrimitives.WriteUInt16BigEndian(s[16..], (ushort)r.NextUInt32());
        }
        else
        {
            ushort pseudo = Checksum.PseudoHeader(source, destination, 6, (ushort)total);
            BinaryPrimitives.WriteUInt16BigEndian(s[16..], Checksum.Compute(s, pseudo));
        }
        if (r.Next(40) == 0) return s[..r.Next(total + 1)];      // truncated after the checksum
        return s;
    }

    private static int PickOffset(SeededRandom r, int wnd) => r.Next(12) switch
    {
        0 => 0,
        1 => -1,
        2 => 1,
        3 => wnd - 1,
        4 => wnd,
        5 => wnd + 1,
        6 => -r.Next(70_000),
        7 => r.Next(Math.Max(1, wnd)),
        8 => int.MinValue + r.Next(3),
        9 => int.MaxValue - r.Next(3),
        10 => (int)r.NextUInt32(),
        _ => wnd + r.Next(70_000),
    };

    private static SeqNumber PickAck(SeededRandom r, in FuzzTarget t) => r.Next(10) switch
    {
        0 => t.SndUna - 1,
        1 => t.SndNxt + 1,
        2 => t.SndNxt + r.Next(100_000),
        3 => t.SndUna - r.Next(200_000),
        4 => new SeqNumber(r.NextUInt32()),
        5 => t.SndUna - (int)(r.NextUInt32() >> 1),
        _ => t.SndNxt,
    };

    private static byte PickFlags(SeededRandom r) => r.Next(8) switch
    {
        0 => (byte)r.NextUInt32(),      // any combination, URG/ECE/CWR included
        1 => 0x02,                      // SYN
        2 => 0x12,                      // SYN+ACK
        3 => 0x04,                      // RST
        4 => 0x14,                      // RST+ACK
        5 => 0x11,                      // FIN+ACK
        6 => 0x00,                      // no flags at all
        _ => (byte)(0x10 | (r.Next(2) == 0 ? 0x08 : 0)),  // ACK, maybe PSH
    };

    private static int BuildOptions(SeededRandom r, Span<byte> o, in FuzzTarget t)
    {
        int n = 0;
        int count = r.Next(3) == 0 ? 1 + r.Next(4) : 0;   // a third carry extra options, some hostile
        for (int k = 0; k < count && n < 40; k++)
        {
            int room = 40 - n;
            switch (r.Next(10))
            {
                case 0: o[n++] = 1; break;                                        // NOP
                case 1: o[n++] = 0; break;                                        // EOL, then whatever follows
                case 2 when room >= 4:                                            // MSS
                    o[n] = 2; o[n + 1] = 4; BinaryPrimitives.WriteUInt16BigEndian(o[(n + 2)..], (ushort)r.NextUInt32()); n += 4; break;
                case 3 when room >= 3:                                            // window scale
                    o[n] = 3; o[n + 1] = 3; o[n + 2] = (byte)r.Next(256); n += 3; break;
                case 4 when room >= 2:                                            // SACK permitted
                    o[n] = 4; o[n + 1] = 2; n += 2; break;
                case 5 when room >= 10:                                           // SACK blocks near the window
                    {
                        int blocks = Math.Min((room - 2) / 8, 1 + r.Next(4));
                        o[n] = 5; o[n + 1] = (byte)(2 + 8 * blocks);
                        for (int b = 0; b < blocks; b++)
                        {
                            SeqNumber left = t.SndUna + (r.Next(2) == 0 ? r.Next(5000) : (int)r.NextUInt32());
                            SeqNumber right = left + (r.Next(4) == 0 ? -r.Next(100) : r.Next(5000));
                            BinaryPrimitives.WriteUInt32BigEndian(o[(n + 2 + 8 * b)..], left.Value);
                            BinaryPrimitives.WriteUInt32BigEndian(o[(n + 6 + 8 * b)..], right.Value);
                        }
                        n += 2 + 8 * blocks;
                        break;
                    }
                case 6 when room >= 10:                                           // timestamps, never newer than the peer's
                    o[n] = 8; o[n + 1] = 10;
                    BinaryPrimitives.WriteUInt32BigEndian(o[(n + 2)..], t.PeerTsVal - (uint)r.Next(r.Next(2) == 0 ? 3 : 1 << 30));
                    BinaryPrimitives.WriteUInt32BigEndian(o[(n + 6)..], r.NextUInt32());
                    n += 10; break;
                case 7 when room >= 2:                                            // a lying length
                    o[n] = (byte)r.Next(256); o[n + 1] = (byte)r.Next(r.Next(2) == 0 ? 2 : 256); n += 2; break;
                default:                                                          // noise
                    {
                        int len = r.Next(room + 1);
                        r.NextBytes(o.Slice(n, len));
                        n += len;
                        break;
                    }
            }
        }
        // Real connections with timestamps carry them on every segment (RFC 7323 3.2); mostly do so too.
        if (t.Timestamps && n <= 28 && r.Next(3) != 0)
        {
            o[n] = 1; o[n + 1] = 1; o[n + 2] = 8; o[n + 3] = 10;
            BinaryPrimitives.WriteUInt32BigEndian(o[(n + 4)..], t.PeerTsVal);
            BinaryPrimitives.WriteUInt32BigEndian(o[(n + 8)..], r.NextUInt32());
            n += 12;
        }
        while ((n & 3) != 0) o[n++] = 1;
        ClampTimestamps(o[..n], t.PeerTsVal);
        return n;
    }

    /// <summary>
    /// Walks the options as a receiver does and makes sure no timestamps option that noise
    /// happened to form carries a TSval newer than the real peer's (which would legitimately
    /// poison TS.Recent and make PAWS drop the real peer's segments: RFC 7323 5).
    /// </summary>
    private static void ClampTimestamps(Span<byte> o, uint peerTsVal)
    {
        int i = 0;
        while (i < o.Length)
        {
            byte kind = o[i];
            if (kind == 0) return;
            if (kind == 1) { i++; continue; }
            if (i + 1 >= o.Length) return;
            int len = o[i + 1];
            if (len < 2 || i + len > o.Length) return;
            if (kind == 8 && len == 10)
            {
                uint v = BinaryPrimitives.ReadUInt32BigEndian(o[(i + 2)..]);
                if (unchecked((int)(v - peerTsVal)) > 0) BinaryPrimitives.WriteUInt32BigEndian(o[(i + 2)..], peerTsVal);
            }
            i += len;
        }
    }
}
