using System.Buffers.Binary;
using AntHost.Kernel.Ipc;
using AntHost.Kernel.Pool;

namespace AntHost.Kernel.TestActor;

/// <summary>Opcodes the actors understand.</summary>
internal static class Op
{
    /// <summary>Read every data ICA, report (pool offset, length, checksum) in the result area, free the data.</summary>
    public const ushort Inspect = 1;
    /// <summary>As Inspect, but hand the data ICAs back in the reply.</summary>
    public const ushort Echo = 2;
    /// <summary>Intermediate: report how many data ICAs came back from the last stage.</summary>
    public const ushort Stats = 99;
    /// <summary>Stop serving and exit.</summary>
    public const ushort Quit = 100;
}

internal static class Roles
{
    /// <summary>Writes (offset, length, checksum) of each data ICA into the control ICA's result area.</summary>
    private static void Inspect(in Message m)
    {
        if (m.Control.IsNone || !ControlIca.TryOpen(m.Control.Span, out var c)) return;
        var r = c.ResultArea;
        BinaryPrimitives.WriteInt32LittleEndian(r, m.DataCount);
        for (int i = 0; i < m.DataCount; i++)
        {
            var d = m.GetData(i);
            var e = r.Slice(4 + i * 20, 20);
            BinaryPrimitives.WriteInt64LittleEndian(e, d.Ica.PoolOffset);
            BinaryPrimitives.WriteInt32LittleEndian(e[8..], d.Length);
            BinaryPrimitives.WriteUInt64LittleEndian(e[12..], Fnv.Hash(d.Span));
        }
        c.SetResultLength(4 + m.DataCount * 20);
    }

    public static int EchoServer(Args a)
    {
        using var k = a.Connect("echo-server");
        k.RegisterService(a.Get("service", "echo"));
        Out.Line($"READY {k.Id.Value}");
        while (true)
        {
            if (!k.Receive(out var m, Timeout.InfiniteTimeSpan)) continue;
            switch (m.Kind)
            {
                case MessageKind.Request:
                    {
                        if (m.Opcode == Op.Quit)
                        {
                            if (m.IsSync) k.Reply(m, m.Control, 0, default);
                            return 0;
                        }
                        Inspect(m);
                        if (m.Opcode == Op.Echo)
                        {
                            k.Reply(m, m.Control, 0, m.Data);
                        }
                        else
                        {
                            for (int i = 0; i < m.DataCount; i++) k.Free(m.GetData(i).Ica);
                            k.Reply(m, m.Control, 0, default); // the sync reply, or an async request's completion
                        }
                        break;
                    }
                case MessageKind.Notify:
                    Out.Line($"NOTIFY {m.Source.Value} {m.DataCount}");
                    k.FreeMessage(m);
                    break;
                default:
                    Out.Line($"EVENT {m.Kind} {m.Source.Value}");
                    break;
            }
        }
    }

    /// <summary>The intermediate server of a multi-stage request (the inet server's place).</summary>
    public static int Intermediate(Args a)
    {
        using var k = a.Connect("inet");
        uint service = k.RegisterService(a.Get("service", "inet"));
        var next = k.Open(a.Get("next", "nic"));
        Out.Line($"READY {k.Id.Value}");
        long dataBack = 0;
        while (true)
        {
            if (!k.Receive(out var m, Timeout.InfiniteTimeSpan)) continue;
            if (m.Kind == MessageKind.Request && m.Endpoint != next)
            {
                if (m.Opcode == Op.Stats)
                {
                    if (ControlIca.TryOpen(m.Control.Span, out var sc))
                    {
                        BinaryPrimitives.WriteInt64LittleEndian(sc.ResultArea, dataBack);
                        sc.SetResultLength(8);
                    }
                    k.Reply(m, m.Control, 0, default);
                    continue;
                }
                if (!ControlIca.TryOpen(m.Control.Span, out var c))
                {
                    k.FreeMessage(m);
                    continue;
                }
                c.TryPushFrame(new RequestFrame(service, m.Opcode, RequestFrameFlags.DirectReturn | RequestFrameFlags.WantsDataBack, k.Id.Value, m.RequestId), out _);
                k.Forward(next, m.Control, m.Opcode, m.Data, traceStage: 2);
            }
            else if (m.Kind == MessageKind.Notify)
            {
                dataBack += m.DataCount;
                k.FreeMessage(m);
            }
            else if (m.Kind is MessageKind.PeerDied or MessageKind.ChannelOpened)
            {
                Out.Line($"EVENT {m.Kind} {m.Source.Value}");
            }
            else k.FreeMessage(m);
        }
    }

