using AntHost.Inet.Core.Buffers;
using AntHost.Inet.Core.Ip;
using AntHost.Inet.Core.Time;
using AntHost.Inet.Core.Wire;

namespace AntHost.Inet.Core.Tests.Support;

/// <summary>A transport standing in for TCP: records what IPv4 hands it and can send through the IIpOutput it was given.</summary>
public sealed class RecordingTransport : ITransportLayer
{
    public RecordingTransport(IIpOutput ip) => Ip = ip;

    public IIpOutput Ip { get; }
    public List<(Ipv4Address Source, Ipv4Address Destination, byte[] Segment)> Segments { get; } = new();
    public List<IcmpError> Errors { get; } = new();
    public int Polls { get; private set; }
    public Instant? NextDeadline { get; set; }

    public void Receive(Ipv4Address source, Ipv4Address destination, PacketBuffer segment, Instant now)
    {
        Segments.Add((source, destination, segment.Data.ToArray()));
        segment.Release();
    }

    public void ReceiveIcmpError(in IcmpError error, Instant now) => Errors.Add(error);

    public void Poll(Instant now) => Polls++;

    public Instant? PollAt => NextDeadline;
}
