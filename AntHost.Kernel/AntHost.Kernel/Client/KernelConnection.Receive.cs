// The receive side. All rings towards this process (its downlink from the
// broker and one ring per channel) share its doorbell, so one wait covers every
// input. A received slot is checked before anything in it is believed: the
// channel must be one of ours, the kind one a peer may send, every handle must
// name a live ICA of the current generation held by the sender (or, once the
// broker committed the transfer, by us) at the matching transfer count. A slot
// that fails is counted and dropped; a sync request that fails gets a Refused
// answer so its caller does not hang.
using System.Diagnostics;
using AntHost.Kernel.Ipc;
using AntHost.Kernel.Pool;
using AntHost.Kernel.Protocol;

namespace AntHost.Kernel;

/// <summary>What this process refused or dropped on receive.</summary>
public sealed class ReceiveCounters
{
    internal long _refusedHandles;
    internal long _garbage;
    internal long _orphanReplies;

    /// <summary>Messages dropped because a handle was stale, forged or not the sender's.</summary>
    public long RefusedHandles => Volatile.Read(ref _refusedHandles);

    /// <summary>Slots that did not parse (unknown kind, unknown channel, too many ICAs).</summary>
    public long Garbage => Volatile.Read(ref _garbage);

    /// <summary>Replies to sync calls that had already given up; their ICAs were freed.</summary>
    public long OrphanReplies => Volatile.Read(ref _orphanReplies);
}

public sealed unsafe partial class KernelConnection
{
    private readonly Endpoint?[] _endpoints;
    private Endpoint[] _polled = [];
    private readonly object _endpointsLock = new();
    private readonly Dictionary<uint, Endpoint> _returnEndpoints = new();
    private readonly object _receiveRole = new();
    private readonly object _waiters = new();
    private int _waiterCount;
    private readonly Queue<Message> _inbox = new();
    private int _pollStart;
    private int _kicks;

    /// <summary>
    /// Wakes whichever thread of this process sleeps on the doorbell as the receiver, with no
    /// message for it: a call it waits for ended locally (its channel closed by this process).
    /// </summary>
    private void Kick()
    {
        Interlocked.Increment(ref _kicks);
        _bell.Wake();
    }

    /// <summary>
    /// Wakes whichever thread of this process holds the receiver role and sleeps, so that it
    /// takes what waits on the rings (a quiet message does not wake a thread that waits for
    /// its own call's reply) and hands it over. For a thread that waits for such a message
    /// while another holds the role.
    /// </summary>
    public void WakeReceiver() => Kick();

    public ReceiveCounters Counters { get; } = new();

    /// <summary>
    /// What the doorbell wait checks. It reads the list of polled channels afresh on every
    /// check: a channel opened by another thread while this one waits (a Call on a new
    /// channel while this thread sits in Receive) has its reply on a ring the waiter must see,
    /// or the waiter goes back to sleep on the wake-up meant for it and the call never ends.
    /// </summary>
    private struct Probe : IWorkProbe
    {
        public SpscRing Down;
        public KernelConnection Owner;
        public int Kicks;

        public readonly bool HasWork()
        {
            if (Down.HasData || Volatile.Read(ref Owner._kicks) != Kicks) return true;
            foreach (var e in Volatile.Read(ref Owner._polled))
                if (e.ReceiveRing.HasData) return true;
            return false;
        }
    }

    private Endpoint AddEndpoint(uint channelId, ProcessId peer, uint serviceId, string name, bool isOpener)
    {
        int index = (int)(channelId & 0xFFFF) - 1;
        if ((uint)index >= (uint)_endpoints.Length) throw new KernelException(KernelError.Malformed, $"channel id {channelId} out of range");
        lock (_endpointsLock)
        {
            var existing = _endpoints[index];
            if (existing is not null && existing.ChannelId == channelId) return existing;
            var ep = new Endpoint(Pool, channelId, index, peer, serviceId, name, isOpener);
            _endpoints[index] = ep;
            var list = new List<Endpoint>(_polled.Length + 1);
            foreach (var e in _polled) if (e.Index != index) list.Add(e);
            list.Add(ep);
            Volatile.Write(ref _polled, list.ToArray());
            return ep;
        }
    }