    /// <summary>The last stage (the NIC driver's place): returns directly to the requester, gives data back.</summary>
    public static int LastStage(Args a)
    {
        using var k = a.Connect("nic");
        k.RegisterService(a.Get("service", "nic"));
        Out.Line($"READY {k.Id.Value}");
        while (true)
        {
            if (!k.Receive(out var m, Timeout.InfiniteTimeSpan)) continue;
            if (m.Kind != MessageKind.Request) { if (m.Kind is MessageKind.PeerDied) Out.Line($"EVENT {m.Kind}"); k.FreeMessage(m); continue; }
            Inspect(m);
            if (ControlIca.TryOpen(m.Control.Span, out var c) && c.TryGetFrame(c.FrameCount - 1, out var f))
            {
                // Tell the requester who did what: the frame the intermediate pushed.
                var inl = c.Inline;
                BinaryPrimitives.WriteUInt32LittleEndian(inl, f.ServiceId);
                BinaryPrimitives.WriteUInt32LittleEndian(inl[4..], f.ReturnTo);
                BinaryPrimitives.WriteUInt32LittleEndian(inl[8..], (uint)c.FrameCount);
            }
            k.ReplyDirect(m.Control, 0, default, traceStage: 3);
            if (m.DataCount > 0) k.Notify(m.Endpoint!, 1, m.RequestId, m.Data);
        }
    }

    /// <summary>Allocates ICAs, optionally hands some to a service, then waits to be killed.</summary>
    public static int Hold(Args a)
    {
        var k = a.Connect("holder");
        int count = a.Int("count", 4), pages = a.Int("pages", 1);
        byte fill = (byte)a.Int("fill", 0x5A);
        var held = new List<IcaLease>();
        for (int i = 0; i < count; i++)
        {
            var l = k.Allocate(pages);
            l.Span.Fill(fill);
            held.Add(l);
        }
        string target = a.Get("send-to");
        int send = a.Int("send", 0);
        if (target.Length > 0 && send > 0)
        {
            var ep = k.Open(target);
            for (int i = 0; i < send && held.Count > 0; i++)
            {
                var l = held[^1];
                held.RemoveAt(held.Count - 1);
                k.Notify(ep, 7, 0, [l]);
            }
        }
        int free = a.Int("free", 0);
        for (int i = 0; i < free && held.Count > 0; i++)
        {
            var l = held[^1];
            held.RemoveAt(held.Count - 1);
            k.Free(l);
        }
        if (a.Flag("trim")) k.TrimCache();
        Out.Line($"READY {k.Id.Value} " + string.Join(' ', held.Select(h => h.Handle.Value)));
        Thread.Sleep(Timeout.Infinite);
        return 0;
    }

    /// <summary>Maps the pool as an ordinary process and writes into the ownership table: must fault.</summary>
    public static unsafe int WriteTable(Args a)
    {
        using var pool = IcaPool.Open(IcaPool.PathFor(a.Get("instance")));
        byte* table = pool.OwnershipTableAddress;
        Out.Line($"READ {table[0]}");
        Out.Line("WRITING");
        Volatile.Write(ref table[0], (byte)0xFF);
        Out.Line("WROTE");
        return 0;
    }

    /// <summary>Hands over an ICA that belongs to another process.</summary>
    public static int Thief(Args a)
    {
        using var k = a.Connect("thief");
        var ep = k.Open(a.Get("target"));
        var stolen = new IcaHandle(a.U64("handle"));
        var table = new OwnershipTable(k.Pool);
        table.Check(stolen, out int pages);
        var lease = new IcaLease(k, stolen, Math.Max(1, pages));
        var ctrl = k.AllocateControl();
        try
        {
            var r = k.Call(ep, ctrl, Op.Inspect, [lease], TimeSpan.FromSeconds(10));
            Out.Line($"ACCEPTED {r.Status}");
        }
        catch (KernelException e)
        {
            Out.Line($"REFUSED {e.Error}");
        }
        Thread.Sleep(Timeout.Infinite);
        return 0;
    }

