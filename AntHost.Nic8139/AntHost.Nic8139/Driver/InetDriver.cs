// The NIC driver's side of the IPC to the inet server. The driver joins the kernel
// instance, opens the inet server's service and attaches (ifattach: MAC, MTU, link).
// From then on two threads work:
//
// - the device's receive thread copies each frame once, out of libpcap's ring into a
//   fresh data ICA (the analogue of DMA into a receive buffer), and posts it to inet
//   with ethinput; the ICA's ownership passes to inet, nothing comes back;
// - the driver's main thread waits on the process's doorbell for transmit requests:
//   each lends up to three frames as data ICAs; the driver transmits them from the
//   ICAs' own pages (no copy on our side; libpcap's inject copies into the kernel),
//   writes each frame's result into the request's frame, and completes: a reply to
//   inet with every ICA back (the TX completion), or, when the request asks for it,
//   the result straight to the original requester and the ICAs back to inet.
//
// When inet dies, the driver keeps the adapter open, drops what it receives (counted),
// and attaches again as soon as an inet server registers the service anew; when the
// driver dies, inet keeps its state and takes the next driver's ifattach.
using System.Runtime.Versioning;
using AntHost.Inet.Abi;
using AntHost.Kernel;
using AntHost.Kernel.Ipc;
using AntHost.Kernel.Pool;
using AntHost.Nic8139.Pcap;
using Microsoft.Extensions.Logging;
using DeviceResult = AntHost.Nic8139.Pcap.TransmitResult;
using WireResult = AntHost.Inet.Abi.TransmitResult;

namespace AntHost.Nic8139.Driver;

/// <summary>How the driver joins the kernel and finds the inet server.</summary>
public sealed record InetDriverOptions
{
    /// <summary>The kernel instance (the broker's --instance).</summary>
    public string Instance { get; init; } = "default";

    /// <summary>The inet server's service name.</summary>
    public string Service { get; init; } = InetService.Name;

    /// <summary>Spin budget of the transmit loop before it sleeps on the doorbell.</summary>
    public TimeSpan SpinBudget { get; init; } = TimeSpan.FromMicroseconds(20);

    /// <summary>How often the driver looks for the inet server while it is not attached.</summary>
    public TimeSpan AttachRetry { get; init; } = TimeSpan.FromMilliseconds(200);
}

/// <summary>The driver's counters of the IPC side (the device has its own).</summary>
public sealed class InetDriverCounters
{
    internal long _framesPosted, _rxNoInet, _rxNoIca, _rxPostFailed, _transmitRequests, _framesTransmitted, _framesNotSent, _badRequests, _attaches, _inetDeaths;

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

    public override string ToString() =>
        $"rx posted {FramesPosted}, rx dropped (no inet {RxNoInet}, no ICA {RxNoIca}, post failed {RxPostFailed}); "
        + $"tx requests {TransmitRequests}, frames sent {FramesTransmitted}, not sent {FramesNotSent}; bad requests {BadRequests}; attaches {Attaches}, inet deaths {InetDeaths}";
}

/// <summary>The NIC driver's IPC loop (see the file comment).</summary>
[SupportedOSPlatform("linux")]
public sealed class InetDriver
{
    private readonly NicDevice _device;
    private readonly InetDriverOptions _options;
    private readonly ILogger _log;
    private readonly DataIca[] _rxData = new DataIca[1];
    private KernelConnection _kernel = null!;
    private volatile Endpoint? _inet;

    // Allocation accounting of the two packet threads after warm-up (frames 0..WarmUp-1 excluded).
    private const int WarmUp = 100;
    private long _rxFrames, _rxAllocStart, _rxAllocLast, _txRequests, _txAllocStart, _txAllocLast;

    public InetDriver(NicDevice device, InetDriverOptions options, ILogger log)
    {
        _device = device;
        _options = options;
        _log = log;
    }

