using System.Buffers;
using AntHost.Inet.Core.Buffers;
using AntHost.Inet.Core.Ip;
using AntHost.Inet.Core.Randomness;
using AntHost.Inet.Core.Time;
using AntHost.Inet.Core.Wire;

namespace AntHost.Inet.Core.Tests.Tcp.Sim;

/// <summary>How one direction of the simulated link misbehaves.</summary>
public sealed record LinkProfile
{
    /// <summary>One-way propagation delay.</summary>
    public TimeSpan Delay { get; init; } = TimeSpan.FromMilliseconds(1);

    /// <summary>Bytes per second on the wire; 0 for no limit (no serialisation delay, no queue).</summary>
    public long BandwidthBytesPerSecond { get; init; }

    /// <summary>Most bytes waiting for the wire (drop-tail) when the bandwidth is limited.</summary>
    public int QueueLimitBytes { get; init; } = 64 * 1024;

    /// <summary>Probability that a segment is lost.</summary>
    public double Loss { get; init; }

    /// <summary>Probability that a segment is delayed by up to two delays more, overtaking others.</summary>
    public double Reorder { get; init; }

    /// <summary>Probability that a segment arrives twice.</summary>
    public double Duplicate { get; init; }

    /// <summary>Probability that one bit of a segment is flipped (the TCP checksum must catch it).</summary>
    public double Corrupt { get; init; }

    /// <summary>
    /// Probability that a payload byte is changed and the checksum fixed to match: corruption no
    /// transport can detect. Only for checking that the simulation notices a damaged stream.
    /// </summary>
    public double ForgePayload { get; init; }

    public override string ToString() =>
        $"delay={Delay.TotalMilliseconds:0.###}ms bw={(BandwidthBytesPerSecond == 0 ? "inf" : (BandwidthBytesPerSecond * 8 / 1e6).ToString("0.#", System.Globalization.CultureInfo.InvariantCulture) + "Mbit/s")} queue={QueueLimitBytes} " +
        $"loss={Loss:0.###} reorder={Reorder:0.###} dup={Duplicate:0.###} corrupt={Corrupt:0.###}";
}

/// <summary>
/// One direction of the simulated link: segments (copied out of the sender's buffer, which
/// is handed back at once, as an adapter does when the frame has left) wait in a queue
/// ordered by arrival time. Serialisation at the bandwidth, a drop-tail queue, propagation
/// delay, and random loss, reordering, duplication and corruption, all from one seeded source.
/// </summary>
public sealed class SimPipe
{
    private readonly LinkProfile _p;
    private readonly SeededRandom _random;
    private readonly PriorityQueue<Packet, (long, long)> _queue = new();
    private long _busyUntilUs;
    private long _order;

    public SimPipe(LinkProfile profile, SeededRandom random)
    {
        _p = profile;
        _random = random;
    }

    public long Sent, Lost, QueueDrops, Duplicated, Corrupted, Delivered;

    public int InFlight => _queue.Count;

    public Instant? NextArrival => _queue.TryPeek(out _, out var k) ? new Instant(k.Item1) : null;

    /// <summary>Perfect links skip the random draws, so that a lossless run is cheap.</summary>
    private bool Perfect => _p.Loss == 0 && _p.Reorder == 0 && _p.Duplicate == 0 && _p.Corrupt == 0 && _p.ForgePayload == 0;

    /// <summary>Sees every segment put on the pipe (before loss), e.g. to learn the sender's timestamps.</summary>
    public SpanAction? Tap { get; set; }

    public delegate void SpanAction(ReadOnlySpan<byte> segment);

    public void Put(ReadOnlySpan<byte> segment, Ipv4Address source, Ipv4Address destination, Instant now)
    {
        Sent++;
        Tap?.Invoke(segment);
        long t = now.Microseconds;
        long departure = t;
        if (_p.BandwidthBytesPerSecond > 0)
        {
            long start = Math.Max(t, _busyUntilUs);
            long backlogBytes = (start - t) * _p.BandwidthBytesPerSecond / 1_000_000;
            if (backlogBytes + segment.Length > _p.QueueLimitBytes)
            {
                QueueDrops++;
                return;
            }
            // Wire bytes: the segment plus IPv4 and Ethernet framing.
            long wire = segment.Length + IIpOutput.HeaderRoom + 4;
            _busyUntilUs = start + Math.Max(1, wire * 1_000_000 / _p.BandwidthBytesPerSecond);
            departure = _busyUntilUs;
        }
        if (!Perfect && _random.NextDouble() < _p.Loss)
        {
            Lost++;
            return;
        }
        Enqueue(segment, source, destination, departure);
        if (!Perfect && _random.NextDouble() < _p.Duplicate)
        {
            Duplicated++;
            Enqueue(segment, source, destination, departure);
        }
    }