    /// <summary>Strict mode: sends an ICA away, then touches it. The touch must fault.</summary>
    public static int StrictTouch(Args a)
    {
        using var k = a.Connect("strict-toucher");
        var ep = k.Open(a.Get("target"));
        var l = k.Allocate(1);
        l.Span.Fill(0x11);
        Out.Line($"OWNED-WRITE-OK {l.Handle.Value}");
        k.Notify(ep, 7, 0, [l]);
        Out.Line($"SENT {l.Handle.Value} offset {l.PoolOffset}");
        var s = l.Span; // use after transfer
        s[0] = 0x22;
        Out.Line("TOUCHED");
        return 0;
    }

    /// <summary>Sends requests down a multi-stage chain with a reused control ICA, then unregisters.</summary>
    public static int ChainCaller(Args a)
    {
        using (var k = a.Connect("chain-caller"))
        {
            var ep = k.Open(a.Get("target", "inet"));
            int rounds = a.Int("rounds", 1000);
            for (int i = 0; i < rounds; i++)
            {
                var ctrl = k.AllocateControl();
                var d = k.AllocateBytes(64 + i % 5000);
                var r = k.Call(ep, ctrl, 7, [new DataIca(d, 64)], TimeSpan.FromSeconds(60));
                k.Free(r.Control);
            }
            Out.Line($"CALLED {rounds}");
        }
        Out.Line("UNREGISTERED");
        return 0;
    }

