// The protocol manager: the shell around the protocol core's Interface. It owns the
// Interface (made at the first ifattach, when the driver's MAC and MTU are known;
// the address, prefix and gateway come from the server's own command line, as
// ifconfig gives them to a kernel), the ICA-backed buffer pool, and the driver's
// side of the data path: received frames go in as the ICAs the driver filled, and
// frames to send go to the driver as the ICAs the core wrote them in, lent until
// the driver's TX completion brings them back.
//
// Frames go to the driver on loan (the kernel's lend): should the driver die holding
// them, the broker gives their ICAs back to inet rather than free them, because a
// TCP segment sent in place is the connection's unacknowledged data and must survive
// to be retransmitted. On the driver's death notice every frame in flight is taken
// back and finished as not sent (TCP sees a loss on the wire and retransmits later);
// a frame whose ICA did not come back is marked lost. The interface keeps every
// other piece of state (ARP cache, sockets, TCP connections), and the next ifattach
// with the same MAC carries on with it. A new MAC or MTU makes a new interface.
//
// Everything here runs on the request manager's one thread, as the core requires.
using AntHost.Inet.Abi;
using AntHost.Inet.Buffers;
using AntHost.Inet.Core.Counters;
using AntHost.Inet.Core.Iface;
using AntHost.Inet.Core.Randomness;
using AntHost.Inet.Core.Tcp;
using AntHost.Inet.Core.Time;
using AntHost.Inet.Core.Wire;
using AntHost.Kernel;
using AntHost.Kernel.Ipc;
using AntHost.Kernel.Pool;
using Microsoft.Extensions.Logging;

namespace AntHost.Inet;

/// <summary>The inet server's protocol manager (see the file comment).</summary>
public sealed class ProtocolManager
{
    /// <summary>
    /// Frames lent to the driver at once. Below the ring's 256 slots, so a transmit never
    /// waits for room: inet blocked in a post to a driver whose ring is full, while the
    /// driver blocks replying into inet's full ring, is a deadlock that only the send
    /// timeout breaks (seen with a hundred connections). Frames past it wait in the
    /// interface's transmit queue until completions come back.
    /// </summary>
    private const int MaxFramesLent = 192;

    private readonly IInetKernel _kernel;
    private readonly InetOptions _options;
    private readonly ILogger _log;
    private readonly uint _serviceId;
    private readonly DataIca[] _batchData = new DataIca[InetService.MaxFramesPerMessage];
    private readonly IcaPacketBuffer[] _batch = new IcaPacketBuffer[InetService.MaxFramesPerMessage];
    private readonly long[] _stats = new long[(int)InetStat.Count];
    private Endpoint? _driver;
    private ProcessId _driverProcess;
    private uint _attachments;

    public ProtocolManager(IInetKernel kernel, InetOptions options, uint serviceId, ILogger log)
    {
        _kernel = kernel;
        _options = options;
        _serviceId = serviceId;
        _log = log;
        Pool = new IcaPacketBufferPool(kernel);
        Pressure = new PoolPressure(kernel, options.TcpMemoryPages, options.ReceiveReservePages);
        Timeline = new SendTimeline(kernel.Id.Value);
        Replies = new AppReplies(kernel, log);
        Transmits = new Transmits(kernel, Replies, _stats, serviceId, log);
    }

    public IcaPacketBufferPool Pool { get; }

    /// <summary>Sets TCP's memory limit from the pool each round (Buffers/PoolPressure.cs).</summary>
    internal PoolPressure Pressure { get; }

    /// <summary>Replies to apps (the socket manager's too).</summary>
    public AppReplies Replies { get; }

    /// <summary>Every frame's life with the driver, and the app sends waiting for the flush.</summary>
    public Transmits Transmits { get; }

    /// <summary>The counters, shared with the socket manager (each writes its own range of <see cref="InetStat"/>).</summary>
    internal long[] Counters => _stats;

    /// <summary>Stamps an app's send timeline with the core's layer boundaries (the interface's transmit trace hook).</summary>
    public SendTimeline Timeline { get; }

    /// <summary>The interface, once a driver attached.</summary>
    public Interface? Interface { get; private set; }

    /// <summary>The attached driver's channel, or null.</summary>
    public Endpoint? Driver => _driver;

    public AbiLinkState Link { get; private set; }

    private void Count(InetStat s, long n = 1) => _stats[(int)s] += n;

