using System.Net;
using System.Net.Sockets;
using AntHost.Sandbox;

namespace AntHost.Stack.Tests.Infrastructure;

/// <summary>
/// The far end of the stack tests: host-kernel TCP sockets made inside the peer namespace
/// (the Linux kernel AntHost talks to), with timeouts so a test that goes wrong fails
/// instead of hanging.
/// </summary>
internal static class PeerSockets
{
    public static readonly TimeSpan PeerTimeout = TimeSpan.FromSeconds(60);

    /// <summary>A TCP socket of the peer's kernel.</summary>
    public static Socket PeerTcp(RunningStack stack) => NamespaceThread.Run(stack.Sandbox.PeerNamespace, () =>
    {
        var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        s.ReceiveTimeout = s.SendTimeout = (int)PeerTimeout.TotalMilliseconds;
        return s;
    });

    /// <summary>A listener of the peer's kernel on <paramref name="port"/>.</summary>
    public static Socket PeerListener(RunningStack stack, int port)
    {
        var l = PeerTcp(stack);
        l.Bind(new IPEndPoint(RunningStack.PeerIp, port));
        l.Listen(512);
        return l;
    }

    /// <summary>
    /// The peer's kernel echoing every connection <paramref name="listener"/> accepts, each with
    /// a buffer of <paramref name="bufferSize"/>, until <paramref name="stop"/>; the task ends
    /// when every connection has.
    /// </summary>
    public static Task EchoEveryConnection(Socket listener, int bufferSize, CancellationToken stop) => Task.Run(async () =>
    {
        var conns = new List<Task>();
        while (!stop.IsCancellationRequested)
        {
            Socket c;
            try { c = await listener.AcceptAsync(stop); }
            catch (OperationCanceledException) { break; }
            conns.Add(Task.Run(async () =>
            {
                using (c)
                {
                    var b = new byte[bufferSize];
                    while (true)
                    {
                        int n = await c.ReceiveAsync(b, SocketFlags.None);
                        if (n == 0) break;
                        await c.SendAsync(b.AsMemory(0, n), SocketFlags.None);
                    }
                }
            }));
        }
        await Task.WhenAll(conns);
    });

    /// <summary>The next connection the peer's listener accepts; fails the test when none comes in time.</summary>
    public static Socket AcceptWithin(Socket listener)
    {
        var t = listener.AcceptAsync();
        Assert.True(t.Wait(PeerTimeout), "the peer kernel accepted no connection");
        var s = t.Result;
        s.ReceiveTimeout = s.SendTimeout = (int)PeerTimeout.TotalMilliseconds;
        return s;
    }

    /// <summary>Exactly <paramref name="count"/> bytes from the peer's socket; fails the test when its stream ends first.</summary>
    public static byte[] PeerReceiveExactly(Socket s, int count)
    {
        var b = new byte[count];
        int got = 0;
        while (got < count)
        {
            int n = s.Receive(b, got, count - got, System.Net.Sockets.SocketFlags.None);
            Assert.True(n > 0, $"the peer's stream ended after {got} of {count} bytes");
            got += n;
        }
        return b;
    }

    /// <summary>Seeded random bytes: a payload whose every byte is checked on the far side.</summary>
    public static byte[] Pattern(int length, int seed)
    {
        var b = new byte[length];
        new Random(seed).NextBytes(b);
        return b;
    }
}