    private void RemoveEndpoint(Endpoint ep)
    {
        lock (_endpointsLock)
        {
            if (_endpoints[ep.Index] == ep) _endpoints[ep.Index] = null;
            var list = new List<Endpoint>(_polled.Length);
            foreach (var e in _polled) if (e != ep) list.Add(e);
            Volatile.Write(ref _polled, list.ToArray());
            foreach (var kv in _returnEndpoints)
                if (kv.Value == ep) { _returnEndpoints.Remove(kv.Key); break; }
        }
    }

    private Endpoint? EndpointOf(uint channelId)
    {
        int index = (int)(channelId & 0xFFFF) - 1;
        if ((uint)index >= (uint)_endpoints.Length) return null;
        var ep = Volatile.Read(ref _endpoints[index]);
        return ep is not null && ep.ChannelId == channelId ? ep : null;
    }

    /// <summary>The channel on which to answer <paramref name="requester"/> directly (opened on first use).</summary>
    private Endpoint ReturnEndpoint(ProcessId requester)
    {
        lock (_endpointsLock)
        {
            if (_returnEndpoints.TryGetValue(requester.Value, out var ep) && ep.IsOpen) return ep;
            foreach (var e in _polled)
                if (e.Peer == requester && e.IsOpen) return e;
        }
        var err = Control(ControlOp.OpenReturnChannel, w => w.U32(requester.Value), out var resp, out int len);
        if (err != KernelError.None)
            throw new KernelException(err == KernelError.NotRegistered ? KernelError.PeerDied : err,
                $"cannot return directly to {requester}: {err}");
        var r = new FrameReader(resp.AsSpan(0, len));
        uint channel = r.U32();
        var created = AddEndpoint(channel, requester, 0, "", isOpener: true);
        lock (_endpointsLock) _returnEndpoints[requester.Value] = created;
        return created;
    }

    /// <summary>Takes the next message without waiting; false when there is none.</summary>
    public bool TryReceive(out Message message) => Receive(out message, TimeSpan.Zero, default);

    /// <summary>
    /// Waits for the next message on any input of this process (requests, replies to async
    /// requests, notifications, broker notices), at most <paramref name="timeout"/>
    /// (<see cref="Timeout.InfiniteTimeSpan"/>: no limit) or until <paramref name="ct"/> is
    /// cancelled. Spins for the spin budget, then sleeps on the doorbell. The ICAs of the
    /// returned message belong to this process.
    /// </summary>
    public bool Receive(out Message message, TimeSpan timeout, CancellationToken ct = default)
    {
        long deadline = timeout == Timeout.InfiniteTimeSpan ? long.MaxValue
            : Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        while (true)
        {
            lock (_inbox)
                if (_inbox.TryDequeue(out message)) return true;
            if (Monitor.TryEnter(_receiveRole))
            {
                try
                {
                    while (true)
                    {
                        Pump();
                        lock (_inbox)
                            if (_inbox.TryDequeue(out message)) return true;
                        long now = Stopwatch.GetTimestamp();
                        if (now >= deadline || ct.IsCancellationRequested) return false;
                        // Waiting for anything: quiet messages wake this wait too.
                        WaitForInput(deadline, ct, Doorbell.DeepSleeping);
                    }
                }
                finally
                {
                    ReleaseRole();
                }
            }
            WaitAsNonReceiver(deadline);
            if (Stopwatch.GetTimestamp() >= deadline || ct.IsCancellationRequested)
            {
                lock (_inbox) return _inbox.TryDequeue(out message);
            }
        }
    }

    /// <summary>
    /// Waits until some input of this process has a message (without taking it), the timeout
    /// passes or the token is cancelled. For shells that run their own timers.
    /// </summary>
    public bool WaitForInput(TimeSpan timeout, CancellationToken ct = default)
    {
        lock (_inbox) if (_inbox.Count > 0) return true;
        long deadline = timeout == Timeout.InfiniteTimeSpan ? long.MaxValue
            : Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        return WaitForInput(deadline, ct, Doorbell.DeepSleeping);
    }

    private CancellationToken _waitToken;
    private CancellationTokenRegistration _waitRegistration;
    private readonly object _waitTokenLock = new();
    private int _wakeFd = -1;

    /// <summary>
    /// Makes a cancellation of <paramref name="ct"/> wake whoever sleeps on this process's
    /// doorbell. The registration is kept for the next wait with the same token (a server
    /// passes one token for its whole life), so a wait allocates nothing.
    /// </summary>
    private void WakeOnCancel(CancellationToken ct)
    {
        if (!ct.CanBeCanceled || ct == _brokerGone.Token || ct == _waitToken) return;
        lock (_waitTokenLock)
        {
            if (ct == _waitToken) return;
            _waitRegistration.Dispose();
            _waitRegistration = ct.UnsafeRegister(static s => ((KernelConnection)s!).Kick(), this);
            _waitToken = ct;
        }
    }

