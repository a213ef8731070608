using AntHost.Kernel.Ipc;
using AntHost.Kernel.Pool;

namespace AntHost.Kernel;

/// <summary>
/// One end of a channel between two processes: a pair of SPSC rings in the pool (one each
/// way). A client gets one from <see cref="KernelConnection.Open"/>; a server sees the
/// other end appear as a <see cref="MessageKind.ChannelOpened"/> message and in
/// <see cref="Message.Endpoint"/> of every request.
/// </summary>
public sealed unsafe class Endpoint
{
    internal readonly object SendLock = new();
    internal readonly SpscRing SendRing;
    internal readonly SpscRing ReceiveRing;
    internal readonly Doorbell PeerBell;
    internal volatile bool ClosedLocally;
    private readonly IcaPool _pool;

    internal Endpoint(IcaPool pool, uint channelId, int index, ProcessId peer, uint serviceId, string serviceName, bool isOpener)
    {
        _pool = pool;
        ChannelId = channelId;
        Index = index;
        Peer = peer;
        ServiceId = serviceId;
        ServiceName = serviceName;
        IsOpener = isOpener;
        var l = pool.Layout;
        var toServer = new SpscRing(pool.Ring(l.ChannelRingToServer(index)), l.RingCapacity);
        var toClient = new SpscRing(pool.Ring(l.ChannelRingToClient(index)), l.RingCapacity);
        SendRing = isOpener ? toServer : toClient;
        ReceiveRing = isOpener ? toClient : toServer;
        PeerBell = new Doorbell(pool.Doorbell(peer.Slot), pool.WakePath(peer.Slot));
    }

    public uint ChannelId { get; }
    internal int Index { get; }

    /// <summary>The process at the other end.</summary>
    public ProcessId Peer { get; }

    /// <summary>The service this channel was opened to (0 for a return channel).</summary>
    public uint ServiceId { get; }

    public string ServiceName { get; }

    /// <summary>True on the side that opened the channel.</summary>
    public bool IsOpener { get; }

    /// <summary>False once the peer died, was cut off, or the channel was closed.</summary>
    public bool IsOpen => !ClosedLocally && Volatile.Read(ref _pool.Channel(Index).State) == (uint)ChannelState.Open
        && Volatile.Read(ref _pool.Channel(Index).ChannelId) == ChannelId;

    public override string ToString() => $"channel {ChannelId} to {Peer} ({(ServiceName.Length > 0 ? ServiceName : "return")})";
}
