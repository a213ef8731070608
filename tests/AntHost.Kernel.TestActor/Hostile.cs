// The hostile process: random and mutated messages at the broker, over its
// control socket and over the rings (its own uplink, and a channel ring towards
// an honest server). It keeps count of what it sent; the test checks the broker
// and the honest processes, not this process's opinion.
using System.Buffers.Binary;
using System.Diagnostics;
using System.Net.Sockets;
using AntHost.Kernel.Ipc;
using AntHost.Kernel.Pool;
using AntHost.Kernel.Protocol;

namespace AntHost.Kernel.TestActor;

internal static unsafe class Hostile
{
    public static int Run(Args a)
    {
        var rnd = new Random(a.Int("seed", 1));
        int socketMessages = a.Int("socket", 50_000);
        int ringMessages = a.Int("ring", 60_000);
        string instance = a.Get("instance");
        string target = a.Get("target", "echo");
        bool forgeAtEnd = a.Flag("forge-at-end");

        long sent = SocketGarbage(instance, rnd, socketMessages, out long responses);
        Out.Line($"SOCKET sent {sent} responses {responses}");

        using var k = a.Connect("hostile");
        var ep = k.Open(target);
        var own = k.Allocate(1);
        long ringSent = RingGarbage(k, ep, own, rnd, ringMessages);
        Out.Line($"RING sent {ringSent}");
        Out.Line($"DONE {sent + ringSent}");
        if (forgeAtEnd)
        {
            // A journal record for an ICA this process never owned: the direct path cuts it off.
            var up = new SpscRing(k.Pool.Ring(k.Pool.Layout.UplinkRing(k.Id.Slot)), k.Pool.Layout.RingCapacity);
            var rec = new RingMessage { Kind = MessageKind.JournalTransfer, JournalCount = 1, JournalDestination = ep.Peer.Value };
            // Its own ICA at a transfer count it has already passed: an old copy of a handle.
            rec.SetJournalHandle(0, own.Handle.WithTransferCount(ushort.MaxValue).Value);
            Out.Line("FORGING"); // the broker may end this process as soon as it reads the record
            WriteUplink(k, up, rec);
            new Doorbell(k.Pool.BrokerDoorbell).Wake();
            Thread.Sleep(Timeout.Infinite);
        }
        return 0;
    }

    private static Socket Open(string instance)
    {
        var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        s.Connect(new UnixDomainSocketEndPoint(ControlProtocol.SocketPathFor(instance)));
        return s;
    }

    private static long SocketGarbage(string instance, Random rnd, int count, out long responses)
    {
        responses = 0;
        var s = Open(instance);
        var buf = new byte[ControlProtocol.MaxFrame + 64];
        var head = new byte[8];
        long sent = 0;
        for (int i = 0; i < count; i++)
        {
            int len;
            int kind = rnd.Next(10);
            if (kind == 0)
            {
                // A valid registration, sometimes twice on one connection.
                len = Frame(buf, ControlOp.Register, w => { w.U32(0); w.Str("hostile-sock"); });
            }
            else if (kind == 1)
            {
                // Mutate a well-formed request: one random byte changed.
                var op = (ControlOp)rnd.Next(1, 10);
                len = Frame(buf, op, w => { w.U32((uint)rnd.Next()); w.U32((uint)rnd.Next(0, 3)); });
                buf[4 + rnd.Next(len - 4)] ^= (byte)(1 << rnd.Next(8));
                BinaryPrimitives.WriteUInt32LittleEndian(buf, (uint)(len - 4));
            }
            else if (kind == 2)
            {
                len = Frame(buf, ControlOp.Allocate, w => { w.U32((uint)rnd.Next(0, 100_000)); w.U32((uint)rnd.Next(0, 100_000_000)); });
            }
            else if (kind == 3)
            {
                len = Frame(buf, ControlOp.OpenChannel, w => w.Str(rnd.Next(2) == 0 ? "no-such-service" : new string('x', rnd.Next(1, 200))));
            }
            else if (kind == 4)
            {
                len = Frame(buf, ControlOp.OpenReturnChannel, w => w.U32((uint)rnd.Next()));
            }
            else if (kind == 5 && rnd.Next(50) == 0)
            {
                // A length beyond the protocol: the broker answers and drops the connection.
                BinaryPrimitives.WriteUInt32LittleEndian(buf, (uint)rnd.Next(ControlProtocol.MaxFrame + 1, int.MaxValue));
                len = 4;
            }
            else
            {
                int n = rnd.Next(2, 64);
                BinaryPrimitives.WriteUInt32LittleEndian(buf, (uint)n);
                rnd.NextBytes(buf.AsSpan(4, n));
                len = 4 + n;
            }
            try
            {
                s.Send(buf.AsSpan(0, len));
                sent++;
                ControlProtocol.ReadExactly(s, head);
                int rlen = (int)BinaryPrimitives.ReadUInt32LittleEndian(head) - 4;
                if (rlen > 0) ControlProtocol.ReadExactly(s, buf.AsSpan(0, Math.Min(rlen, buf.Length)));
                responses++;
            }
            catch (SocketException)
            {
                s.Dispose();
                s = Open(instance);
            }
        }
        s.Dispose();
        return sent;
    }

