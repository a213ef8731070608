// The life of a frame inet hands the driver, in one object with one owner (this table):
//
//   deferred   an app's one-ICA send that TCP put on the wire in place; its reply waits for
//              the flush to learn whether the frame leaves now (Defer);
//   forwarded  the frame left with the app's control ICA (direct return): the driver answers
//              the app itself and gives the data ICA back with TxDataBack (Forward);
//   lent       a frame of inet's own transmit request (up to three per request, the request's
//              control ICA recorded on the first), lent until the completion (Lend);
//   back       the data ICA came back (Back): the buffer is finished, the record recycled;
//   driver gone  the driver died holding it: the frame is taken back (or marked lost) and
//              finished, a forwarded send's app is answered by inet (DriverGone).
//
// A deferred send whose frame did not leave in the flush (waiting for ARP, no driver, ring
// full) is answered by inet at the flush's end (EndFlush). Frames with the driver are found
// by the first page of the ICA lent (the payload's for an offload frame); a deferred send by
// the buffer's reference to its record. Records are recycled, so a send allocates nothing.
using AntHost.Inet.Abi;
using AntHost.Inet.Buffers;
using AntHost.Kernel;
using AntHost.Kernel.Ipc;
using AntHost.Kernel.Pool;
using Microsoft.Extensions.Logging;

namespace AntHost.Inet;

/// <summary>Where a <see cref="Transmit"/> stands.</summary>
public enum TransmitStage : byte
{
    /// <summary>An app's send went in place; the flush decides who answers it.</summary>
    Deferred,
    /// <summary>With the driver, the app's control ICA with it (direct return).</summary>
    Forwarded,
    /// <summary>With the driver in a transmit request of inet's own.</summary>
    Lent,
}

/// <summary>One frame's life from an app's send (or the core's queue) to the driver and back (see <see cref="Transmits"/>).</summary>
public sealed class Transmit
{
    public TransmitStage Stage { get; internal set; }

    /// <summary>The frame (for an offload frame, the headers' buffer; its payload is the fragment).</summary>
    public IcaPacketBuffer Frame { get; internal set; } = null!;

    /// <summary>The app's send request this frame answers (deferred or forwarded), while <see cref="HasApp"/>.</summary>
    internal Message App;

    /// <summary>False once the app is gone (or was answered by inet).</summary>
    public bool HasApp { get; internal set; }

    /// <summary>Bytes the app's send gave TCP (its result).</summary>
    public long Bytes { get; internal set; }

    /// <summary>The control ICA lent with the frame: the app's (forwarded) or the request's (first frame of a lent batch); none else.</summary>
    public IcaHandle Control { get; internal set; }

    public bool HasControl { get; internal set; }

    /// <summary>The buffer whose ICA the driver holds: the payload's for an offload frame, else the frame's own.</summary>
    public IcaPacketBuffer Lent => Frame.Fragment as IcaPacketBuffer ?? Frame;

    internal void Clear()
    {
        Frame = null!;
        App = default;
        HasApp = false;
        Bytes = 0;
        Control = default;
        HasControl = false;
    }
}

/// <summary>The table of every frame's life between the socket manager, the flush and the driver (see the file comment).</summary>
public sealed class Transmits
{
    /// <summary>Frames with the driver at most (the in-flight table's size).</summary>
    public const int MaxInFlight = 4096;

    /// <summary>Sends deferred in one round at most; more are answered by inet at once.</summary>
    public const int MaxDeferred = 256;

    private readonly IInetKernel _kernel;
    private readonly AppReplies _replies;
    private readonly long[] _stats;
    private readonly ILogger _log;
    private readonly uint _serviceId;
    private readonly Dictionary<uint, Transmit> _inFlight = new(MaxInFlight);
    private readonly Transmit[] _deferred = new Transmit[MaxDeferred];
    private int _deferredCount;
    private readonly Stack<Transmit> _free = new(MaxDeferred * 2);
    private readonly DataIca[] _one = new DataIca[1];

    public Transmits(IInetKernel kernel, AppReplies replies, long[] stats, uint serviceId, ILogger log)
    {
        _kernel = kernel;
        _replies = replies;
        _stats = stats;
        _serviceId = serviceId;
        _log = log;
        for (int i = 0; i < MaxDeferred * 2; i++) _free.Push(new Transmit());
    }

    /// <summary>Frames with the driver now (forwarded and lent).</summary>
    public int InFlight => _inFlight.Count;

    /// <summary>Sends waiting for the flush.</summary>
    public int Deferred => _deferredCount;

    /// <summary>Every frame with the driver (for tests and invariants).</summary>
    public Dictionary<uint, Transmit>.ValueCollection WithDriver => _inFlight.Values;

