// The round of held requests: what the request manager calls between messages. It drains
// the core's change queues and answers what became answerable, retries held sends, ends
// polls, pings and lingering closes whose deadline passed, and handles direct return (the
// flush hook that forwards an app's control ICA with its frame, and the replies inet makes
// itself for sends that could not travel with their frame).
using AntHost.Inet.Abi;
using AntHost.Inet.Buffers;
using AntHost.Inet.Core.Icmp;
using AntHost.Inet.Core.Ip;
using AntHost.Inet.Core.Sockets;
using AntHost.Inet.Core.Tcp;
using AntHost.Inet.Core.Time;
using AntHost.Inet.Core.Udp;
using AntHost.Inet.Core.Wire;
using AntHost.Kernel;
using AntHost.Kernel.Ipc;
using AntHost.Kernel.Pool;

namespace AntHost.Inet.Sockets;

public sealed partial class SocketManager
{
    private struct HeldPoll
    {
        public Message M;
        public Instant Deadline;
        public bool HasDeadline;
    }

    private struct HeldPing
    {
        public Message M;
        public ushort Sequence;
        public Instant SentAt;
        public Instant Deadline;
    }

    private readonly List<HeldPoll> _polls = new(16);
    private readonly List<HeldPing> _pings = new(16);
    private IcmpEchoSocket? _echo;
    private SocketHandle _echoSocket;
    private ushort _pingSequence;
    private bool _pollDirty;

    /// <summary>
    /// One round: drains the core's change queues and answers held requests that became
    /// answerable, retries held sends, and ends what passed its deadline.
    /// </summary>
    public void Process(Instant now)
    {
        if (!SyncInterface()) return;
        var set = _set!;
        while (set.TryGetChanged(out var h))
        {
            if (h.Slot < _entries.Count && _entries[h.Slot] is { InUse: true } e && e.Socket == h) Service(e, now);
        }
        for (int i = _sendWaiters.Count - 1; i >= 0 && i < _sendWaiters.Count; i--)
        {
            var e = _sendWaiters[i];
            ServiceSends(e, now);
            if (e.Sends is not { Count: > 0 })
            {
                e.InSendWaiters = false;
                _sendWaiters.RemoveAt(i);
            }
        }
        if (_echo is not null) ServicePings(now);
        for (int i = _lingering.Count - 1; i >= 0 && i < _lingering.Count; i--) ServiceClose(_lingering[i], now);
        if (_polls.Count > 0) ServicePolls(now, _pollDirty);
        _pollDirty = false;
    }

    private void Service(SocketEntry e, Instant now)
    {
        if (!e.InUse) return;
        if (e.PollWaiters > 0) _pollDirty = true;
        if (e.Closing)
        {
            ServiceClose(e, now);
            return;
        }
        if (e.Type == AbiSocketType.Stream)
        {
            ServiceConnect(e);
            ServiceAccepts(e, now);
            ServiceSends(e, now);
        }
        ServiceReceives(e, now);
    }

    /// <summary>The earliest deadline of a held poll, ping or lingering close, or null.</summary>
    public Instant? PollAt
    {
        get
        {
            Instant? at = null;
            foreach (var p in _polls) if (p.HasDeadline) at = Instant.Earliest(at, p.Deadline);
            foreach (var p in _pings) at = Instant.Earliest(at, p.Deadline);
            foreach (var e in _lingering) at = Instant.Earliest(at, e.CloseDeadline);
            return at;
        }
    }

    // ---- poll ------------------------------------------------------------------------------

    private InetStatus Poll(in Message m, SocketArgs a, Span<byte> inline, Instant now)
    {
        if (!PollSet.TryOpen(inline, out var set)) return Malformed(m);
        int ready = EvaluatePoll(m, set, countInvalid: true);
        ResultOf(m).Value = ready;
        long timeout = a.Value;
        if (ready > 0 || timeout == 0 || (a.Flags & InetSocketFlags.NonBlocking) != 0) return InetStatus.Ok;
        var held = new HeldPoll { M = m, HasDeadline = timeout > 0, Deadline = timeout > 0 ? now + TimeSpan.FromMilliseconds(timeout) : default };
        _polls.Add(held);
        ChangePollWaiters(m, set, +1);
        return Held;
    }

    /// <summary>Writes each entry's ready events; returns how many entries have any.</summary>
    private int EvaluatePoll(in Message m, PollSet set, bool countInvalid)
    {
        int ready = 0;
        for (int i = 0; i < set.Count; i++)
        {
            var events = PollEvents.Error | PollEvents.Hangup;
            if (TryPeekEntry(m, set.Socket(i), out var e)) events = Readiness(e) & (set.Wanted(i) | PollEvents.Error | PollEvents.Hangup);
            else if (countInvalid) Count(InetStat.InvalidSocketHandles);
            set.SetReady(i, events);
            if (events != PollEvents.None) ready++;
        }
        return ready;
    }

