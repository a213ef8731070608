// SendTimeout (ReceiveTimeout lives with the receive path) and IAsyncDisposable: a blocking
// send that cannot finish within SendTimeout fails with SocketError.TimedOut, as .NET's does;
// its held call is canceled in inet. As on .NET, the connection's state after a timed-out
// send is undefined (some of the bytes may have been taken): close it.
using System.Net.Sockets;

namespace AntHost.Client;

public sealed partial class InetSocket : IAsyncDisposable
{
    private int _sendTimeout;

    /// <summary>
    /// Milliseconds a blocking Send waits (for room in inet's send buffer) before it fails with
    /// <see cref="SocketError.TimedOut"/>; 0 (or -1) waits as long as it takes, as Socket.SendTimeout.
    /// </summary>
    public int SendTimeout
    {
        get => _sendTimeout;
        set => _sendTimeout = value >= -1 ? Math.Max(0, value) : throw new ArgumentOutOfRangeException(nameof(value), "-1, 0 or a number of milliseconds");
    }

    /// <summary>Whether a sync Send goes the timed way (a blocking stream send with a SendTimeout).</summary>
    private bool SendIsTimed => _sendTimeout > 0 && _blocking && _type == Inet.Abi.AbiSocketType.Stream;

    /// <summary>Closes the socket (as <see cref="Close()"/>).</summary>
    public ValueTask DisposeAsync()
    {
        Close();
        return ValueTask.CompletedTask;
    }
}
