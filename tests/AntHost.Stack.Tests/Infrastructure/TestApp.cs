using AntHost.Inet.Abi;
using AntHost.Kernel;
using AntHost.Kernel.Ipc;

namespace AntHost.Stack.Tests.Infrastructure;

/// <summary>What came back for one socket call, copied out of the reply's ICAs (which are freed).</summary>
public sealed record CallResult(InetStatus Status, ulong Socket, long Value, uint LocalAddress, ushort LocalPort,
    uint RemoteAddress, ushort RemotePort, byte State, byte[] Data, int DataIcas, uint SmoothedRttMicros, uint Mss)
{
    public bool Ok => Status == InetStatus.Ok;

    public override string ToString() => $"{SocketStatus.Describe(Status)} ({(int)Status}) socket {Socket:x} value {Value} data {Data.Length} B in {DataIcas} ICAs";
}

/// <summary>Writes a call's arguments (SocketArgs is a ref struct, so no Action).</summary>
public delegate void ArgsWriter(SocketArgs args);

/// <summary>
/// An app as the tests drive it: a kernel connection of its own (its own process id to the
/// kernel and to inet) with a channel to inet, and one method per ABI call, made with
/// KernelConnection directly over SocketArgs / SocketResult. Send copies the payload into a
/// data ICA with SendHeadroom in front of it, as the client library does.
/// </summary>
public sealed class TestApp : IDisposable
{
    public static readonly TimeSpan CallTimeout = TimeSpan.FromSeconds(30);

    public TestApp(string instance, string name = "test-app")
    {
        Kernel = KernelConnection.Connect(new KernelOptions { Instance = instance, ProcessName = name });
        Inet = Kernel.Open(InetService.Name);
    }

    public KernelConnection Kernel { get; }

    public Endpoint Inet { get; private set; }

    /// <summary>Stamps from the last call's control ICA (stage, timestamp), for the trace checks.</summary>
    public List<(ushort Stage, long Timestamp, uint Process)> LastTrace { get; } = [];

    /// <summary>The control ICA of the call made last (a test may scribble on it, as a hostile app could).</summary>
    public IcaLease LastControl { get; private set; }

    /// <summary>True when the last reply came by direct return (from the driver).</summary>
    public bool LastWasDirect { get; private set; }

    /// <summary>One call; the data ICAs (if any) pass to inet.</summary>
    public CallResult Call(InetOp op, ArgsWriter? args = null, ReadOnlySpan<DataIca> data = default, TimeSpan? timeout = null,
        Action<Span<byte>>? inline = null, Action<Span<byte>>? readInline = null)
    {
        var control = Kernel.AllocateControl();
        ControlIca.TryOpen(control.Span, out var c);
        c.TryPushFrame(new RequestFrame(0, (ushort)op, RequestFrameFlags.None, Kernel.Id.Value, 0), out var frame);
        var a = SocketArgs.Begin(frame);
        args?.Invoke(a);
        inline?.Invoke(c.Inline);
        LastControl = control;
        var reply = Kernel.Call(Inet, control, (ushort)op, data, timeout ?? CallTimeout, InetTraceStage.AppRequest);
        try
        {
            return Read(reply, readInline);
        }
        finally
        {
            Kernel.FreeMessage(reply);
        }
    }

    private CallResult Read(in Message reply, Action<Span<byte>>? readInline)
    {
        LastWasDirect = (reply.Flags & MessageFlags.DirectReturn) != 0;
        LastTrace.Clear();
        if (reply.Control.IsNone || !ControlIca.TryOpen(reply.Control.Span, out var c))
            return new CallResult((InetStatus)reply.Status, 0, 0, 0, 0, 0, 0, 0, [], 0, 0, 0);
        for (int i = 0; i < c.TraceCount; i++)
            if (c.TryGetStamp(i, out long ts, out ushort stage, out uint process)) LastTrace.Add((stage, ts, process));
        readInline?.Invoke(c.Inline);
        SocketResult.TryOpen(c.ResultArea, out var r);
        var bytes = new List<byte>();
        int n = Math.Min(r.DataCount, reply.DataCount);
        for (int i = 0; i < n; i++)
        {
            var ica = reply.GetData(i).Ica;
            long off = r.DataOffset(i), len = r.DataLength(i);
            Assert.True(off + len <= ica.Length, $"data {i}: offset {off} + length {len} beyond the ICA's {ica.Length} bytes");
            bytes.AddRange(ica.Span.Slice((int)off, (int)len).ToArray());
        }
        return new CallResult((InetStatus)reply.Status, r.Socket, r.Value, r.LocalAddress, r.LocalPort, r.RemoteAddress, r.RemotePort,
            r.State, [.. bytes], reply.DataCount, r.SmoothedRttMicros, r.Mss);
    }

    public static uint Ip(string dotted) => AntHost.Inet.Core.Wire.Ipv4Address.Parse(dotted).Value;

    public CallResult Socket(AbiSocketType type) => Call(InetOp.Socket, a => a.Small = (byte)type);

    public ulong NewSocket(AbiSocketType type)
    {
        var r = Socket(type);
        Assert.True(r.Ok, $"socket: {r}");
        return r.Socket;
    }

    public CallResult Bind(ulong s, string address, ushort port) => Call(InetOp.Bind, a => { a.Socket = s; a.Address = Ip(address); a.Port = port; });

    public CallResult Listen(ulong s, int backlog = 64) => Call(InetOp.Listen, a => { a.Socket = s; a.Value = backlog; });

    public CallResult Connect(ulong s, string address, ushort port, InetSocketFlags flags = 0) =>
        Call(InetOp.Connect, a => { a.Socket = s; a.Address = Ip(address); a.Port = port; a.Flags = flags; });