    private bool TryPeekEntry(in Message m, ulong handle, out SocketEntry e)
    {
        int index = (int)(uint)handle - 1;
        if ((uint)index < (uint)_entries.Count)
        {
            e = _entries[index];
            if (e.InUse && !e.Closing && e.Generation == (int)(handle >> 32) && e.Owner == m.Source) return true;
        }
        e = null!;
        return false;
    }

    private PollEvents Readiness(SocketEntry e)
    {
        var r = PollEvents.None;
        if (e.Type == AbiSocketType.Stream)
        {
            var t = _tcp!.GetReadiness(e.Tcp);
            if ((t & (TcpReadiness.Readable | TcpReadiness.AcceptReady)) != 0 || e.ReceiveShut) r |= PollEvents.Readable;
            if ((t & TcpReadiness.Writable) != 0) r |= PollEvents.Writable;
            if ((t & TcpReadiness.Error) != 0) r |= PollEvents.Error;
            if ((t & (TcpReadiness.PeerClosed | TcpReadiness.Closed)) != 0) r |= PollEvents.Hangup;
        }
        else
        {
            var u = e.Udp!;
            var ur = u.Readiness;
            if (e.HasPeeked || (ur & UdpReadiness.Readable) != 0 || e.ReceiveShut) r |= PollEvents.Readable;
            if (!e.SendShut) r |= PollEvents.Writable;
            if ((ur & UdpReadiness.Error) != 0) r |= PollEvents.Error;
        }
        return r;
    }

    private void ChangePollWaiters(in Message m, PollSet set, int delta)
    {
        for (int i = 0; i < set.Count; i++)
            if (TryPeekEntry(m, set.Socket(i), out var e)) e.PollWaiters = Math.Max(0, e.PollWaiters + delta);
    }

    private void ServicePolls(Instant now, bool changed)
    {
        for (int i = _polls.Count - 1; i >= 0; i--)
        {
            var p = _polls[i];
            bool late = p.HasDeadline && now >= p.Deadline;
            if (!changed && !late) continue;
            if (!ControlIca.TryOpen(p.M.Control.Span, out var c) || !PollSet.TryOpen(c.Inline, out var set))
            {
                // The app scribbled on the page it passed (it still maps it): refused.
                _polls.RemoveAt(i);
                Count(InetStat.BadSocketRequests);
                Reply(p.M, InetStatus.BadArguments);
                continue;
            }
            int ready = EvaluatePoll(p.M, set, countInvalid: false);
            if (ready == 0 && !late) continue;
            ChangePollWaiters(p.M, set, -1);
            _polls.RemoveAt(i);
            c.SetResultLength(SocketResult.Length);
            SocketResult.Begin(c.ResultArea).Value = ready;
            Reply(p.M, InetStatus.Ok);
        }
    }

    private void EndPolls()
    {
        foreach (var p in _polls) Reply(p.M, SocketStatus.Canceled);
        _polls.Clear();
    }

    private void DropPollsOn(Endpoint ep)
    {
        for (int i = _polls.Count - 1; i >= 0; i--)
        {
            if (_polls[i].M.Endpoint != ep) continue;
            var m = _polls[i].M;
            if (ControlIca.TryOpen(m.Control.Span, out var c) && PollSet.TryOpen(c.Inline, out var set)) ChangePollWaiters(m, set, -1);
            Drop(m);
            _polls.RemoveAt(i);
        }
    }

    // ---- cancel ----------------------------------------------------------------------------

    /// <summary>Ends held calls of the caller: those on the socket named (0: any socket, polls and pings too), the one with the request id in Value (0: all).</summary>
    private InetStatus Cancel(in Message m, SocketArgs a, SocketResult r)
    {
        uint id = (uint)a.Value;
        ulong handle = a.Socket;
        SocketEntry? only = null;
        if (handle != 0)
        {
            var status = Find(m, handle, out only);
            if (status != InetStatus.Ok) return status;
        }
        int n = 0;
        foreach (var e in _entries)
        {
            if (!e.InUse || e.Closing || e.Owner != m.Source || (only is not null && e != only)) continue;
            n += CancelQueue(e.Receives, m.Source, id) + CancelQueue(e.Sends, m.Source, id) + CancelQueue(e.Accepts, m.Source, id);
            if (e.HasConnect && (id == 0 || e.Connect.RequestId == id))
            {
                Reply(e.Connect, SocketStatus.Canceled);
                e.HasConnect = false;
                e.Connect = default;
                n++;
            }
        }
        if (only is null)
        {
            for (int i = _polls.Count - 1; i >= 0; i--)
            {
                var p = _polls[i].M;
                if (p.Source != m.Source || (id != 0 && p.RequestId != id)) continue;
                if (ControlIca.TryOpen(p.Control.Span, out var c) && PollSet.TryOpen(c.Inline, out var set)) ChangePollWaiters(p, set, -1);
                _polls.RemoveAt(i);
                Reply(p, SocketStatus.Canceled);
                n++;
            }
            for (int i = _pings.Count - 1; i >= 0; i--)
            {
                var p = _pings[i].M;
                if (p.Source != m.Source || (id != 0 && p.RequestId != id)) continue;
                _pings.RemoveAt(i);
                Reply(p, SocketStatus.Canceled);
                n++;
            }
        }
        Count(InetStat.Canceled, n);
        r.Value = n;
        return InetStatus.Ok;
    }

