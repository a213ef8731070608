using System.Buffers.Binary;
using AntHost.Kernel.Ipc;
using AntHost.Kernel.Pool;
using AntHost.Kernel.Tests.Infrastructure;

namespace AntHost.Kernel.Tests.Processes;

/// <summary>
/// Requests between real processes, for both transfer paths: the receiver reads the
/// sender's bytes at the same pool offset (no copy); sync, async, multi-stage with direct
/// return; peer death; several calling threads.
/// </summary>
public class TransferTests
{
    private const ushort Inspect = 1, Echo = 2, Stats = 99;

    /// <summary>(pool offset, length, checksum) the server saw for data ICA i.</summary>
    private static (long Offset, int Length, ulong Hash) Seen(IcaLease control, int i)
    {
        Assert.True(ControlIca.TryOpen(control.Span, out var c), "reply carries no control ICA");
        var r = c.ResultArea;
        Assert.True(BinaryPrimitives.ReadInt32LittleEndian(r) > i, "server saw fewer data ICAs");
        var e = r.Slice(4 + i * 20, 20);
        return (BinaryPrimitives.ReadInt64LittleEndian(e), BinaryPrimitives.ReadInt32LittleEndian(e[8..]), BinaryPrimitives.ReadUInt64LittleEndian(e[12..]));
    }

    [RootTheory]
    [InlineData(TransferMode.Direct)]
    [InlineData(TransferMode.Mediated)]
    public void Sync_call_hands_over_data_without_copying(TransferMode mode)
    {
        using var b = BrokerProcess.Start(mode);
        var server = b.Actor("echo-server", "--service", "echo");
        uint serverId = uint.Parse(server.WaitLine("READY").Split(' ')[1]);
        using var k = b.Connect("app");
        Assert.Equal(mode, k.Mode);
        var ep = k.Open("echo");
        Assert.Equal(serverId, ep.Peer.Value);
        var rnd = new Random(5);
        foreach (int size in new[] { 64, 4096, 4097, 65536 })
        {
            var ctrl = k.AllocateControl();
            var d1 = k.AllocateBytes(size);
            var d2 = k.AllocateBytes(100);
            rnd.NextBytes(d1.Span[..size]);
            rnd.NextBytes(d2.Span[..100]);
            var expect1 = (d1.PoolOffset, size, Fnv.Hash(d1.Span[..size]));
            var expect2 = (d2.PoolOffset, 100, Fnv.Hash(d2.Span[..100]));
            var reply = k.Call(ep, ctrl, Inspect, [new DataIca(d1, size), new DataIca(d2, 100)], TimeSpan.FromSeconds(30));
            Assert.Equal(MessageKind.Reply, reply.Kind);
            Assert.Equal(serverId, reply.Source.Value);
            Assert.Equal(expect1, Seen(reply.Control, 0));
            Assert.Equal(expect2, Seen(reply.Control, 1));
            // The control ICA came back: the same pages, one transfer later, ours again.
            Assert.Equal(ctrl.Handle.FirstPage, reply.Control.Handle.FirstPage);
            Assert.True(new OwnershipTable(k.Pool).IsOwnedBy(reply.Control.Handle, k.Id) || k.Mode == TransferMode.Direct);
            k.Free(reply.Control);
        }

        // Echo: the data ICAs come back to us in the reply with their bytes untouched.
        var c2 = k.AllocateControl();
        var d = k.AllocateBytes(3000);
        d.Span.Fill(0xC3);
        var back = k.Call(ep, c2, Echo, [new DataIca(d, 3000)], TimeSpan.FromSeconds(30));
        Assert.Equal(1, back.DataCount);
        Assert.Equal(d.PoolOffset, back.GetData(0).Ica.PoolOffset);
        Assert.Equal(3000, back.GetData(0).Length);
        Assert.True(back.GetData(0).Span.ToArray().All(x => x == 0xC3));
        k.FreeMessage(back);
        k.Commit();
        Assert.Equal(0, k.Counters.RefusedHandles);
    }

