using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using AntHost.Client.Tests.Infrastructure;
using AntHost.TestSupport;
using Xunit.Abstractions;

namespace AntHost.Client.Tests;

/// <summary>
/// Failures below the socket API reach the app as SocketExceptions, as docs/client.md
/// promises, never as the kernel library's KernelException: the pool empty (or the app's
/// limit spent), the broker gone under a held call, and a journal that cannot be written
/// because the broker that drains it is gone. A real broker process and a fake inet server
/// in the test.
/// </summary>
public sealed class FailureTests : IDisposable
{
    private static readonly IPEndPoint Peer = new(IPAddress.Parse("198.18.0.1"), 7);
    private readonly BrokerOnly _broker;
    private readonly ITestOutputHelper _output;

    public FailureTests(ITestOutputHelper output)
    {
        _output = output;
        _broker = new BrokerOnly(output);
    }

    public void Dispose() => _broker.Dispose();

    private InetStack Connect() => InetStack.Connect(new InetStackOptions { Instance = _broker.Instance, ProcessName = "client-failures" });

    [RootFact]
    public void An_empty_pool_is_NoBufferSpaceAvailable_and_sending_works_again_once_buffers_are_back()
    {
        using var fake = new FakeInet(_broker);
        using var stack = Connect();
        using var s = new InetSocket(stack, SocketType.Stream, ProtocolType.Tcp);
        s.Connect(Peer);
        // Buffers of 16 KiB until the app's share of the pool is spent, then of one and two
        // pages until not even those are left.
        var rented = new List<SendBuffer>();
        foreach (int size in new[] { 16 * 1024, 100, 5000 })
        {
            SocketException? refused = null;
            while (refused is null && rented.Count < 100_000)
            {
                try { rented.Add(s.RentSendBuffer(size)); }
                catch (SocketException e) { refused = e; }
            }
            Assert.NotNull(refused);
            _output.WriteLine($"after {rented.Count} buffers, one of {size} B: {refused!.SocketErrorCode}: {refused.Message}");
            Assert.Equal(SocketError.NoBufferSpaceAvailable, refused.SocketErrorCode);
            Assert.Contains("no buffer space", refused.Message, StringComparison.Ordinal);
        }
        // A send (it needs a request and a buffer) fails the same way, and says what it was doing.
        var send = s.Invoking(x => x.Send(new byte[3000]));
        _output.WriteLine($"send: {send.SocketErrorCode}: {send.Message}");
        Assert.Equal(SocketError.NoBufferSpaceAvailable, send.SocketErrorCode);
        foreach (var b in rented) s.ReturnSendBuffer(b);
        Assert.Equal(16 * 1024, s.Send(new byte[16 * 1024]));
    }

    [RootFact]
    public void A_killed_broker_ends_a_held_receive_within_250_ms_and_every_later_call_with_NetworkDown()
    {
        using var fake = new FakeInet(_broker);
        using var stack = Connect();
        using var s = new InetSocket(stack, SocketType.Stream, ProtocolType.Tcp);
        s.Connect(Peer);
        var sendBuffer = s.RentSendBuffer(1000);
        long failedAt = 0;
        Exception? failure = null;
        var holding = new Thread(() =>
        {
            try { s.Receive(new byte[100]); }
            catch (Exception e) { failure = e; }
            failedAt = Stopwatch.GetTimestamp();
        });
        holding.Start();
        fake.WaitUntil(f => f.HeldIds.Count > 0, "the receive is held");
        long killedAt = Stopwatch.GetTimestamp();
        _broker.Process.Signal(9);
        Assert.True(holding.Join(TimeSpan.FromSeconds(10)), "the held receive did not end");
        var after = Stopwatch.GetElapsedTime(killedAt, failedAt);
        var e = Assert.IsAssignableFrom<SocketException>(failure);
        _output.WriteLine($"held receive ended {after.TotalMilliseconds:F1} ms after kill -9 of the broker: {e.SocketErrorCode}: {e.Message}");
        Assert.Equal(SocketError.NetworkDown, e.SocketErrorCode);
        Assert.Contains("kernel (broker)", e.Message, StringComparison.Ordinal);
        Assert.True(after < TimeSpan.FromMilliseconds(250), $"the app learnt of the broker's death after {after.TotalMilliseconds:F0} ms");

        // Every later call: a SocketException naming the broker; releasing what it holds throws nothing.
        Assert.Equal(SocketError.NetworkDown, s.Invoking(x => x.Send(new byte[10])).SocketErrorCode);
        Assert.Equal(SocketError.NetworkDown, s.Invoking(x => x.RentSendBuffer(100)).SocketErrorCode);
        Assert.Equal(SocketError.NetworkDown, s.Invoking(x => new InetSocket(stack, SocketType.Stream, ProtocolType.Tcp)).SocketErrorCode);
        s.ReturnSendBuffer(sendBuffer);
    }