    private static int Frame(byte[] buf, ControlOp op, Action<FrameWriter> body)
    {
        var w = new FrameWriter();
        w.Begin((int)op, request: true);
        body(w);
        var f = w.Finish();
        f.CopyTo(buf);
        return f.Length;
    }

    private static void WriteUplink(KernelConnection k, SpscRing up, in RingMessage m)
    {
        var bell = new Doorbell(k.Pool.BrokerDoorbell);
        var sw = Stopwatch.StartNew();
        while (up.TryWrite(m) != RingStatus.Ok)
        {
            bell.Wake();
            Thread.Yield();
            if (sw.Elapsed > TimeSpan.FromSeconds(20)) throw new TimeoutException("the broker stopped draining the uplink");
        }
        bell.RingIfDeepSleeping();
    }

    private static long RingGarbage(KernelConnection k, Endpoint ep, IcaLease own, Random rnd, int count)
    {
        var l = k.Pool.Layout;
        var up = new SpscRing(k.Pool.Ring(l.UplinkRing(k.Id.Slot)), l.RingCapacity);
        bool mediated = k.Mode == TransferMode.Mediated;
        long sent = 0;
        for (int i = 0; i < count; i++)
        {
            var m = new RingMessage();
            var bytes = new Span<byte>(&m, 64);
            int kind = rnd.Next(4);
            if (kind == 0)
            {
                rnd.NextBytes(bytes);
                // The direct path cuts off a journal naming an ICA that is not the sender's: keep
                // random journal records malformed here (count out of range), so the broker's
                // refusal path, not the cut-off, is what this part exercises.
                if (m.Kind is MessageKind.JournalTransfer or MessageKind.JournalFree && !mediated) m.JournalCount = 0;
            }
            else
            {
                // Mutate a plausible message on this process's real channel.
                m.Kind = (MessageKind)rnd.Next(0, 20);
                m.Flags = (MessageFlags)rnd.Next(4);
                m.RequestId = (uint)rnd.Next();
                m.Channel = ep.ChannelId;
                m.Source = k.Id.Value;
                m.Control = own.Handle.Value;
                m.DataCount = (byte)rnd.Next(0, 6);
                m.Data0 = own.Handle.Value;
                m.Length0 = (uint)rnd.Next();
                bytes[rnd.Next(64)] ^= (byte)(1 << rnd.Next(8));
                if (m.Kind is MessageKind.JournalTransfer or MessageKind.JournalFree && !mediated) m.JournalCount = 7;
            }
            if (kind == 3)
            {
                // Straight onto the honest server's ring, skipping the broker.
                var s = ep.SendRing.TryWrite(m);
                if (s == RingStatus.Ok) ep.PeerBell.Ring();
                else { Thread.Yield(); i--; continue; }
            }
            else
            {
                WriteUplink(k, up, m);
            }
            sent++;
            if ((i & 255) == 0)
            {
                while (k.TryReceive(out var r)) { if (r.Kind is MessageKind.Reply or MessageKind.Request or MessageKind.Notify) k.FreeMessage(r); }
            }
        }
        while (k.TryReceive(out var r)) { if (r.Kind is MessageKind.Reply or MessageKind.Request or MessageKind.Notify) k.FreeMessage(r); }
        return sent;
    }
}
