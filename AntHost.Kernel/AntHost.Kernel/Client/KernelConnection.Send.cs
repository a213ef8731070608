// Requests, replies and their ids. A sync call takes one of a fixed number of
// pending slots; its request id is the slot index plus a sequence number, so a
// late reply to a call that already timed out (or whose slot was reused) does
// not match anything and is counted and dropped. Async requests take no slot:
// their id has the top bit set and their completion arrives as an ordinary
// Reply message through Receive.
using System.Diagnostics;
using AntHost.Kernel.Ipc;
using AntHost.Kernel.Pool;

namespace AntHost.Kernel;

public sealed unsafe partial class KernelConnection
{
    private const int PendingSlots = 256;
    private const uint AsyncBit = 0x8000_0000;

    private sealed class PendingCall
    {
        public int Index;
        public uint Id;
        public Endpoint? Endpoint;
        public volatile bool Done;
        public Message Result;
        public KernelError Error;
    }

    private PendingCall[] _pending = null!;
    private readonly Stack<int> _freePending = new();
    private uint _pendingSeq;
    private int _asyncSeq;

    private void InitPending()
    {
        _pending = new PendingCall[PendingSlots];
        for (int i = PendingSlots - 1; i >= 0; i--)
        {
            _pending[i] = new PendingCall { Index = i };
            _freePending.Push(i);
        }
    }

    private PendingCall RentPending(Endpoint ep)
    {
        lock (_freePending)
        {
            if (_freePending.Count == 0)
                throw new KernelException(KernelError.OutOfSlots, $"more than {PendingSlots} sync calls in flight in this process");
            int i = _freePending.Pop();
            var p = _pending[i];
            _pendingSeq = (_pendingSeq + 1) & 0x7FFFFF;
            p.Id = (_pendingSeq << 8) | (uint)i;
            p.Endpoint = ep;
            p.Done = false;
            p.Error = KernelError.None;
            p.Result = default;
            return p;
        }
    }

    private void ReturnPending(PendingCall p)
    {
        lock (_freePending)
        {
            p.Id = 0;
            p.Endpoint = null;
            p.Result = default;
            _freePending.Push(p.Index);
        }
    }

    private PendingCall? FindPending(uint requestId)
    {
        if ((requestId & AsyncBit) != 0) return null;
        var p = _pending[requestId & 0xFF];
        return p.Id == requestId && !p.Done ? p : null;
    }

    private uint NextAsyncId() => AsyncBit | ((uint)Interlocked.Increment(ref _asyncSeq) & 0x7FFF_FFFF);

    private long SendDeadline => Stopwatch.GetTimestamp() + _sendTimeoutTicks;

    private static void Fill(ref RingMessage m, IcaLease control, ReadOnlySpan<DataIca> data)
    {
        if (data.Length > RingMessage.MaxData)
            throw new KernelException(KernelError.TooLarge, $"a message carries at most {RingMessage.MaxData} data ICAs");
        m.Control = control.IsNone ? 0 : control.Handle.Value;
        m.DataCount = (byte)data.Length;
        for (int i = 0; i < data.Length; i++)
        {
            var d = data[i];
            if (d.Ica.IsNone) throw new ArgumentException("a data ICA is missing", nameof(data));
            if ((uint)d.Length > (uint)d.Ica.Length)
                throw new KernelException(KernelError.TooLarge, $"length {d.Length} exceeds the ICA's {d.Ica.Length} bytes");
            m.SetData(i, d.Ica.Handle.Value, (uint)d.Length);
        }
    }

    private void Transmit(Endpoint ep, ref RingMessage m) => Transmit(ep, ref m, SendDeadline);

    private void Transmit(Endpoint ep, ref RingMessage m, long deadline)
    {
        ThrowIfUnusable();
        m.Source = Id.Value;
        m.Channel = ep.ChannelId;
        _path.Send(ep, ref m, deadline);
    }

    private static void StampControl(IcaLease control, uint requestId, uint requester, bool setIds, ushort stage, uint process)
    {
        if (control.IsNone) return;
        if (!ControlIca.TryOpen(control.Span, out var c)) return;
        if (setIds)
        {
            c.RequestId = requestId;
            c.OriginalRequester = requester;
        }
        if (stage != 0) c.Stamp(stage, process);
    }

