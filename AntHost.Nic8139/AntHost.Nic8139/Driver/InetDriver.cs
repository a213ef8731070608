// The NIC driver's side of the IPC to the inet server. The driver joins the kernel
// instance, opens the inet server's service and attaches (ifattach: MAC, MTU, link).
// From then on ONE thread does all the work, inside the device's loop (NicDevice.Run):
// it sleeps in a single poll(2) over the pcap descriptor and the process's wake socket
// (its doorbell, see KernelConnection.PrepareToPoll), and when it wakes it
//
// - copies each received frame once, out of libpcap's ring into a fresh data ICA (the
//   analogue of DMA into a receive buffer), and posts it to inet with ethinput; the
//   ICA's ownership passes to inet, nothing comes back;
// - takes the transmit requests: each lends up to three frames as data ICAs; the driver
//   transmits them from the ICAs' own pages (no copy on our side; libpcap's inject copies
//   into the kernel) and writes each frame's result into the request's frame. When the
//   request asks for direct return, the result goes straight to the original requester.
//
// Completions ride with the next message going to inet. The lent ICAs (and, for inet's
// own transmits, the control ICA with the results) are owed to inet, but a message of
// their own would wake inet for nothing: they are held and sent just before the next
// ethinput, on the same ring, so inet takes them in the same wake-up. The reply frame of a
// request (the peer's answer, its ACK) is that next ethinput, and it comes after them, so
// TCP always has its lent pages back before it reads the ACK that frees them. Held
// completions go out on their own only when many are held or the oldest has waited
// DeferredCompletionDelay (a transmit that no frame answers, as a lone UDP datagram).
//
// When inet dies, the driver keeps the adapter open, drops what it receives (counted),
// frees the completions it held for it, and attaches again as soon as an inet server
// registers the service anew; when the driver dies, inet keeps its state and takes the
// next driver's ifattach (the broker gives inet back what it had lent).
using System.Diagnostics;
using System.Runtime.Versioning;
using AntHost.Inet.Abi;
using AntHost.Kernel;
using AntHost.Kernel.Ipc;
using AntHost.Kernel.Pool;
using AntHost.Nic8139.Pcap;
using Microsoft.Extensions.Logging;

namespace AntHost.Nic8139.Driver;

/// <summary>How the driver joins the kernel and finds the inet server.</summary>
public sealed record InetDriverOptions
{
    /// <summary>The kernel instance (the broker's --instance).</summary>
    public string Instance { get; init; } = "default";

    /// <summary>The inet server's service name.</summary>
    public string Service { get; init; } = InetService.Name;

    /// <summary>The kernel connection's spin budget (calls made outside the device's loop; the loop spins NicDeviceOptions.SpinMicroseconds).</summary>
    public TimeSpan SpinBudget { get; init; } = TimeSpan.FromMicroseconds(20);

    /// <summary>Merge consecutive in-order TCP segments of a flow into one frame (receive coalescing, GRO).</summary>
    public bool Coalesce { get; init; } = true;

    /// <summary>Pack the header-only TCP segments of a drain (the peer's ACKs) into frame-list ICAs, many per ethinput (FrameList).</summary>
    public bool FrameLists { get; init; } = true;

    /// <summary>Offer the capture ring of the panel (off: the panel carries the live counters only, and no frame is ever offered to a tap).</summary>
    public bool Capture { get; init; } = true;

    /// <summary>Pack the completions held for inet several to a message (TxCompletions), as many as fit its slots; off, each goes in a message of its own (a reply, or TxDataBack).</summary>
    public bool BatchCompletions { get; init; } = true;

    /// <summary>How long a completion owed to inet may wait for an ethinput to ride with.</summary>
    public TimeSpan DeferredCompletionDelay { get; init; } = TimeSpan.FromMilliseconds(20);

    /// <summary>How often the driver looks for the inet server while it is not attached.</summary>
    public TimeSpan AttachRetry { get; init; } = TimeSpan.FromMilliseconds(200);
}

/// <summary>The driver's counters of the IPC side (the device has its own).</summary>
public sealed class InetDriverCounters
{
    internal long _framesPosted, _rxNoInet, _rxNoIca, _rxPostFailed, _transmitRequests, _framesTransmitted, _framesNotSent, _badRequests, _attaches, _inetDeaths;
    internal long _completionsRiding, _completionsAlone, _completionMessages, _ethInputs, _segmentsCoalesced, _coalescedFrames, _listFrames, _lists;