    // ---- ifattach, link, death -------------------------------------------------------------

    /// <summary>Handles an IfAttach request; returns the reply status and fills the result.</summary>
    public InetStatus Attach(in Message m, IfAttachArgs args, Instant now, Span<byte> result, out int resultLength)
    {
        resultLength = 0;
        if (args.Mtu is < 576 or > 65535 || (args.Mac & 0x0100_0000_0000UL) != 0 || args.Mac == 0)
        {
            Count(InetStat.BadRequests);
            _log.LogWarning("ifattach from {Process} refused: MAC {Mac:x12} / MTU {Mtu} unusable", m.Source, args.Mac, args.Mtu);
            return InetStatus.BadArguments;
        }
        if (_driver is { IsOpen: true } current && current != m.Endpoint)
        {
            _log.LogWarning("ifattach from {Process} refused: driver {Driver} is attached and alive", m.Source, _driverProcess);
            return InetStatus.AlreadyAttached;
        }
        // A dead driver whose death notice has not come yet (its channel is closed, so the
        // broker has already given back what was lent to it): settle its frames now.
        if (_driver is not null && _driver != m.Endpoint) DriverGone();
        var mac = new MacAddress(args.Mac);
        if (Interface is { } old && (old.Mac != mac || old.Config.Mtu != args.Mtu))
        {
            _log.LogWarning("the new driver has MAC {Mac} MTU {Mtu} (was {OldMac} MTU {OldMtu}): the interface starts afresh", mac, args.Mtu, old.Mac, old.Config.Mtu);
            old.Down(now);
            Interface = null;
        }
        if (Interface is null)
        {
            var random = new SystemRandom();
            Interface = new Interface(new InterfaceConfig
            {
                Tcp = ip => new TcpLayer(ip, Pool, random, _options.Tcp with { MaximumSockets = _options.MaxSockets }),
                Mac = mac,
                Address = _options.Address,
                PrefixLength = _options.PrefixLength,
                Gateway = _options.Gateway,
                Mtu = args.Mtu,
                Pool = Pool,
                Random = random,
                TransmitTrace = Timeline.OnTransmit,
            });
        }
        _driver = m.Endpoint;
        _driverProcess = m.Source;
        Link = args.Link;
        _attachments++;
        Count(InetStat.Attaches);
        Interface.Up(now);
        new IfAttachResult(_options.Address.Value, _options.PrefixLength, _options.Gateway?.Value, _attachments).WriteTo(result);
        resultLength = IfAttachResult.Length;
        _log.LogInformation("ifattach #{N}: driver {Process} ({Pid}) adapter {Adapter} MAC {Mac} MTU {Mtu} link {Link}; interface {Address}/{Prefix} gateway {Gateway}",
            _attachments, m.Source, args.DriverPid, args.Adapter, mac, args.Mtu, args.Link, _options.Address, _options.PrefixLength,
            _options.Gateway?.ToString() ?? "none");
        return InetStatus.Ok;
    }

    public void SetLink(in Message m, AbiLinkState link)
    {
        if (m.Endpoint != _driver) { Count(InetStat.BadRequests); return; }
        Link = link;
        _log.LogInformation("driver {Process}: link {Link}", m.Source, link);
    }

    /// <summary>A channel's peer died; when it is the driver, its frames in flight are lost with it.</summary>
    public void PeerDied(in Message m)
    {
        if (m.Endpoint is not { } ep) return;
        if (ep == _driver) DriverGone();
        else Transmits.AppGone(ep);
    }

    /// <summary>
    /// The driver is gone, and the broker has settled what it held (its channel is closed
    /// once that is done): the frames lent to it are inet's again, or lost when they were
    /// not lent.
    /// </summary>
    private void DriverGone()
    {
        _driver = null;
        Count(InetStat.DriverDeaths);
        var (back, lost) = Transmits.DriverGone();
        _log.LogWarning("driver {Process} is gone: {Back} frames it held came back unsent, {Lost} lost; waiting for a new ifattach", _driverProcess, back, lost);
    }

    // ---- receive ---------------------------------------------------------------------------

    /// <summary>EthInput: each data ICA is one frame at offset 0; ownership is ours.</summary>
    public void EthInput(in Message m, Instant now)
    {
        if (!TakeEthInput(m)) return;
        for (int i = 0; i < m.DataCount; i++)
        {
            var d = m.GetData(i);
            Count(InetStat.FramesFromDriver);
            Interface.Receive(Pool.Wrap(d.Ica, d.Length), now);
        }
        if (!_options.ReceiveBatchPerRound) EndReceiveBatch(now);
    }

