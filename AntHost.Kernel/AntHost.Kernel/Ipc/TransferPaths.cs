// The seam between the message API and the way ICAs change hands. The API
// builds a slot naming the ICAs as the sender holds them; a transfer path moves
// the slot and the ownership. Which path a process uses is not its choice: the
// broker records it in the pool header at start, so every process of an
// instance agrees. A third path is a third implementation of ITransferPath on
// the process side plus its commit rule in the broker (BrokerTransferRules).
//
// Direct: the sender (holding the channel's producer lock) first makes sure
// the peer ring has room, then appends a transfer record to its journal (the
// uplink ring, consumed by the broker), then rewrites the handles to the
// receiver's transfer count and publishes the slot on the peer ring. Journal
// before publish is the rule that keeps the broker's picture exact: every ICA a
// receiver can see has a record that the broker will read before it reclaims
// anything.
//
// Mediated: the slot goes on the uplink; the broker checks that the sender owns
// every ICA at the given transfer count, re-assigns them in the table and only
// then writes the slot (with the receiver's handles) on the receiver's downlink.
using System.Diagnostics;
using AntHost.Kernel.Pool;

namespace AntHost.Kernel.Ipc;

internal interface ITransferPath
{
    TransferMode Mode { get; }

    /// <summary>Sends <paramref name="message"/> to the peer of <paramref name="endpoint"/>, transferring every ICA it names.</summary>
    void Send(Endpoint endpoint, ref RingMessage message, long deadline);

    /// <summary>Returns ICAs to the pool (the broker applies it).</summary>
    void Free(ReadOnlySpan<IcaHandle> handles);
}

/// <summary>The process's uplink to the broker: its journal ring (and, mediated, its message ring).</summary>
internal sealed class Uplink
{
    private readonly object _lock = new();
    private readonly SpscRing _ring;
    private readonly Doorbell _broker;
    private readonly Func<bool> _brokerAlive;

    private readonly CancellationToken _brokerGone;

    /// <param name="brokerGone">Cancelled once the broker's death was seen (BrokerWatch): a full journal then fails at once, not after 2 s.</param>
    public Uplink(SpscRing ring, Doorbell broker, Func<bool> brokerAlive, CancellationToken brokerGone = default)
    {
        _ring = ring;
        _broker = broker;
        _brokerAlive = brokerAlive;
        _brokerGone = brokerGone;
    }

    public object Lock => _lock;

    /// <summary>Writes one slot (caller holds <see cref="Lock"/>); waits for room, waking the broker when full.</summary>
    public void WriteLocked(in RingMessage m, bool wakeAlways)
    {
        long start = 0;
        while (true)
        {
            var s = _ring.TryWrite(m);
            if (s == RingStatus.Ok) break;
            if (s == RingStatus.Corrupt) throw new KernelException(KernelError.CutOff, "the journal ring is corrupt (this process was cut off)");
            // Full: the broker must drain it now.
            if (_brokerGone.IsCancellationRequested)
                throw new KernelException(KernelError.BrokerUnavailable, "the journal is full and the broker that drains it is gone");
            _broker.Wake();
            if (start == 0) start = Stopwatch.GetTimestamp();
            else if (Stopwatch.GetElapsedTime(start).TotalSeconds > 2 && !_brokerAlive())
                throw new KernelException(KernelError.BrokerUnavailable, "the broker does not drain the journal: it is gone");
            Thread.Yield();
        }
        if (wakeAlways) _broker.Ring();
        else if (_ring.IsAtLeastHalfFull) _broker.Wake();
        else _broker.RingIfDeepSleeping();
    }

    public void Journal(MessageKind kind, uint destination, ReadOnlySpan<IcaHandle> handles, MessageFlags flags = MessageFlags.None)
    {
        lock (_lock) JournalLocked(kind, destination, handles, flags);
    }

    public void JournalLocked(MessageKind kind, uint destination, ReadOnlySpan<IcaHandle> handles, MessageFlags flags = MessageFlags.None)
    {
        while (!handles.IsEmpty)
        {
            int n = Math.Min(RingMessage.MaxJournalHandles, handles.Length);
            var rec = new RingMessage { Kind = kind, Flags = flags, JournalCount = (byte)n, JournalDestination = destination };
            for (int i = 0; i < n; i++) rec.SetJournalHandle(i, handles[i].Value);
            WriteLocked(rec, wakeAlways: false);
            handles = handles[n..];
        }
    }
}

internal static class TransferPathHelpers
{
    /// <summary>The handles a slot names (control first), as held by the sender.</summary>
    public static int Collect(in RingMessage m, Span<IcaHandle> into)
    {
        int n = 0;
        if (m.Control != 0) into[n++] = new IcaHandle(m.Control);
        for (int i = 0; i < m.DataCount; i++) into[n++] = new IcaHandle(m.GetData(i));
        return n;
    }

