// UDP echo over AntHost: datagrams to the peer's echo service (port 7), each answer
// checked; a datagram that gets no answer in time is sent again, and one that never
// does fails the run.
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using AntHost.Client;
using AntHost.Samples;

const string Usage = "UdpEcho [--instance NAME] [--to 198.18.0.1] [--port 7] [--count 5] [--size 100] [--timeout-ms 2000]";
var cli = SampleArgs.Parse(Environment.GetCommandLineArgs()[1..], Usage, "port", "count", "size", "timeout-ms");
return SampleArgs.Run(() =>
{
    using var stack = cli.Connect();
    var to = new IPEndPoint(cli.To, cli.Int("port", 7));
    int count = Math.Max(1, cli.Int("count", 5)), size = Math.Clamp(cli.Int("size", 100), 1, InetSocket.MaxDatagram);
    var timeout = TimeSpan.FromMilliseconds(Math.Max(1, cli.Int("timeout-ms", 2000)));
    using var socket = new InetSocket(stack, SocketType.Dgram, ProtocolType.Udp);
    var message = new byte[size];
    var answer = new byte[size + 1];
    for (int i = 1; i <= count; i++)
    {
        for (int k = 0; k < size; k++) message[k] = (byte)(i + k);
        bool answered = false;
        for (int attempt = 1; attempt <= 3 && !answered; attempt++)
        {
            var sw = Stopwatch.StartNew();
            socket.SendTo(message, to);
            using var cts = new CancellationTokenSource(timeout);
            try
            {
                while (true)
                {
                    var r = socket.ReceiveFromAsync(answer, new IPEndPoint(IPAddress.Any, 0), cts.Token).AsTask().GetAwaiter().GetResult();
                    if (r.ReceivedBytes == size && answer.AsSpan(0, size).SequenceEqual(message))
                    {
                        Console.WriteLine($"datagram {i}: {size} bytes echoed by {r.RemoteEndPoint} in {sw.Elapsed.TotalMicroseconds:F0} us");
                        answered = true;
                        break;
                    }
                    Console.WriteLine($"datagram {i}: ignoring {r.ReceivedBytes} bytes from {r.RemoteEndPoint} (not the echo)");
                }
            }
            catch (OperationCanceledException)
            {
                Console.WriteLine($"datagram {i}: no answer in {timeout.TotalMilliseconds:F0} ms (attempt {attempt})");
            }
        }
        if (!answered) throw new TimeoutException($"datagram {i} to {to} was never echoed");
    }
    Console.WriteLine($"{count} datagrams echoed intact");
    return 0;
});
