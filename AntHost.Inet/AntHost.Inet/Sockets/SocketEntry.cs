using AntHost.Inet.Abi;
using AntHost.Inet.Core.Tcp;
using AntHost.Inet.Core.Time;
using AntHost.Inet.Core.Udp;
using AntHost.Kernel;
using AntHost.Kernel.Pool;

namespace AntHost.Inet.Sockets;

/// <summary>
/// One socket of the socket manager's table: who owns it, the protocol core's socket under
/// it, the requests held on it (each kind in its own FIFO, so a blocked receive never holds
/// up a send), and the options the core does not keep. An entry is reused after its socket
/// closes; its generation changes, so a stale handle names nothing.
/// </summary>
internal sealed class SocketEntry
{
    public SocketEntry(int index) => Index = index;

    public int Index { get; }

    /// <summary>Bumped each time the slot is freed.</summary>
    public int Generation { get; set; } = 1;

    public bool InUse { get; set; }

    /// <summary>Set while a Close with linger is held: the handle is gone for the app.</summary>
    public bool Closing { get; set; }

    public ProcessId Owner { get; set; }

    public AbiSocketType Type { get; set; }

    /// <summary>The core's socket under the entry: its handle in the interface's <see cref="Core.Sockets.SocketSet"/>, whose slot is this entry's index.</summary>
    public Core.Sockets.SocketHandle Socket { get; set; }

    /// <summary>The TCP layer's handle (a stream socket), as the set gave it.</summary>
    public TcpSocket Tcp { get; set; }

    public UdpSocket? Udp { get; set; }

    /// <summary>The 64-bit handle apps hold: generation in the high word, index + 1 in the low (0 is never a handle).</summary>
    public ulong Handle => ((ulong)(uint)Generation << 32) | (uint)(Index + 1);

    public Queue<Message>? Receives;
    public Queue<Message>? Sends;
    public Queue<Message>? Accepts;
    public Message Connect;
    public bool HasConnect;
    public Message Close;
    public Instant CloseDeadline;

    /// <summary>Held polls that name this socket.</summary>
    public int PollWaiters;

    /// <summary>On the manager's list of sockets whose held sends are retried every round.</summary>
    public bool InSendWaiters;

    /// <summary>Shutdown(Receive): receives end at once with the end of the stream.</summary>
    public bool ReceiveShut;

    /// <summary>Shutdown(Send) on a UDP socket.</summary>
    public bool SendShut;

    public long Linger = -1;
    public bool Broadcast;
    public bool ReuseAddress;
    public long UdpSendBuffer = 65536;
    public long UdpReceiveBuffer = 65536;

    /// <summary>A UDP datagram taken off the core's queue to answer Available; the next receive returns it.</summary>
    public UdpDatagram Peeked;
    public bool HasPeeked;

    public int HeldCount => (Receives?.Count ?? 0) + (Sends?.Count ?? 0) + (Accepts?.Count ?? 0) + (HasConnect ? 1 : 0);

    public void Reset()
    {
        InUse = false;
        Closing = false;
        Owner = default;
        Socket = default;
        Tcp = default;
        Udp = null;
        HasConnect = false;
        Connect = default;
        Close = default;
        PollWaiters = 0;
        InSendWaiters = false;
        ReceiveShut = false;
        SendShut = false;
        Linger = -1;
        Broadcast = false;
        ReuseAddress = false;
        UdpSendBuffer = 65536;
        UdpReceiveBuffer = 65536;
        Peeked = default;
        HasPeeked = false;
        Generation++;
        if (Generation == 0) Generation = 1;
    }
}