    public long FramesPosted => Volatile.Read(ref _framesPosted);
    public long RxNoInet => Volatile.Read(ref _rxNoInet);
    public long RxNoIca => Volatile.Read(ref _rxNoIca);
    public long RxPostFailed => Volatile.Read(ref _rxPostFailed);
    public long TransmitRequests => Volatile.Read(ref _transmitRequests);
    public long FramesTransmitted => Volatile.Read(ref _framesTransmitted);
    public long FramesNotSent => Volatile.Read(ref _framesNotSent);
    public long BadRequests => Volatile.Read(ref _badRequests);
    public long Attaches => Volatile.Read(ref _attaches);
    public long InetDeaths => Volatile.Read(ref _inetDeaths);

    /// <summary>Ethinput messages posted (up to three frames each).</summary>
    public long EthInputs => Volatile.Read(ref _ethInputs);

    /// <summary>Received segments merged into the one before them (GRO).</summary>
    public long SegmentsCoalesced => Volatile.Read(ref _segmentsCoalesced);

    /// <summary>Merged frames posted (each carries two or more segments).</summary>
    public long CoalescedFrames => Volatile.Read(ref _coalescedFrames);

    /// <summary>Header-only TCP frames posted in frame lists, and the frame-list ICAs that carried them.</summary>
    public long ListFrames => Volatile.Read(ref _listFrames);
    public long Lists => Volatile.Read(ref _lists);

    /// <summary>Completions sent to inet just before an ethinput (no wake-up of their own).</summary>
    public long CompletionsRiding => Volatile.Read(ref _completionsRiding);

    /// <summary>Completions sent on their own (many held, or the oldest waited its delay).</summary>
    public long CompletionsAlone => Volatile.Read(ref _completionsAlone);

    /// <summary>Messages that carried the completions (fewer than the completions when several share one, TxCompletions).</summary>
    public long CompletionMessages => Volatile.Read(ref _completionMessages);

    public override string ToString() =>
        $"rx posted {FramesPosted} in {EthInputs} ethinputs ({SegmentsCoalesced} segments merged into {CoalescedFrames} frames; {ListFrames} header-only frames in {Lists} frame lists), rx dropped (no inet {RxNoInet}, no ICA {RxNoIca}, post failed {RxPostFailed}); "
        + $"tx requests {TransmitRequests}, frames sent {FramesTransmitted}, not sent {FramesNotSent}; bad requests {BadRequests}; attaches {Attaches}, inet deaths {InetDeaths}; "
        + $"completions riding with ethinput {CompletionsRiding}, alone {CompletionsAlone}, in {CompletionMessages} messages";
}

/// <summary>The NIC driver's IPC loop (see the file comment).</summary>
[SupportedOSPlatform("linux")]
public sealed class InetDriver : IDeviceLoopWork
{
    private const int MaxDeferred = 32;
    private const int MaxMessagesPerService = 64;

    private readonly NicDevice _device;
    private readonly InetDriverOptions _options;
    private readonly ILogger _log;
    private const int CoalescePages = 16;

    private readonly DataIca[] _rxData = new DataIca[InetService.MaxFramesPerMessage];
    private int _rxCount;
    private bool _rxLists; // the queued data ICAs are frame lists (EthInputList), not frames
    private IcaLease _listIca; // the frame list being filled, none when its lease is
    private int _listUsed, _listCount;
    private int _rxQueuedFrames; // frames in the queued data ICAs (a list counts its frames)
    private readonly ReceiveCoalescer _gro = new();
    private IcaLease _groIca;
    private readonly Message[] _deferred = new Message[MaxDeferred];
    private readonly bool[] _deferredIsDataBack = new bool[MaxDeferred];
    private readonly uint[] _deferredResults = new uint[MaxDeferred]; // TxCompletions' word: each frame's result
    private readonly DataIca[] _batchData = new DataIca[InetService.MaxFramesPerMessage];
    private readonly long _deferredDelayTicks;
    private int _deferredCount;
    private long _deferredSince;
    private KernelConnection _kernel = null!;
    private Endpoint? _inet;
    private long _nextAttach;
    private CancellationToken _stop;

    // Allocation accounting of the packet paths after warm-up (frames/requests 0..WarmUp-1 excluded).
    private const int WarmUp = 100;
    private long _rxFrames, _rxAllocStart, _rxAllocLast, _txRequests, _txAllocStart, _txAllocLast;

    public InetDriver(NicDevice device, InetDriverOptions options, ILogger log)
    {
        _device = device;
        _options = options;
        _log = log;
        _deferredDelayTicks = (long)(options.DeferredCompletionDelay.TotalSeconds * Stopwatch.Frequency);
    }

    public InetDriverCounters Counters { get; } = new();

