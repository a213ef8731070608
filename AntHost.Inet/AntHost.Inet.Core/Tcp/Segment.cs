using AntHost.Inet.Core.Wire;

namespace AntHost.Inet.Core.Tcp;

/// <summary>
/// The header fields of a received segment, copied out of the <see cref="TcpHeader"/> view
/// so that the payload buffer can be trimmed to the payload before the state machine
/// runs (the view is over the bytes the trim hands away).
/// </summary>
internal readonly struct Segment
{
    public readonly ushort SourcePort;
    public readonly ushort DestinationPort;
    public readonly SeqNumber Seq;
    public readonly SeqNumber AckNumber;
    public readonly TcpFlags Flags;
    public readonly ushort Window;
    public readonly int PayloadLength;
    public readonly TcpOptions Options;

    public Segment(in TcpHeader h)
    {
        SourcePort = h.SourcePort;
        DestinationPort = h.DestinationPort;
        Seq = h.Sequence;
        AckNumber = h.Acknowledgment;
        Flags = h.Flags;
        Window = h.Window;
        PayloadLength = h.PayloadLength;
        Options = h.Options;
    }

    /// <summary>A segment that did not arrive as such: the SYN a SYN cookie stands for.</summary>
    public Segment(ushort sourcePort, ushort destinationPort, SeqNumber seq, SeqNumber ackNumber, TcpFlags flags, ushort window, int payloadLength, in TcpOptions options)
    {
        SourcePort = sourcePort;
        DestinationPort = destinationPort;
        Seq = seq;
        AckNumber = ackNumber;
        Flags = flags;
        Window = window;
        PayloadLength = payloadLength;
        Options = options;
    }

    public bool Syn => (Flags & TcpFlags.Syn) != 0;
    public bool Ack => (Flags & TcpFlags.Ack) != 0;
    public bool Fin => (Flags & TcpFlags.Fin) != 0;
    public bool Rst => (Flags & TcpFlags.Rst) != 0;

    /// <summary>RFC 9293 3.4: SEG.LEN, counting SYN and FIN.</summary>
    public int Length => PayloadLength + (Syn ? 1 : 0) + (Fin ? 1 : 0);
}
