using System.Net;
using System.Net.Sockets;
using AntHost.Inet.Abi;

namespace AntHost.Client.Tests;

/// <summary>The library's error mapping and value conversions, without any process.</summary>
public class ErrorAndAbiTests
{
    public static TheoryData<int, SocketError> Mapping => new()
    {
        { (int)SocketStatus.ConnectionRefused, SocketError.ConnectionRefused },
        { (int)SocketStatus.ConnectionReset, SocketError.ConnectionReset },
        { (int)SocketStatus.ConnectionAborted, SocketError.ConnectionAborted },
        { (int)SocketStatus.TimedOut, SocketError.TimedOut },
        { (int)SocketStatus.HostUnreachable, SocketError.HostUnreachable },
        { (int)SocketStatus.NetworkUnreachable, SocketError.NetworkUnreachable },
        { (int)SocketStatus.AddressInUse, SocketError.AddressAlreadyInUse },
        { (int)SocketStatus.AddressNotAvailable, SocketError.AddressNotAvailable },
        { (int)SocketStatus.NotConnected, SocketError.NotConnected },
        { (int)SocketStatus.AlreadyConnected, SocketError.IsConnected },
        { (int)SocketStatus.Shutdown, SocketError.Shutdown },
        { (int)SocketStatus.WouldBlock, SocketError.WouldBlock },
        { (int)SocketStatus.InProgress, SocketError.WouldBlock },
        { (int)SocketStatus.Canceled, SocketError.OperationAborted },
        { (int)SocketStatus.NetworkDown, SocketError.NetworkDown },
        { (int)SocketStatus.MessageTooLong, SocketError.MessageSize },
        { (int)SocketStatus.NoBufferSpace, SocketError.NoBufferSpaceAvailable },
        { (int)SocketStatus.InvalidSocket, SocketError.NotSocket },
        { (int)SocketStatus.InvalidArgument, SocketError.InvalidArgument },
        { (int)SocketStatus.OperationNotSupported, SocketError.OperationNotSupported },
        { (int)SocketStatus.TooManySockets, SocketError.TooManyOpenSockets },
        { (int)SocketStatus.PortUnreachable, SocketError.ConnectionRefused },
        { (int)InetStatus.BadArguments, SocketError.InvalidArgument },
        { (int)InetStatus.Ok, SocketError.Success },
    };

    [Theory]
    [MemberData(nameof(Mapping))]
    public void Each_inet_status_maps_to_its_SocketError_namesake(int status, SocketError expected) =>
        Assert.Equal(expected, InetErrors.ToSocketError((InetStatus)status));

    [Fact]
    public void Every_socket_status_has_a_specific_SocketError_and_a_description()
    {
        for (int s = (int)SocketStatus.WouldBlock; s <= (int)SocketStatus.PortUnreachable; s++)
        {
            Assert.NotEqual(SocketError.SocketError, InetErrors.ToSocketError((InetStatus)s));
            Assert.DoesNotContain("status", SocketStatus.Describe((InetStatus)s), StringComparison.Ordinal);
        }
    }

    [Fact]
    public void The_exception_is_a_SocketException_that_says_what_and_why()
    {
        var e = InetErrors.For(SocketStatus.ConnectionRefused, "connect to 198.18.0.1:9");
        SocketException se = e;
        Assert.Equal(SocketError.ConnectionRefused, se.SocketErrorCode);
        Assert.Equal(SocketStatus.ConnectionRefused, e.Status);
        Assert.Contains("connect to 198.18.0.1:9", e.Message, StringComparison.Ordinal);
        Assert.Contains("refused", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_server_gone_error_is_network_down_and_names_the_pid()
    {
        var e = InetErrors.ServerGone("demo", 4242);
        Assert.Equal(SocketError.NetworkDown, e.SocketErrorCode);
        Assert.Contains("the inet server (pid 4242)", e.Message, StringComparison.Ordinal);
        Assert.Contains("gone", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("198.18.0.1", 0xC6120001u)]
    [InlineData("0.0.0.0", 0u)]
    [InlineData("255.255.255.255", 0xFFFFFFFFu)]
    public void Addresses_travel_in_network_order_as_the_ABI_says(string text, uint abi)
    {
        var ip = IPAddress.Parse(text);
        Assert.Equal(abi, InetSocket.ToAbiAddress(ip));
        Assert.Equal(ip, InetSocket.FromAbiAddress(abi));
        Span<byte> args = stackalloc byte[InetService.ArgumentBytes];
        var a = SocketArgs.Begin(args);
        a.Address = InetSocket.ToAbiAddress(ip);
        Assert.Equal(ip.GetAddressBytes(), args.Slice(12, 4).ToArray());
    }

    [Fact]
    public void IPv6_addresses_are_refused_with_a_clear_error()
    {
        var e = Assert.Throws<InetSocketException>(() => InetSocket.ToAbiAddress(IPAddress.IPv6Loopback));
        Assert.Equal(SocketError.AddressFamilyNotSupported, e.SocketErrorCode);
    }
}
