// Answers to apps, for the socket manager, the transmit table and the core alike: a reply
// carries the request's own control ICA (its result area already written) and any data ICAs;
// a reply to an app that is gone, or one the kernel could not deliver and kept the ICAs of,
// frees them (else inet would keep them until it stops). A posted send's answer goes quietly.
//
// inet's one thread never waits for an app's ring: a reply to an app whose ring is full is
// parked, in order behind that app's other parked replies, and tried again from the request
// loop's rounds (PollAt: after 1 ms, backing off to 64 ms while nothing moves). An app that
// leaves its answers unread for ReplyPatience, or parks more than MaxParkedPerApp, loses
// them (counted, logged, ICAs freed); every other app's answers go on meanwhile.
using AntHost.Inet.Abi;
using AntHost.Inet.Core.Time;
using AntHost.Kernel;
using AntHost.Kernel.Ipc;
using Microsoft.Extensions.Logging;

namespace AntHost.Inet;

/// <summary>Replies to apps' requests (see the file comment).</summary>
public sealed class AppReplies(IInetKernel kernel, ILogger log)
{
    /// <summary>How long a parked reply waits for room in its app's ring before it is dropped.</summary>
    public static readonly TimeSpan ReplyPatience = TimeSpan.FromSeconds(5);

    /// <summary>Parked replies one app may have; more are dropped at once.</summary>
    public const int MaxParkedPerApp = 1024;

    private static readonly TimeSpan FirstRetry = TimeSpan.FromMilliseconds(1);
    private static readonly TimeSpan LastRetry = TimeSpan.FromMilliseconds(64);

    private sealed class Parked(Message m, IcaLease control, int status, DataIca[] data, bool quiet)
    {
        public readonly Message M = m;
        public readonly IcaLease Control = control;
        public readonly int Status = status;
        public readonly DataIca[] Data = data;
        public readonly bool Quiet = quiet;
        public Instant? Since;
    }

    private readonly List<Parked> _parked = new();
    private readonly Dictionary<Endpoint, int> _parkedPerApp = new();
    private readonly HashSet<Endpoint> _fullNow = new();
    private Instant _lastRetry;
    private TimeSpan _retryEvery = FirstRetry;

    /// <summary>Replies that waited for room (in all), wait now, and were dropped.</summary>
    public long ParkedTotal { get; private set; }

    /// <summary>Answers that went to their app (each one message on its ring).</summary>
    public long Delivered { get; private set; }

    public int ParkedNow => _parked.Count;

    public long Dropped { get; private set; }

    /// <summary>When parked replies are next tried, or null when none is parked.</summary>
    public Instant? PollAt => _parked.Count == 0 ? null : _lastRetry + _retryEvery;

    /// <summary>Replies with the control ICA (its result area already written) and <paramref name="data"/>.</summary>
    public void Reply(in Message m, InetStatus status, ReadOnlySpan<DataIca> data = default) =>
        Send(m, m.Control, (int)status, data, IsQuiet(m));

    /// <summary>A reply for a request that came without a usable control ICA.</summary>
    public void ReplyBare(in Message m, InetStatus status) => Send(m, m.Control, (int)status, default, quiet: false);

    /// <summary>
    /// Replies with <paramref name="control"/>, a control ICA the request's own was taken back
    /// as (a lent one the broker gave back); frees it when the app is gone or it never left.
    /// </summary>
    public void ReplyWith(in Message m, IcaLease control, InetStatus status) => Send(m, control, (int)status, default, quiet: false);

    /// <summary>A reply made with a fresh control ICA, for a request whose own control ICA is gone (lost with a driver).</summary>
    public void ReplyFresh(in Message m, InetStatus status, long value)
    {
        if (m.Endpoint is not { IsOpen: true }) return;
        IcaLease control;
        try
        {
            control = kernel.AllocateControl();
        }
        catch (KernelException e)
        {
            log.LogWarning("reply to {Process} not sent: no control ICA ({Error})", m.Source, e.Message);
            return;
        }
        if (ControlIca.TryOpen(control.Span, out var c))
        {
            c.RequestId = m.RequestId;
            SocketResult.Begin(c.ResultArea).Value = value;
            c.SetResultLength(SocketResult.Length);
        }
        Send(m, control, (int)status, default, quiet: false);
    }