    /// <summary>
    /// Counts an ethinput of either kind; refuses (and frees) one not from the attached driver;
    /// frees its control ICA and opens the receive batch its frames join. False when refused.
    /// </summary>
    [System.Diagnostics.CodeAnalysis.MemberNotNullWhen(true, nameof(Interface))]
    private bool TakeEthInput(in Message m)
    {
        Count(InetStat.EthInputMessages);
        if (m.Endpoint != _driver || Interface is null)
        {
            Count(InetStat.BadRequests);
            _kernel.FreeMessage(m);
            return false;
        }
        if (!m.Control.IsNone) _kernel.Free(m.Control);
        // The frames of one ethinput arrived together: TCP answers them once (one ACK for all).
        BeginBatch();
        return true;
    }

    private bool _batchOpen;

    /// <summary>Opens the receive batch the ethinputs of this round share (or of this ethinput alone).</summary>
    private void BeginBatch()
    {
        if (_batchOpen) return;
        _batchOpen = true;
        Count(InetStat.ReceiveBatches);
        Interface!.BeginReceiveBatch();
    }

    /// <summary>
    /// Ends the open receive batch: each connection that got in-order segments in it runs its
    /// output once (one ACK for the batch, the data its ACKs let go). The core calls it when a
    /// round begins, before the sockets are served and the frames flushed.
    /// </summary>
    public void EndReceiveBatch(Instant now)
    {
        if (!_batchOpen) return;
        _batchOpen = false;
        Interface?.EndReceiveBatch(now);
    }

    /// <summary>
    /// EthInputList: each data ICA is a frame list (<see cref="FrameList"/>) of header-only TCP
    /// segments; ownership is ours. Each frame goes through the core in place, as a buffer over
    /// its slice of the list's ICA, which is freed when the last of them is released. A frame a
    /// list may not carry, and the rest of a list after a malformed record, are refused and counted.
    /// </summary>
    public void EthInputList(in Message m, Instant now)
    {
        if (!TakeEthInput(m)) return;
        for (int i = 0; i < m.DataCount; i++)
        {
            var d = m.GetData(i);
            var shared = Pool.Share(d.Ica);
            int offset = 0;
            while (true)
            {
                var read = FrameList.Next(d.Ica.Span, d.Length, ref offset, out int start, out int length);
                if (read == FrameList.Read.End) break;
                if (read == FrameList.Read.Malformed)
                {
                    Count(InetStat.BadListFrames);
                    break;
                }
                if (!FrameList.IsHeaderOnlyTcp(d.Ica.Span.Slice(start, length)))
                {
                    Count(InetStat.BadListFrames);
                    continue;
                }
                Count(InetStat.FramesFromDriver);
                Count(InetStat.FramesFromLists);
                Interface.Receive(Pool.WrapShared(shared, start, length), now);
            }
            Pool.Unshare(shared);
        }
        if (!_options.ReceiveBatchPerRound) EndReceiveBatch(now);
    }

    // ---- transmit --------------------------------------------------------------------------

    /// <summary>Hands every frame the core queued to the driver, up to three per request.</summary>
    public void Flush()
    {
        var iface = Interface;
        if (iface is not null) FlushFrames(iface);
        Transmits.EndFlush();
    }

    private void FlushFrames(Interface iface)
    {
        int n = 0;
        while (Transmits.InFlight + n < MaxFramesLent && iface.TryDequeueTransmit(out var f))
        {
            if (_driver is null || f is not IcaPacketBuffer b || (f.Fragment is not null and not IcaPacketBuffer) || Transmits.InFlight >= Transmits.MaxInFlight)
            {
                Count(InetStat.TxNoDriver);
                f.FinishTransmit();
                continue;
            }
            if (Transmits.Deferred > 0 && Transmits.TryGetDeferred(b, out var send))
            {
                // An app's own data ICA going out in place: its control ICA travels with it
                // (direct return). Frames queued before it leave first, in order.
                if (n > 0)
                {
                    SendBatch(n);
                    n = 0;
                }
                if (Transmits.Forward(send, _driver)) continue;
            }
            _batch[n++] = b;
            if (n == InetService.MaxFramesPerMessage)
            {
                SendBatch(n);
                n = 0;
            }
        }
        if (n > 0) SendBatch(n);
    }

