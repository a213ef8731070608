using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using AntHost.Inet.Abi;
using AntHost.Sandbox;
using AntHost.Stack.Tests.Infrastructure;
using AntHost.TestSupport;
using Xunit.Abstractions;

namespace AntHost.Client.Tests;

/// <summary>SendTimeout, the stream's read and write timeouts, and async disposal, against a peer kernel that never reads.</summary>
public sealed class TimeoutTests(ITestOutputHelper output)
{
    [PcapFact]
    public async Task Send_and_read_timeouts_fail_with_TimedOut_in_time_and_DisposeAsync_closes()
    {
        using var running = new RunningStack(output);
        using var stack = InetStack.Connect(new InetStackOptions { Instance = running.Instance, ProcessName = "timeout-test" });
        var listener = NamespaceThread.Run(running.Sandbox.PeerNamespace, () =>
        {
            var l = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            l.ReceiveBufferSize = 4096;
            l.Bind(new IPEndPoint(RunningStack.PeerIp, 7077));
            l.Listen(4);
            return l;
        });
        using var _ = listener;
        long before = running.Stat(InetStat.SocketsOpen);

        var s = new InetSocket(stack, SocketType.Stream, ProtocolType.Tcp);
        await s.ConnectAsync(new IPEndPoint(RunningStack.PeerIp, 7077));
        using var accepted = listener.Accept(); // never reads
        var stream = new InetStream(s, ownsSocket: true);
        Assert.True(stream.CanTimeout);
        Assert.Equal(Timeout.Infinite, stream.ReadTimeout);

        // Nothing comes: the read fails after ~300 ms as NetworkStream's does.
        stream.ReadTimeout = 300;
        var sw = Stopwatch.StartNew();
        var read = Assert.Throws<IOException>(() => stream.Read(new byte[10]));
        Assert.Equal(SocketError.TimedOut, Assert.IsAssignableFrom<SocketException>(read.InnerException).SocketErrorCode);
        Assert.InRange(sw.ElapsedMilliseconds, 250, 5000);

        // The peer never reads: once its window and inet's send buffer are full, the write times out.
        stream.WriteTimeout = 500;
        Assert.Equal(500, s.SendTimeout);
        var chunk = new byte[64 * 1024];
        sw.Restart();
        var write = Assert.Throws<IOException>(() =>
        {
            for (int i = 0; i < 1000; i++) stream.Write(chunk);
        });
        output.WriteLine($"write timed out after {sw.ElapsedMilliseconds} ms: {write.Message}");
        Assert.Equal(SocketError.TimedOut, Assert.IsAssignableFrom<SocketException>(write.InnerException).SocketErrorCode);
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(10));

        await stream.DisposeAsync();
        running.WaitStats(x => x[(int)InetStat.SocketsOpen] == before, "the socket closed by DisposeAsync");
        await using (var u = new InetSocket(stack, SocketType.Dgram, ProtocolType.Udp)) Assert.Equal(before + 1, running.Stat(InetStat.SocketsOpen));
        running.WaitStats(x => x[(int)InetStat.SocketsOpen] == before, "the UDP socket closed by await using");
    }
}
