using System.Net;
using System.Net.Sockets;

namespace AntHost.Peer;

/// <summary>The command line: where to listen.</summary>
internal sealed record PeerOptions(IPAddress Address, int EchoPort, int DiscardPort, int SourcePort, int HttpPort, int RttPort)
{
    public static PeerOptions? Parse(string[] args)
    {
        IPAddress? address = null;
        int echo = 7, discard = 9, source = 19, http = 80, rtt = 5001;
        for (int i = 0; i + 1 < args.Length; i += 2)
        {
            string v = args[i + 1];
            switch (args[i])
            {
                case "--address" when IPAddress.TryParse(v, out var a): address = a; break;
                case "--echo" when int.TryParse(v, out var p): echo = p; break;
                case "--discard" when int.TryParse(v, out var p): discard = p; break;
                case "--source" when int.TryParse(v, out var p): source = p; break;
                case "--http" when int.TryParse(v, out var p): http = p; break;
                case "--rtt" when int.TryParse(v, out var p): rtt = p; break;
                default: return null;
            }
        }
        return args.Length % 2 == 0 && address is not null ? new PeerOptions(address, echo, discard, source, http, rtt) : null;
    }
}

/// <summary>The plain socket servers (echo, discard, source).</summary>
internal static class Servers
{
    private const int ListenerCount = 5;
    private static int s_bound;

    /// <summary>Completes when every socket server has bound its port.</summary>
    public static TaskCompletionSource AllBound { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private static void Bound()
    {
        if (Interlocked.Increment(ref s_bound) == ListenerCount) AllBound.TrySetResult();
    }

    public static async Task TcpAsync(IPEndPoint at, Func<Socket, CancellationToken, Task> serve, CancellationToken stop)
    {
        using var listener = new Socket(at.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        listener.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        try
        {
            listener.Bind(at);
            listener.Listen(512);
        }
        catch (SocketException e)
        {
            AllBound.TrySetException(new InvalidOperationException($"cannot listen on tcp {at}: {e.Message}"));
            return;
        }
        Bound();
        while (!stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await listener.AcceptAsync(stop);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            _ = Task.Run(async () =>
            {
                using (client)
                {
                    try
                    {
                        await serve(client, stop);
                    }
                    catch (Exception e) when (e is SocketException or OperationCanceledException or ObjectDisposedException)
                    {
                        // The client went away or reset: nothing to do for it.
                    }
                }
            }, CancellationToken.None);
        }
    }

    public static async Task EchoAsync(Socket s, CancellationToken stop)
    {
        var buffer = new byte[64 * 1024];
        while (true)
        {
            int n = await s.ReceiveAsync(buffer, SocketFlags.None, stop);
            if (n == 0) break;
            int sent = 0;
            while (sent < n) sent += await s.SendAsync(buffer.AsMemory(sent, n - sent), SocketFlags.None, stop);
        }
        s.Shutdown(SocketShutdown.Send);
    }

    public static async Task DiscardAsync(Socket s, CancellationToken stop)
    {
        var buffer = new byte[256 * 1024];
        while (await s.ReceiveAsync(buffer, SocketFlags.None, stop) > 0) { }
        s.Shutdown(SocketShutdown.Send);
    }

    public static async Task SourceAsync(Socket s, CancellationToken stop)
    {
        var buffer = new byte[256 * 1024];
        // Sends until the client closes or resets; a send then fails and ends the loop.
        while (true) await s.SendAsync(buffer, SocketFlags.None, stop);
    }

    /// <summary>
    /// The RTT responder (the AnT paper's RTT test): the client first sends N as 4 bytes,
    /// big-endian (1..16 MiB), then any number of rounds of N bytes, each answered with one
    /// byte. Served on a thread of its own with blocking calls: the answer must leave as soon
    /// as the last byte arrives, with no hop through the thread pool in the measured path.
    /// </summary>
    public static async Task RttAsync(Socket s, CancellationToken stop)
    {
        await Task.Factory.StartNew(() => RttServe(s, stop), stop, TaskCreationOptions.LongRunning, TaskScheduler.Default);
    }

    private static void RttServe(Socket s, CancellationToken stop)
    {
        using var registration = stop.Register(() => s.Dispose());
        s.NoDelay = true;
        Span<byte> header = stackalloc byte[4];
        if (!ReadExactly(s, header)) return;
        int n = System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(header);
        if (n is < 1 or > 16 << 20) return;
        var buffer = new byte[Math.Min(n, 256 * 1024)];
        ReadOnlySpan<byte> one = [1];
        while (true)
        {
            int left = n;
            while (left > 0)
            {
                int got = s.Receive(buffer.AsSpan(0, Math.Min(left, buffer.Length)));
                if (got == 0) return;
                left -= got;
            }
            s.Send(one);
        }
    }

    private static bool ReadExactly(Socket s, Span<byte> into)
    {
        while (into.Length > 0)
        {
            int got = s.Receive(into);
            if (got == 0) return false;
            into = into[got..];
        }
        return true;
    }

    public static async Task UdpEchoAsync(IPEndPoint at, CancellationToken stop)
    {
        using var socket = new Socket(at.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        try
        {
            socket.Bind(at);
        }
        catch (SocketException e)
        {
            AllBound.TrySetException(new InvalidOperationException($"cannot bind udp {at}: {e.Message}"));
            return;
        }
        Bound();
        var buffer = new byte[65536];
        EndPoint any = new IPEndPoint(IPAddress.Any, 0);
        while (!stop.IsCancellationRequested)
        {
            try
            {
                var r = await socket.ReceiveFromAsync(buffer, SocketFlags.None, any, stop);
                await socket.SendToAsync(buffer.AsMemory(0, r.ReceivedBytes), SocketFlags.None, r.RemoteEndPoint, stop);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (SocketException)
            {
                // An ICMP error from an earlier reply surfaces here: keep serving.
            }
        }
    }
}
