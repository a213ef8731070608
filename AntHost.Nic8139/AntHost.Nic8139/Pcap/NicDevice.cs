using System.Diagnostics;
using System.Runtime.InteropServices;
using AntHost.Inet.Abi;
using AntHost.Inet.Core.Wire;
using AntHost.Nic8139.Faults;
using SharpPcap;
using SharpPcap.LibPcap;

namespace AntHost.Nic8139.Pcap;

/// <summary>Receives each frame addressed to the driver. The span points into libpcap's ring (or the fault injector's buffer) and is valid only during the call: copy it out.</summary>
public delegate void FrameHandler(ReadOnlySpan<byte> frame);

/// <summary>
/// One adapter, opened through libpcap: the part of the NIC driver that talks to the hardware.
///
/// Opening: SharpPcap's <c>LibPcapLiveDevice</c> creates and activates the handle with
/// immediate mode (libpcap's default read timeout batches frames for up to a second), a snaplen
/// of MTU + 18 + <see cref="NicDeviceOptions.SnaplenMargin"/>, and a kernel buffer of several MiB
/// (the default ring holds ~32 frames and drops). A BPF filter passes only our MAC and
/// broadcast (and multicast when asked); <c>pcap_setdirection(PCAP_D_IN)</c> hides the frames we
/// sent ourselves. Promiscuous mode is on only when our MAC is not the adapter's own.
///
/// Receiving: one thread drains the ring with non-blocking <c>pcap_next_ex</c> through
/// pointers (no allocation per frame), hands each frame to the callback, and sleeps in its own
/// <c>poll</c> on the pcap descriptor and an eventfd. The eventfd wakes it for <see cref="Stop"/>
/// and for the fault injector's deadlines; the poll's timeout is when it asks the kernel about
/// the link. A blocking <c>pcap_next_ex</c> cannot serve: in immediate mode it ignores the read
/// timeout and waits for a frame forever, and <c>pcap_breakloop</c>, the only way out, makes the
/// next call return -2 after libpcap has already taken a frame off the ring (it would be lost).
///
/// Link: when the adapter goes down (POLLERR on the packet socket, a pcap error, or the flags
/// seen at a poll timeout), the handle is closed, its drop count is kept, and the loop waits
/// for the adapter to be up with carrier again, then reopens it. Transmits in between return
/// <see cref="TransmitResult.LinkDown"/>. Nothing throws on the packet path.
///
/// Threads: <see cref="Transmit"/> may be called from any thread; it takes a lock that is
/// otherwise only taken when the handle is opened, closed or asked for statistics, so it is
/// uncontended in steady state. The receive callback and <see cref="LinkChanged"/> run on the
/// receive thread.
/// </summary>
public sealed unsafe partial class NicDevice : IDisposable
{
    private const int EthernetHeader = 14;
    private const int Batch = 64;

    private readonly NicDeviceOptions _options;
    private readonly LinkProbe _probe;
    private readonly int _wakeFd;
    private readonly object _handleLock = new();
    private readonly FaultInjector _rxFaults;
    private readonly FaultInjector _txFaults;
    private readonly FrameSink _deliverSink;
    private readonly FrameSink _injectSink;

    private LibPcapLiveDevice? _device;
    private IntPtr _pcap;
    private int _pcapFd = -1;
    private bool _everOpened;

    private Thread? _rxThread;
    private FrameHandler? _handler;
    private volatile bool _stopping;
    private volatile int _link = (int)LinkState.Unknown;
    private volatile string? _lastError;
    private bool _disposed;

    // Receive-side counters: written by the receive thread only.
    private long _rxFrames, _rxBytes, _rxDelivered, _rxOversize, _rxTruncated, _rxRunt, _rxNotForUs, _rxHandlerErrors;
    private long _linkDownEvents, _reopens;
    // Transmit-side counters: any thread.
    private long _txFrames, _txBytes, _txErrors, _txRejected, _txLinkDown;
    // Kernel drop counts of handles already closed; the last counts asked of libpcap.
    private long _closedDrops, _closedIfDrops, _lastDrops, _lastIfDrops;
    // The capture tap: every frame in and out is offered to it while a capture runs.
    private NicPanel? _tap;

