// The pump: the broker's one thread that reads uplinks. On the direct path it
// commits journals; on the mediated path it checks and forwards messages. The
// rules of each path sit behind IBrokerTransferRules (the broker half of the
// transfer-path seam; the process half is ITransferPath).
//
// Batching (direct path). After a pass that found work, the broker sleeps on a
// long timer (CommitIntervalMs, 100 ms) with its doorbell saying "sleeping on a
// timer": senders do not wake it, their records simply wait for the next pass.
// Only after a timed sleep that found nothing does it sleep without a timer
// ("deep"), and then the first record written wakes it. A journal at least half
// full wakes it at once; an allocation that comes short and every reclaim commit
// first. So while requests flow the broker costs one wake-up per interval (plus
// one per half journal), never one per request, and an idle instance costs
// nothing.
//
// Ordering. Records are applied in each uplink's order. A record that hands
// over an ICA whose earlier transfer (to this sender) is still in another
// journal is deferred: that uplink stops at it and the pass goes on with the
// others; passes repeat while they make progress. Because every sender
// journals before it publishes, the earlier record is visible by the pass
// after the one that deferred. A record still deferred after a whole pass in
// which nothing moved names a transfer nobody journaled: it is skipped and
// counted (see SkipDeferredLocked). A record that names an ICA the sender does
// not own at its own transfer count (or a stale, freed, forged handle) is the
// fault the direct path punishes: the sender is cut off.
using AntHost.Kernel;
using AntHost.Kernel.Ipc;
using AntHost.Kernel.Pool;
using Microsoft.Extensions.Logging;

namespace AntHost.Broker;

internal enum UplinkResult
{
    Consumed,
    /// <summary>Leave the record at the head of the uplink and retry in a later pass.</summary>
    Blocked,
}

/// <summary>The broker half of a transfer path: what an uplink slot means and how it is applied.</summary>
internal interface IBrokerTransferRules
{
    UplinkResult Handle(KernelBroker broker, ProcState sender, ref RingMessage message, long pass);
}

internal sealed unsafe partial class KernelBroker
{
    private volatile bool _stopping;
    private Thread? _pump;

    public void StartPump()
    {
        _pump = new Thread(PumpLoop) { IsBackground = true, Name = "anthost-broker-pump" };
        _pump.Start();
    }

    public void StopPump()
    {
        _stopping = true;
        _bell.Wake();
        _pump?.Join(TimeSpan.FromSeconds(2));
    }

    private struct UplinkProbe : IWorkProbe
    {
        public KernelBroker Broker;
        public bool UrgentOnly;
        public readonly bool HasWork()
        {
            if (Broker._stopping) return true;
            foreach (var p in Broker._procs)
            {
                if (p is null) continue;
                if (UrgentOnly ? p.Uplink.IsAtLeastHalfFull : p.Uplink.HasData) return true;
            }
            return false;
        }
    }

    private void PumpLoop()
    {
        long spin = (long)(_options.SpinBudget.TotalSeconds * System.Diagnostics.Stopwatch.Frequency);
        bool mediated = _options.Transfer == TransferMode.Mediated;
        bool timed = false;
        while (!_stopping)
        {
            bool worked, pending;
            lock (_gate)
            {
                worked = PassesLocked(out pending);
            }
            if (_stopping) break;
            if (mediated && !pending)
            {
                var probe = new UplinkProbe { Broker = this };
                _bell.Wait(ref probe, spin, -1, default, Doorbell.DeepSleeping);
                continue;
            }
            if (worked || pending)
            {
                // Work came in (or waits): commit again after the interval, unless a journal fills.
                var probe = new UplinkProbe { Broker = this, UrgentOnly = !mediated };
                _bell.Wait(ref probe, 0, _options.CommitIntervalMs, default, Doorbell.Sleeping);
                timed = true;
                continue;
            }
            if (timed)
            {
                // One more interval with nothing new: sleep until a record arrives.
                timed = false;
                var deep = new UplinkProbe { Broker = this };
                _bell.Wait(ref deep, 0, -1, default, Doorbell.DeepSleeping);
            }
            else
            {
                var deep = new UplinkProbe { Broker = this };
                _bell.Wait(ref deep, 0, -1, default, Doorbell.DeepSleeping);
            }
        }
    }

