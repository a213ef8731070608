// TCP echo over AntHost: connects to the peer's echo service (port 7), sends a few
// messages, reads each back whole and checks it, and prints the round trips.
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using AntHost.Client;
using AntHost.Samples;

const string Usage = "EchoClient [--instance NAME] [--to 198.18.0.1] [--port 7] [--count 5] [--size 1000]";
var cli = SampleArgs.Parse(Environment.GetCommandLineArgs()[1..], Usage, "port", "count", "size");
return SampleArgs.Run(() =>
{
    using var stack = cli.Connect();
    var to = new IPEndPoint(cli.To, cli.Int("port", 7));
    int count = cli.Int("count", 5), size = Math.Max(1, cli.Int("size", 1000));
    using var socket = new InetSocket(stack, SocketType.Stream, ProtocolType.Tcp);
    var sw = Stopwatch.StartNew();
    socket.Connect(to);
    Console.WriteLine($"connected {socket.LocalEndPoint} -> {socket.RemoteEndPoint} in {sw.Elapsed.TotalMilliseconds:F2} ms");
    socket.NoDelay = true;
    var message = new byte[size];
    var echo = new byte[size];
    for (int round = 1; round <= count; round++)
    {
        for (int i = 0; i < size; i++) message[i] = (byte)(round * 7 + i);
        sw.Restart();
        socket.Send(message);
        int got = 0;
        while (got < size)
        {
            int n = socket.Receive(echo.AsSpan(got));
            if (n == 0) throw new IOException($"the echo server closed the connection after {got} of {size} bytes");
            got += n;
        }
        var rtt = sw.Elapsed;
        if (!echo.AsSpan().SequenceEqual(message)) throw new IOException($"round {round}: the echo differs from what was sent");
        Console.WriteLine($"round {round}: {size} bytes echoed intact in {rtt.TotalMicroseconds:F0} us");
    }
    socket.Shutdown(SocketShutdown.Send);
    int tail = socket.Receive(echo);
    Console.WriteLine(tail == 0 ? "the server closed its side after ours: done" : $"unexpected {tail} more bytes after shutdown");
    return tail == 0 ? 0 : 1;
});