    /// <summary>
    /// For a loop that sleeps in poll(2) over descriptors of its own besides this process's
    /// inputs (the NIC driver: the pcap descriptor): a datagram socket that becomes readable
    /// when a message arrives while the loop sleeps after <see cref="PrepareToPoll"/>. Made on
    /// first use; its path is derived from the instance and this process's slot.
    /// </summary>
    public int WakeDescriptor
    {
        get
        {
            if (_wakeFd >= 0) return _wakeFd;
            string path = Pool.WakePath(Id.Slot);
            int fd = Interop.Native.BoundDatagramSocket(path);
            if (fd < 0)
                throw new KernelException(KernelError.PoolUnavailable,
                    $"cannot bind the wake socket {path}: errno {System.Runtime.InteropServices.Marshal.GetLastPInvokeError()}");
            _wakeFd = fd;
            return fd;
        }
    }

    /// <summary>
    /// Call right before sleeping in poll(2) on <see cref="WakeDescriptor"/>: from here on a
    /// sender wakes this process through that socket. Returns false, and the caller must not
    /// sleep, when a message is already waiting or <paramref name="ct"/> is cancelled. Call
    /// <see cref="AwakeFromPoll"/> after poll returns.
    /// </summary>
    public bool PrepareToPoll(CancellationToken ct = default)
    {
        _ = WakeDescriptor;
        WakeOnCancel(ct);
        lock (_inbox) if (_inbox.Count > 0) return false;
        var probe = new Probe { Down = _downlink, Owner = this, Kicks = Volatile.Read(ref _kicks) };
        if (!_bell.PrepareToPoll(ref probe)) return false;
        if (!ct.IsCancellationRequested) return true;
        _bell.AwakeFromPoll();
        return false;
    }

    /// <summary>True when a message waits on some input of this process (a cheap check for a loop that spins).</summary>
    public bool HasInput
    {
        get
        {
            lock (_inbox) if (_inbox.Count > 0) return true;
            return new Probe { Down = _downlink, Owner = this, Kicks = Volatile.Read(ref _kicks) }.HasWork();
        }
    }

    /// <summary>After poll(2) returned: senders go back to not waking this process, and the wake socket is emptied.</summary>
    public void AwakeFromPoll()
    {
        _bell.AwakeFromPoll();
        if (_wakeFd >= 0) Interop.Native.DrainDatagrams(_wakeFd);
    }

    /// <param name="sleepValue">
    /// What the doorbell says while this thread sleeps: <see cref="Doorbell.Sleeping"/> when it
    /// waits for its own call's reply (a quiet message does not wake it: it is taken with the
    /// next wake-up), <see cref="Doorbell.DeepSleeping"/> when it waits for anything.
    /// </param>
    private bool WaitForInput(long deadline, CancellationToken ct, int sleepValue)
    {
        WakeOnCancel(ct);
        var probe = new Probe { Down = _downlink, Owner = this, Kicks = Volatile.Read(ref _kicks) };
        long left = deadline == long.MaxValue ? -1 : deadline - Stopwatch.GetTimestamp();
        if (left == 0 || (left < 0 && deadline != long.MaxValue)) return probe.HasWork();
        int ms = left < 0 ? -1 : (int)Math.Min(int.MaxValue, (left * 1000 + Stopwatch.Frequency - 1) / Stopwatch.Frequency);
        long spin = left < 0 ? _spinTicks : Math.Min(_spinTicks, left);
        return _bell.Wait(ref probe, spin, ms, ct, sleepValue);
    }

    private void ReleaseRole()
    {
        Monitor.Exit(_receiveRole);
        if (Volatile.Read(ref _waiterCount) > 0)
            lock (_waiters) Monitor.PulseAll(_waiters);
    }

    private void WaitAsNonReceiver(long deadline)
    {
        Interlocked.Increment(ref _waiterCount);
        try
        {
            lock (_waiters)
            {
                long left = deadline - Stopwatch.GetTimestamp();
                if (left > 0) Monitor.Wait(_waiters, (int)Math.Clamp(left * 1000 / Stopwatch.Frequency, 1, 10));
            }
        }
        finally
        {
            Interlocked.Decrement(ref _waiterCount);
        }
    }