    /// <summary>
    /// Passes over every uplink while they make progress, then judges deferred records.
    /// Returns true if anything was applied.
    /// </summary>
    private bool PassesLocked(out bool pending)
    {
        bool any = false;
        for (int judged = 0; judged < _procs.Length; judged++)
        {
            long idlePass = 0;
            for (int round = 0; round < 64; round++)
            {
                bool progress = OnePassLocked();
                any |= progress;
                if (!progress) { idlePass = _pass; break; }
            }
            if (idlePass == 0 || !JudgeDeferredLocked(idlePass)) break;
        }
        pending = FlushPendingDown();
        foreach (var p in _procs)
            if (p is not null && !p.Dead && (p.Uplink.HasData || p.BlockedSince != 0)) pending = true;
        if (any) Count(BrokerCounter.JournalBatches);
        return any;
    }

    /// <summary>
    /// A record still deferred after a pass in which nothing moved, and for longer than
    /// <see cref="StaleDeferral"/>, names a transfer nobody journaled: the oldest such
    /// record is skipped, which lets its uplink go on. A legitimate deferral resolves within
    /// a pass or two (its predecessor was journaled before the receiver could even see the
    /// ICA), so the time bound only ever delays a forger's own uplink. Returns true when one
    /// was skipped.
    /// </summary>
    private bool JudgeDeferredLocked(long idlePass)
    {
        if (_rules is not DirectRules) return false;
        long now = System.Diagnostics.Stopwatch.GetTimestamp();
        ProcState? oldest = null;
        foreach (var p in _procs)
        {
            if (p is null || p.Dead || p.BlockedSince == 0 || p.BlockedSince >= idlePass) continue;
            if (System.Diagnostics.Stopwatch.GetElapsedTime(p.BlockedSinceTicks, now) < StaleDeferral) continue;
            if (oldest is null || p.BlockedSinceTicks < oldest.BlockedSinceTicks) oldest = p;
        }
        if (oldest is null) return false;
        DumpUplinks();
        SkipDeferredLocked(oldest);
        return true;
    }

    private void DumpUplinks()
    {
        foreach (var p in _procs)
        {
            if (p is null) continue;
            var st = p.Uplink.TryPeek(out var hm);
            _log.LogDebug("  uplink of {Name}: {Count} records, head {Kind} progress {Prog} handle {H} ({T}), blocked since {B}",
                p.Name, p.Uplink.Count, st == RingStatus.Ok ? hm.Kind : MessageKind.None, p.RecordProgress,
                st == RingStatus.Ok ? new IcaHandle(hm.GetJournalHandle(p.RecordProgress)) : default,
                st == RingStatus.Ok ? Describe(new IcaHandle(hm.GetJournalHandle(p.RecordProgress))) : "", p.BlockedSince);
        }
    }

    /// <summary>How long a record may wait for its predecessor before it is judged a forgery.</summary>
    internal static readonly TimeSpan StaleDeferral = TimeSpan.FromMilliseconds(250);

    private void SkipDeferredLocked(ProcState p)
    {
        if (p.Uplink.TryPeek(out var m) != RingStatus.Ok) { p.BlockedSince = 0; return; }
        // Not applied, and not a cut-off: the record claims a transfer nobody journaled. Either
        // the claimant made the handle up, or the ICA's owner published it without journaling
        // it; the broker cannot tell which, and honouring neither keeps the table right. The
        // ICA stays with its owner in the table, and every receiver's check refuses the handle.
        CountBad();
        _log.LogWarning("{Name} {Id}: journal names {Handle}, never transferred to it; record skipped ({Table})",
            p.Name, p.Id, new IcaHandle(m.GetJournalHandle(p.RecordProgress)), Describe(new IcaHandle(m.GetJournalHandle(p.RecordProgress))));
        p.RecordProgress++;
        p.BlockedSince = 0;
        if (p.RecordProgress >= m.JournalCount)
        {
            p.RecordProgress = 0;
            p.Uplink.Advance();
        }
    }