    [RootTheory]
    [InlineData(TransferMode.Direct)]
    [InlineData(TransferMode.Mediated)]
    public void Async_post_completes_later_as_its_own_message(TransferMode mode)
    {
        using var b = BrokerProcess.Start(mode);
        b.Actor("echo-server", "--service", "echo").WaitLine("READY");
        using var k = b.Connect("app");
        var ep = k.Open("echo");
        var ids = new HashSet<uint>();
        var expected = new Dictionary<uint, (long, int, ulong)>();
        for (int i = 0; i < 50; i++)
        {
            var ctrl = k.AllocateControl();
            var d = k.AllocateBytes(512);
            d.Span[..512].Fill((byte)i);
            var exp = (d.PoolOffset, 512, Fnv.Hash(d.Span[..512]));
            uint id = k.Post(ep, ctrl, Inspect, [new DataIca(d, 512)]);
            Assert.True(ids.Add(id), "request ids are unique");
            expected[id] = exp;
        }
        int completions = 0;
        while (completions < 50)
        {
            Assert.True(k.Receive(out var m, ChildProcess.Patience), "completion did not come");
            if (m.Kind != MessageKind.Reply) continue;
            Assert.True(expected.Remove(m.RequestId), $"unexpected completion id {m.RequestId}");
            Assert.Equal(0, m.Status);
            completions++;
            k.Free(m.Control);
        }
        Assert.Empty(expected);
    }

    [RootTheory]
    [InlineData(TransferMode.Direct)]
    [InlineData(TransferMode.Mediated)]
    public void Multi_stage_request_returns_directly_to_the_requester(TransferMode mode)
    {
        using var b = BrokerProcess.Start(mode);
        var nic = b.Actor("nic", "--service", "nic");
        uint nicId = uint.Parse(nic.WaitLine("READY").Split(' ')[1]);
        var inet = b.Actor("inet", "--service", "inet", "--next", "nic");
        uint inetId = uint.Parse(inet.WaitLine("READY").Split(' ')[1]);
        using var k = b.Connect("app");
        var ep = k.Open("inet");

        for (int round = 0; round < 20; round++)
        {
            var ctrl = k.AllocateControl();
            var d = k.AllocateBytes(1500);
            new Random(round).NextBytes(d.Span[..1500]);
            var exp = (d.PoolOffset, 1500, Fnv.Hash(d.Span[..1500]));
            var r = k.Call(ep, ctrl, 7, [new DataIca(d, 1500)], TimeSpan.FromSeconds(30), traceStage: 1);
            // The answer comes from the last stage, not from the intermediate one.
            Assert.Equal(nicId, r.Source.Value);
            Assert.True((r.Flags & MessageFlags.DirectReturn) != 0);
            Assert.NotEqual(ep, r.Endpoint);
            Assert.Equal(exp, Seen(r.Control, 0));
            Assert.True(ControlIca.TryOpen(r.Control.Span, out var c));
            // The frame the intermediate pushed, as the last stage read it.
            Assert.Equal(inetId, BinaryPrimitives.ReadUInt32LittleEndian(c.Inline[4..]));
            Assert.Equal(1u, BinaryPrimitives.ReadUInt32LittleEndian(c.Inline[8..]));
            Assert.Equal(3, c.TraceCount);
            Assert.True(c.TryGetStamp(0, out long t0, out ushort s0, out _));
            Assert.True(c.TryGetStamp(1, out long t1, out ushort s1, out uint p1));
            Assert.True(c.TryGetStamp(2, out long t2, out ushort s2, out uint p2));
            Assert.Equal((1, 2, 3), (s0, s1, s2));
            Assert.Equal((inetId, nicId), (p1, p2));
            Assert.True(t0 <= t1 && t1 <= t2, "one monotonic clock across processes");
            k.Free(r.Control);
        }

        // The intermediate got every data ICA back from the last stage (for a retransmit).
        var sc = k.AllocateControl();
        long back = 0;
        BrokerProcess.Eventually(() =>
        {
            var s = k.Call(ep, k.AllocateControl(), Stats, default, TimeSpan.FromSeconds(30));
            Assert.True(ControlIca.TryOpen(s.Control.Span, out var c));
            back = BinaryPrimitives.ReadInt64LittleEndian(c.Result);
            k.Free(s.Control);
            return back == 20;
        }, "20 data ICAs returned to the intermediate server");
        k.Free(sc);
    }