    private Message AwaitReply(PendingCall p, TimeSpan timeout)
    {
        long deadline = timeout == Timeout.InfiniteTimeSpan ? long.MaxValue
            : Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        while (!p.Done)
        {
            ThrowIfBrokerGone();
            if (Monitor.TryEnter(_receiveRole))
            {
                try
                {
                    while (!p.Done)
                    {
                        if (Pump() > 0) continue;
                        if (p.Done) break;
                        ThrowIfBrokerGone();
                        if (p.Endpoint is { IsOpen: false })
                        {
                            Pump();
                            if (p.Done) break;
                            throw new KernelException(KernelError.PeerDied, $"{p.Endpoint} closed while a call was waiting: the server died");
                        }
                        if (Stopwatch.GetTimestamp() >= deadline) throw new KernelException(KernelError.Timeout, "no reply in time");
                        WaitForInput(deadline, _brokerGone.Token, Doorbell.Sleeping);
                    }
                }
                finally
                {
                    ReleaseRole();
                }
            }
            else
            {
                WaitAsNonReceiver(deadline);
                if (!p.Done && Stopwatch.GetTimestamp() >= deadline) throw new KernelException(KernelError.Timeout, "no reply in time");
            }
        }
        if (p.Error != KernelError.None)
            throw new KernelException(p.Error, p.Error == KernelError.PeerDied
                ? $"{p.Endpoint} closed while a call was waiting: the server died"
                : $"the call was refused: {p.Error}");
        return p.Result;
    }

    /// <summary>A call cannot be answered without a broker (no death notice would ever end it).</summary>
    private void ThrowIfBrokerGone()
    {
        if (_brokerGone.IsCancellationRequested)
            throw new KernelException(KernelError.BrokerUnavailable, "the kernel broker is gone: no reply can come");
    }

    /// <summary>Drains every input once (caller holds the receiver role). Returns the number of slots handled.</summary>
    private int Pump()
    {
        int handled = 0;
        while (handled < 64 && _downlink.TryRead(out var m) == RingStatus.Ok)
        {
            handled++;
            HandleFromBroker(m);
        }
        var eps = Volatile.Read(ref _polled);
        if (eps.Length == 0) return handled;
        int start = _pollStart++ % eps.Length;
        for (int k = 0; k < eps.Length; k++)
        {
            var ep = eps[(start + k) % eps.Length];
            for (int i = 0; i < 32 && !ep.ClosedLocally; i++)
            {
                var s = ep.ReceiveRing.TryRead(out var m);
                if (s == RingStatus.Empty) break;
                if (s == RingStatus.Corrupt)
                {
                    Interlocked.Increment(ref Counters._garbage);
                    ep.ClosedLocally = true;
                    RemoveEndpoint(ep);
                    break;
                }
                handled++;
                HandleFromPeer(ep, m);
            }
        }
        return handled;
    }

    private void HandleFromBroker(in RingMessage m)
    {
        switch (m.Kind)
        {
            case MessageKind.ChannelOpened:
                {
                    int index = (int)(m.Channel & 0xFFFF) - 1;
                    if ((uint)index >= (uint)Pool.Layout.MaxChannels) { Interlocked.Increment(ref Counters._garbage); return; }
                    ref var ch = ref Pool.Channel(index);
                    if (ch.ChannelId != m.Channel || ch.ServerProcessId != Id.Value) { Interlocked.Increment(ref Counters._garbage); return; }
                    var ep = AddEndpoint(m.Channel, new ProcessId(ch.ClientProcessId), ch.ServiceId, "", isOpener: false);
                    Enqueue(new Message(MessageKind.ChannelOpened, 0, 0, 0, ep.Peer, ep, default, 0, default, default, default));
                    return;
                }
            case MessageKind.PeerDied:
                {
                    var ep = EndpointOf(m.Channel);
                    if (ep is null) return;
                    ep.ClosedLocally = true;
                    // What the peer sent before it died is ours (its journal was committed first).
                    while (ep.ReceiveRing.TryRead(out var late) == RingStatus.Ok) HandleFromPeer(ep, late);
                    FailPendingOn(ep);
                    RemoveEndpoint(ep);
                    try { Control(ControlOp.CloseChannel, ep.ChannelId, static (w, id) => w.U32(id), out _, out _); }
                    catch (KernelException) { }
                    Enqueue(new Message(MessageKind.PeerDied, 0, 0, m.Word, new ProcessId(m.Source), ep, default, 0, default, default, default));
                    if (Volatile.Read(ref _waiterCount) > 0) lock (_waiters) Monitor.PulseAll(_waiters);
                    return;
                }
            case MessageKind.Refused:
                {
                    var p = FindPending(m.RequestId);
                    if (p is not null)
                    {
                        p.Error = (KernelError)m.Word;
                        p.Done = true;
                        if (Volatile.Read(ref _waiterCount) > 0) lock (_waiters) Monitor.PulseAll(_waiters);
                        return;
                    }
                    Enqueue(new Message(MessageKind.Refused, 0, m.RequestId, m.Word, new ProcessId(m.Source), EndpointOf(m.Channel), default, 0, default, default, default));
                    return;
                }
            case MessageKind.Request or MessageKind.Reply or MessageKind.Notify:
                {
                    // Mediated path: the broker checked and re-assigned the ICAs already.
                    var ep = EndpointOf(m.Channel);
                    if (ep is null) { Interlocked.Increment(ref Counters._garbage); FreeAll(m); return; }
                    Deliver(ep, m, new ProcessId(m.Source), brokerChecked: true);
                    return;
                }
            default:
                Interlocked.Increment(ref Counters._garbage);
                return;
        }
    }