    private NicDevice(NicDeviceOptions options, LinkProbe probe, MacAddress mac, int mtu, bool promiscuous)
    {
        _options = options;
        _probe = probe;
        Mac = mac;
        Mtu = mtu;
        Promiscuous = promiscuous;
        MaxFrameLength = mtu + EthernetHeader + 4;
        Snaplen = MaxFrameLength + NicDeviceOptions.SnaplenMargin;
        Filter = BuildFilter(mac, options.AcceptMulticast);
        _wakeFd = Linux.EventFd(0, Linux.EfdCloexec | Linux.EfdNonblock);
        if (_wakeFd < 0)
            throw new NicDeviceException($"adapter '{options.Adapter}': eventfd failed: {Linux.Error(Marshal.GetLastPInvokeError())}");
        _rxFaults = new FaultInjector(options.ReceiveFaults, MaxFrameLength, Stopwatch.Frequency);
        _txFaults = new FaultInjector(options.TransmitFaults, MaxFrameLength, Stopwatch.Frequency);
        _deliverSink = Deliver;
        _injectSink = InjectFromInjector;
    }

    /// <summary>The adapter's name.</summary>
    public string Adapter => _options.Adapter;

    /// <summary>The driver's own MAC (what the filter accepts and what the inet server registers).</summary>
    public MacAddress Mac { get; }

    /// <summary>The IP MTU.</summary>
    public int Mtu { get; }

    /// <summary>The longest frame accepted in either direction: MTU + 14 + 4 (one VLAN tag).</summary>
    public int MaxFrameLength { get; }

    /// <summary>libpcap's snaplen.</summary>
    public int Snaplen { get; }

    /// <summary>Whether the adapter is opened promiscuous.</summary>
    public bool Promiscuous { get; }

    /// <summary>The BPF filter text.</summary>
    public string Filter { get; }

    /// <summary>How long the receive loop polls an empty ring before it sleeps.</summary>
    public int SpinMicroseconds => _options.SpinMicroseconds;

    /// <summary>The link as last seen.</summary>
    public LinkState Link => (LinkState)_link;

    /// <summary>The last error seen (open, transmit or receive), for logs; null when none.</summary>
    public string? LastError => _lastError;

    /// <summary>True while the receive loop runs.</summary>
    public bool IsRunning => _rxThread is not null;

    /// <summary>
    /// The capture tap (the driver's panel): while it says a capture runs, every frame
    /// received (before the fault injector) and transmitted (as it went to libpcap) is copied
    /// into its ring; otherwise each frame costs one load of its flag. Null: no capture.
    /// </summary>
    public NicPanel? CaptureTap { get => _tap; set => _tap = value; }

    /// <summary>Raised on the receive thread when the link goes down or comes back.</summary>
    public event Action<LinkState>? LinkChanged;

    /// <summary>What the receive-side injector did.</summary>
    public FaultStatistics ReceiveFaultStatistics { get { lock (_rxFaults) return _rxFaults.Statistics; } }

    /// <summary>What the transmit-side injector did.</summary>
    public FaultStatistics TransmitFaultStatistics { get { lock (_handleLock) return _txFaults.Statistics; } }