    private int CancelQueue(Queue<Message>? q, Kernel.Pool.ProcessId source, uint id)
    {
        if (q is null) return 0;
        int n = 0;
        for (int k = q.Count; k > 0; k--)
        {
            var h = q.Dequeue();
            if (h.Source == source && (id == 0 || h.RequestId == id))
            {
                if (h.Opcode is (ushort)InetOp.Send or (ushort)InetOp.SendTo) FreeData(h);
                Reply(h, SocketStatus.Canceled);
                n++;
            }
            else q.Enqueue(h);
        }
        return n;
    }

    // ---- ping ------------------------------------------------------------------------------

    private InetStatus Ping(in Message m, SocketArgs a, Instant now)
    {
        var to = new Ipv4Address(a.Address);
        if (to.IsUnspecified || m.DataCount > 1 || (m.DataCount == 1 && !DataFits(m, a, 1))) return Malformed(m);
        if (a.Value == 0 || a.Value > 3_600_000) return Malformed(m);
        if (_echo is null)
        {
            _echoSocket = _set!.OpenIcmpEcho();
            _echo = _set.IcmpEcho(_echoSocket);
        }
        ushort sequence = ++_pingSequence;
        IpSendStatus sent;
        if (m.DataCount == 1)
        {
            var d = m.GetData(0).Ica;
            sent = _echo.Send(to, sequence, d.Span.Slice((int)a.DataOffset(0), (int)a.DataLength(0)), now);
            _kernel.Free(d);
        }
        else sent = _echo.Send(to, sequence, ReadOnlySpan<byte>.Empty, now);
        Count(InetStat.PingsSent);
        if (sent is IpSendStatus.NoRoute) return SocketStatus.NetworkUnreachable;
        if (sent is not (IpSendStatus.Sent or IpSendStatus.AwaitingResolution)) return SocketStatus.NoBufferSpace;
        long timeout = a.Value < 0 ? 60_000 : a.Value;
        _pings.Add(new HeldPing { M = m, Sequence = sequence, SentAt = now, Deadline = now + TimeSpan.FromMilliseconds(timeout) });
        return Held;
    }

    private void ServicePings(Instant now)
    {
        while (_echo!.TryReceive(out var reply))
        {
            int i = _pings.Count - 1;
            while (i >= 0 && _pings[i].Sequence != reply.Sequence) i--;
            if (i < 0)
            {
                reply.Payload?.Release();
                continue;
            }
            var p = _pings[i];
            _pings.RemoveAt(i);
            var r = ResultOf(p.M);
            r.Value = (long)(reply.ReceivedAt - p.SentAt).TotalMicroseconds;
            r.RemoteAddress = reply.Source.Value;
            if (reply.IsError)
            {
                reply.Payload?.Release();
                Reply(p.M, SocketStatus.HostUnreachable);
                continue;
            }
            if (reply.Payload is IcaPacketBuffer b)
            {
                int offset = b.Start, length = b.Length;
                var lease = _pool.Detach(b);
                r.DataCount = 1;
                r.SetData(0, offset, length);
                _replyData[0] = new DataIca(lease, offset + length);
                Reply(p.M, InetStatus.Ok, _replyData.AsSpan(0, 1));
                _replyData[0] = default;
            }
            else
            {
                reply.Payload?.Release();
                Reply(p.M, InetStatus.Ok);
            }
        }
        for (int i = _pings.Count - 1; i >= 0; i--)
        {
            if (now < _pings[i].Deadline) continue;
            var m = _pings[i].M;
            _pings.RemoveAt(i);
            Reply(m, SocketStatus.TimedOut);
        }
    }

    private void EndPings(InetStatus status)
    {
        foreach (var p in _pings) Reply(p.M, status);
        _pings.Clear();
    }

    private void DropPingsOn(Endpoint ep)
    {
        for (int i = _pings.Count - 1; i >= 0; i--)
        {
            if (_pings[i].M.Endpoint != ep) continue;
            Drop(_pings[i].M);
            _pings.RemoveAt(i);
        }
    }

    // ---- direct return ---------------------------------------------------------------------

    /// <summary>A send that went out in place: its reply waits for the flush to decide who sends it (Transmits).</summary>
    private void DeferDirect(in Message m, IcaPacketBuffer b, long bytes)
    {
        if (_protocol.Transmits.Defer(m, b, bytes)) return;
        Count(InetStat.SendsAnsweredByInet);
        Reply(m, InetStatus.Ok);
    }
}