    // ---- live counters: the panel (shared memory, read by `anthost ps`) and the meter ----
    private NicPanel? _panel;
    private readonly long[] _panelValues = new long[(int)NicStat.Count];
    private long _nextPublish, _nextKernelAsk;
    private long _pagesOwned;
    private static readonly long PublishTicks = Stopwatch.Frequency / 10, KernelAskTicks = Stopwatch.Frequency;

    /// <summary>The driver's panel while it runs (null when it could not be made); read it under <see cref="PanelLock"/> from another thread.</summary>
    public NicPanel? Panel => _panel;

    /// <summary>Held while the panel is unmapped at stop.</summary>
    internal object PanelLock { get; } = new();

    /// <summary>
    /// Fills <paramref name="v"/> (<see cref="NicStat"/> order) from the live counters; with
    /// <paramref name="refresh"/> also asks libpcap for the kernel's drops and counts the
    /// pages the driver owns (a scan of the ownership table: at most once a second).
    /// </summary>
    public void ReadCounters(Span<long> v, bool refresh)
    {
        var d = _device.ReadCounters(askKernel: refresh);
        if (refresh && _kernel is not null) Volatile.Write(ref _pagesOwned, new OwnershipTable(_kernel.Pool).PagesOwnedBy(_kernel.Id));
        var rf = _device.ReceiveFaultStatistics;
        var tf = _device.TransmitFaultStatistics;
        var c = Counters;
        ReadOnlySpan<long> all =
        [
            d.RxFrames, d.RxBytes, d.RxDelivered, d.RxOversize, d.RxTruncated, d.RxRunt, d.RxNotForUs, d.RxHandlerErrors,
            d.KernelDrops, d.InterfaceDrops, d.TxFrames, d.TxBytes, d.TxErrors, d.TxRejected, d.TxLinkDown, d.LinkDownEvents, d.Reopens,
            c.FramesPosted, c.EthInputs, c.SegmentsCoalesced, c.CoalescedFrames, c.RxNoInet, c.RxNoIca, c.RxPostFailed,
            c.TransmitRequests, c.FramesTransmitted, c.FramesNotSent, c.BadRequests, c.Attaches, c.InetDeaths, c.CompletionsRiding, c.CompletionsAlone,
            rf.Dropped + tf.Dropped, rf.Duplicated + tf.Duplicated, rf.Corrupted + tf.Corrupted, rf.Reordered + tf.Reordered, rf.Delayed + tf.Delayed,
            _device.Link == LinkState.Up ? 1 : 0, Volatile.Read(ref _pagesOwned),
        ];
        all.CopyTo(v);
    }

    /// <summary>Copies the counters into the panel (plain stores, no system call unless a refresh is due).</summary>
    private void Publish(long now)
    {
        if (_panel is null) return;
        bool refresh = now >= _nextKernelAsk;
        if (refresh) _nextKernelAsk = now + KernelAskTicks;
        _nextPublish = now + PublishTicks;
        ReadCounters(_panelValues, refresh);
        _panel.Publish(_panelValues);
    }

    private void OpenPanel()
    {
        string path = NicPanel.PathFor(_options.Instance, _device.Adapter);
        try
        {
            _panel = NicPanel.Create(path);
            if (_options.Capture) _device.CaptureTap = _panel;
            _panel.CaptureOffered = _options.Capture;
            Publish(Stopwatch.GetTimestamp());
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            _log.LogWarning("no live counters or capture: cannot make {Path}: {Message}", path, e.Message);
        }
    }

