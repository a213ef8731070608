using AntHost.Inet.Core.Buffers;
using AntHost.Inet.Core.Tcp;
using BenchmarkDotNet.Attributes;

namespace AntHost.Inet.Core.Bench.Tcp;

/// <summary>
/// In-process stack-to-stack throughput: one connection between two TCP layers over a
/// perfect simulated link (no delay, no loss, no bandwidth limit), the sender writing 64 KiB
/// at a time, the receiver taking payload buffers zero copy. Both layers' work is timed, on
/// one thread: MB/s = <see cref="Bytes"/> / the time of one operation.
/// </summary>
[MemoryDiagnoser]
public class TcpThroughputBenchmarks
{
    /// <summary>Bytes moved per operation.</summary>
    public const int Bytes = 16 * 1024 * 1024;

    [Params(CongestionControlKind.Cubic, CongestionControlKind.NewReno)]
    public CongestionControlKind Congestion;

    private BenchPair _p = null!;
    private readonly byte[] _chunk = new byte[64 * 1024];

    [GlobalSetup]
    public void Setup()
    {
        _p = new BenchPair(new TcpConfig { CongestionControl = Congestion, SendBufferSize = 1024 * 1024, ReceiveBufferSize = 1024 * 1024 }, mtu: 1500);
        new Random(2).NextBytes(_chunk);
        if (Transfer16MiB() != Bytes) throw new InvalidOperationException("the transfer did not complete");
    }

    [Benchmark]
    public long Transfer16MiB()
    {
        long sent = 0, received = 0;
        var p = _p;
        while (received < Bytes)
        {
            if (sent < Bytes)
            {
                int n = (int)Math.Min(_chunk.Length, Bytes - sent);
                p.A.Send(p.SocketA, _chunk.AsSpan(0, n), out int written, p.Now);
                sent += written;
            }
            p.Pump(5);
            while (p.B.Receive(p.SocketB, out PacketBuffer? b, p.Now) == TcpError.None && b is not null)
            {
                received += b.Length;
                b.Release();
            }
        }
        return received;
    }
}