    private void SendBatch(int n)
    {
        var driver = _driver!;
        IcaLease control;
        try
        {
            control = _kernel.AllocateControl();
        }
        catch (KernelException e)
        {
            FailBatch(n, e);
            return;
        }
        ControlIca.TryOpen(control.Span, out var c);
        c.TryPushFrame(new RequestFrame(_serviceId, (ushort)NicOp.Transmit, RequestFrameFlags.WantsDataBack, _kernel.Id.Value, 0), out var args);
        TransmitArgs.Begin(args, n);
        for (int i = 0; i < n; i++)
        {
            var b = _batch[i];
            if (b.Fragment is IcaPacketBuffer payload)
            {
                // Segmentation offload: the headers ride in the control ICA, the payload goes
                // from the send buffer's own ICA, and the driver cuts the frames.
                TransmitArgs.SetFrame(args, i, b.FragmentOffset, b.FragmentLength);
                TransmitArgs.SetOffload(args, i, b.Length, b.SegmentSize);
                b.Data.CopyTo(TransmitArgs.HeaderTemplate(c.Inline, i, b.Length));
                _batchData[i] = new DataIca(payload.Lease, b.FragmentOffset + b.FragmentLength);
                Count(InetStat.OffloadFrames);
                continue;
            }
            TransmitArgs.SetFrame(args, i, b.Start, b.Length);
            _batchData[i] = new DataIca(b.Lease, b.Start + b.Length);
        }
        try
        {
            _kernel.Post(driver, control, (ushort)NicOp.Transmit, _batchData.AsSpan(0, n), InetTraceStage.InetTransmit, lend: true);
        }
        catch (KernelException e) when (e.Error == KernelError.RingFull)
        {
            // Nothing was handed over.
            _kernel.Free(control);
            FailBatch(n, e);
            return;
        }
        catch (KernelException e)
        {
            // The driver died: whether the journal already named the ICAs cannot be told
            // here. They were lent either way, so they stay in flight and the death notice
            // settles them (taken back, never freed twice).
            Count(InetStat.TxSendFailures);
            _log.LogDebug("transmit of {N} frames failed: {Error}", n, e.Message);
        }
        Count(InetStat.TransmitRequests);
        Count(InetStat.FramesToDriver, n);
        for (int i = 0; i < n; i++)
        {
            // The request's control ICA comes back with the completion, recorded on its first frame.
            Transmits.Lend(_batch[i], control.Handle, hasControl: i == 0);
            _batch[i] = null!;
            _batchData[i] = default;
        }
    }

    /// <summary>The most payload one offloaded TCP send carries (0: offload off).</summary>
    public int OffloadBytes => _options.Tcp.SegmentationOffloadBytes;

    private void FailBatch(int n, KernelException e)
    {
        Count(InetStat.TxSendFailures);
        _log.LogDebug("transmit of {N} frames failed: {Error}", n, e.Message);
        for (int i = 0; i < n; i++)
        {
            var b = _batch[i];
            b.FinishTransmit();
            _batch[i] = null!;
            _batchData[i] = default;
        }
    }

    /// <summary>The TX completion of a Transmit: the control ICA and the frames' data ICAs are back.</summary>
    public void TransmitCompleted(in Message m)
    {
        if (!FromDriver(m)) return;
        Span<byte> args = default;
        if (!m.Control.IsNone && ControlIca.TryOpen(m.Control.Span, out var c) && c.FrameCount > 0)
            args = c.FrameArguments(c.FrameCount - 1);
        ReturnData(m, args, 0);
    }

    /// <summary>Data ICAs given back after a transmit whose result went straight to its requester.</summary>
    public void DataBack(in Message m)
    {
        if (!FromDriver(m)) return;
        if (!m.Control.IsNone) _kernel.Free(m.Control);
        ReturnData(m, default, 0, withControl: false);
    }

    /// <summary>
    /// TxCompletions: the completions of several transmits in one message (the results and
    /// which data ICAs are control ICAs in the request id). A malformed one (no ICA at all, a
    /// mark past its ICAs, a result no driver writes) is counted; its ICAs come home all the
    /// same (a frame whose result is not one as not sent), so no page is lost.
    /// </summary>
    public void Completions(in Message m)
    {
        if (!FromDriver(m)) return;
        if ((m.DataCount == 0 && m.Control.IsNone) || !TxCompletions.IsValid(m.RequestId, m.DataCount)) Count(InetStat.BadCompletions);
        ReturnData(m, default, m.RequestId);
    }