    private bool OnePassLocked()
    {
        long pass = ++_pass;
        bool progress = false;
        foreach (var p in _procs)
        {
            if (p is null || p.Dead) continue;
            progress |= DrainUplink(p, pass);
        }
        return progress;
    }

    /// <summary>
    /// Drains every uplink before a reclaim, so the table is exact. The departing process's
    /// deferred records wait for their predecessors, which other processes may still be
    /// journaling at this moment (they run on while the broker holds its lock): the drain
    /// retries for up to <see cref="StaleDeferral"/> before it gives a record up.
    /// </summary>
    private void DrainAllLocked(ProcState? finalFor)
    {
        PassesLocked(out _);
        if (finalFor is not null && !finalFor.Dead && finalFor.BlockedSince != 0)
        {
            var waited = System.Diagnostics.Stopwatch.StartNew();
            while (finalFor.BlockedSince != 0 && waited.Elapsed < StaleDeferral)
            {
                Thread.Sleep(1);
                PassesLocked(out _);
            }
            for (int i = 0; i < 4096 && finalFor.BlockedSince != 0; i++)
            {
                DumpUplinks();
                SkipDeferredLocked(finalFor);
                PassesLocked(out _);
            }
        }
        FlushPendingDown();
    }

    private bool DrainUplink(ProcState p, long pass)
    {
        bool progress = false;
        for (int i = 0; i < 4096; i++)
        {
            var s = p.Uplink.TryPeek(out var m);
            if (s == RingStatus.Empty) break;
            if (s == RingStatus.Corrupt)
            {
                CountBad();
                CutOffLocked(p, "its uplink ring indices are corrupt");
                p.Uplink.Reset();
                break;
            }
            int before = p.RecordProgress;
            var r = _rules.Handle(this, p, ref m, pass);
            if (r == UplinkResult.Blocked)
            {
                // Part of a record applied is progress too: another uplink may be waiting on it.
                progress |= p.RecordProgress != before;
                if (p.BlockedSince == 0)
                {
                    p.BlockedSince = pass;
                    p.BlockedSinceTicks = System.Diagnostics.Stopwatch.GetTimestamp();
                }
                break;
            }
            p.BlockedSince = 0;
            p.RecordProgress = 0;
            p.Uplink.Advance();
            progress = true;
        }
        return progress;
    }

    /// <summary>Applies every journal now (the Commit control operation).</summary>
    public void CommitNow()
    {
        lock (_gate)
        {
            PassesLocked(out _);
            // A second round of passes lets a deferred record see its predecessor (or be judged).
            PassesLocked(out _);
            PassesLocked(out _);
        }
    }
}

/// <summary>Direct path: uplinks carry journals (transfers and frees) to commit.</summary>
internal sealed class DirectRules : IBrokerTransferRules
{
    public UplinkResult Handle(KernelBroker b, ProcState sender, ref RingMessage m, long pass)
    {
        switch (m.Kind)
        {
            case MessageKind.JournalTransfer:
            case MessageKind.JournalFree:
                {
                    int n = m.JournalCount;
                    if (n is < 1 or > RingMessage.MaxJournalHandles)
                    {
                        b.CountBad();
                        b.Refuse(sender, m, KernelError.Malformed);
                        return UplinkResult.Consumed;
                    }
                    bool transfer = m.Kind == MessageKind.JournalTransfer;
                    bool lend = transfer && (m.Flags & MessageFlags.Lend) != 0;
                    var dest = new ProcessId(m.JournalDestination);
                    for (int i = sender.RecordProgress; i < n; i++)
                    {
                        var h = new IcaHandle(m.GetJournalHandle(i));
                        switch (b.Judge(sender.Id, h))
                        {
                            case KernelBroker.Verdict.Owned:
                                if (transfer && b.LiveProcess(dest) is { CutOff: false } to) b.ApplyTransfer(h, sender.Id, to.Id, lend);
                                else if (!lend) b.ApplyFree(h, reclaimed: transfer); // freed, or sent to a process that is gone
                                // else: lent to a process that is gone: it stays the lender's
                                break;
                            case KernelBroker.Verdict.Future:
                                sender.RecordProgress = i;
                                return UplinkResult.Blocked;
                            case KernelBroker.Verdict.ReclaimedFromDead:
                                // Received from a process that died before its own journal reached us: not this sender's fault.
                                b.CountBad();
                                break;
                            default:
                                b.CutOff(sender, $"its journal {(transfer ? "hands over" : "frees")} {h}, which it does not own ({b.Describe(h)})");
                                break;
                        }
                    }
                    return UplinkResult.Consumed;
                }
            default:
                b.CountBad();
                b.Refuse(sender, m, m.Kind is MessageKind.Request or MessageKind.Reply or MessageKind.Notify ? KernelError.WrongMode : KernelError.Malformed);
                return UplinkResult.Consumed;
        }
    }
}