    private void Count(InetStat s, long n = 1) => _stats[(int)s] += n;

    private Transmit Take() => _free.TryPop(out var t) ? t : new Transmit();

    private void Recycle(Transmit t)
    {
        t.Clear();
        _free.Push(t);
    }

    private static uint Key(Transmit t) => t.Lent.Lease.Handle.FirstPage;

    // ---- deferred --------------------------------------------------------------------------

    /// <summary>
    /// An app's send whose one data ICA TCP lent to IP at once: its reply (the result already
    /// written) waits for the flush. False when the round has no room: the caller answers.
    /// </summary>
    public bool Defer(in Message app, IcaPacketBuffer frame, long bytes)
    {
        if (_deferredCount == MaxDeferred) return false;
        var t = Take();
        t.Stage = TransmitStage.Deferred;
        t.Frame = frame;
        t.App = app;
        t.HasApp = true;
        t.Bytes = bytes;
        frame.Transmit = t;
        _deferred[_deferredCount++] = t;
        return true;
    }

    /// <summary>The deferred send <paramref name="frame"/> is the frame of, if its app still waits.</summary>
    public bool TryGetDeferred(IcaPacketBuffer frame, out Transmit t)
    {
        t = frame.Transmit!;
        return t is { Stage: TransmitStage.Deferred, HasApp: true } && t.Frame == frame;
    }

    /// <summary>
    /// Direct return of a deferred send: the app's frame is popped (inet has read it), the
    /// Transmit frame pushed with DirectReturn, and the app's control ICA forwarded to the driver
    /// with the one data ICA, which the driver gives back with TxDataBack and TCP keeps until
    /// acknowledged. Both ICAs are lent: a driver that dies holding them gives them back
    /// (<see cref="DriverGone"/>). False when nothing was handed over (the flush sends the
    /// frame in a batch and inet answers the app).
    /// </summary>
    public bool Forward(Transmit t, Endpoint driver)
    {
        var b = t.Frame;
        var control = t.App.Control;
        if (_inFlight.Count >= MaxInFlight || !ControlIca.TryOpen(control.Span, out var c)) return false;
        // A requester that does not wait for the result (a posted send) gets it quietly from the driver too.
        var quiet = c.TryGetFrame(c.FrameCount - 1, out var app) ? app.Flags & RequestFrameFlags.QuietReturn : RequestFrameFlags.None;
        c.TryPopFrame();
        if (!c.TryPushFrame(new RequestFrame(_serviceId, (ushort)NicOp.Transmit, RequestFrameFlags.DirectReturn | RequestFrameFlags.WantsDataBack | quiet, _kernel.Id.Value, 0), out var args))
            return false;
        TransmitArgs.Begin(args, 1);
        TransmitArgs.SetFrame(args, 0, b.Start, b.Length);
        _one[0] = new DataIca(b.Lease, b.Start + b.Length);
        try
        {
            _kernel.Forward(driver, control, (ushort)NicOp.Transmit, _one, InetTraceStage.InetTransmit, lend: true);
        }
        catch (KernelException e) when (e.Error == KernelError.RingFull)
        {
            // Nothing was handed over: inet answers the app itself.
            _one[0] = default;
            Count(InetStat.TxSendFailures);
            return false;
        }
        catch (KernelException e)
        {
            // The driver died: the frame and the control ICA were lent either way, so they
            // count as with the driver and its death notice settles them.
            Count(InetStat.TxSendFailures);
            _log.LogDebug("direct transmit failed: {Error}", e.Message);
        }
        _one[0] = default;
        Count(InetStat.TransmitRequests);
        Count(InetStat.FramesToDriver);
        Count(InetStat.DirectReturns);
        b.MarkInFlight();
        t.Stage = TransmitStage.Forwarded;
        t.Control = control.Handle;
        t.HasControl = true;
        _inFlight[Key(t)] = t;
        return true;
    }

    /// <summary>The flush is over: deferred sends whose frame did not go with their control ICA are answered by inet.</summary>
    public void EndFlush()
    {
        for (int i = 0; i < _deferredCount; i++)
        {
            var t = _deferred[i];
            _deferred[i] = null!;
            if (t.Frame.Transmit == t) t.Frame.Transmit = null;
            if (t.Stage != TransmitStage.Deferred) continue; // forwarded: the in-flight table has it
            if (t.HasApp)
            {
                Count(InetStat.SendsAnsweredByInet);
                _replies.Reply(t.App, InetStatus.Ok);
            }
            Recycle(t);
        }
        _deferredCount = 0;
    }

    // ---- lent ------------------------------------------------------------------------------