    /// <summary>Tries the parked replies again, in order; drops those whose app left or kept its ring full too long.</summary>
    public void Retry(Instant now)
    {
        if (_parked.Count == 0) return;
        _lastRetry = now;
        _fullNow.Clear();
        int kept = 0;
        bool moved = false;
        for (int i = 0; i < _parked.Count; i++)
        {
            var p = _parked[i];
            p.Since ??= now;
            var ep = p.M.Endpoint!;
            if (!_fullNow.Contains(ep))
            {
                if (!ep.IsOpen)
                {
                    Drop(p, null);
                    continue;
                }
                if (TryDeliver(p.M, p.Control, p.Status, p.Data, p.Quiet))
                {
                    Unpark(ep);
                    moved = true;
                    continue;
                }
                _fullNow.Add(ep);
            }
            if (now - p.Since.Value >= ReplyPatience)
            {
                Drop(p, $"its ring stayed full for {ReplyPatience.TotalSeconds:0} s");
                continue;
            }
            _parked[kept++] = p;
        }
        _parked.RemoveRange(kept, _parked.Count - kept);
        _retryEvery = moved ? FirstRetry : TimeSpan.FromTicks(Math.Min(_retryEvery.Ticks * 2, LastRetry.Ticks));
    }

    /// <summary>At stop: each parked reply is tried once more, and what still cannot go is freed.</summary>
    public void Shutdown()
    {
        foreach (var p in _parked)
        {
            if (p.M.Endpoint is { IsOpen: true } && TryDeliver(p.M, p.Control, p.Status, p.Data, p.Quiet)) continue;
            Dropped++;
            FreeAll(p.Control, p.Data);
        }
        _parked.Clear();
        _parkedPerApp.Clear();
    }

    /// <summary>
    /// Sends a reply, or parks it when the app's ring is full (or earlier replies to it are
    /// parked: answers keep their order); frees its ICAs when the app is gone.
    /// </summary>
    private void Send(in Message m, IcaLease control, int status, ReadOnlySpan<DataIca> data, bool quiet)
    {
        if (m.Endpoint is not { IsOpen: true } ep)
        {
            FreeAll(control, data);
            return;
        }
        if (!_parkedPerApp.ContainsKey(ep) && TryDeliver(m, control, status, data, quiet)) return;
        ParkedTotal++;
        _parkedPerApp.TryGetValue(ep, out int n);
        if (n >= MaxParkedPerApp)
        {
            Dropped++;
            log.LogWarning("reply to {Process} dropped: {Parked} replies already wait for room in its ring", m.Source, n);
            FreeAll(control, data);
            return;
        }
        _parkedPerApp[ep] = n + 1;
        _parked.Add(new Parked(m, control, status, data.ToArray(), quiet));
    }

    /// <summary>True when the reply went; false when the ring is full (nothing moved). A failure that is not a full ring frees what is still ours and counts as sent.</summary>
    private bool TryDeliver(in Message m, IcaLease control, int status, ReadOnlySpan<DataIca> data, bool quiet)
    {
        try
        {
            if (!kernel.TryReply(m, control, status, data, quiet)) return false;
            Delivered++;
            return true;
        }
        catch (KernelException e)
        {
            log.LogWarning("reply to {Process} failed ({Error}): {Message}; {What}", m.Source, e.Error, e.Message,
                e.HandlesKept ? "its ICAs are freed" : "its ICAs went with it");
            if (e.HandlesKept) FreeAll(control, data);
            return true;
        }
    }

    private void Drop(Parked p, string? why)
    {
        Unpark(p.M.Endpoint!);
        if (why is not null)
        {
            Dropped++;
            log.LogWarning("reply to {Process} dropped: {Why}", p.M.Source, why);
        }
        FreeAll(p.Control, p.Data);
    }

    private void Unpark(Endpoint ep)
    {
        int n = _parkedPerApp[ep] - 1;
        if (n == 0) _parkedPerApp.Remove(ep);
        else _parkedPerApp[ep] = n;
    }

    private void FreeAll(IcaLease control, ReadOnlySpan<DataIca> data)
    {
        if (!control.IsNone) kernel.Free(control);
        foreach (var d in data) kernel.Free(d.Ica);
    }

    /// <summary>True when the app does not wait for this answer (a posted send): it goes quietly.</summary>
    public static bool IsQuiet(in Message m) =>
        !m.Control.IsNone && ControlIca.TryOpen(m.Control.Span, out var c) && c.FrameCount > 0
        && c.TryGetFrame(c.FrameCount - 1, out var f) && (f.Flags & RequestFrameFlags.QuietReturn) != 0;
}
