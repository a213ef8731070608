// The seam between the benchmarks and the stacks they measure. A benchmark speaks to "a
// TCP stack" through IBenchStack: the host kernel's (sockets made in the namespace that
// holds the baseline address) or AntHost's (the client library, adapted in the `anthost`
// command). Both sides run the same loop against the same peer in the same run, so the
// only difference a figure shows is the stack.
using System.Net;
using System.Net.Sockets;

namespace AntHost.Bench.Net;

/// <summary>A TCP stack under test.</summary>
public interface IBenchStack
{
    /// <summary>"host kernel" or "AntHost".</summary>
    string Name { get; }

    /// <summary>Opens a TCP connection (no-delay on) to <paramref name="remote"/>.</summary>
    IBenchConnection Connect(IPEndPoint remote);

    /// <summary>An HttpClient handler whose connections are this stack's (SocketsHttpHandler, no proxy).</summary>
    HttpMessageHandler CreateHttpHandler();
}

/// <summary>One connected TCP socket of a stack under test.</summary>
public interface IBenchConnection : IDisposable
{
    /// <summary>Sends all of <paramref name="data"/> (blocking).</summary>
    void Send(ReadOnlySpan<byte> data);

    /// <summary>Receives at most <paramref name="buffer"/>'s length; 0 at the end of the stream.</summary>
    int Receive(Span<byte> buffer);

    /// <summary>No more sends (FIN).</summary>
    void ShutdownSend();

    /// <summary>
    /// Sends <paramref name="data"/> as one send call and adds the call's per-stage timeline
    /// (stage, Stopwatch timestamp) to <paramref name="trace"/> in the order stamped; false
    /// when this stack keeps no timeline (the host kernel).
    /// </summary>
    bool SendTraced(ReadOnlySpan<byte> data, List<TraceStamp> trace);
}

/// <summary>One stamp of a send's timeline: the stage (InetTraceStage) and the monotonic clock.</summary>
public readonly record struct TraceStamp(ushort Stage, long Timestamp);

/// <summary>
/// The host kernel's TCP: sockets made on a thread that joined a network namespace (or this
/// one), bound to the baseline address; with <paramref name="congestionControl"/>, each socket
/// uses that algorithm (TCP_CONGESTION, as `ss -i` shows it) instead of the namespace's default.
/// </summary>
public sealed class KernelStack(string? netns, IPAddress? bindTo, Func<string, Func<Socket>, Socket> inNamespace, string? congestionControl = null) : IBenchStack
{
    private const int IpProtoTcp = 6, TcpCongestion = 13; // <netinet/tcp.h>

    public string Name => congestionControl is null ? "host kernel" : $"host kernel ({congestionControl})";

    /// <summary>The algorithm each socket gets (null: the namespace's default).</summary>
    public string? CongestionControl => congestionControl;

    /// <summary>The same kernel, namespace and address, its sockets running <paramref name="algorithm"/>.</summary>
    public KernelStack WithCongestionControl(string algorithm) => new(netns, bindTo, inNamespace, algorithm);

    /// <summary>What `bench worker` needs to make the same stack in another process.</summary>
    public string[] WorkerArguments =>
        ["--stack", "kernel", .. netns is null ? Array.Empty<string>() : ["--netns", netns], .. bindTo is null ? Array.Empty<string>() : ["--bind", bindTo.ToString()]];

    private Socket MakeSocket()
    {
        Socket Make()
        {
            var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true, ReceiveTimeout = 30_000, SendTimeout = 30_000 };
            if (bindTo is not null) s.Bind(new IPEndPoint(bindTo, 0));
            if (congestionControl is not null)
            {
                try { s.SetRawSocketOption(IpProtoTcp, TcpCongestion, System.Text.Encoding.ASCII.GetBytes(congestionControl)); }
                catch (SocketException e)
                {
                    s.Dispose();
                    throw new InvalidOperationException($"the host kernel refused congestion control '{congestionControl}' ({e.SocketErrorCode}): is its module loaded (sysctl net.ipv4.tcp_available_congestion_control)?", e);
                }
            }
            return s;
        }
        return netns is null ? Make() : inNamespace(netns, Make);
    }

    public HttpMessageHandler CreateHttpHandler() => new SocketsHttpHandler
    {
        UseProxy = false,
        ConnectCallback = async (context, ct) =>
        {
            var socket = MakeSocket();
            try
            {
                await socket.ConnectAsync(context.DnsEndPoint, ct).ConfigureAwait(false);
                return new NetworkStream(socket, ownsSocket: true);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        },
    };

    public IBenchConnection Connect(IPEndPoint remote)
    {
        var socket = MakeSocket();
        try
        {
            socket.Connect(remote);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
        return new KernelConnection(socket);
    }

    private sealed class KernelConnection(Socket s) : IBenchConnection
    {
        public void Send(ReadOnlySpan<byte> data)
        {
            while (data.Length > 0) data = data[s.Send(data)..];
        }

        public int Receive(Span<byte> buffer) => s.Receive(buffer);

        public void ShutdownSend() => s.Shutdown(SocketShutdown.Send);

        public bool SendTraced(ReadOnlySpan<byte> data, List<TraceStamp> trace)
        {
            Send(data);
            return false;
        }

        public void Dispose() => s.Dispose();
    }
}