    /// <summary>
    /// Opens the adapter. When its link is down the device is still made (state
    /// <see cref="LinkState.Down"/>) and opens the adapter when it comes up.
    /// </summary>
    /// <exception cref="NicDeviceException">The adapter does not exist or cannot be opened; the message says why.</exception>
    public static NicDevice Open(NicDeviceOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.ReceiveFaults.Validate();
        options.TransmitFaults.Validate();
        if (options.BufferBytes < 64 * 1024)
            throw new ArgumentException($"BufferBytes must be at least 64 KiB (got {options.BufferBytes})", nameof(options));
        LibPcap.EnsureLoaded();
        return NetworkNamespace.Run(options.NetworkNamespace, () =>
        {
            var probe = new LinkProbe(options.Adapter);
            NicDevice? device = null;
            try
            {
                if (!probe.Exists)
                    throw new NicDeviceException($"adapter '{options.Adapter}' not found"
                        + (options.NetworkNamespace is { } ns ? $" in network namespace '{ns}'" : "")
                        + " (see `ip link`)");
                int mtu = options.Mtu ?? probe.Mtu;
                if (mtu is < 68 or > 65535) throw new NicDeviceException($"adapter '{options.Adapter}': MTU {mtu} out of range 68..65535");
                var hw = probe.HardwareAddress;
                var mac = options.Mac ?? DeriveMac(options.Adapter, options.Instance);
                if (mac.IsMulticast) throw new NicDeviceException($"MAC {mac} is a group address; the driver needs a unicast one");
                bool promiscuous = options.Promiscuous ?? mac != hw;
                device = new NicDevice(options, probe, mac, mtu, promiscuous);
                if (probe.State == LinkState.Up)
                {
                    device.OpenHandle();
                    device._link = (int)LinkState.Up;
                }
                else
                {
                    device._link = (int)LinkState.Down;
                }
                return device;
            }
            catch
            {
                if (device is not null) device.Dispose();
                else probe.Dispose();
                throw;
            }
        });
    }

    /// <summary>
    /// The driver's default address: a locally administered unicast address derived from the
    /// adapter name and the instance, 02 (U/L set, I/G clear) followed by 40 bits of an FNV-1a
    /// hash of both. Two drivers on two adapters (or two instances on one) never collide, and a
    /// restarted driver comes back with the same address (the peer's ARP cache stays right).
    /// </summary>
    public static MacAddress DeriveMac(string adapter, int instance)
    {
        ArgumentNullException.ThrowIfNull(adapter);
        ulong h = 14695981039346656037UL;
        foreach (char c in adapter) { h ^= c; h *= 1099511628211UL; }
        h ^= 0xFF; h *= 1099511628211UL;
        for (int i = 0; i < 4; i++) { h ^= (byte)(instance >> (8 * i)); h *= 1099511628211UL; }
        return new((0x02UL << 40) | (h & 0xFF_FFFF_FFFFUL));
    }

    /// <summary>The BPF filter: our unicast address, broadcast, and multicast if wanted.</summary>
    public static string BuildFilter(MacAddress mac, bool acceptMulticast) =>
        acceptMulticast ? $"ether dst {mac} or ether broadcast or ether multicast" : $"ether dst {mac} or ether broadcast";

