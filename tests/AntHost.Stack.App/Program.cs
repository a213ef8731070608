// anthost-stack-app: an app process the stack tests start. It links AntHost.Client, as any
// app would, and prints one line per milestone for the test to wait on.
//
//   echo-clients INSTANCE PEER PORT COUNT BYTES   COUNT connections at once; each sends BYTES
//                                                 of its own pattern and reads them echoed
//                                                 back; prints "echo ok COUNT" or exits 1
//   stream INSTANCE PEER PORT [CHUNK]             connects, prints "connected", sends CHUNK bytes
//                                                 (default 16384) per call until killed
//   sink INSTANCE PEER PORT                       connects, prints "connected", reads until killed
//                                                 or the peer closes, printing each MiB
//   hold INSTANCE PEER PORT                       connects, prints "connected", blocks in a
//                                                 receive; prints "error after MS ms: MESSAGE"
//                                                 when it fails, and exits 3
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using AntHost.Client;

if (args.Length < 4)
{
    Console.Error.WriteLine("usage: anthost-stack-app echo-clients|stream|sink|hold INSTANCE PEER PORT [COUNT BYTES]");
    return 2;
}
string mode = args[0];
var stack = InetStack.Connect(new InetStackOptions { Instance = args[1], ProcessName = $"stack-app-{mode}" });
var peer = new IPEndPoint(IPAddress.Parse(args[2]), int.Parse(args[3]));
switch (mode)
{
    case "echo-clients":
        {
            int count = int.Parse(args[4]), bytes = int.Parse(args[5]);
            var tasks = new Task<bool>[count];
            for (int i = 0; i < count; i++)
            {
                int n = i;
                tasks[i] = Task.Run(async () =>
                {
                    using var s = new InetSocket(stack, SocketType.Stream, ProtocolType.Tcp);
                    await s.ConnectAsync(peer);
                    var data = new byte[bytes];
                    new Random(Environment.ProcessId * 1000 + n).NextBytes(data);
                    var sending = Task.Run(async () =>
                    {
                        for (int at = 0; at < bytes;) at += await s.SendAsync(data.AsMemory(at, Math.Min(8192, bytes - at)));
                    });
                    var back = new byte[bytes];
                    int got = 0;
                    while (got < bytes)
                    {
                        int r = await s.ReceiveAsync(back.AsMemory(got));
                        if (r == 0) break;
                        got += r;
                    }
                    await sending;
                    s.Close();
                    return got == bytes && back.AsSpan().SequenceEqual(data);
                });
            }
            Task.WaitAll(tasks);
            int ok = tasks.Count(t => t.Result);
            Console.WriteLine(ok == count ? $"echo ok {ok}" : $"echo FAILED {count - ok} of {count}");
            return ok == count ? 0 : 1;
        }
    case "stream":
        {
            var s = new InetSocket(stack, SocketType.Stream, ProtocolType.Tcp);
            s.Connect(peer);
            Console.WriteLine("connected");
            var chunk = new byte[args.Length > 4 ? int.Parse(args[4]) : 16384];
            new Random(1).NextBytes(chunk);
            long sent = 0;
            while (true)
            {
                sent += s.Send(chunk);
                if (sent % (1 << 20) < chunk.Length) Console.WriteLine($"sent {sent >> 20} MiB");
            }
        }
    case "sink":
        {
            var s = new InetSocket(stack, SocketType.Stream, ProtocolType.Tcp);
            s.Connect(peer);
            Console.WriteLine("connected");
            var buffer = new byte[256 * 1024];
            long got = 0;
            int n;
            while ((n = s.Receive(buffer)) > 0)
            {
                long before = got;
                got += n;
                if (got >> 20 != before >> 20) Console.WriteLine($"received {got >> 20} MiB");
            }
            return 0;
        }
    case "hold":
        {
            var s = new InetSocket(stack, SocketType.Stream, ProtocolType.Tcp);
            s.Connect(peer);
            Console.WriteLine("connected");
            var sw = new Stopwatch();
            try
            {
                sw.Start();
                Console.WriteLine("receiving");
                s.Receive(new byte[100]);
                Console.WriteLine("receive returned");
                return 0;
            }
            catch (Exception e)
            {
                Console.WriteLine($"error after {sw.ElapsedMilliseconds} ms: {e.GetType().Name}: {e.Message}");
                return 3;
            }
        }
    default:
        Console.Error.WriteLine($"unknown mode {mode}");
        return 2;
}