    public static void AdvanceTransferCounts(ref RingMessage m)
    {
        if (m.Control != 0) m.Control = new IcaHandle(m.Control).NextTransfer().Value;
        if (m.DataCount > 0) m.Data0 = new IcaHandle(m.Data0).NextTransfer().Value;
        if (m.DataCount > 1) m.Data1 = new IcaHandle(m.Data1).NextTransfer().Value;
        if (m.DataCount > 2) m.Data2 = new IcaHandle(m.Data2).NextTransfer().Value;
    }

    /// <summary>Waits for room on a ring this thread produces to; false when the deadline passed.</summary>
    public static bool WaitForRoom(SpscRing ring, Endpoint endpoint, long deadline)
    {
        int spins = 0;
        while (true)
        {
            long c = ring.Count;
            if (c < 0) throw new KernelException(KernelError.PeerDied, $"{endpoint} has a corrupt ring");
            if (c < ring.Capacity) return true;
            if (!endpoint.IsOpen) throw new KernelException(KernelError.PeerDied, $"{endpoint} is closed: its peer died");
            if (Stopwatch.GetTimestamp() > deadline) return false;
            if (++spins < 1000) Thread.Yield();
            else Thread.Sleep(1);
        }
    }
}

internal sealed class DirectTransferPath : ITransferPath
{
    private readonly Uplink _uplink;
    private readonly StrictGuard _strict;

    public DirectTransferPath(Uplink uplink, StrictGuard strict)
    {
        _uplink = uplink;
        _strict = strict;
    }

    public TransferMode Mode => TransferMode.Direct;

    public void Send(Endpoint endpoint, ref RingMessage message, long deadline)
    {
        Span<IcaHandle> handles = stackalloc IcaHandle[1 + RingMessage.MaxData];
        lock (endpoint.SendLock)
        {
            int n;
            try
            {
                if (!endpoint.IsOpen) throw new KernelException(KernelError.PeerDied, $"{endpoint} is closed: its peer died");
                if (!TransferPathHelpers.WaitForRoom(endpoint.SendRing, endpoint, deadline))
                    throw new KernelException(KernelError.RingFull, $"{endpoint}: the peer does not consume its ring");
                n = TransferPathHelpers.Collect(message, handles);
                if (n > 0) _uplink.Journal(MessageKind.JournalTransfer, endpoint.Peer.Value, handles[..n], message.Flags & MessageFlags.Lend);
            }
            catch (KernelException e)
            {
                // Nothing was journaled (one record holds every handle of a slot): still ours.
                throw new KernelException(e.Error, e.Message) { HandlesKept = true };
            }
            _strict.Revoke(handles[..n]);
            TransferPathHelpers.AdvanceTransferCounts(ref message);
            var s = endpoint.SendRing.TryWrite(message);
            if (s != RingStatus.Ok) throw new KernelException(KernelError.PeerDied, $"{endpoint}: ring became unusable ({s})");
            if ((message.Flags & MessageFlags.Quiet) != 0) endpoint.PeerBell.RingIfDeepSleeping();
            else endpoint.PeerBell.Ring();
        }
    }

    public void Free(ReadOnlySpan<IcaHandle> handles)
    {
        _strict.Revoke(handles);
        _uplink.Journal(MessageKind.JournalFree, 0, handles);
    }
}

internal sealed class MediatedTransferPath : ITransferPath
{
    private readonly Uplink _uplink;
    private readonly StrictGuard _strict;

    public MediatedTransferPath(Uplink uplink, StrictGuard strict)
    {
        _uplink = uplink;
        _strict = strict;
    }

    public TransferMode Mode => TransferMode.Mediated;

    public void Send(Endpoint endpoint, ref RingMessage message, long deadline)
    {
        if (!endpoint.IsOpen) throw new KernelException(KernelError.PeerDied, $"{endpoint} is closed: its peer died") { HandlesKept = true };
        Span<IcaHandle> handles = stackalloc IcaHandle[1 + RingMessage.MaxData];
        int n = TransferPathHelpers.Collect(message, handles);
        message.Channel = endpoint.ChannelId;
        lock (_uplink.Lock)
        {
            try
            {
                _uplink.WriteLocked(message, wakeAlways: true);
            }
            catch (KernelException e)
            {
                throw new KernelException(e.Error, e.Message) { HandlesKept = true };
            }
            _strict.Revoke(handles[..n]);
        }
    }

    public void Free(ReadOnlySpan<IcaHandle> handles)
    {
        _strict.Revoke(handles);
        _uplink.Journal(MessageKind.JournalFree, 0, handles);
    }
}