    /// <summary>Calls waiting for a reply on <paramref name="ep"/> fail with PeerDied.</summary>
    private void FailPendingOn(Endpoint ep)
    {
        bool any = false;
        foreach (var p in _pending)
        {
            if (p.Id != 0 && !p.Done && p.Endpoint == ep)
            {
                p.Error = KernelError.PeerDied;
                p.Done = true;
                any = true;
            }
        }
        if (!any) return;
        if (Volatile.Read(ref _waiterCount) > 0) lock (_waiters) Monitor.PulseAll(_waiters);
        Kick();
    }

    private void HandleFromPeer(Endpoint ep, in RingMessage m)
    {
        if (m.Kind is MessageKind.Refused)
        {
            var p = FindPending(m.RequestId);
            if (p is not null)
            {
                p.Error = (KernelError)m.Word;
                p.Done = true;
                if (Volatile.Read(ref _waiterCount) > 0) lock (_waiters) Monitor.PulseAll(_waiters);
            }
            else Interlocked.Increment(ref Counters._garbage);
            return;
        }
        if (m.Kind is not (MessageKind.Request or MessageKind.Reply or MessageKind.Notify) || m.DataCount > RingMessage.MaxData)
        {
            Interlocked.Increment(ref Counters._garbage);
            return;
        }
        Deliver(ep, m, ep.Peer, brokerChecked: false);
    }

    /// <summary>Checks one handle as received from <paramref name="sender"/>; returns its page count or 0.</summary>
    private int Accept(ulong raw, ProcessId sender, bool brokerChecked)
    {
        var h = new IcaHandle(raw);
        var table = new OwnershipTable(Pool);
        if (table.Check(h, out int pages) != KernelError.None) return 0;
        // Owner and count in one load (see OwnershipEntry): a commit never shows half done.
        uint oc = Volatile.Read(ref Pool.Page(h.FirstPage).OwnerAndCount);
        ushort owner = (ushort)oc, tc = (ushort)(oc >> 16);
        if (owner == Id.OwnerTag && tc == h.TransferCount) return pages; // committed (always so when mediated)
        if (brokerChecked) return 0;
        // Journaled by the sender, not yet committed.
        int ahead = (short)(h.TransferCount - tc);
        if (ahead == 1 && owner == sender.OwnerTag) return pages;
        // Several hops journaled and not yet committed (a control ICA that goes round
        // app -> inet -> nic -> app thousands of times a second is hundreds of hops ahead of
        // the last commit): the holder in the table is somewhere up the chain and only the
        // broker's commit can tell. A handle that is not ahead of the table is refused.
        if (ahead >= 2) return pages;
        return 0;
    }

