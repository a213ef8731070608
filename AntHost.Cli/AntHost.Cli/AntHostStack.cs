// AntHost's side of the network benchmarks: IBenchStack over the client library
// (AntHost.Client), running the same loops as the host kernel's. The benchmark process is
// the app: it connects to the instance with the tuning's spin budget, and a traced send
// hands the control ICA's timeline (every stage's stamp) to the send benchmark. A send
// larger than one call's worth (three segments) is sent call by call, each with its trace,
// so its timeline covers the whole send.
using System.Net;
using System.Net.Sockets;
using AntHost.Bench.Net;
using AntHost.Client;

namespace AntHost.Cli;

internal sealed class AntHostStack : IBenchStack, IDisposable
{
    private readonly InetStack _stack;
    private readonly string _instance;

    private AntHostStack(InetStack stack, string instance)
    {
        _stack = stack;
        _instance = instance;
    }

    /// <summary>What `bench worker` needs to make the same stack in another process.</summary>
    public string[] WorkerArguments => ["--stack", "anthost", "--instance", _instance];

    public string Name => "AntHost";

    /// <summary>A stack over the client library connected to <paramref name="instance"/>, or null (with a note saying why) when it cannot be had.</summary>
    public static AntHostStack? TryCreate(string instance, int spinUs, List<string> notes)
    {
        try
        {
            return new AntHostStack(InetStack.Connect(new InetStackOptions
            {
                Instance = instance,
                ProcessName = "anthost-bench",
                SpinBudget = TimeSpan.FromMicroseconds(spinUs),
            }), instance);
        }
        catch (Exception e) when (e is SocketException or AntHost.Kernel.KernelException or IOException or InvalidOperationException)
        {
            BenchRun.NoteOnceList(notes, $"AntHost side not measured: the client library could not join instance '{instance}': {e.Message}");
            return null;
        }
    }

    public IBenchConnection Connect(IPEndPoint remote)
    {
        var s = new InetSocket(_stack, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            s.Connect(remote);
            s.NoDelay = true;
        }
        catch
        {
            s.Dispose();
            throw;
        }
        return new Connection(s);
    }

    public HttpMessageHandler CreateHttpHandler() => _stack.CreateHttpHandler();

    public void Dispose() => _stack.Dispose();

    private sealed class Connection(InetSocket s) : IBenchConnection
    {
        private readonly SendTrace _trace = new();

        public void Send(ReadOnlySpan<byte> data) => s.Send(data);

        public int Receive(Span<byte> buffer) => s.Receive(buffer);

        public void ShutdownSend() => s.Shutdown(SocketShutdown.Send);

        public bool SendTraced(ReadOnlySpan<byte> data, List<Bench.Net.TraceStamp> trace)
        {
            int call = Math.Max(1, s.SendSegmentSize * AntHost.Inet.Abi.InetService.MaxFramesPerMessage);
            while (data.Length > 0)
            {
                int n = Math.Min(call, data.Length);
                s.Send(data[..n], _trace);
                foreach (var st in _trace.Stamps) trace.Add(new Bench.Net.TraceStamp(st.Stage, st.Timestamp));
                data = data[n..];
            }
            return true;
        }

        public void Dispose() => s.Dispose();
    }
}