    /// <summary>Calls a service with data ICAs from several threads and checks every reply.</summary>
    public static int Caller(Args a)
    {
        using var k = a.Connect("caller");
        var ep = k.Open(a.Get("target", "echo"));
        int threads = a.Int("threads", 1), calls = a.Int("calls", 100);
        long bad = 0;
        var ts = new Thread[threads];
        for (int t = 0; t < threads; t++)
        {
            int seed = t;
            ts[t] = new Thread(() =>
            {
                var rnd = new Random(seed);
                for (int i = 0; i < calls; i++)
                {
                    var ctrl = k.AllocateControl();
                    var d = k.AllocateBytes(rnd.Next(1, 9000));
                    rnd.NextBytes(d.Span);
                    ulong h = Fnv.Hash(d.Span);
                    long off = d.PoolOffset;
                    var r = k.Call(ep, ctrl, Op.Inspect, [d], TimeSpan.FromSeconds(20));
                    if (!ControlIca.TryOpen(r.Control.Span, out var c)
                        || BinaryPrimitives.ReadInt64LittleEndian(c.Result[4..]) != off
                        || BinaryPrimitives.ReadUInt64LittleEndian(c.Result[16..]) != h)
                        Interlocked.Increment(ref bad);
                    k.Free(r.Control);
                }
            });
            ts[t].Start();
        }
        foreach (var t in ts) t.Join();
        Out.Line($"DONE {threads * calls} bad {bad}");
        return bad == 0 ? 0 : 1;
    }
    /// <summary>
    /// Channel churn: each round opens a new channel to the target, makes one sync call on it
    /// and closes it (or, every --reconnect-every rounds, ends the whole connection instead and
    /// registers again), so the broker reuses channel slots as fast as it can. A call with no
    /// answer within --call-timeout-ms is reported as HUNG with what the kernel knew.
    /// </summary>
    public static unsafe int ChannelChurn(Args a)
    {
        int rounds = a.Int("rounds", 1000), reconnectEvery = a.Int("reconnect-every", 0);
        var timeout = TimeSpan.FromMilliseconds(a.Int("call-timeout-ms", 10_000));
        string target = a.Get("target", "echo");
        var k = a.Connect("churn");
        try
        {
            for (int i = 0; i < rounds; i++)
            {
                var ep = k.Open(target);
                var ctrl = k.AllocateControl();
                var d = k.AllocateBytes(64);
                d.Span[..8].Fill((byte)i);
                Message r;
                try
                {
                    r = k.Call(ep, ctrl, Op.Inspect, [new DataIca(d, 64)], timeout);
                }
                catch (KernelException e) when (e.Error == KernelError.Timeout)
                {
                    Out.Line($"HUNG round {i} {ep} open {ep.IsOpen} garbage {k.Counters.Garbage} refused {k.Counters.RefusedHandles} "
                        + $"unread requests {ep.SendRing.Count} unread replies {ep.ReceiveRing.Count} orphans {k.Counters.OrphanReplies}; broker: "
                        + string.Join(' ', Enum.GetValues<BrokerCounter>().Where(c => c != BrokerCounter.Count).Select(c => $"{c}={k.Pool.Counter(c)}")));
                    var l = k.Pool.Layout;
                    long Ring(int r) => new SpscRing(k.Pool.Ring(r), l.RingCapacity).Count;
                    ref var che = ref k.Pool.Channel(ep.Index);
                    Out.Line($"HUNG-STATE server downlink {Ring(l.DownlinkRing(ep.Peer.Slot))} server uplink {Ring(l.UplinkRing(ep.Peer.Slot))} "
                        + $"own uplink {Ring(l.UplinkRing(k.Id.Slot))} own downlink {Ring(l.DownlinkRing(k.Id.Slot))} "
                        + $"table: state {che.State} id {che.ChannelId} client {new ProcessId(che.ClientProcessId)} server {new ProcessId(che.ServerProcessId)}; me {k.Id}");
                    while (k.TryReceive(out var q)) Out.Line($"HUNG-INBOX {q.Kind} flags {q.Flags} id {q.RequestId:x} word {q.Word} from {q.Source} on {q.Endpoint}");
                    return 1;
                }
                if (r.Kind != MessageKind.Reply || r.Status != 0 || !ControlIca.TryOpen(r.Control.Span, out var c)
                    || BinaryPrimitives.ReadInt32LittleEndian(c.Result) != 1)
                {
                    Out.Line($"ERROR round {i}: bad reply {r.Kind} status {r.Status}");
                    return 1;
                }
                k.FreeMessage(r);
                if (reconnectEvery > 0 && (i + 1) % reconnectEvery == 0)
                {
                    k.Dispose();
                    k = a.Connect("churn");
                }
                else k.Close(ep);
            }
            Out.Line($"DONE {rounds} garbage {k.Counters.Garbage} refused {k.Counters.RefusedHandles}");
            return 0;
        }
        finally
        {
            k.Dispose();
        }
    }
    /// <summary>
    /// A server shaped like the inet server: one thread that waits with a timeout and a stop
    /// token, takes what else is waiting with TryReceive, answers every sync request (Inspect)
    /// and, for each request from its "driver" (the first channel that posts to it), posts a
    /// request of its own back on that channel, as inet hands frames to the NIC driver.
    /// </summary>
    public static int BusyServer(Args a)
    {
        using var k = a.Connect("busy-server");
        k.RegisterService(a.Get("service", "busy"));
        using var stop = new CancellationTokenSource();
        Out.Line($"READY {k.Id.Value}");
        var rnd = new Random(1);
        while (true)
        {
            var wait = TimeSpan.FromMilliseconds(rnd.Next(0, 3) == 0 ? 0 : rnd.Next(1, 500));

            if (!k.Receive(out var m, wait, stop.Token)) continue;
            for (int n = 1; ; n++)
            {
                switch (m.Kind)
                {
                    case MessageKind.Request when !m.IsSync:
                        // Async from the driver: give its ICAs back, and hand it work.
                        k.FreeMessage(m);
                        k.Post(m.Endpoint!, k.AllocateControl(), Op.Inspect, default);
                        break;
                    case MessageKind.Request:
                        if (a.Flag("verbose")) Out.Line($"REQ {m.Endpoint?.ChannelId} {m.RequestId:x} {m.Kind} {m.Flags}");
                        Inspect(m);
                        for (int d = 0; d < m.DataCount; d++) k.Free(m.GetData(d).Ica);
                        try { k.Reply(m, m.Control, 0, default); }
                        catch (KernelException e) { Out.Line($"EVENT reply failed on {m.Endpoint}: {e.Message}"); } // its caller closed or died meanwhile
                        break;
                    default:
                        if (a.Flag("verbose")) Out.Line($"MSG {m.Kind} {m.Endpoint?.ChannelId} {m.RequestId:x} {m.Word} garbage {k.Counters.Garbage} refused {k.Counters.RefusedHandles}");
                        k.FreeMessage(m);
                        break;
                }
                // Take what else is waiting, up to a bound (the inet server's loop).
                if (n == 64 || !k.TryReceive(out m)) break;
            }
        }
    }