    private void Enqueue(ReadOnlySpan<byte> segment, Ipv4Address source, Ipv4Address destination, long departure)
    {
        long arrival = departure + _p.Delay.Ticks / TimeSpan.TicksPerMicrosecond;
        if (!Perfect && _random.NextDouble() < _p.Reorder)
            arrival += 1 + _random.Next((int)Math.Min(int.MaxValue - 1, 2 * Math.Max(500, _p.Delay.Ticks / TimeSpan.TicksPerMicrosecond)));
        byte[] bytes = ArrayPool<byte>.Shared.Rent(segment.Length);
        segment.CopyTo(bytes);
        if (!Perfect && _random.NextDouble() < _p.Corrupt && segment.Length > 0)
        {
            Corrupted++;
            int bit = _random.Next(segment.Length * 8);
            bytes[bit >> 3] ^= (byte)(1 << (bit & 7));
        }
        if (!Perfect && _p.ForgePayload > 0 && segment.Length > 20 && _random.NextDouble() < _p.ForgePayload)
        {
            int headerLength = (bytes[12] >> 4) * 4;
            if (headerLength >= 20 && headerLength < segment.Length)
            {
                bytes[headerLength + _random.Next(segment.Length - headerLength)] ^= 0x5A;
                var span = bytes.AsSpan(0, segment.Length);
                span[16] = span[17] = 0;
                ushort sum = Checksum.Compute(span, Checksum.PseudoHeader(source, destination, 6, (ushort)segment.Length));
                span[16] = (byte)(sum >> 8);
                span[17] = (byte)sum;
            }
        }
        _queue.Enqueue(new Packet(bytes, segment.Length, source, destination), (arrival, _order++));
    }

    /// <summary>Takes the next packet due at or before <paramref name="now"/>; the caller returns its array with <see cref="Recycle"/>.</summary>
    public bool TryTake(Instant now, out Packet packet)
    {
        if (_queue.TryPeek(out packet, out var k) && k.Item1 <= now.Microseconds)
        {
            _queue.Dequeue();
            Delivered++;
            return true;
        }
        packet = default;
        return false;
    }

    public static void Recycle(in Packet p) => ArrayPool<byte>.Shared.Return(p.Bytes);

    public void Clear()
    {
        while (_queue.TryDequeue(out var p, out _)) Recycle(p);
    }

    public readonly record struct Packet(byte[] Bytes, int Length, Ipv4Address Source, Ipv4Address Destination);
}

/// <summary>
/// The IP layer as one TCP layer sees it in the simulation: one local address, one peer,
/// a fixed MTU; <see cref="Send"/> puts the segment on the outgoing pipe and ends the
/// buffer's transmission (a lend ends, an owned buffer is released). It also checks the
/// seam's contract and counts violations, which the simulation asserts are zero.
/// </summary>
public sealed class SimIp(Ipv4Address local, Ipv4Address peer, int mtu, SimPipe output) : IIpOutput
{
    public Ipv4Address Local => local;

    public long ContractViolations;
    public string? FirstViolation;

    /// <summary>When set (fuzzing, which forges segments from other hosts), segments to other hosts are dropped and counted, not violations.</summary>
    public bool AllowStrangers { get; set; }

    public long ToStrangers;

    public int PathMtu(Ipv4Address destination) => mtu;

    public Ipv4Address SourceFor(Ipv4Address destination) => destination == peer ? local : Ipv4Address.Any;

    public bool IsLocal(Ipv4Address address) => address == local;

    public IpSendStatus Send(Ipv4Address source, Ipv4Address destination, IpProtocol protocol, PacketBuffer packet, in IpSendOptions options, Instant now)
    {
        if (AllowStrangers && destination != peer && source == local && protocol == IpProtocol.Tcp)
            ToStrangers++;
        else if (source != local || destination != peer || protocol != IpProtocol.Tcp)
            Violation($"segment {source}->{destination} proto {protocol} from a host at {local} whose only peer is {peer}");
        else if (packet.Headroom < IIpOutput.HeaderRoom)
            Violation($"segment with {packet.Headroom} bytes of headroom, less than IIpOutput.HeaderRoom");
        else if (packet.Length + 20 > mtu)
            Violation($"segment of {packet.Length} bytes exceeds the path MTU {mtu} less the IPv4 header");
        else
            output.Put(packet.Data, source, destination, now);
        packet.FinishTransmit();
        return IpSendStatus.Sent;
    }

    private void Violation(string what)
    {
        ContractViolations++;
        FirstViolation ??= what;
    }
}