    public InetDriverCounters Counters { get; } = new();

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
        });
        try
        {
            _log.LogInformation("anthost-nic: adapter {Adapter} MAC {Mac} MTU {Mtu} link {Link}; kernel instance {Instance} as {Process}",
                _device.Adapter, _device.Mac, _device.Mtu, _device.Link, _options.Instance, _kernel.Id);
            _device.LinkChanged += OnLinkChanged;
            _device.Start(OnFrame);
            // Without a broker nothing is committed or reclaimed: the driver stops with it.
            using var both = CancellationTokenSource.CreateLinkedTokenSource(stop, _kernel.BrokerGone);
            Serve(both.Token);
            if (_kernel.BrokerGone.IsCancellationRequested && !stop.IsCancellationRequested)
                _log.LogError("the kernel broker of instance {Instance} is gone: stopping", _options.Instance);
        }
        finally
        {
            _device.Stop();
            _inet = null;
            Shutdown();
        }
    }

    private void Serve(CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            if (_inet is null && !TryAttach())
            {
                stop.WaitHandle.WaitOne(_options.AttachRetry);
                continue;
            }
            if (!_kernel.Receive(out var m, TimeSpan.FromMilliseconds(500), stop)) continue;
            try
            {
                Handle(m);
            }
            catch (KernelException e)
            {
                _log.LogWarning("{Kind} from {Process}: {Message}", m.Kind, m.Source, e.Message);
            }
        }
    }

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
        for (int i = 0; i < m.DataCount; i++)
        {
            WireResult r;
            var d = m.GetData(i).Ica;
            if (i >= count || !TransmitArgs.TryGetFrame(args, i, out int offset, out int length) || length <= 0 || offset + length > d.Length)
                r = WireResult.BadDescriptor;
            else
                r = ToWire(_device.Transmit(d.Span.Slice(offset, length)));
            TransmitArgs.SetResult(args, i, r);
            if (r == WireResult.Sent) Interlocked.Increment(ref Counters._framesTransmitted);
            else Interlocked.Increment(ref Counters._framesNotSent);
        }
        c.Stamp(InetTraceStage.NicTransmitted, _kernel.Id.Value);
        if (c.TryGetFrame(0, out var first) && (first.Flags & RequestFrameFlags.DirectReturn) != 0 && c.OriginalRequester != m.Source.Value)
        {
            // Direct return: the result to the original requester, the lent ICAs back to inet.
            var endpoint = m.Endpoint!;
            _kernel.ReplyDirect(m.Control, 0, default, InetTraceStage.NicReturn);
            if (m.DataCount > 0) _kernel.Notify(endpoint, (ushort)NicNotify.TxDataBack, m.RequestId, m.Data);
            return;
        }
        _kernel.Reply(m, m.Control, 0, m.Data, InetTraceStage.NicReturn);
    }

    /// <summary>The receive callback: one copy into a data ICA, then ethinput.</summary>
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
        IcaLease ica;
        try
        {
            ica = _kernel.AllocateBytes(frame.Length);
        }
        catch (KernelException)
        {
            Interlocked.Increment(ref Counters._rxNoIca);
            return;
        }
        frame.CopyTo(ica.Span);
        _rxData[0] = new DataIca(ica, frame.Length);
        try
        {
            _kernel.Post(inet, default, (ushort)InetOp.EthInput, _rxData);
            Interlocked.Increment(ref Counters._framesPosted);
        }
        catch (KernelException e)
        {
            Interlocked.Increment(ref Counters._rxPostFailed);
            // Ring full: the ICA is still ours. Peer died: it may already be journaled to inet
            // (then the broker reclaims it with inet's pages), so it is not freed here.
            if (e.Error == KernelError.RingFull) _kernel.Free(ica);
        }
        finally
        {
            _rxData[0] = default;
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
            _log.LogInformation("ipc counters: {Counters}", Counters);
            _log.LogInformation("device counters: {Counters}", _device.Counters);
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

    private static WireResult ToWire(DeviceResult r) => r switch
    {
        DeviceResult.Sent => WireResult.Sent,
        DeviceResult.LinkDown => WireResult.LinkDown,
        DeviceResult.TooShort => WireResult.TooShort,
        DeviceResult.TooLong => WireResult.TooLong,
        _ => WireResult.Error,
    };

    private static string FormatIp(uint a) => $"{a >> 24}.{(a >> 16) & 0xFF}.{(a >> 8) & 0xFF}.{a & 0xFF}";
}