    [RootTheory]
    [InlineData(TransferMode.Direct)]
    [InlineData(TransferMode.Mediated)]
    public void A_control_ica_reused_thousands_of_times_commits_without_a_fault(TransferMode mode)
    {
        // The cache hands the same control ICA back every time, so on the direct path its
        // transfers run far ahead of the broker's commits and the journals of three
        // processes interleave: every record must still be applied, in order, to no one's fault.
        using var b = BrokerProcess.Start(mode);
        b.Actor("nic", "--service", "nic").WaitLine("READY");
        var inet = b.Actor("inet", "--service", "inet", "--next", "nic");
        inet.WaitLine("READY");
        using var k = b.Connect("app");
        var ep = k.Open("inet");
        const int rounds = 3000;
        for (int i = 0; i < rounds; i++)
        {
            var ctrl = k.AllocateControl();
            var d = k.AllocateBytes(64 + i % 5000);
            var r = k.Call(ep, ctrl, 7, [new DataIca(d, 64)], ChildProcess.Patience);
            Assert.Equal(0, r.Status);
            k.Free(r.Control);
        }
        BrokerProcess.Eventually(() =>
        {
            var s = k.Call(ep, k.AllocateControl(), Stats, default, ChildProcess.Patience);
            Assert.True(ControlIca.TryOpen(s.Control.Span, out var c));
            long back = BinaryPrimitives.ReadInt64LittleEndian(c.Result);
            k.Free(s.Control);
            return back == rounds;
        }, "every data ICA back at the intermediate server");
        k.Commit();
        Assert.Equal(0, k.Pool.Counter(BrokerCounter.CutOffs));
        Assert.Equal(0, k.Pool.Counter(BrokerCounter.BadMessages));
        Assert.Equal(0, k.Pool.Counter(BrokerCounter.Refused));
        Assert.Equal(0, k.Counters.RefusedHandles);
        Assert.False(k.IsCutOff);
        PoolTests.AssertTableConsistent(k.Pool);
        Assert.Equal(0, k.Pool.Counter(BrokerCounter.Deaths));

        // The same from a process that then unregisters at once, with its last records still
        // waiting for the other stages' journals: it must leave cleanly, not be cut off.
        for (int run = 0; run < 3; run++)
        {
            var caller = b.Actor("chain-caller", "--target", "inet", "--rounds", "1000");
            caller.WaitLine("UNREGISTERED");
            Assert.Equal(0, caller.WaitExit());
        }
        k.Commit();
        Assert.Equal(0, k.Pool.Counter(BrokerCounter.CutOffs));
        Assert.Equal(0, k.Pool.Counter(BrokerCounter.BadMessages));
        PoolTests.AssertTableConsistent(k.Pool);
    }

    [RootTheory]
    [InlineData(TransferMode.Direct)]
    [InlineData(TransferMode.Mediated)]
    public void Peer_death_fails_pending_calls_and_is_reported(TransferMode mode)
    {
        using var b = BrokerProcess.Start(mode);
        // The server is killed just before the call: the call must end with PeerDied, whether
        // it was sent before the broker noticed the death or refused after.
        var mute = b.Actor("echo-server", "--service", "mute");
        mute.WaitLine("READY");
        using var k = b.Connect("app");
        var ep = k.Open("mute");
        KernelException? failure = null;
        var t = new Thread(() =>
        {
            try
            {
                mute.Kill9();
                k.Call(ep, k.AllocateControl(), Inspect, default, ChildProcess.Patience);
            }
            catch (KernelException e) { failure = e; }
        });
        t.Start();
        t.Join();
        Assert.NotNull(failure);
        Assert.Equal(KernelError.PeerDied, failure!.Error);
        bool sawDeath = false;
        BrokerProcess.Eventually(() =>
        {
            while (k.TryReceive(out var m)) if (m.Kind == MessageKind.PeerDied && m.Endpoint == ep) sawDeath = true;
            return sawDeath || !ep.IsOpen;
        }, "peer death observed");
        Assert.False(ep.IsOpen);
        var ex = Assert.Throws<KernelException>(() => k.Notify(ep, 1, 0, default));
        Assert.Equal(KernelError.PeerDied, ex.Error);
    }

    [RootTheory]
    [InlineData(TransferMode.Direct)]
    [InlineData(TransferMode.Mediated)]
    public void Calls_from_several_threads_each_get_their_own_reply(TransferMode mode)
    {
        using var b = BrokerProcess.Start(mode);
        b.Actor("echo-server", "--service", "echo").WaitLine("READY");
        var caller = b.Actor("caller", "--target", "echo", "--threads", "4", "--calls", "200");
        var done = caller.WaitLine("DONE");
        Assert.Equal("DONE 800 bad 0", done);
        Assert.Equal(0, caller.WaitExit());
    }
}