    /// <summary>Counts a completion message; refuses (and frees) one not from the attached driver.</summary>
    private bool FromDriver(in Message m)
    {
        if (m.Endpoint != _driver)
        {
            Count(InetStat.BadRequests);
            _kernel.FreeMessage(m);
            return false;
        }
        Count(InetStat.CompletionMessages);
        return true;
    }

    private readonly IcaHandle[] _controlsBack = new IcaHandle[1 + InetService.MaxFramesPerMessage];
    private readonly bool[] _controlsSettled = new bool[1 + InetService.MaxFramesPerMessage];

    /// <summary>
    /// Ends the life of each frame the message gives back, its result from the request's
    /// <paramref name="args"/>, else from <paramref name="word"/> (TxCompletions' request id;
    /// 0: sent), then takes the control ICAs of inet's requests that came with them (the
    /// message's control slot, and TxCompletions' marked data ICAs): a record still holding
    /// one that no frame of this message settled lets go of it, and each is freed.
    /// </summary>
    private void ReturnData(in Message m, ReadOnlySpan<byte> args, uint word, bool withControl = true)
    {
        int controls = 0;
        if (withControl && !m.Control.IsNone) _controlsBack[controls++] = m.Control.Handle;
        for (int i = 0; i < m.DataCount; i++)
            if (TxCompletions.IsControl(word, i)) _controlsBack[controls++] = m.GetData(i).Ica.Handle;
        for (int i = 0; i < m.DataCount; i++)
        {
            if (TxCompletions.IsControl(word, i)) continue;
            var d = m.GetData(i).Ica;
            var r = !args.IsEmpty ? TransmitArgs.GetResult(args, i) : TxCompletions.Result(word, i);
            if (!Transmits.Back(d, r, out var held))
            {
                // Not a frame we lent: it is ours now all the same; give it back to the pool.
                Count(InetStat.BadRequests);
                _kernel.Free(d);
                continue;
            }
            for (int k = 0; k < controls; k++)
                if (!held.IsNone && held.FirstPage == _controlsBack[k].FirstPage) _controlsSettled[k] = true;
        }
        for (int k = 0; k < controls; k++)
        {
            if (!_controlsSettled[k]) Transmits.ControlBack(_controlsBack[k]);
            _controlsSettled[k] = false;
        }
        if (withControl && !m.Control.IsNone) _kernel.Free(m.Control);
        for (int i = 0; i < m.DataCount; i++)
            if (TxCompletions.IsControl(word, i)) _kernel.Free(m.GetData(i).Ica);
    }

    // ---- timers ----------------------------------------------------------------------------

    public Instant? PollAt => Interface?.PollAt;

    public void Poll(Instant now)
    {
        if (Interface?.Tcp is TcpLayer tcp)
        {
            Pressure.Update(tcp.Memory, now);
            tcp.MemoryLimitSet(now);
        }
        if (Interface is { } i && i.PollAt is { } at && at <= now) i.Poll(now);
    }

    // ---- stats and shutdown ----------------------------------------------------------------

    /// <summary>Every counter of <see cref="InetStat"/>, in order.</summary>
    public ReadOnlySpan<long> Stats()
    {
        _stats[(int)InetStat.RequestThreadAllocatedBytes] = GC.GetAllocatedBytesForCurrentThread();
        _stats[(int)InetStat.KernelGarbage] = _kernel.Garbage;
        _stats[(int)InetStat.KernelRefusedHandles] = _kernel.RefusedHandles;
        _stats[(int)InetStat.Attached] = _driver is not null ? 1 : 0;
        _stats[(int)InetStat.TxInFlight] = Transmits.InFlight;
        _stats[(int)InetStat.BuffersOutstanding] = Pool.Outstanding;
        _stats[(int)InetStat.Link] = (long)Link;
        _stats[(int)InetStat.PagesOwned] = _kernel.PagesOwned();
        _stats[(int)InetStat.RepliesParked] = Replies.ParkedTotal;
        _stats[(int)InetStat.RepliesParkedNow] = Replies.ParkedNow;
        _stats[(int)InetStat.RepliesDropped] = Replies.Dropped;
        _stats[(int)InetStat.RepliesToApps] = Replies.Delivered;
        if (Interface is { } i)
        {
            var s = i.Counters;
            _stats[(int)InetStat.Mac] = (long)i.Mac.Value;
            _stats[(int)InetStat.Address] = i.Address.Value;
            _stats[(int)InetStat.InterfaceHeldBuffers] = i.HeldBuffers;
            _stats[(int)InetStat.IfaceFramesIn] = s[Counter.FramesIn];
            _stats[(int)InetStat.IfaceFramesOut] = s[Counter.FramesOut];
            _stats[(int)InetStat.ArpRepliesOut] = s[Counter.ArpRepliesOut];
            var snap = s.Snapshot();
            _stats[(int)InetStat.IcmpEchoRepliesOut] = snap.IcmpOutByType(0);
            _stats[(int)InetStat.IcmpUnreachableOut] = snap.IcmpOutByType(3);
            _stats[(int)InetStat.UdpNoPort] = s[RxDrop.UdpNoPort];
            _stats[(int)InetStat.IfaceRxDrops] = snap.RxDropsTotal;
            _stats[(int)InetStat.IfaceTxDrops] = snap.TxDropsTotal;
        }
        return _stats;
    }