    /// <summary>
    /// Keeps every ICA it receives (like a driver that dies with frames lent to it), except
    /// that a request with opcode <c>Op.Echo</c> gets its data ICAs back by Notify at once.
    /// Prints "KEPT n" with the count of ICAs it holds after each message.
    /// </summary>
    public static int Keeper(Args a)
    {
        using var k = a.Connect("keeper");
        k.RegisterService(a.Get("service", "keeper"));
        Out.Line($"READY {k.Id.Value}");
        var kept = new List<IcaLease>();
        while (true)
        {
            if (!k.Receive(out var m, Timeout.InfiniteTimeSpan) || m.Kind != MessageKind.Request) continue;
            if (m.Opcode == Op.Echo && m.Endpoint is { } back)
            {
                k.Notify(back, 1, m.RequestId, m.Data);
                if (!m.Control.IsNone) kept.Add(m.Control);
            }
            else
            {
                if (!m.Control.IsNone) kept.Add(m.Control);
                for (int i = 0; i < m.DataCount; i++) kept.Add(m.GetData(i).Ica);
            }
            k.Commit();
            Out.Line($"KEPT {kept.Count}");
        }
    }

    /// <summary>
    /// A client shaped like the NIC driver: its main thread answers what the server posts; a
    /// second thread posts to the server without pause (received frames).
    /// </summary>
    public static int BusyDriver(Args a)
    {
        using var k = a.Connect("busy-driver");
        var ep = k.Open(a.Get("target", "busy"));
        Out.Line($"READY {k.Id.Value}");
        var poster = new Thread(() =>
        {
            try
            {
                while (true)
                {
                    var d = k.AllocateBytes(1500);
                    k.Post(ep, k.AllocateControl(), Op.Inspect, [new DataIca(d, 60)]);
                    Thread.Sleep(1); // a steady stream, well below what the server can take
                }
            }
            catch (KernelException e)
            {
                Out.Line($"EVENT posting stopped: {e.Message}");
            }
        })
        { IsBackground = true };
        poster.Start();
        while (true)
        {
            if (!k.Receive(out var m, TimeSpan.FromMilliseconds(500))) continue;
            if (m.Kind == MessageKind.Request) k.Reply(m, m.Control, 0, default);
            else k.FreeMessage(m);
        }
    }
    /// <summary>
    /// Answers its first sync request with a reply slot written straight on the channel ring
    /// (not journaled, so the broker has nothing to punish) naming a control ICA of a wrong
    /// generation: the caller must refuse it. Later requests get ordinary replies.
    /// </summary>
    public static int StaleReplier(Args a)
    {
        using var k = a.Connect("stale-replier");
        k.RegisterService(a.Get("service", "stale"));
        Out.Line($"READY {k.Id.Value}");
        bool first = true;
        while (true)
        {
            if (!k.Receive(out var m, Timeout.InfiniteTimeSpan)) continue;
            if (m.Kind != MessageKind.Request || !m.IsSync) { k.FreeMessage(m); continue; }
            if (!first)
            {
                k.Reply(m, m.Control, 0, m.Data);
                continue;
            }
            first = false;
            var h = m.Control.Handle;
            var stale = IcaHandle.Create(h.FirstPage, (h.Generation + 1) & IcaHandle.GenerationMask, (ushort)(h.TransferCount + 1));
            var r = new RingMessage { Kind = MessageKind.Reply, RequestId = m.RequestId, Control = stale.Value, Source = k.Id.Value, Channel = m.Endpoint!.ChannelId };
            while (m.Endpoint.SendRing.TryWrite(r) != RingStatus.Ok) Thread.Yield();
            m.Endpoint.PeerBell.Ring();
            k.FreeMessage(m);
            Out.Line("STALE-REPLY-SENT");
        }
    }
}
