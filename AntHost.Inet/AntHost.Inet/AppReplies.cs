// Answers to apps, for the socket manager and the transmit table alike: a reply carries the
// request's own control ICA (its result area already written) and any data ICAs; a reply to
// an app that is gone, or one the kernel could not deliver and kept the ICAs of, frees them
// (else inet would keep them until it stops). A posted send's answer goes quietly.
using AntHost.Inet.Abi;
using AntHost.Kernel;
using AntHost.Kernel.Ipc;
using Microsoft.Extensions.Logging;

namespace AntHost.Inet;

/// <summary>Replies to apps' requests (see the file comment).</summary>
public sealed class AppReplies(IInetKernel kernel, ILogger log)
{
    /// <summary>Replies with the control ICA (its result area already written) and <paramref name="data"/>.</summary>
    public void Reply(in Message m, InetStatus status, ReadOnlySpan<DataIca> data = default)
    {
        if (m.Endpoint is not { IsOpen: true })
        {
            kernel.Free(m.Control);
            foreach (var d in data) kernel.Free(d.Ica);
            return;
        }
        try
        {
            kernel.Reply(m, m.Control, (int)status, data, quiet: IsQuiet(m));
        }
        catch (KernelException e)
        {
            Failed(m, e, m.Control, data);
        }
    }

    /// <summary>A reply for a request that came without a usable control ICA.</summary>
    public void ReplyBare(in Message m, InetStatus status)
    {
        if (m.Endpoint is not { IsOpen: true })
        {
            if (!m.Control.IsNone) kernel.Free(m.Control);
            return;
        }
        try
        {
            kernel.Reply(m, m.Control, (int)status, default);
        }
        catch (KernelException e)
        {
            Failed(m, e, m.Control, default);
        }
    }

    /// <summary>
    /// Replies with <paramref name="control"/>, a control ICA the request's own was taken back
    /// as (a lent one the broker gave back); frees it when the app is gone or it never left.
    /// </summary>
    public void ReplyWith(in Message m, IcaLease control, InetStatus status)
    {
        if (m.Endpoint is { IsOpen: true })
        {
            try
            {
                kernel.Reply(m, control, (int)status, default);
                return;
            }
            catch (KernelException e) when (!e.HandlesKept)
            {
                return; // it left with the failed transfer: not ours to free
            }
            catch (KernelException) { }
        }
        kernel.Free(control);
    }

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
        try
        {
            kernel.Reply(m, control, (int)status, default);
        }
        catch (KernelException e)
        {
            Failed(m, e, control, default);
        }
    }

    /// <summary>
    /// A reply that could not be sent (the app died, or its ring stayed full): its ICAs are
    /// freed when they never left, and it is said.
    /// </summary>
    private void Failed(in Message m, KernelException e, IcaLease control, ReadOnlySpan<DataIca> data)
    {
        log.LogWarning("reply to {Process} failed ({Error}): {Message}; {What}", m.Source, e.Error, e.Message,
            e.HandlesKept ? "its ICAs are freed" : "its ICAs went with it");
        if (!e.HandlesKept) return;
        if (!control.IsNone) kernel.Free(control);
        foreach (var d in data) kernel.Free(d.Ica);
    }

    /// <summary>True when the app does not wait for this answer (a posted send): it goes quietly.</summary>
    public static bool IsQuiet(in Message m) =>
        !m.Control.IsNone && ControlIca.TryOpen(m.Control.Span, out var c) && c.FrameCount > 0
        && c.TryGetFrame(c.FrameCount - 1, out var f) && (f.Flags & RequestFrameFlags.QuietReturn) != 0;
}