    public CallResult Accept(ulong s, InetSocketFlags flags = 0) => Call(InetOp.Accept, a => { a.Socket = s; a.Flags = flags; });

    /// <summary>Sends <paramref name="payload"/> in one data ICA, at offset SendHeadroom.</summary>
    public CallResult Send(ulong s, ReadOnlySpan<byte> payload, InetSocketFlags flags = 0, TimeSpan? timeout = null)
    {
        var ica = Kernel.AllocateBytes(InetService.SendHeadroom + payload.Length);
        payload.CopyTo(ica.Span[InetService.SendHeadroom..]);
        int len = payload.Length;
        return Call(InetOp.Send, a => { a.Socket = s; a.Flags = flags; a.Small = 1; a.SetData(0, InetService.SendHeadroom, len); },
            [new DataIca(ica, InetService.SendHeadroom + len)], timeout);
    }

    /// <summary>Sends all of <paramref name="payload"/> in chunks of at most <paramref name="chunk"/> bytes.</summary>
    public void SendAll(ulong s, ReadOnlySpan<byte> payload, int chunk)
    {
        while (!payload.IsEmpty)
        {
            int n = Math.Min(chunk, payload.Length);
            var r = Send(s, payload[..n]);
            Assert.True(r.Ok, $"send: {r}");
            Assert.Equal(n, r.Value);
            payload = payload[n..];
        }
    }

    public CallResult Receive(ulong s, long limit = 0, InetSocketFlags flags = 0, TimeSpan? timeout = null) =>
        Call(InetOp.Receive, a => { a.Socket = s; a.Value = limit; a.Flags = flags; }, timeout: timeout);

    /// <summary>Receives until <paramref name="count"/> bytes came or the stream ended; returns them.</summary>
    public byte[] ReceiveExactly(ulong s, int count)
    {
        var buffer = new byte[count];
        int got = 0;
        while (got < count)
        {
            var r = Receive(s);
            Assert.True(r.Ok, $"receive after {got} of {count} bytes: {r}");
            if (r.Data.Length == 0) break;
            Assert.True(got + r.Data.Length <= count, $"received {got + r.Data.Length} bytes, expected {count}");
            r.Data.CopyTo(buffer, got);
            got += r.Data.Length;
        }
        Assert.Equal(count, got);
        return buffer;
    }

    public CallResult SendTo(ulong s, ReadOnlySpan<byte> payload, string address, ushort port)
    {
        var ica = Kernel.AllocateBytes(InetService.SendHeadroom + payload.Length);
        payload.CopyTo(ica.Span[InetService.SendHeadroom..]);
        int len = payload.Length;
        return Call(InetOp.SendTo, a => { a.Socket = s; a.Small = 1; a.Address = Ip(address); a.Port = port; a.SetData(0, InetService.SendHeadroom, len); },
            [new DataIca(ica, InetService.SendHeadroom + len)]);
    }

    public CallResult ReceiveFrom(ulong s, InetSocketFlags flags = 0) => Call(InetOp.ReceiveFrom, a => { a.Socket = s; a.Flags = flags; });

    public CallResult Shutdown(ulong s, AbiShutdown how) => Call(InetOp.Shutdown, a => { a.Socket = s; a.Small = (byte)how; });

    public CallResult Close(ulong s, InetSocketFlags flags = 0) => Call(InetOp.Close, a => { a.Socket = s; a.Flags = flags; });

    public CallResult SetOption(ulong s, AbiSocketOption option, long value) => Call(InetOp.SetOption, a => { a.Socket = s; a.Option = option; a.Value = value; });

    public CallResult GetOption(ulong s, AbiSocketOption option) => Call(InetOp.GetOption, a => { a.Socket = s; a.Option = option; });

    public CallResult GetInfo(ulong s) => Call(InetOp.GetInfo, a => a.Socket = s);

    public CallResult Cancel(ulong s, uint requestId = 0) => Call(InetOp.Cancel, a => { a.Socket = s; a.Value = requestId; });

    /// <summary>Polls the sockets for the events; returns the result and each entry's ready events.</summary>
    public (CallResult Result, PollEvents[] Ready) Poll((ulong Socket, PollEvents Wanted)[] set, long timeoutMs)
    {
        var ready = new PollEvents[set.Length];
        var r = Call(InetOp.Poll, a => a.Value = timeoutMs, inline: span =>
        {
            var p = PollSet.Begin(span, set.Length);
            for (int i = 0; i < set.Length; i++) p.Set(i, set[i].Socket, set[i].Wanted);
        }, readInline: span =>
        {
            if (!PollSet.TryOpen(span, out var p)) return;
            for (int i = 0; i < Math.Min(p.Count, ready.Length); i++) ready[i] = p.Ready(i);
        });
        return (r, ready);
    }

    public CallResult Ping(string address, ReadOnlySpan<byte> payload, long timeoutMs)
    {
        var ica = Kernel.AllocateBytes(InetService.SendHeadroom + Math.Max(1, payload.Length));
        payload.CopyTo(ica.Span[InetService.SendHeadroom..]);
        int len = payload.Length;
        return Call(InetOp.Ping, a => { a.Address = Ip(address); a.Value = timeoutMs; a.Small = 1; a.SetData(0, InetService.SendHeadroom, len); },
            [new DataIca(ica, InetService.SendHeadroom + len)]);
    }

    /// <summary>Closes the channel to inet (as an app that leaves without closing its sockets).</summary>
    public void CloseChannel() => Kernel.Close(Inet);

    public void Dispose() => Kernel.Dispose();
}
