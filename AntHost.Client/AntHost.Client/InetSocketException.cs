// Errors at the API edge. Every failure of a socket call surfaces as a
// System.Net.Sockets.SocketException carrying the SocketError that names it, so code
// written for .NET sockets (HttpClient's handler, retry policies, Stream users)
// understands AntHost's errors without knowing AntHost. The subclass keeps the inet
// server's own status for callers that want the exact reason.
using System.Net.Sockets;
using AntHost.Inet.Abi;

namespace AntHost.Client;

/// <summary>
/// A socket call failed. <see cref="SocketException.SocketErrorCode"/> is the .NET name of the
/// error; <see cref="Status"/> is what the inet server answered (or <see cref="InetStatus.Ok"/>
/// when the failure was local, e.g. the inet server is gone).
/// </summary>
public sealed class InetSocketException : SocketException
{
    private readonly string _message;

    public InetSocketException(SocketError error, InetStatus status, string message) : base((int)error)
    {
        Status = status;
        _message = message;
    }

    /// <summary>The inet server's status for this failure.</summary>
    public InetStatus Status { get; }

    public override string Message => _message;
}

/// <summary>Maps inet statuses to their System.Net.Sockets namesakes.</summary>
public static class InetErrors
{
    /// <summary>The <see cref="SocketError"/> that names <paramref name="status"/>.</summary>
    public static SocketError ToSocketError(InetStatus status) => status switch
    {
        InetStatus.Ok => SocketError.Success,
        InetStatus.BadArguments => SocketError.InvalidArgument,
        InetStatus.NotAllowed => SocketError.AccessDenied,
        InetStatus.UnknownOpcode => SocketError.OperationNotSupported,
        InetStatus.NoControl => SocketError.InvalidArgument,
        SocketStatus.WouldBlock => SocketError.WouldBlock,
        // As System.Net.Sockets does for a non-blocking connect: EINPROGRESS is reported as WouldBlock.
        SocketStatus.InProgress => SocketError.WouldBlock,
        SocketStatus.InvalidSocket => SocketError.NotSocket,
        SocketStatus.AddressInUse => SocketError.AddressAlreadyInUse,
        SocketStatus.AddressNotAvailable => SocketError.AddressNotAvailable,
        SocketStatus.NotConnected => SocketError.NotConnected,
        SocketStatus.AlreadyConnected => SocketError.IsConnected,
        SocketStatus.ConnectionRefused => SocketError.ConnectionRefused,
        SocketStatus.ConnectionReset => SocketError.ConnectionReset,
        SocketStatus.ConnectionAborted => SocketError.ConnectionAborted,
        SocketStatus.TimedOut => SocketError.TimedOut,
        SocketStatus.HostUnreachable => SocketError.HostUnreachable,
        SocketStatus.NetworkUnreachable => SocketError.NetworkUnreachable,
        SocketStatus.Shutdown => SocketError.Shutdown,
        SocketStatus.MessageTooLong => SocketError.MessageSize,
        SocketStatus.NoBufferSpace => SocketError.NoBufferSpaceAvailable,
        SocketStatus.Canceled => SocketError.OperationAborted,
        SocketStatus.InvalidArgument => SocketError.InvalidArgument,
        SocketStatus.NetworkDown => SocketError.NetworkDown,
        SocketStatus.OperationNotSupported => SocketError.OperationNotSupported,
        SocketStatus.TooManySockets => SocketError.TooManyOpenSockets,
        // Linux reports an ICMP port unreachable on a UDP socket as ECONNREFUSED.
        SocketStatus.PortUnreachable => SocketError.ConnectionRefused,
        _ => SocketError.SocketError,
    };

    /// <summary>The exception for a failed call: "what: why (status)".</summary>
    public static InetSocketException For(InetStatus status, string what) =>
        new(ToSocketError(status), status, $"{what}: {SocketStatus.Describe(status)} ({ToSocketError(status)})");

    internal static InetSocketException ServerGone(string instance, int pid) =>
        new(SocketError.NetworkDown, InetStatus.Ok,
            $"the inet server (pid {pid}) of AntHost instance '{instance}' is gone: every socket of this process is closed; start it again (anthost up) and reconnect");

    internal static InetSocketException BrokerGone(string instance) =>
        new(SocketError.NetworkDown, InetStatus.Ok,
            $"the AntHost kernel (broker) of instance '{instance}' is gone: every socket of this process is closed; start the instance again (anthost up) and reconnect");

    internal static InetSocketException Local(SocketError error, string message) => new(error, InetStatus.Ok, message);
}