    /// <summary>
    /// For the meter, from another thread: the counters the request thread increments as it
    /// goes (plain reads of its array), the interface's frame and drop counters, and the pages
    /// the ownership table gives inet. Nothing is iterated that the request thread changes.
    /// </summary>
    internal void ReadLive(long[] v)
    {
        foreach (var s in new[] { InetStat.Attaches, InetStat.DriverDeaths, InetStat.EthInputMessages, InetStat.FramesFromDriver, InetStat.BadRequests,
            InetStat.TransmitRequests, InetStat.FramesToDriver, InetStat.FramesSent, InetStat.FramesNotSent, InetStat.TxNoDriver, InetStat.TxLostWithDriver, InetStat.TxSendFailures })
            v[(int)s] = Volatile.Read(ref _stats[(int)s]);
        v[(int)InetStat.Attached] = _driver is not null ? 1 : 0;
        v[(int)InetStat.PagesOwned] = _kernel.PagesOwned();
        if (Interface is { } i)
        {
            var c = i.Counters;
            v[(int)InetStat.IfaceFramesIn] = c[Counter.FramesIn];
            v[(int)InetStat.IfaceFramesOut] = c[Counter.FramesOut];
            v[(int)InetStat.ArpRepliesOut] = c[Counter.ArpRepliesOut];
            v[(int)InetStat.UdpNoPort] = c[RxDrop.UdpNoPort];
            var snap = c.Snapshot();
            v[(int)InetStat.IfaceRxDrops] = snap.RxDropsTotal;
            v[(int)InetStat.IfaceTxDrops] = snap.TxDropsTotal;
        }
        WritePressure(v);
    }

    /// <summary>TCP's memory and the pool's pressure on it (after the socket manager wrote its counters).</summary>
    internal void WritePressure(long[] v)
    {
        v[(int)InetStat.PoolFreePagesLow] = Pressure.FreePagesLow == long.MaxValue ? 0 : Pressure.FreePagesLow;
        v[(int)InetStat.PoolCacheTrims] = Pressure.CacheTrims;
        if (Interface?.Tcp is not TcpLayer tcp) return;
        var m = tcp.Memory;
        v[(int)InetStat.TcpMemoryLimit] = m.Limit == long.MaxValue ? 0 : m.Limit;
        v[(int)InetStat.TcpMemoryUsed] = m.Used;
        v[(int)InetStat.TcpMemoryUsedPeak] = m.UsedPeak;
        v[(int)InetStat.TcpMemoryHolders] = m.Holders;
        v[(int)InetStat.TcpPressureWindowClamps] = tcp.Counters.PressureWindowClamps;
        v[(int)InetStat.TcpPressureSendRefusals] = tcp.Counters.PressureSendRefusals;
    }

    /// <summary>The counters' array as <see cref="Stats"/> last filled it (the socket manager adds its own).</summary>
    internal long[] StatsBuffer => _stats;

    /// <summary>The interface's counters as text, for logs.</summary>
    public string InterfaceCounters() => Interface?.Counters.Snapshot().ToString() ?? "no interface";

    /// <summary>Stops: drops what the interface holds, so every buffer goes back before the process leaves.</summary>
    public void Shutdown(Instant now)
    {
        Interface?.Down(now);
        Transmits.Shutdown();
    }
}