    [RootFact]
    public void A_journal_the_dead_broker_cannot_drain_fails_the_next_call_with_NetworkDown_at_once()
    {
        using var fake = new FakeInet(_broker);
        using var stack = Connect();
        using var s = new InetSocket(stack, SocketType.Stream, ProtocolType.Tcp);
        s.Connect(Peer);
        // More one-page ICAs than the app's cache keeps: past the cache, each one given back is
        // a journal record, and more of them than the journal ring has slots.
        var rented = new List<SendBuffer>();
        for (int i = 0; i < 900; i++) rented.Add(s.RentSendBuffer(100));
        _broker.Process.Signal(19); // SIGSTOP: the broker drains nothing
        try
        {
            long returnedAt = 0;
            Exception? thrown = null;
            var returning = new Thread(() =>
            {
                try { foreach (var b in rented) s.ReturnSendBuffer(b); }
                catch (Exception e) { thrown = e; }
                returnedAt = Stopwatch.GetTimestamp();
            });
            returning.Start();
            // The journal fills and the returns wait for the broker to drain it.
            Assert.False(returning.Join(TimeSpan.FromMilliseconds(500)), "the journal never filled: the returns did not wait for the stopped broker");
            long killedAt = Stopwatch.GetTimestamp();
            _broker.Process.Signal(9);
            Assert.True(returning.Join(TimeSpan.FromSeconds(10)), "the returns stayed stuck on the journal after the broker died");
            var after = Stopwatch.GetElapsedTime(killedAt, returnedAt);
            _output.WriteLine($"the returns ended {after.TotalMilliseconds:F1} ms after kill -9 of the stopped broker ({thrown?.GetType().Name ?? "nothing thrown"})");
            Assert.Null(thrown); // giving back is a release: nothing to report, the pool went with the broker
            Assert.True(after < TimeSpan.FromMilliseconds(250), $"the journal wait ended {after.TotalMilliseconds:F0} ms after the broker died");
            var e = s.Invoking(x => x.Send(new byte[10]));
            Assert.Equal(SocketError.NetworkDown, e.SocketErrorCode);
            Assert.Contains("kernel (broker)", e.Message, StringComparison.Ordinal);
        }
        finally
        {
            _broker.Process.Signal(18); // SIGCONT, should the test fail before the kill
        }
    }
}

internal static class SocketCallExtensions
{
    /// <summary>The SocketException <paramref name="call"/> throws; fails the test when it throws anything else or nothing.</summary>
    public static SocketException Invoking<T>(this T target, Action<T> call)
    {
        try { call(target); }
        catch (SocketException e) { return e; }
        catch (Exception e) { Assert.Fail($"expected a SocketException, got {e.GetType().Name}: {e.Message}"); }
        Assert.Fail("expected a SocketException, nothing was thrown");
        return null!;
    }

    public static SocketException Invoking<T>(this T target, Func<T, object?> call) => target.Invoking<T>(x => { _ = call(x); });
}
