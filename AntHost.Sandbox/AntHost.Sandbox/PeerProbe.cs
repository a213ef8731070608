// Measurements made by the peer's Linux kernel, as a remote host would make them: sockets
// created on a short-lived thread that joined a network namespace (setns applies to the
// calling thread only), then used from any thread. ICMP echo uses a raw socket (the
// machine has no ping binary to rely on). Used by the demo and by the stack tests.
using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace AntHost.Sandbox;

/// <summary>Runs code on a thread inside a named network namespace.</summary>
public static partial class NamespaceThread
{
    private const int CloneNewNet = 0x40000000;

    [LibraryImport("libc", EntryPoint = "setns", SetLastError = true)]
    private static partial int SetNs(int fd, int nstype);

    /// <summary>
    /// Runs <paramref name="make"/> on a new thread that joined <paramref name="netns"/>
    /// (e.g. to make a socket that lives there); throws <see cref="SandboxCommandException"/>
    /// saying which namespace when joining or <paramref name="make"/> fails.
    /// </summary>
    public static T Run<T>(string netns, Func<T> make)
    {
        T result = default!;
        Exception? error = null;
        var t = new Thread(() =>
        {
            try
            {
                using var ns = File.OpenHandle($"/var/run/netns/{netns}");
                if (SetNs((int)ns.DangerousGetHandle(), CloneNewNet) != 0)
                    throw new IOException($"setns({netns}) failed: errno {Marshal.GetLastPInvokeError()}");
                result = make();
            }
            catch (Exception e)
            {
                error = e;
            }
        });
        t.Start();
        t.Join();
        if (error is not null) throw new SandboxCommandException($"in namespace {netns}: {error.Message}", error);
        return result;
    }
}

/// <summary>ICMP echo from a namespace's kernel through a raw socket.</summary>
public sealed class PeerPinger : IDisposable
{
    private readonly Socket _socket;
    private readonly IPEndPoint _target;
    private readonly ushort _id;
    private readonly byte[] _send = new byte[64];
    private readonly byte[] _receive = new byte[2048];

    public PeerPinger(string netns, IPAddress target)
    {
        _target = new IPEndPoint(target, 0);
        _id = (ushort)Random.Shared.Next(1, 65535);
        _socket = NamespaceThread.Run(netns, () => new Socket(AddressFamily.InterNetwork, SocketType.Raw, ProtocolType.Icmp));
    }

    /// <summary>
    /// Sends echo request <paramref name="seq"/>; the round trip in microseconds when its reply
    /// (our identifier, sequence and payload, a correct checksum) came within
    /// <paramref name="patience"/>, else null.
    /// </summary>
    public double? Ping(ushort seq, TimeSpan patience)
    {
        var b = _send.AsSpan();
        b.Clear();
        b[0] = 8;
        BinaryPrimitives.WriteUInt16BigEndian(b[4..], _id);
        BinaryPrimitives.WriteUInt16BigEndian(b[6..], seq);
        for (int i = 8; i < b.Length; i++) b[i] = (byte)(i + seq);
        BinaryPrimitives.WriteUInt16BigEndian(b[2..], Checksum(b));
        long t0 = Stopwatch.GetTimestamp();
        _socket.SendTo(_send, _target);
        var deadline = DateTime.UtcNow + patience;
        while (true)
        {
            var left = deadline - DateTime.UtcNow;
            if (left <= TimeSpan.Zero) return null;
            if (!_socket.Poll(left, SelectMode.SelectRead)) return null;
            EndPoint from = new IPEndPoint(IPAddress.Any, 0);
            int n = _socket.ReceiveFrom(_receive, ref from);
            double us = Stopwatch.GetElapsedTime(t0).TotalMicroseconds;
            var p = _receive.AsSpan(0, n);
            if (n < 28) continue;
            int ihl = (p[0] & 0x0F) * 4;
            if (n < ihl + 8) continue;
            var icmp = p[ihl..];
            if (!((IPEndPoint)from).Address.Equals(_target.Address)) continue;
            if (icmp[0] != 0 || BinaryPrimitives.ReadUInt16BigEndian(icmp[4..]) != _id || BinaryPrimitives.ReadUInt16BigEndian(icmp[6..]) != seq) continue;
            if (!icmp[8..].SequenceEqual(_send.AsSpan(8)) || Checksum(icmp) != 0) continue;
            return us;
        }
    }

    /// <summary>True when echo request <paramref name="seq"/> was answered within <paramref name="patience"/>.</summary>
    public bool Answers(ushort seq, TimeSpan patience) => Ping(seq, patience) is not null;

    private static ushort Checksum(ReadOnlySpan<byte> b)
    {
        uint sum = 0;
        int i = 0;
        for (; i + 1 < b.Length; i += 2) sum += BinaryPrimitives.ReadUInt16BigEndian(b[i..]);
        if (i < b.Length) sum += (uint)(b[i] << 8);
        while ((sum >> 16) != 0) sum = (sum & 0xFFFF) + (sum >> 16);
        return (ushort)~sum;
    }

    public void Dispose() => _socket.Dispose();
}
