// An HTTP server hosted on AntHost: it listens on AntHost's own address (198.18.0.2,
// which no kernel holds), so a client in the peer namespace (curl) reaches it across
// the veth through AntHost's NIC driver and inet server. One connection at a time,
// HTTP/1.1 with Connection: close; it stops after --requests N requests (0: never).
using System.Net;
using System.Net.Sockets;
using System.Text;
using AntHost.Client;
using AntHost.Samples;

const string Usage = "WebServer [--instance NAME] [--listen 198.18.0.2] [--port 8080] [--requests 0]";
var cli = SampleArgs.Parse(Environment.GetCommandLineArgs()[1..], Usage, "listen", "port", "requests");
return SampleArgs.Run(() =>
{
    using var stack = cli.Connect();
    var at = new IPEndPoint(cli.Address("listen", "198.18.0.2"), cli.Int("port", 8080));
    int limit = cli.Int("requests", 0);
    using var listener = new InetSocket(stack, SocketType.Stream, ProtocolType.Tcp);
    listener.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
    listener.Bind(at);
    listener.Listen(64);
    Console.WriteLine($"listening on http://{listener.LocalEndPoint}/");
    using var stop = new CancellationTokenSource();
    Console.CancelKeyPress += (_, e) => { e.Cancel = true; stop.Cancel(); };
    int served = 0;
    while (limit == 0 || served < limit)
    {
        InetSocket conn;
        try { conn = listener.AcceptAsync(stop.Token).AsTask().GetAwaiter().GetResult(); }
        catch (OperationCanceledException) { break; }
        using (conn)
        {
            try
            {
                served++;
                Serve(conn, served);
            }
            catch (SocketException e)
            {
                Console.WriteLine($"request {served} from {conn.RemoteEndPoint}: {e.Message}");
            }
        }
    }
    Console.WriteLine($"served {served} requests; stopping");
    return 0;
});

static void Serve(InetSocket conn, int number)
{
    // Read the request head (up to the blank line); the body, if any, is not needed.
    var head = new StringBuilder();
    var buf = new byte[4096];
    while (!head.ToString().Contains("\r\n\r\n", StringComparison.Ordinal))
    {
        int n = conn.Receive(buf);
        if (n == 0) break;
        head.Append(Encoding.ASCII.GetString(buf, 0, n));
        if (head.Length > 64 * 1024) break;
    }
    string requestLine = head.ToString().Split("\r\n", 2)[0];
    string[] parts = requestLine.Split(' ');
    bool ok = parts.Length == 3 && parts[2].StartsWith("HTTP/1.", StringComparison.Ordinal);
    string body = ok
        ? $"Hello from AntHost: {parts[0]} {parts[1]} is request {number}, served to {conn.RemoteEndPoint} by {conn.LocalEndPoint}\n"
        : "bad request\n";
    string status = ok ? "200 OK" : "400 Bad Request";
    var response = Encoding.ASCII.GetBytes(
        $"HTTP/1.1 {status}\r\nServer: AntHost.Samples.WebServer\r\nContent-Type: text/plain; charset=utf-8\r\n" +
        $"Content-Length: {Encoding.UTF8.GetByteCount(body)}\r\nConnection: close\r\n\r\n{body}");
    conn.Send(response);
    conn.Shutdown(SocketShutdown.Send);
    // Let the client read to the end and close; its FIN ends the exchange.
    while (conn.Receive(buf) > 0) { }
    Console.WriteLine($"request {number}: {requestLine} from {conn.RemoteEndPoint} -> {status}");
}