    /// <summary>Starts the receive loop; <paramref name="onFrame"/> gets every frame for us.</summary>
    public void Start(FrameHandler onFrame)
    {
        ArgumentNullException.ThrowIfNull(onFrame);
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_rxThread is not null) throw new InvalidOperationException("the receive loop already runs");
        _handler = onFrame;
        _stopping = false;
        _rxThread = new Thread(ReceiveLoop) { IsBackground = true, Name = "nic-rx " + Adapter };
        _rxThread.Start();
    }

    /// <summary>Stops the receive loop and waits for it (unless called from the receive callback); frames still held by the injectors are released first. Returns promptly also when no frame comes.</summary>
    public void Stop()
    {
        var thread = _rxThread;
        if (thread is null) return;
        _stopping = true;
        Wake();
        // From the receive callback itself: the loop ends after this frame; nothing to wait for.
        if (Thread.CurrentThread == thread) return;
        thread.Join();
        _rxThread = null;
    }

    /// <summary>Asks the loop to end soon (from any thread, a cancellation callback included); does not wait for it.</summary>
    public void RequestStop()
    {
        _stopping = true;
        Wake();
    }

    /// <summary>
    /// Transmits one frame (copied by the kernel before this returns: the caller keeps its
    /// buffer). Never throws for a bad frame or a down link: the result says, and it is counted.
    /// </summary>
    public TransmitResult Transmit(ReadOnlySpan<byte> frame)
    {
        if (frame.Length < EthernetHeader)
        {
            Interlocked.Increment(ref _txRejected);
            return TransmitResult.TooShort;
        }
        if (frame.Length > MaxFrameLength)
        {
            Interlocked.Increment(ref _txRejected);
            return TransmitResult.TooLong;
        }
        if (!_txFaults.Enabled) return InjectRaw(frame);
        lock (_handleLock)
        {
            if (_pcap == IntPtr.Zero)
            {
                Interlocked.Increment(ref _txLinkDown);
                return TransmitResult.LinkDown;
            }
            long before = _txFaults.NextDeadline ?? long.MaxValue;
            _txFaults.Process(frame, Stopwatch.GetTimestamp(), _injectSink);
            if ((_txFaults.NextDeadline ?? long.MaxValue) < before) Wake();
        }
        return TransmitResult.Sent;
    }

    private void InjectFromInjector(ReadOnlySpan<byte> frame) => InjectRaw(frame);

    private TransmitResult InjectRaw(ReadOnlySpan<byte> frame)
    {
        int rc;
        lock (_handleLock)
        {
            var pcap = _pcap;
            if (pcap == IntPtr.Zero)
            {
                Interlocked.Increment(ref _txLinkDown);
                return TransmitResult.LinkDown;
            }
            fixed (byte* p = frame)
                rc = LibPcap.Inject(pcap, p, (nuint)frame.Length);
            if (rc < 0) _lastError = "transmit: " + LibPcap.GetError(pcap);
        }
        if (rc < 0)
        {
            Interlocked.Increment(ref _txErrors);
            return TransmitResult.Error;
        }
        Interlocked.Increment(ref _txFrames);
        Interlocked.Add(ref _txBytes, frame.Length);
        var tap = _tap;
        if (tap is not null && tap.Capturing) tap.Capture(frame, CaptureDirection.Out, Stopwatch.GetTimestamp());
        return TransmitResult.Sent;
    }

    /// <summary>A snapshot of every counter (asks libpcap for the kernel's drop count).</summary>
    public NicCounters Counters => ReadCounters(askKernel: true);

    /// <summary>
    /// A snapshot of every counter; without <paramref name="askKernel"/> the kernel's drop
    /// counts are those libpcap gave the last time it was asked (no system call).
    /// </summary>
    public NicCounters ReadCounters(bool askKernel)
    {
        long drops, ifDrops;
        if (askKernel)
        {
            lock (_handleLock)
            {
                drops = _closedDrops;
                ifDrops = _closedIfDrops;
                if (_pcap != IntPtr.Zero)
                {
                    LibPcap.Stat s;
                    if (LibPcap.Stats(_pcap, &s) == 0)
                    {
                        drops += s.Dropped;
                        ifDrops += s.InterfaceDropped;
                    }
                }
                Volatile.Write(ref _lastDrops, drops);
                Volatile.Write(ref _lastIfDrops, ifDrops);
            }
        }
        else
        {
            drops = Volatile.Read(ref _lastDrops);
            ifDrops = Volatile.Read(ref _lastIfDrops);
        }
        return new NicCounters(
            Volatile.Read(ref _rxFrames), Volatile.Read(ref _rxBytes), Volatile.Read(ref _rxDelivered),
            Volatile.Read(ref _rxOversize), Volatile.Read(ref _rxTruncated), Volatile.Read(ref _rxRunt),
            Volatile.Read(ref _rxNotForUs), Volatile.Read(ref _rxHandlerErrors),
            drops, ifDrops,
            Volatile.Read(ref _txFrames), Volatile.Read(ref _txBytes), Volatile.Read(ref _txErrors),
            Volatile.Read(ref _txRejected), Volatile.Read(ref _txLinkDown),
            Volatile.Read(ref _linkDownEvents), Volatile.Read(ref _reopens));
    }

    // ---- the handle ------------------------------------------------------------------------

    /// <summary>Opens the pcap handle (in the adapter's namespace: the calling thread is there).</summary>
    private void OpenHandle()
    {
        var iface = PcapInterface.GetAllPcapInterfaces().FirstOrDefault(i => i.Name == Adapter)
            ?? throw new NicDeviceException($"adapter '{Adapter}' is not listed by libpcap (pcap_findalldevs)");
        var device = new LibPcapLiveDevice(iface);
        string? configFailure = null;
        var config = new DeviceConfiguration
        {
            Mode = Promiscuous ? DeviceModes.Promiscuous : DeviceModes.None,
            Snaplen = Snaplen,
            BufferSize = _options.BufferBytes,
            Immediate = true,
            ReadTimeout = 1,
        };
        config.ConfigurationFailed += (_, e) => configFailure ??= $"{e.Property}: {e.Error} {e.Message}";
        try
        {
            device.Open(config);
            if (configFailure is not null) throw new NicDeviceException($"adapter '{Adapter}': libpcap refused {configFailure}");
            device.Filter = Filter;
            var pcap = device.Handle.DangerousGetHandle();
            if (LibPcap.SetDirection(pcap, LibPcap.DirectionIn) != 0)
                throw new NicDeviceException($"adapter '{Adapter}': pcap_setdirection(PCAP_D_IN) failed: {LibPcap.GetError(pcap)}");
            byte* errbuf = stackalloc byte[256];
            if (LibPcap.SetNonBlock(pcap, 1, errbuf) != 0)
                throw new NicDeviceException($"adapter '{Adapter}': pcap_setnonblock failed: {Marshal.PtrToStringUTF8((IntPtr)errbuf)}");
            int fd = LibPcap.GetSelectableFd(pcap);
            if (fd < 0) throw new NicDeviceException($"adapter '{Adapter}': libpcap has no selectable descriptor");
            lock (_handleLock)
            {
                _device = device;
                _pcap = pcap;
                _pcapFd = fd;
            }
            OpenKernelSegmentation();
            if (_everOpened) _reopens++;
            _everOpened = true;
        }
        catch (NicDeviceException)
        {
            device.Close();
            throw;
        }
        catch (Exception e) when (e is PcapException or InvalidOperationException or DllNotFoundException)
        {
            device.Close();
            throw new NicDeviceException($"adapter '{Adapter}': cannot open with libpcap: {e.Message}", e);
        }
    }

    private void CloseHandle()
    {
        lock (_handleLock)
        {
            if (_pcap == IntPtr.Zero) return;
            LibPcap.Stat s;
            if (LibPcap.Stats(_pcap, &s) == 0)
            {
                _closedDrops += s.Dropped;
                _closedIfDrops += s.InterfaceDropped;
            }
            _pcap = IntPtr.Zero;
            _pcapFd = -1;
            CloseKernelSegmentation();
            _device?.Close();
            _device = null;
            _txFaults.Clear();
        }
    }

    private void SetLink(LinkState state)
    {
        if (_link == (int)state) return;
        _link = (int)state;
        if (state == LinkState.Down) _linkDownEvents++;
        try
        {
            LinkChanged?.Invoke(state);
        }
        catch (Exception e)
        {
            _lastError = "LinkChanged handler: " + e.Message;
        }
    }

    private void Wake()
    {
        ulong one = 1;
        Linux.Write(_wakeFd, &one, sizeof(ulong));
    }

    // ---- the receive loop ------------------------------------------------------------------

    /// <summary>
    /// Runs the device's loop on the calling thread until <see cref="Stop"/>, with
    /// <paramref name="work"/> served on the same thread and waited for in the same poll: the
    /// NIC driver's one thread on the data path (frames in, transmit requests, completions).
    /// </summary>
    public void Run(FrameHandler onFrame, IDeviceLoopWork work)
    {
        ArgumentNullException.ThrowIfNull(onFrame);
        ArgumentNullException.ThrowIfNull(work);
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_rxThread is not null) throw new InvalidOperationException("the receive loop already runs");
        _handler = onFrame;
        _stopping = false;
        _rxThread = Thread.CurrentThread;
        try { Loop(work); }
        finally { _rxThread = null; }
    }

    private void ReceiveLoop() => Loop(null);

    private void Loop(IDeviceLoopWork? work)
    {
        if (_options.NetworkNamespace is { } ns) NetworkNamespace.EnterOnThisThread(ns);
        int linkFd = Linux.LinkEventSocket();
        // Without link events the loop asks about the link at an interval.
        int checkMs = linkFd >= 0 ? -1 : Math.Max(1, (int)_options.LinkCheckInterval.TotalMilliseconds);
        long spinTicks = _options.SpinMicroseconds * Stopwatch.Frequency / 1_000_000;
        var fds = stackalloc Linux.PollFd[4];
        try
        {
            while (!_stopping)
            {
                int served = work?.Service() ?? 0;
                if (_pcap == IntPtr.Zero)
                {
                    if (_probe.State == LinkState.Up)
                    {
                        try
                        {
                            OpenHandle();
                            SetLink(LinkState.Up);
                            continue;
                        }
                        catch (NicDeviceException e)
                        {
                            _lastError = e.Message;
                        }
                    }
                    else
                    {
                        SetLink(LinkState.Down);
                    }
                    if (served == 0) Sleep(fds, work, linkFd, checkMs, handleOpen: false);
                    continue;
                }

                int got = Drain();
                if (got < 0)
                {
                    LinkLost();
                    continue;
                }
                ReleaseDueFaults();
                work?.FramesDone();
                if (got == Batch || served > 0) continue;

                if (spinTicks > 0)
                {
                    long until = Stopwatch.GetTimestamp() + spinTicks;
                    while (!_stopping && Stopwatch.GetTimestamp() < until)
                    {
                        got = Drain();
                        if (got > 0) work?.FramesDone();
                        if (got != 0) break;
                        if (work is not null && work.HasWork) break;
                        Thread.Yield();
                    }
                    if (got < 0) LinkLost();
                    if (got != 0 || (work is not null && work.HasWork)) continue;
                }
                Sleep(fds, work, linkFd, checkMs, handleOpen: true);
            }
        }
        finally
        {
            if (linkFd >= 0) Linux.Close(linkFd);
        }
        // A clean stop: frames the injectors still hold go out now.
        lock (_rxFaults) _rxFaults.Flush(_deliverSink);
        lock (_handleLock) _txFaults.Flush(_injectSink);
    }

    /// <summary>
    /// Sleeps in one poll over the wake-up eventfd, the pcap descriptor (when open), the link
    /// events and the caller's descriptor, until one is ready or the nearest deadline (fault
    /// injector, caller's work, link check) passes.
    /// </summary>
    private void Sleep(Linux.PollFd* fds, IDeviceLoopWork? work, int linkFd, int checkMs, bool handleOpen)
    {
        long? deadline = NextFaultDeadline();
        if (work?.NextDeadline is { } w && (deadline is null || w < deadline)) deadline = w;
        int timeout = checkMs;
        if (deadline is { } d)
        {
            long ms = (d - Stopwatch.GetTimestamp()) * 1000 / Stopwatch.Frequency;
            timeout = (int)Math.Clamp(ms + 1, 0, checkMs < 0 ? int.MaxValue : checkMs);
        }
        if (work is not null && !work.PrepareToSleep()) return;
        uint n = 0;
        fds[n++] = new Linux.PollFd { Fd = _wakeFd, Events = Linux.PollIn };
        int pcapAt = -1, linkAt = -1;
        if (handleOpen && _pcapFd >= 0) { pcapAt = (int)n; fds[n++] = new Linux.PollFd { Fd = _pcapFd, Events = Linux.PollIn }; }
        if (linkFd >= 0) { linkAt = (int)n; fds[n++] = new Linux.PollFd { Fd = linkFd, Events = Linux.PollIn }; }
        if (work is not null) fds[n++] = new Linux.PollFd { Fd = work.Descriptor, Events = Linux.PollIn };
        int ready = Linux.Poll(fds, n, _stopping ? 0 : timeout);
        work?.AfterSleep();
        if (ready > 0 && (fds[0].Revents & Linux.PollIn) != 0)
        {
            ulong value;
            Linux.Read(_wakeFd, &value, sizeof(ulong));
        }
        bool linkEvent = linkAt >= 0 && (fds[linkAt].Revents & Linux.PollIn) != 0;
        if (linkEvent) Linux.Drain(linkFd);
        bool pcapTrouble = pcapAt >= 0 && (fds[pcapAt].Revents & (Linux.PollErr | Linux.PollHup | Linux.PollNval)) != 0;
        if (handleOpen && (linkEvent || pcapTrouble || (ready == 0 && checkMs >= 0)) && _probe.State != LinkState.Up) LinkLost();
    }

    private void LinkLost()
    {
        CloseHandle();
        lock (_rxFaults) _rxFaults.Clear();
        SetLink(LinkState.Down);
    }

    private long? NextFaultDeadline()
    {
        long? rx, tx;
        lock (_rxFaults) rx = _rxFaults.NextDeadline;
        if (!_txFaults.Enabled) return rx;
        lock (_handleLock) tx = _txFaults.NextDeadline;
        if (rx is null) return tx;
        if (tx is null) return rx;
        return Math.Min(rx.Value, tx.Value);
    }

    private void ReleaseDueFaults()
    {
        if (_rxFaults.Enabled && _rxFaults.Pending > 0)
            lock (_rxFaults) _rxFaults.ReleaseDue(Stopwatch.GetTimestamp(), _deliverSink);
        if (_txFaults.Enabled)
            lock (_handleLock) if (_txFaults.Pending > 0) _txFaults.ReleaseDue(Stopwatch.GetTimestamp(), _injectSink);
    }

    /// <summary>Reads up to a batch of frames; the count, or -1 when libpcap reports an error.</summary>
    private int Drain()
    {
        var pcap = _pcap;
        int count = 0;
        while (count < Batch)
        {
            int rc = LibPcap.NextEx(pcap, out var header, out var data);
            if (rc == 1)
            {
                count++;
                OnFrame(header->CaptureLength, header->Length, data);
            }
            else if (rc == 0)
            {
                return count;
            }
            else
            {
                _lastError = "receive: " + LibPcap.GetError(pcap);
                return count > 0 ? count : -1;
            }
        }
        return count;
    }

    private void OnFrame(uint captured, uint length, byte* data)
    {
        _rxFrames++;
        _rxBytes += length;
        if (length > (uint)MaxFrameLength)
        {
            _rxOversize++;
            return;
        }
        if (captured < length)
        {
            _rxTruncated++;
            return;
        }
        if (captured < EthernetHeader)
        {
            _rxRunt++;
            return;
        }
        var frame = new ReadOnlySpan<byte>(data, (int)captured);
        // The kernel filter is attached after the socket starts receiving: a frame queued in
        // between may be for someone else. Group addresses passed the filter by design.
        if ((frame[0] & 1) == 0 && MacAddress.Read(frame) != Mac)
        {
            _rxNotForUs++;
            return;
        }
        var tap = _tap;
        if (tap is not null && tap.Capturing) tap.Capture(frame, CaptureDirection.In, Stopwatch.GetTimestamp());
        if (_rxFaults.Enabled)
        {
            lock (_rxFaults) _rxFaults.Process(frame, Stopwatch.GetTimestamp(), _deliverSink);
        }
        else
        {
            Deliver(frame);
        }
    }

    private void Deliver(ReadOnlySpan<byte> frame)
    {
        try
        {
            _handler!(frame);
            _rxDelivered++;
        }
        catch (Exception e)
        {
            _rxHandlerErrors++;
            _lastError = "receive callback: " + e.Message;
        }
    }

    public void Dispose()
    {
        if (_disposed) return;
        Stop();
        _disposed = true;
        CloseHandle();
        lock (_handleLock) FreeSegmentBuffers();
        _probe.Dispose();
        if (_wakeFd >= 0) Linux.Close(_wakeFd);
    }
}

/// <summary>The adapter cannot be opened or used; the message says which adapter and why.</summary>
public sealed class NicDeviceException : Exception
{
    public NicDeviceException(string message) : base(message) { }
    public NicDeviceException(string message, Exception inner) : base(message, inner) { }
    public NicDeviceException() { }
}