    private void ClosePanel()
    {
        if (_panel is not { } panel) return;
        _device.CaptureTap = null;
        lock (PanelLock)
        {
            _panel = null;
            panel.Dispose();
        }
        try { File.Delete(panel.Path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { _log.LogDebug("removing {Path}: {Message}", panel.Path, e.Message); }
    }

    /// <summary>Joins the kernel, attaches to inet and serves until <paramref name="stop"/> is cancelled.</summary>
    public void Run(CancellationToken stop)
    {
        _kernel = KernelConnection.Connect(new KernelOptions
        {
            Instance = _options.Instance,
            ProcessName = "nic:" + _device.Adapter,
            Server = true, // receive ICAs come from the servers' reserve, out of apps' reach
            SpinBudget = _options.SpinBudget,
            CachePerSize = 128,
            AllocationBatch = 32,
            // 32 merged receive ICAs of 16 pages per round trip to the broker, not the 8 the
            // cache keeps: in a bulk receive that was 3 of them per MB, each a sleep of the
            // driver and a wake-up of the broker.
            RefillPages = 32 * CoalescePages,
        });
        try
        {
            _log.LogInformation("anthost-nic: adapter {Adapter} MAC {Mac} MTU {Mtu} link {Link}; kernel instance {Instance} as {Process}",
                _device.Adapter, _device.Mac, _device.Mtu, _device.Link, _options.Instance, _kernel.Id);
            _log.LogInformation("offloaded TCP sends are cut by {Who}", _device.KernelSegmentation ? "the kernel (PACKET_VNET_HDR GSO)" : "the driver" + (_device.LastError is { } why ? $" ({why})" : ""));
            _device.LinkChanged += OnLinkChanged;
            OpenPanel();
            using var meter = NicMeter.For(this);
            // Without a broker nothing is committed or reclaimed: the driver stops with it.
            using var both = CancellationTokenSource.CreateLinkedTokenSource(stop, _kernel.BrokerGone);
            _stop = both.Token;
            using var stopLoop = both.Token.UnsafeRegister(static d => ((NicDevice)d!).RequestStop(), _device);
            if (!both.IsCancellationRequested) _device.Run(OnFrame, this);
            if (_kernel.BrokerGone.IsCancellationRequested && !stop.IsCancellationRequested)
                _log.LogError("the kernel broker of instance {Instance} is gone: stopping", _options.Instance);
        }
        finally
        {
            _device.Stop();
            Shutdown();
        }
    }

    // ---- the work done inside the device's loop --------------------------------------------

    int IDeviceLoopWork.Service()
    {
        int done = 0;
        if (_inet is null && Stopwatch.GetTimestamp() >= _nextAttach)
        {
            _nextAttach = Stopwatch.GetTimestamp() + (long)(_options.AttachRetry.TotalSeconds * Stopwatch.Frequency);
            if (TryAttach()) done++;
        }
        while (done < MaxMessagesPerService && _kernel.TryReceive(out var m))
        {
            done++;
            try
            {
                Handle(m);
            }
            catch (KernelException e)
            {
                _log.LogWarning("{Kind} from {Process}: {Message}", m.Kind, m.Source, e.Message);
            }
        }
        long now = Stopwatch.GetTimestamp();
        if (_deferredCount > 0 && (_deferredCount >= MaxDeferred || now - _deferredSince >= _deferredDelayTicks))
            FlushDeferred(alone: true);
        if (now >= _nextPublish) Publish(now);
        return done;
    }

    bool IDeviceLoopWork.HasWork => _kernel.HasInput;

    int IDeviceLoopWork.Descriptor => _kernel.WakeDescriptor;

    long? IDeviceLoopWork.NextDeadline
    {
        get
        {
            long? at = _deferredCount > 0 ? _deferredSince + _deferredDelayTicks : null;
            if (_inet is null && (at is null || _nextAttach < at)) at = _nextAttach;
            return at;
        }
    }

    bool IDeviceLoopWork.PrepareToSleep()
    {
        // The panel is current while the loop sleeps (ps reads it then without waking it).
        Publish(Stopwatch.GetTimestamp());
        return _kernel.PrepareToPoll(_stop);
    }

    void IDeviceLoopWork.AfterSleep() => _kernel.AwakeFromPoll();

    private void CloseQuietly(Endpoint ep)
    {
        try { _kernel.Close(ep); }
        catch (KernelException e) { _log.LogDebug("closing the channel to '{Service}': {Message}", _options.Service, e.Message); }
    }

    private bool TryAttach()
    {
        Endpoint ep;
        try
        {
            ep = _kernel.Open(_options.Service);
        }
        catch (KernelException e) when (e.Error == KernelError.UnknownService)
        {
            return false;
        }
        var control = _kernel.AllocateControl();
        ControlIca.TryOpen(control.Span, out var c);
        c.TryPushFrame(new RequestFrame(0, (ushort)InetOp.IfAttach, RequestFrameFlags.None, _kernel.Id.Value, 0), out var args);
        new IfAttachArgs(_device.Mac.Value, _device.Mtu, ToAbi(_device.Link), Environment.ProcessId, _device.Adapter).WriteTo(args);
        Message reply;
        try
        {
            reply = _kernel.Call(ep, control, (ushort)InetOp.IfAttach, default, TimeSpan.FromSeconds(10));
        }
        catch (KernelException e)
        {
            _log.LogWarning("ifattach to '{Service}' failed: {Message}", _options.Service, e.Message);
            CloseQuietly(ep);
            return false;
        }
        var status = (InetStatus)reply.Status;
        IfAttachResult result = default;
        bool parsed = !reply.Control.IsNone && ControlIca.TryOpen(reply.Control.Span, out var rc) && IfAttachResult.TryRead(rc.Result, out result);
        _kernel.FreeMessage(reply);
        if (status != InetStatus.Ok)
        {
            _log.LogWarning("ifattach refused by '{Service}': {Status}", _options.Service, status);
            CloseQuietly(ep); // the next attempt opens a new channel: this one must not linger
            return false;
        }
        Interlocked.Increment(ref Counters._attaches);
        _inet = ep;
        if (parsed)
            _log.LogInformation("attached to {Service} ({Process}): attachment #{N}, address {Address}/{Prefix}", _options.Service, ep.Peer,
                result.Attachment, FormatIp(result.Address), result.PrefixLength);
        return true;
    }

    private void Handle(in Message m)
    {
        var inet = _inet;
        switch (m.Kind)
        {
            case MessageKind.Request when m.Endpoint is not null && m.Endpoint == inet && m.Opcode == (ushort)NicOp.Transmit:
                Transmit(m);
                return;
            case MessageKind.PeerDied:
                if (m.Endpoint is not null && m.Endpoint == inet)
                {
                    _inet = null;
                    DropDeferred();
                    DropReceived();
                    Interlocked.Increment(ref Counters._inetDeaths);
                    _log.LogWarning("the inet server {Process} died; waiting for a new one", m.Source);
                }
                return;
            case MessageKind.ChannelOpened:
                return;
            default:
                Interlocked.Increment(ref Counters._badRequests);
                if (m.Kind == MessageKind.Request && m.IsSync) _kernel.Reply(m, m.Control, (int)InetStatus.UnknownOpcode, m.Data);
                else _kernel.FreeMessage(m);
                return;
        }
    }

    /// <summary>Transmits the lent frames from the ICAs' pages and completes the request.</summary>
    private void Transmit(in Message m)
    {
        Interlocked.Increment(ref Counters._transmitRequests);
        long txAlloc = GC.GetAllocatedBytesForCurrentThread();
        if (++_txRequests == WarmUp) _txAllocStart = txAlloc;
        _txAllocLast = txAlloc;
        if (m.Control.IsNone || !ControlIca.TryOpen(m.Control.Span, out var c) || c.FrameCount == 0)
        {
            // Nothing to say the result in: give the ICAs back so inet can account for them.
            Interlocked.Increment(ref Counters._badRequests);
            _kernel.Reply(m, m.Control, (int)InetStatus.NoControl, m.Data);
            return;
        }
        c.Stamp(InetTraceStage.NicReceived, _kernel.Id.Value);
        var args = c.FrameArguments(c.FrameCount - 1);
        int count = TransmitArgs.Count(args);
        uint results = 0;
        for (int i = 0; i < m.DataCount; i++)
        {
            TransmitResult r;
            var d = m.GetData(i).Ica;
            if (i >= count || !TransmitArgs.TryGetFrame(args, i, out int offset, out int length) || length <= 0 || offset + length > d.Length)
                r = TransmitResult.BadDescriptor;
            else if (TransmitArgs.TryGetOffload(args, i, out int headerLength, out int segmentSize))
                r = (i + 1) * TransmitArgs.HeaderSlot > c.Inline.Length || headerLength > TransmitArgs.HeaderSlot
                    ? TransmitResult.BadDescriptor
                    : _device.TransmitSegmented(TransmitArgs.HeaderTemplate(c.Inline, i, headerLength), d.Span.Slice(offset, length), segmentSize);
            else
                r = _device.Transmit(d.Span.Slice(offset, length));
            TransmitArgs.SetResult(args, i, r);
            results = TxCompletions.With(results, i, r);
            if (r == TransmitResult.Sent) Interlocked.Increment(ref Counters._framesTransmitted);
            else Interlocked.Increment(ref Counters._framesNotSent);
        }
        c.Stamp(InetTraceStage.NicTransmitted, _kernel.Id.Value);
        if (c.TryGetFrame(0, out var first) && (first.Flags & RequestFrameFlags.DirectReturn) != 0 && c.OriginalRequester != m.Source.Value)
        {
            // Direct return: the result to the original requester now, the lent ICAs back to
            // inet with the next message going its way.
            _kernel.ReplyDirect(m.Control, 0, default, InetTraceStage.NicReturn, quiet: (first.Flags & RequestFrameFlags.QuietReturn) != 0);
            if (m.DataCount > 0) Defer(m, isDataBack: true, results);
            return;
        }
        c.Stamp(InetTraceStage.NicReturn, _kernel.Id.Value);
        Defer(m, isDataBack: false, results);
    }

    /// <summary>Holds a completion owed to inet until the next ethinput (or its delay).</summary>
    private void Defer(in Message m, bool isDataBack, uint results)
    {
        if (_deferredCount == MaxDeferred) FlushDeferred(alone: true);
        if (_deferredCount == 0) _deferredSince = Stopwatch.GetTimestamp();
        _deferred[_deferredCount] = m;
        _deferredIsDataBack[_deferredCount] = isDataBack;
        _deferredResults[_deferredCount] = results;
        _deferredCount++;
    }

    /// <summary>
    /// Sends every held completion to inet, oldest first. With <see cref="InetDriverOptions.BatchCompletions"/>
    /// whole completions share a TxCompletions message while they fit it: one request's control
    /// ICA, three frames' ICAs, their results in the request id.
    /// </summary>
    private void FlushDeferred(bool alone)
    {
        int n = _deferredCount;
        _deferredCount = 0;
        if (alone) Interlocked.Add(ref Counters._completionsAlone, n);
        else Interlocked.Add(ref Counters._completionsRiding, n);
        if (!_options.BatchCompletions)
        {
            for (int i = 0; i < n; i++) SendCompletion(i, i + 1);
            return;
        }
        // A message has a control slot and three data slots: the frames and the control ICAs
        // past the first (marked in the request id) share the data slots.
        int first = 0, frames = 0, controls = 0;
        for (int i = 0; i < n; i++)
        {
            int f = _deferred[i].DataCount, c = HasControl(i) ? 1 : 0;
            if (i > first && frames + f + Math.Max(0, controls + c - 1) > InetService.MaxFramesPerMessage)
            {
                SendCompletion(first, i);
                first = i;
                frames = controls = 0;
            }
            frames += f;
            controls += c;
        }
        if (n > first) SendCompletion(first, n);
    }

    /// <summary>A held completion of inet's own request: its control ICA goes back with its frames (a direct return's went to the app).</summary>
    private bool HasControl(int i) => !_deferredIsDataBack[i] && !_deferred[i].Control.IsNone;

    /// <summary>Sends held completions [from, to) in one message: alone in its own form (a reply, TxDataBack), or several as TxCompletions.</summary>
    private void SendCompletion(int from, int to)
    {
        var inet = _deferred[from].Endpoint!;
        Interlocked.Increment(ref Counters._completionMessages);
        try
        {
            if (to - from == 1 && !_options.BatchCompletions)
            {
                var m = _deferred[from];
                if (_deferredIsDataBack[from]) _kernel.Notify(m.Endpoint!, (ushort)NicNotify.TxDataBack, m.RequestId, m.Data);
                else _kernel.Reply(m, m.Control, 0, m.Data);
            }
            else
            {
                IcaLease control = default;
                uint results = 0;
                int slots = 0;
                for (int i = from; i < to; i++)
                {
                    var m = _deferred[i];
                    if (HasControl(i))
                    {
                        if (control.IsNone) control = m.Control;
                        else
                        {
                            results = TxCompletions.WithControl(results, slots);
                            _batchData[slots++] = new DataIca(m.Control, m.Control.Length);
                        }
                    }
                    for (int f = 0; f < m.DataCount; f++)
                    {
                        results = TxCompletions.With(results, slots, (TransmitResult)(byte)(_deferredResults[i] >> (8 * f)));
                        _batchData[slots++] = m.GetData(f);
                    }
                }
                int frames = slots;
                _kernel.Notify(inet, (ushort)NicNotify.TxCompletions, results, _batchData.AsSpan(0, frames), control);
            }
        }
        catch (KernelException e)
        {
            // inet is gone: the pages are ours now and nobody will ask for them.
            _log.LogDebug("completion to inet failed: {Message}", e.Message);
            for (int i = from; i < to; i++) _kernel.FreeMessage(_deferred[i]);
        }
        finally
        {
            for (int i = from; i < to; i++) _deferred[i] = default;
            Array.Clear(_batchData);
        }
    }

    /// <summary>inet died: frames merged or queued for it are freed.</summary>
    private void DropReceived()
    {
        if (_gro.IsOpen)
        {
            _gro.Finish(_groIca.Span);
            _kernel.Free(_groIca);
            _groIca = default;
        }
        if (!_listIca.IsNone)
        {
            _kernel.Free(_listIca);
            _listIca = default;
        }
        for (int i = 0; i < _rxCount; i++) _kernel.Free(_rxData[i].Ica);
        Array.Clear(_rxData);
        _rxCount = _rxQueuedFrames = 0;
    }

    /// <summary>inet died: what was owed to it is freed (it lent the pages; nobody will take them back).</summary>
    private void DropDeferred()
    {
        for (int i = 0; i < _deferredCount; i++)
        {
            _kernel.FreeMessage(_deferred[i]);
            _deferred[i] = default;
        }
        _deferredCount = 0;
    }

    /// <summary>
    /// The receive callback: one copy into a data ICA, merged with the segments before it when
    /// they belong together (<see cref="ReceiveCoalescer"/>); the frames go to inet up to three
    /// per ethinput, at the latest when the drain that delivered them ends.
    /// </summary>
    private void OnFrame(ReadOnlySpan<byte> frame)
    {
        long rxAlloc = GC.GetAllocatedBytesForCurrentThread();
        if (++_rxFrames == WarmUp) _rxAllocStart = rxAlloc;
        _rxAllocLast = rxAlloc;
        var inet = _inet;
        if (inet is null || !inet.IsOpen)
        {
            Interlocked.Increment(ref Counters._rxNoInet);
            return;
        }
        if (_options.FrameLists && FrameList.IsHeaderOnlyTcp(frame))
        {
            // Frames keep their order across the kinds: what was merged before goes first.
            if (_gro.IsOpen) CloseCoalesced();
            AppendToList(frame);
            return;
        }
        if (!_listIca.IsNone) CloseList();
        if (_options.Coalesce)
        {
            bool candidate = ReceiveCoalescer.IsCandidate(frame);
            if (candidate && _gro.IsOpen && _gro.TryAppend(frame, _groIca.Span))
            {
                Interlocked.Increment(ref Counters._segmentsCoalesced);
                if (_gro.Pushed) CloseCoalesced();
                return;
            }
            if (_gro.IsOpen) CloseCoalesced();
            // A pushed segment is wanted now (a request, an answer): it goes as it is.
            if (candidate && !ReceiveCoalescer.HasPush(frame) && TryAllocate(CoalescePages, out _groIca))
            {
                _gro.Start(frame, _groIca.Span);
                return;
            }
        }
        if (!TryAllocate((frame.Length + PoolLayout.PageSize - 1) / PoolLayout.PageSize, out var ica)) return;
        frame.CopyTo(ica.Span);
        Queue(new DataIca(ica, frame.Length), list: false);
    }

    /// <summary>The end of a drain: what was merged or queued goes to inet now.</summary>
    void IDeviceLoopWork.FramesDone()
    {
        if (_gro.IsOpen) CloseCoalesced();
        if (!_listIca.IsNone) CloseList();
        PostFrames();
    }

    /// <summary>Copies a header-only frame into the open frame list (a new one when it is full or none is open).</summary>
    private void AppendToList(ReadOnlySpan<byte> frame)
    {
        if (!_listIca.IsNone && FrameList.TryAppend(_listIca.Span, ref _listUsed, frame))
        {
            _listCount++;
            return;
        }
        if (!_listIca.IsNone) CloseList();
        if (!TryAllocate(1, out _listIca)) return;
        _listUsed = _listCount = 0;
        if (FrameList.TryAppend(_listIca.Span, ref _listUsed, frame)) _listCount++;
    }

    /// <summary>Queues the open frame list for the next ethinput.</summary>
    private void CloseList()
    {
        var ica = _listIca;
        _listIca = default;
        if (_listCount == 0)
        {
            _kernel.Free(ica);
            return;
        }
        Interlocked.Add(ref Counters._listFrames, _listCount);
        Interlocked.Increment(ref Counters._lists);
        Queue(new DataIca(ica, _listUsed), list: true, frames: _listCount);
    }

    private bool TryAllocate(int pages, out IcaLease ica)
    {
        try
        {
            ica = _kernel.Allocate(pages);
            return true;
        }
        catch (KernelException)
        {
            Interlocked.Increment(ref Counters._rxNoIca);
            ica = default;
            return false;
        }
    }

    /// <summary>Closes the merged frame and queues it; one that merged nothing moves to a page of its own.</summary>
    private void CloseCoalesced()
    {
        int length = _gro.Finish(_groIca.Span);
        var ica = _groIca;
        _groIca = default;
        if (_gro.Segments > 1)
        {
            Interlocked.Increment(ref Counters._coalescedFrames);
            Queue(new DataIca(ica, length), list: false);
            return;
        }
        // A lone segment would hold CoalescePages pages in TCP's queue until the app reads it.
        if (TryAllocate((length + PoolLayout.PageSize - 1) / PoolLayout.PageSize, out var small))
        {
            ica.Span[..length].CopyTo(small.Span);
            Queue(new DataIca(small, length), list: false);
        }
        _kernel.Free(ica);
    }

    /// <summary>Queues a frame (or a frame list) for the next ethinput; one message carries one kind, so a change of kind posts what was queued.</summary>
    private void Queue(in DataIca frame, bool list, int frames = 1)
    {
        if (_rxCount > 0 && _rxLists != list) PostFrames();
        _rxLists = list;
        _rxQueuedFrames += frames;
        _rxData[_rxCount++] = frame;
        if (_rxCount == _rxData.Length) PostFrames();
    }

    /// <summary>Posts the queued frames as one ethinput, after what is owed to inet.</summary>
    private void PostFrames()
    {
        int n = _rxCount, frames = _rxQueuedFrames;
        if (n == 0) return;
        _rxCount = _rxQueuedFrames = 0;
        var inet = _inet;
        if (inet is null)
        {
            for (int i = 0; i < n; i++) _kernel.Free(_rxData[i].Ica);
            Interlocked.Add(ref Counters._rxNoInet, frames);
            Array.Clear(_rxData);
            return;
        }
        // What is owed to inet goes first, on the same ring: inet takes it in this wake-up.
        if (_deferredCount > 0) FlushDeferred(alone: false);
        try
        {
            _kernel.Post(inet, default, (ushort)(_rxLists ? InetOp.EthInputList : InetOp.EthInput), _rxData.AsSpan(0, n));
            Interlocked.Add(ref Counters._framesPosted, frames);
            Interlocked.Increment(ref Counters._ethInputs);
        }
        catch (KernelException e)
        {
            Interlocked.Add(ref Counters._rxPostFailed, frames);
            // Ring full: the ICAs are still ours. Peer died: they may already be journaled to inet
            // (then the broker reclaims them with inet's pages), so they are not freed here.
            if (e.Error == KernelError.RingFull)
                for (int i = 0; i < n; i++) _kernel.Free(_rxData[i].Ica);
        }
        finally
        {
            Array.Clear(_rxData);
        }
    }

    private void OnLinkChanged(LinkState state)
    {
        var inet = _inet;
        _log.LogInformation("adapter {Adapter}: link {State}", _device.Adapter, state);
        if (inet is null) return;
        try
        {
            var control = _kernel.AllocateControl();
            ControlIca.TryOpen(control.Span, out var c);
            c.TryPushFrame(new RequestFrame(0, (ushort)InetOp.IfLink, RequestFrameFlags.None, _kernel.Id.Value, 0), out var args);
            IfLinkArgs.Write(args, ToAbi(state));
            _kernel.Post(inet, control, (ushort)InetOp.IfLink, default);
        }
        catch (KernelException e)
        {
            _log.LogWarning("link report to inet failed: {Message}", e.Message);
        }
    }

    private void Shutdown()
    {
        try
        {
            // Requests that came in while the loop was stopping are served still (their frames
            // go out, their ICAs back to inet with the completions), so nothing of inet's stays here.
            while (_inet is not null && _kernel.TryReceive(out var late))
            {
                try { Handle(late); }
                catch (KernelException e) { _log.LogDebug("at stop, {Kind} from {Process}: {Message}", late.Kind, late.Source, e.Message); }
            }
            if (_deferredCount > 0 && _inet is not null) FlushDeferred(alone: true);
            _inet = null;
            DropReceived();
            _log.LogInformation("ipc counters: {Counters}", Counters);
            _log.LogInformation("device counters: {Counters}", _device.Counters);
            _log.LogInformation("segmentation offload: {Sends} sends cut into {Frames} frames ({Kernel} of them cut by the kernel's GSO)", _device.TxOffloads, _device.TxOffloadFrames, _device.TxKernelSegmented);
            if (_panel is { } panel && panel.CapturedFrames + panel.CaptureDrops > 0)
                _log.LogInformation("capture: {Frames} frames captured, {Drops} dropped (reader too slow)", panel.CapturedFrames, panel.CaptureDrops);
            ClosePanel();
            if (_rxFrames > WarmUp)
                _log.LogInformation("receive thread allocated {Bytes} bytes over frames {From}..{To}", _rxAllocLast - _rxAllocStart, WarmUp, _rxFrames);
            if (_txRequests > WarmUp)
                _log.LogInformation("transmit thread allocated {Bytes} bytes over requests {From}..{To}", _txAllocLast - _txAllocStart, WarmUp, _txRequests);
            _kernel.TrimCache();
            _kernel.Commit();
            _log.LogInformation("pages owned at stop: {N}", new OwnershipTable(_kernel.Pool).PagesOwnedBy(_kernel.Id));
        }
        catch (KernelException e)
        {
            _log.LogWarning("stop: {Message}", e.Message);
        }
        _kernel.Dispose();
    }

    private static AbiLinkState ToAbi(LinkState s) => s switch
    {
        LinkState.Up => AbiLinkState.Up,
        LinkState.Down => AbiLinkState.Down,
        _ => AbiLinkState.Unknown,
    };

    private static string FormatIp(uint a) => $"{a >> 24}.{(a >> 16) & 0xFF}.{(a >> 8) & 0xFF}.{a & 0xFF}";
}
