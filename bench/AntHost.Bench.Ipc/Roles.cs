// The benchmark's other processes: the same executable started in a role. The
// roles are the shapes of the real servers' hot loops (the inet server forwards
// a request to the NIC driver with its frame pushed; the NIC driver returns
// directly to the app and gives the data ICA back), with a stamp in the control
// ICA's trace at each receive and each send.
using System.Buffers.Binary;
using System.Diagnostics;
using System.Net.Sockets;
using AntHost.Kernel;
using AntHost.Kernel.Ipc;

namespace AntHost.Bench.Ipc;

internal static class Stage
{
    public const ushort AppSend = 1, InetReceive = 2, InetSend = 3, NicReceive = 4, NicSend = 5;
}

internal static class Roles
{
    private static KernelConnection Connect(string instance, string name, int spinUs) =>
        KernelConnection.Connect(new KernelOptions { Instance = instance, ProcessName = name, SpinBudget = TimeSpan.FromMicroseconds(spinUs) });

    public static int Inet(string instance, int spinUs)
    {
        using var k = Connect(instance, "bench-inet", spinUs);
        uint service = k.RegisterService("inet");
        Endpoint? nic = null;
        var sw = Stopwatch.StartNew();
        while (nic is null)
        {
            try { nic = k.Open("nic"); }
            catch (KernelException e) when (e.Error == KernelError.UnknownService && sw.Elapsed < TimeSpan.FromSeconds(30)) { Thread.Sleep(10); }
        }
        Console.Out.WriteLine("READY");
        Console.Out.Flush();
        while (true)
        {
            if (!k.Receive(out var m, Timeout.InfiniteTimeSpan)) continue;
            long now = Stopwatch.GetTimestamp();
            switch (m.Kind)
            {
                case MessageKind.Request when m.Endpoint != nic:
                    if (!ControlIca.TryOpen(m.Control.Span, out var c)) { k.FreeMessage(m); break; }
                    c.Stamp(Stage.InetReceive, k.Id.Value, now);
                    c.TryPushFrame(new RequestFrame(service, m.Opcode, RequestFrameFlags.DirectReturn | RequestFrameFlags.WantsDataBack, k.Id.Value, m.RequestId), out _);
                    k.Forward(nic, m.Control, m.Opcode, m.Data, Stage.InetSend);
                    break;
                case MessageKind.Notify:
                    // The data ICA lent to the NIC driver came back (TCP would keep it until ACK).
                    k.FreeMessage(m);
                    break;
                case MessageKind.PeerDied:
                    return 0;
                default:
                    k.FreeMessage(m);
                    break;
            }
        }
    }

    public static int Nic(string instance, int spinUs)
    {
        using var k = Connect(instance, "bench-nic", spinUs);
        k.RegisterService("nic");
        Console.Out.WriteLine("READY");
        Console.Out.Flush();
        while (true)
        {
            if (!k.Receive(out var m, Timeout.InfiniteTimeSpan)) continue;
            long now = Stopwatch.GetTimestamp();
            if (m.Kind == MessageKind.PeerDied) return 0;
            if (m.Kind != MessageKind.Request) { k.FreeMessage(m); continue; }
            if (ControlIca.TryOpen(m.Control.Span, out var c)) c.Stamp(Stage.NicReceive, k.Id.Value, now);
            k.ReplyDirect(m.Control, 0, default, Stage.NicSend);
            if (m.DataCount > 0) k.Notify(m.Endpoint!, 1, m.RequestId, m.Data);
        }
    }

    /// <summary>
    /// The baseline's far end: reads [length][send timestamp][payload], answers with the
    /// one-way time it measured (8 bytes).
    /// </summary>
    public static int UdsEcho(string path)
    {
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        listener.Listen(1);
        Console.Out.WriteLine("READY");
        Console.Out.Flush();
        using var s = listener.Accept();
        var buf = new byte[70_000];
        var head = new byte[12];
        var answer = new byte[8];
        while (true)
        {
            if (!ReadExactly(s, head)) return 0;
            int len = BinaryPrimitives.ReadInt32LittleEndian(head);
            long sent = BinaryPrimitives.ReadInt64LittleEndian(head.AsSpan(4));
            if (len < 0 || len > buf.Length) return 1;
            if (!ReadExactly(s, buf.AsSpan(0, len))) return 0;
            long oneWay = Stopwatch.GetTimestamp() - sent;
            BinaryPrimitives.WriteInt64LittleEndian(answer, oneWay);
            s.Send(answer);
        }
    }

    internal static bool ReadExactly(Socket s, Span<byte> b)
    {
        while (!b.IsEmpty)
        {
            int n = s.Receive(b);
            if (n <= 0) return false;
            b = b[n..];
        }
        return true;
    }
}