/// <summary>Mediated path: uplinks carry messages that the broker checks, re-assigns and forwards.</summary>
internal sealed class MediatedRules : IBrokerTransferRules
{
    public UplinkResult Handle(KernelBroker b, ProcState sender, ref RingMessage m, long pass)
    {
        switch (m.Kind)
        {
            case MessageKind.Request or MessageKind.Reply or MessageKind.Notify or MessageKind.Refused:
                {
                    if (sender.CutOff) { b.Refuse(sender, m, KernelError.CutOff); return UplinkResult.Consumed; }
                    if (m.DataCount > RingMessage.MaxData || (m.Kind == MessageKind.Refused && (m.Control != 0 || m.DataCount != 0)))
                    {
                        b.CountBad();
                        b.Refuse(sender, m, KernelError.Malformed);
                        return UplinkResult.Consumed;
                    }
                    var to = b.ChannelPeer(sender, m.Channel);
                    if (to is null)
                    {
                        b.Refuse(sender, m, KernelError.PeerDied);
                        return UplinkResult.Consumed;
                    }
                    Span<IcaHandle> hs = stackalloc IcaHandle[1 + RingMessage.MaxData];
                    int n = TransferPathHelpers.Collect(m, hs);
                    for (int i = 0; i < n; i++)
                    {
                        for (int j = 0; j < i; j++)
                            if (hs[j].FirstPage == hs[i].FirstPage) { b.Refuse(sender, m, KernelError.InvalidHandle); return UplinkResult.Consumed; }
                        var v = b.Judge(sender.Id, hs[i]);
                        if (v != KernelBroker.Verdict.Owned)
                        {
                            b.Refuse(sender, m, v == KernelBroker.Verdict.Invalid ? KernelError.NotOwner : KernelError.StaleHandle);
                            return UplinkResult.Consumed;
                        }
                    }
                    if (!KernelBroker.HasRoomDown(to)) return UplinkResult.Blocked; // receiver's downlink full: keep it, retry
                                                                                    // The table first: the receiver checks it as soon as the slot is visible.
                    bool lend = (m.Flags & MessageFlags.Lend) != 0;
                    for (int i = 0; i < n; i++) b.ApplyTransfer(hs[i], sender.Id, to.Id, lend);
                    var fwd = m;
                    fwd.Source = sender.Id.Value;
                    TransferPathHelpers.AdvanceTransferCounts(ref fwd);
                    b.TryForward(to, fwd);
                    b.CountForwarded();
                    return UplinkResult.Consumed;
                }
            case MessageKind.JournalFree:
                {
                    int n = m.JournalCount;
                    if (n is < 1 or > RingMessage.MaxJournalHandles)
                    {
                        b.CountBad();
                        b.Refuse(sender, m, KernelError.Malformed);
                        return UplinkResult.Consumed;
                    }
                    for (int i = 0; i < n; i++)
                    {
                        var h = new IcaHandle(m.GetJournalHandle(i));
                        if (b.Judge(sender.Id, h) == KernelBroker.Verdict.Owned) b.ApplyFree(h, reclaimed: false);
                        else b.Refuse(sender, m, KernelError.NotOwner);
                    }
                    return UplinkResult.Consumed;
                }
            default:
                b.CountBad();
                b.Refuse(sender, m, m.Kind == MessageKind.JournalTransfer ? KernelError.WrongMode : KernelError.Malformed);
                return UplinkResult.Consumed;
        }
    }
}