    /// <summary>
    /// Sends a request and waits for its reply. The control ICA and the data ICAs pass to the
    /// server; the reply's ICAs belong to this process. A control ICA made by
    /// <see cref="AllocateControl"/> gets this call's request id and this process as the
    /// original requester, so a later stage can reply directly. Throws
    /// <see cref="KernelException"/> with <see cref="KernelError.PeerDied"/> when the server
    /// dies, <see cref="KernelError.Timeout"/> when no reply comes in time.
    /// </summary>
    /// <param name="traceStage">When not 0, stamps the control ICA's trace with this stage just before sending.</param>
    public Message Call(Endpoint endpoint, IcaLease control, ushort opcode, ReadOnlySpan<DataIca> data, TimeSpan timeout, ushort traceStage = 0)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        var p = RentPending(endpoint);
        try
        {
            var m = new RingMessage { Kind = MessageKind.Request, Flags = MessageFlags.Sync, RequestId = p.Id, Word = opcode };
            Fill(ref m, control, data);
            StampControl(control, p.Id, Id.Value, setIds: true, traceStage, Id.Value);
            Transmit(endpoint, ref m);
            return AwaitReply(p, timeout);
        }
        finally
        {
            ReturnPending(p);
        }
    }

    /// <summary>Sends a request without waiting; its completion (if the server sends one) arrives as a Reply via Receive.</summary>
    /// <param name="lend">
    /// Lend the ICAs rather than give them: should the server die holding them, the broker
    /// gives them back to this process (see <see cref="TryTakeBack"/>) instead of freeing them.
    /// </param>
    /// <returns>The request id the completion will carry.</returns>
    public uint Post(Endpoint endpoint, IcaLease control, ushort opcode, ReadOnlySpan<DataIca> data, ushort traceStage = 0, bool lend = false)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        uint id = NextAsyncId();
        var m = new RingMessage { Kind = MessageKind.Request, Flags = lend ? MessageFlags.Lend : MessageFlags.None, RequestId = id, Word = opcode };
        Fill(ref m, control, data);
        StampControl(control, id, Id.Value, setIds: true, traceStage, Id.Value);
        Transmit(endpoint, ref m);
        return id;
    }

    /// <summary>
    /// Passes a request on to the next server (multi-stage request): the same control ICA,
    /// with whatever frame this stage pushed on it, goes to <paramref name="next"/>. The
    /// original requester and its request id in the control ICA are left as they are, so the
    /// last stage can return directly. Asynchronous: returns this stage's request id.
    /// </summary>
    /// <param name="lend">As for <see cref="Post"/>: the ICAs come back to this process if <paramref name="next"/> dies holding them.</param>
    public uint Forward(Endpoint next, IcaLease control, ushort opcode, ReadOnlySpan<DataIca> data, ushort traceStage = 0, bool lend = false)
    {
        ArgumentNullException.ThrowIfNull(next);
        if (control.IsNone) throw new ArgumentException("a multi-stage request travels with its control ICA", nameof(control));
        uint id = NextAsyncId();
        var m = new RingMessage { Kind = MessageKind.Request, Flags = lend ? MessageFlags.Lend : MessageFlags.None, RequestId = id, Word = opcode };
        Fill(ref m, control, data);
        StampControl(control, 0, 0, setIds: false, traceStage, Id.Value);
        Transmit(next, ref m);
        return id;
    }

    /// <summary>Answers <paramref name="request"/> on the channel it came on, passing the given ICAs back.</summary>
    /// <param name="quiet">Do not wake a requester that sleeps for something else (see <see cref="MessageFlags.Quiet"/>).</param>
    public void Reply(in Message request, IcaLease control, int status, ReadOnlySpan<DataIca> data, ushort traceStage = 0, bool quiet = false) =>
        SendReply(request, control, status, data, traceStage, quiet, SendDeadline);

    /// <summary>
    /// Answers as <see cref="Reply"/> does, but never waits for room: false when the requester's
    /// ring is full now, and then nothing moved (the ICAs are still this process's). A server
    /// that must not stall on one app that does not read its answers parks the answer and tries
    /// again later.
    /// </summary>
    public bool TryReply(in Message request, IcaLease control, int status, ReadOnlySpan<DataIca> data, bool quiet = false)
    {
        var ep = request.Endpoint ?? throw new ArgumentException("the request has no channel to answer on", nameof(request));
        if (ep.IsOpen && ep.SendRing.Count >= ep.SendRing.Capacity) return false;
        try
        {
            SendReply(request, control, status, data, 0, quiet, deadline: 0);
            return true;
        }
        catch (KernelException e) when (e.Error == KernelError.RingFull && e.HandlesKept)
        {
            return false; // filled between the look and the send
        }
    }

    private void SendReply(in Message request, IcaLease control, int status, ReadOnlySpan<DataIca> data, ushort traceStage, bool quiet, long deadline)
    {
        var ep = request.Endpoint ?? throw new ArgumentException("the request has no channel to answer on", nameof(request));
        var m = new RingMessage { Kind = MessageKind.Reply, Flags = quiet ? MessageFlags.Quiet : MessageFlags.None, RequestId = request.RequestId, Word = status };
        Fill(ref m, control, data);
        StampControl(control, 0, 0, setIds: false, traceStage, Id.Value);
        Transmit(ep, ref m, deadline);
    }

    /// <summary>
    /// Direct return: sends the result of a multi-stage request straight to its original
    /// requester (named in the control ICA), skipping the intermediate servers. The first
    /// time this process answers a given requester, a return channel is opened through the
    /// broker (one control-socket round trip); it is kept for later replies.
    /// </summary>
    /// <param name="quiet">Do not wake a requester that sleeps for something else (see <see cref="MessageFlags.Quiet"/>).</param>
    public void ReplyDirect(IcaLease control, int status, ReadOnlySpan<DataIca> data, ushort traceStage = 0, bool quiet = false)
    {
        if (control.IsNone || !ControlIca.TryOpen(control.Span, out var c))
            throw new ArgumentException("direct return needs the request's control ICA", nameof(control));
        var requester = new ProcessId(c.OriginalRequester);
        uint requestId = c.RequestId;
        c.Status = status;
        if (traceStage != 0) c.Stamp(traceStage, Id.Value);
        var ep = ReturnEndpoint(requester);
        var m = new RingMessage { Kind = MessageKind.Reply, Flags = MessageFlags.DirectReturn | (quiet ? MessageFlags.Quiet : MessageFlags.None), RequestId = requestId, Word = status };
        Fill(ref m, control, data);
        Transmit(ep, ref m);
    }

    /// <summary>Hands ICAs to the peer without a request (e.g. a data ICA given back to the stage that lent it).</summary>
    public void Notify(Endpoint endpoint, ushort code, uint requestId, ReadOnlySpan<DataIca> data, IcaLease control = default)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        var m = new RingMessage { Kind = MessageKind.Notify, RequestId = requestId, Word = code };
        Fill(ref m, control, data);
        Transmit(endpoint, ref m);
    }
}