    /// <summary>A frame of inet's own transmit request went to the driver (<paramref name="control"/>: the request's, on its first frame).</summary>
    public void Lend(IcaPacketBuffer frame, IcaHandle control, bool hasControl)
    {
        var t = Take();
        t.Stage = TransmitStage.Lent;
        t.Frame = frame;
        t.Control = control;
        t.HasControl = hasControl;
        t.Lent.MarkInFlight();
        _inFlight[Key(t)] = t;
    }

    // ---- back ------------------------------------------------------------------------------

    /// <summary>
    /// A data ICA the driver gave back (a completion of inet's request, or TxDataBack of a
    /// direct return): the frame's life ends. False when it was not a frame lent (the caller
    /// frees it). <paramref name="heldControl"/> is the control ICA of inet's transmit request
    /// the record held (none when it held none): it came back with the frame, or comes later.
    /// </summary>
    public bool Back(IcaLease ica, TransmitResult result, out IcaHandle heldControl)
    {
        heldControl = default;
        if (!_inFlight.Remove(ica.Handle.FirstPage, out var t)) return false;
        if (t.HasControl) heldControl = t.Control;
        t.Lent.Rebind(ica);
        Count(result == TransmitResult.Sent ? InetStat.FramesSent : InetStat.FramesNotSent);
        t.Frame.FinishTransmit();
        Recycle(t);
        return true;
    }

    /// <summary>
    /// A transmit request's control ICA came back without the frame whose record held it (a
    /// driver that kept that frame): the record must not take it back later.
    /// </summary>
    public void ControlBack(IcaHandle control)
    {
        foreach (var t in _inFlight.Values)
            if (t.HasControl && t.Stage == TransmitStage.Lent && t.Control.FirstPage == control.FirstPage) t.HasControl = false;
    }

    // ---- deaths ----------------------------------------------------------------------------

    /// <summary>
    /// The driver is gone and the broker has settled what it held: each frame lent to it is
    /// inet's again (or lost when it did not come back) and finished as not sent (TCP
    /// retransmits); a forwarded send never got its result, so inet answers its app with the
    /// control ICA taken back (or a fresh one). Returns (frames back, frames lost).
    /// </summary>
    public (int Back, int Lost) DriverGone()
    {
        int back = 0, lost = 0;
        foreach (var t in _inFlight.Values)
        {
            var ica = t.Lent;
            if (_kernel.TryTakeBack(ica.Lease.Handle, out var lease))
            {
                ica.Rebind(lease);
                back++;
            }
            else
            {
                ica.MarkLost();
                lost++;
            }
            t.Frame.FinishTransmit();
            if (t.Stage == TransmitStage.Forwarded && t.HasApp) AnswerForwarded(t);
            else if (t.HasControl && _kernel.TryTakeBack(t.Control, out var control)) _kernel.Free(control);
            Recycle(t);
        }
        _inFlight.Clear();
        Count(InetStat.FramesNotSent, back);
        Count(InetStat.TxLostWithDriver, lost);
        return (back, lost);
    }

    /// <summary>A forwarded send whose driver died: the bytes were accepted (TCP retransmits them), inet says so.</summary>
    private void AnswerForwarded(Transmit t)
    {
        if (_kernel.TryTakeBack(t.Control, out var control))
        {
            if (ControlIca.TryOpen(control.Span, out var c))
            {
                SocketResult.Begin(c.ResultArea).Value = t.Bytes;
                c.SetResultLength(SocketResult.Length);
                _replies.ReplyWith(t.App, control, InetStatus.Ok);
                return;
            }
            _kernel.Free(control);
        }
        _replies.ReplyFresh(t.App, InetStatus.Ok, t.Bytes);
    }

    /// <summary>
    /// An app's channel closed: its deferred sends' control ICAs are freed (nobody waits for
    /// the answer; the frames still go), and its forwarded sends have nobody to answer.
    /// </summary>
    public void AppGone(Endpoint ep)
    {
        for (int i = 0; i < _deferredCount; i++)
        {
            var t = _deferred[i];
            if (t.Stage != TransmitStage.Deferred || !t.HasApp || t.App.Endpoint != ep) continue;
            _kernel.Free(t.App.Control);
            t.HasApp = false;
            t.App = default;
        }
        foreach (var t in _inFlight.Values)
        {
            if (t.Stage != TransmitStage.Forwarded || !t.HasApp || t.App.Endpoint != ep) continue;
            t.HasApp = false;
            t.App = default;
        }
    }

    /// <summary>Stops: every frame still with the driver is given up as lost.</summary>
    public void Shutdown()
    {
        foreach (var t in _inFlight.Values)
        {
            t.Lent.MarkLost();
            t.Frame.FinishTransmit();
            Recycle(t);
        }
        _inFlight.Clear();
    }
}