    private void Deliver(Endpoint ep, in RingMessage m, ProcessId sender, bool brokerChecked)
    {
        int n = m.DataCount;
        int cp = m.Control != 0 ? Accept(m.Control, sender, brokerChecked) : -1;
        int p0 = n > 0 ? Accept(m.Data0, sender, brokerChecked) : -1;
        int p1 = n > 1 ? Accept(m.Data1, sender, brokerChecked) : -1;
        int p2 = n > 2 ? Accept(m.Data2, sender, brokerChecked) : -1;
        if (cp == 0 || p0 == 0 || p1 == 0 || p2 == 0)
        {
            Interlocked.Increment(ref Counters._refusedHandles);
            // The handles that did pass are (or, once committed, will be) ours: give them back
            // to the pool rather than leave pages owned by a process that never saw them.
            if (!brokerChecked)
            {
                Span<IcaHandle> keep = stackalloc IcaHandle[1 + RingMessage.MaxData];
                int k = 0;
                if (cp > 0) keep[k++] = new IcaHandle(m.Control);
                if (p0 > 0) keep[k++] = new IcaHandle(m.Data0);
                if (p1 > 0) keep[k++] = new IcaHandle(m.Data1);
                if (p2 > 0) keep[k++] = new IcaHandle(m.Data2);
                if (k > 0) _path.Free(keep[..k]);
            }
            // A refused reply ends the call it answers at once: the caller learns why instead of
            // waiting out its timeout for a reply that has already come and gone.
            if (m.Kind == MessageKind.Reply && FindPending(m.RequestId) is { } refusedCall)
            {
                refusedCall.Error = KernelError.InvalidHandle;
                refusedCall.Done = true;
                if (Volatile.Read(ref _waiterCount) > 0) lock (_waiters) Monitor.PulseAll(_waiters);
            }
            if (m.Kind == MessageKind.Request && (m.Flags & MessageFlags.Sync) != 0 && ep.IsOpen)
            {
                try
                {
                    var r = new RingMessage { Kind = MessageKind.Refused, RequestId = m.RequestId, Word = (int)KernelError.InvalidHandle, Source = Id.Value, Channel = ep.ChannelId };
                    _path.Send(ep, ref r, SendDeadline);
                }
                catch (KernelException) { }
            }
            return;
        }
        var control = cp > 0 ? Lease(m.Control, cp) : default;
        var d0 = p0 > 0 ? new DataIca(Lease(m.Data0, p0), (int)Math.Min(m.Length0, (uint)p0 * PoolLayout.PageSize)) : default;
        var d1 = p1 > 0 ? new DataIca(Lease(m.Data1, p1), (int)Math.Min(m.Length1, (uint)p1 * PoolLayout.PageSize)) : default;
        var d2 = p2 > 0 ? new DataIca(Lease(m.Data2, p2), (int)Math.Min(m.Length2, (uint)p2 * PoolLayout.PageSize)) : default;
        var msg = new Message(m.Kind, m.Flags, m.RequestId, m.Word, sender, ep, control, n, d0, d1, d2);

        if (m.Kind == MessageKind.Reply)
        {
            var pc = FindPending(m.RequestId);
            if (pc is not null)
            {
                pc.Result = msg;
                pc.Done = true;
                if (Volatile.Read(ref _waiterCount) > 0) lock (_waiters) Monitor.PulseAll(_waiters);
                return;
            }
            if ((m.RequestId & AsyncBit) == 0)
            {
                Interlocked.Increment(ref Counters._orphanReplies);
                FreeMessage(msg);
                return;
            }
        }
        Enqueue(msg);
    }

    private IcaLease Lease(ulong raw, int pages)
    {
        var h = new IcaHandle(raw);
        _strict.Grant(h, pages);
        return new IcaLease(this, h, pages);
    }

    /// <summary>Queues a message for Receive; a thread waiting there while another holds the receiver role is woken.</summary>
    private void Enqueue(in Message m)
    {
        lock (_inbox) _inbox.Enqueue(m);
        if (Volatile.Read(ref _waiterCount) > 0) lock (_waiters) Monitor.PulseAll(_waiters);
    }

    /// <summary>Frees every ICA a received message carries.</summary>
    public void FreeMessage(in Message m)
    {
        if (!m.Control.IsNone) Free(m.Control);
        for (int i = 0; i < m.DataCount; i++)
        {
            var d = m.GetData(i);
            if (!d.Ica.IsNone) Free(d.Ica);
        }
    }

    private void FreeAll(in RingMessage m)
    {
        // A mediated slot for a channel this process no longer knows: the ICAs are ours now.
        Span<IcaHandle> hs = stackalloc IcaHandle[1 + RingMessage.MaxData];
        int n = TransferPathHelpers.Collect(m, hs);
        int k = 0;
        for (int i = 0; i < n; i++)
            if (new OwnershipTable(Pool).IsOwnedBy(hs[i], Id)) hs[k++] = hs[i];
        if (k > 0) _path.Free(hs[..k]);
    }
}
