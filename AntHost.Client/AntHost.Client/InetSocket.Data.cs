// The data path of a socket.
//
// Send. The caller's bytes are copied once, into data ICAs of one TCP segment each
// (the MSS the connection reports, one page at most), SendHeadroom bytes from the
// start, and up to three of them go in one Send call. A segment-sized ICA with headroom
// is what the inet server sends in place: TCP, IPv4 and Ethernet write their headers in
// front of the payload and the same pages go to the NIC driver, so the one copy the
// library makes is the only copy on the way to the wire. Larger ICAs would save calls
// but force inet to copy the payload into segments (a copy in the server instead of
// one in the app, plus an ICA held until its last byte is acknowledged), and three
// segments per call already amortise the IPC round trip over 4 KiB. A rented send
// buffer (RentSendBuffer) skips even the library's copy: the app writes the payload
// into the ICA itself.
//
// Receive. A Receive reply brings up to three data ICAs, the frames the payload came
// in, with the payload's place in each. The library copies what fits into the
// caller's buffer and keeps the rest (the ICA with its offset) for the next Receive, so
// no byte is lost and no ICA is copied twice; a ReceiveLease hands the ICA itself out.
// A UDP datagram is read whole or truncated, never carried over to the next read.
//
// One send and one receive may run at once on a socket (as with .NET sockets); a second
// concurrent send (or receive) waits for the first, which keeps a stream's bytes in order.
using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using AntHost.Inet.Abi;
using AntHost.Kernel;
using AntHost.Kernel.Ipc;

namespace AntHost.Client;

public sealed partial class InetSocket
{
    /// <summary>The largest UDP payload of one IPv4 datagram.</summary>
    public const int MaxDatagram = 65507;

    private const int MaxSegmentPayload = 4096 - InetService.SendHeadroom;
    private const int DefaultSegment = 1460;

    private readonly SemaphoreSlim _sendGate = new(1, 1);
    private readonly SemaphoreSlim _receiveGate = new(1, 1);
    private readonly object _rxLock = new();
    private readonly IcaLease[] _rxIca = new IcaLease[InetService.MaxFramesPerMessage];
    private readonly int[] _rxOffset = new int[InetService.MaxFramesPerMessage];
    private readonly int[] _rxLength = new int[InetService.MaxFramesPerMessage];
    private int _rxHead;
    private int _rxCount;
    private bool _eof;
    private int _segment;
    private int _offloadSegments = 1;
    private int _icasPerSend = InetService.MaxFramesPerMessage;

    /// <summary>Received bytes this socket holds (taken from inet, not yet read by the app).</summary>
    internal long BufferedBytes
    {
        get
        {
            lock (_rxLock)
            {
                long n = 0;
                for (int i = 0; i < _rxCount; i++) n += _rxLength[(_rxHead + i) % _rxLength.Length];
                return n;
            }
        }
    }

    // ---- Send ------------------------------------------------------------------------

    public int Send(byte[] buffer) => Send(buffer.AsSpan());

    public int Send(byte[] buffer, int offset, int size) => Send(buffer.AsSpan(offset, size));

    public int Send(ReadOnlySpan<byte> buffer) => Send(buffer, null);

    /// <summary>
    /// Sends every byte of <paramref name="buffer"/> (waiting for room in inet's send buffer
    /// unless non-blocking); returns the bytes sent. <paramref name="trace"/>, when given, gets
    /// the timeline of the last call this send made.
    /// </summary>
    public unsafe int Send(ReadOnlySpan<byte> buffer, SendTrace? trace)
    {
        fixed (byte* bytes = buffer)
        {
            var pinned = CallerBuffer.Pinned(bytes, buffer.Length);
            if (!SendIsTimed) return SendCore(pinned, trace, default, sync: true).Sync();
            // SendTimeout: the same send with a token that cancels its held call when the time is up.
            int timeout = _sendTimeout;
            using var timer = new CancellationTokenSource(timeout);
            try
            {
                return SendCore(pinned, trace, timer.Token, sync: true).Sync();
            }
            catch (OperationCanceledException) when (timer.IsCancellationRequested)
            {
                throw InetErrors.Local(SocketError.TimedOut, $"send to {RemoteEndPoint}: the bytes were not taken within {timeout} ms (SendTimeout)");
            }
        }
    }

    public ValueTask<int> SendAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) =>
        SendCore(new CallerBuffer(buffer), null, cancellationToken, sync: false);

    // The state kept across a wait is the buffer, the count and the call: the request and the
    // answer are built and read in the synchronous helpers, so the pooled state machine stays small.
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<int> SendCore(CallerBuffer buffer, SendTrace? trace, CancellationToken ct, bool sync)
    {
        if (_type == AbiSocketType.Datagram)
            return await SendToCore(buffer, RemoteEndPoint ?? throw NotConnectedDatagram(), ct, sync).ConfigureAwait(false);
        if (buffer.Length == 0) return 0;
        await Enter(_sendGate, ct, sync).ConfigureAwait(false);
        try
        {
            ThrowIfPostedFailed();
            // Calls kept in flight or posted need a send buffer that holds a call's ICAs
            // (CanPipeline, see "Pipelined sends"); a send of one segment never asks for it.
            bool oneSegment = buffer.Length <= SendSegmentSize;
            bool streams = !oneSegment && CanPipeline();
            // Several calls in flight only when the bytes need more than one call: a send that
            // one call carries waits for its own answer directly (the caller takes it off the
            // ring), not through the dispatcher thread, one thread wake-up less.
            if (streams && buffer.Length > SendChunkSize * _icasPerSend)
                return await SendPipelined(buffer, trace, ct, sync).ConfigureAwait(false);
            if (sync && !ct.CanBeCanceled && trace is null && _blocking && Stack.PostsSmallSends)
            {
                if (oneSegment) return SendPosted(buffer.Span, InetStack.PostedWindow);
                // One call's worth, posted: at most a send buffer's worth of such sends unanswered.
                if (streams && Stack.PostsLargeSends)
                    return SendPosted(buffer.Span, (int)Math.Clamp(SendBufferBytes / buffer.Length, 1, InetStack.PostedWindow));
            }
            int sent = 0;
            while (sent < buffer.Length)
            {
                var call = SendCall(buffer.Span[sent..], ct, sync, out int n, out int icas);
                int accepted = SendAnswered(await call.ConfigureAwait(false), n, icas, sent, trace);
                if (accepted < 0) return sent;
                sent += accepted;
            }
            return sent;
        }
        finally
        {
            _sendGate.Release();
        }
    }

    // ---- Posted sends (see InetStack.Posted.cs) --------------------------------------------

    /// <summary>This socket's posted sends not answered yet (changed under the stack's posted lock).</summary>
    internal int PostedOutstanding;
    private InetStatus _postedFailure;

    /// <summary>
    /// One call's worth (all of <paramref name="buffer"/>), posted: returns once inet has the
    /// request, not its answer, with at most <paramref name="window"/> of this socket's posted
    /// sends unanswered.
    /// </summary>
    private int SendPosted(ReadOnlySpan<byte> buffer, int window)
    {
        Stack.WaitForPostedRoom(this, window);
        ThrowIfPostedFailed();
        var control = Request(InetOp.Send, CallFlags, RequestFrameFlags.DirectReturn | RequestFrameFlags.QuietReturn);
        StampStart(control);
        var data = default(ReadOnlySpanHolder);
        int n = FillSend(control, buffer, ref data);
        Stack.PostSend(control, data.AsSpan(), this, InetTraceStage.AppRequest);
        return n;
    }

    /// <summary>A posted send of this socket failed: the next send throws it.</summary>
    internal void PostedFailed(InetStatus status)
    {
        Observe(status);
        if (_postedFailure == InetStatus.Ok) _postedFailure = status;
    }

    private void ThrowIfPostedFailed()
    {
        var failure = _postedFailure;
        if (failure == InetStatus.Ok) return;
        _postedFailure = InetStatus.Ok;
        throw InetErrors.For(failure, $"an earlier send to {RemoteEndPoint}");
    }

    // ---- Pipelined sends ---------------------------------------------------------------
    //
    // A send larger than one call's worth keeps up to SendWindow calls in flight instead of
    // waiting for each answer before the next call: inet answers a socket's sends in order
    // (a send behind a held one waits too), so the bytes stay in order, and the IPC round
    // trip no longer bounds the throughput to one call's bytes per round trip. It needs a
    // blocking socket whose send buffer holds one call's ICAs (else inet would refuse a
    // call for buffer space and a later one could pass it).

    private const int SendWindow = 8;
    private readonly InetStack.AsyncCall[] _window = new InetStack.AsyncCall[SendWindow];
    private readonly int[] _windowBytes = new int[SendWindow];
    private readonly int[] _windowIcas = new int[SendWindow];
    private long _sendBufferBytes;

    private bool CanPipeline()
    {
        if (!_blocking || _icasPerSend != InetService.MaxFramesPerMessage) return false;
        return SendBufferBytes >= InetService.MaxFramesPerMessage * 4096L;
    }

    /// <summary>inet's send buffer for this socket, asked once; -1 when it gave no figure.</summary>
    private long SendBufferBytes
    {
        get
        {
            if (_sendBufferBytes == 0)
            {
                try { _sendBufferBytes = GetOption(AbiSocketOption.SendBuffer); }
                catch (SocketException) { _sendBufferBytes = -1; }
                if (_sendBufferBytes == 0) _sendBufferBytes = -1; // no figure: no asking again
            }
            return _sendBufferBytes;
        }
    }

    /// <summary>A send of many calls, up to <see cref="SendWindow"/> of them in flight (the caller holds the send gate).</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<int> SendPipelined(CallerBuffer buffer, SendTrace? trace, CancellationToken ct, bool sync)
    {
        int posted = 0, sent = 0, head = 0, count = 0;
        Exception? failure = null;
        while (sent < buffer.Length && failure is null)
        {
            while (count < SendWindow && posted < buffer.Length)
            {
                int slot = (head + count) % SendWindow;
                try
                {
                    var control = SendRequest(buffer.Span[posted..], out _windowBytes[slot], out var data);
                    _windowIcas[slot] = data.Count;
                    _window[slot] = BeginAsync(control, InetOp.Send, data.AsSpan(), ct, InetTraceStage.AppRequest, syncWait: sync);
                }
                catch (Exception e) when (e is SocketException or ObjectDisposedException or KernelException or OperationCanceledException)
                {
                    failure = e;
                    break;
                }
                posted += _windowBytes[slot];
                count++;
            }
            if (count == 0) break;
            int h = head;
            head = (head + 1) % SendWindow;
            count--;
            var call = _window[h];
            _window[h] = default;
            try
            {
                int accepted = SendAnswered(await Stack.AwaitCall(call, InetOp.Send, ct, sync, this).ConfigureAwait(false), _windowBytes[h], _windowIcas[h], sent, trace);
                if (accepted <= 0)
                    throw InetErrors.Local(SocketError.SocketError, "the inet server refused a pipelined send for buffer space; this should not happen with the send buffer it reported");
                sent += accepted;
            }
            catch (Exception e) when (e is SocketException or OperationCanceledException)
            {
                failure = e;
            }
        }
        // After a failure, what is still in flight is waited for and dropped (it fails too, or
        // its bytes went; either way the call reports the failure).
        while (count > 0)
        {
            int h = head;
            head = (head + 1) % SendWindow;
            count--;
            var call = _window[h];
            _window[h] = default;
            try
            {
                (await Stack.AwaitCall(call, InetOp.Send, ct, sync, this).ConfigureAwait(false)).Dispose();
            }
            catch (Exception e) when (e is SocketException or OperationCanceledException)
            {
            }
        }
        if (failure is not null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure);
        return sent;
    }

    /// <summary>A Send request with up to three segments of <paramref name="src"/> (<paramref name="bytes"/> of them) in fresh data ICAs.</summary>
    private IcaLease SendRequest(ReadOnlySpan<byte> src, out int bytes, out ReadOnlySpanHolder data)
    {
        var control = Request(InetOp.Send, CallFlags, RequestFrameFlags.DirectReturn);
        StampStart(control);
        data = default;
        bytes = FillSend(control, src, ref data);
        return control;
    }

    private ValueTask<InetReply> SendCall(ReadOnlySpan<byte> src, CancellationToken ct, bool sync, out int bytes, out int icas)
    {
        var control = SendRequest(src, out bytes, out var data);
        icas = data.Count;
        return Call(control, InetOp.Send, data.AsSpan(), ct, sync, InetTraceStage.AppRequest);
    }

    /// <summary>Reads (and frees) a Send answer: the bytes accepted, 0 to send them again (one ICA per call), -1 for WouldBlock after some bytes went.</summary>
    private int SendAnswered(in InetReply answer, int bytes, int icas, int sentBefore, SendTrace? trace)
    {
        using var reply = answer;
        StampReturned(reply, trace);
        if (reply.Status == InetStatus.Ok) return Accepted(reply, bytes);
        if (reply.Status == SocketStatus.NoBufferSpace && icas > 1)
        {
            // The send buffer is smaller than three segments' ICAs: one ICA per call from now on.
            _icasPerSend = 1;
            return 0;
        }
        if (sentBefore > 0 && reply.Status == SocketStatus.WouldBlock) return -1;
        throw InetErrors.For(reply.Status, $"send to {RemoteEndPoint}");
    }

    /// <summary>
    /// Rents a data ICA for a copy-less send of up to <paramref name="size"/> bytes (a
    /// segment's worth, <see cref="SendSegmentSize"/>, goes to the wire in place).
    /// </summary>
    public SendBuffer RentSendBuffer(int size)
    {
        if (size is <= 0 or > MaxDatagram) throw new ArgumentOutOfRangeException(nameof(size), $"a send buffer holds 1..{MaxDatagram} bytes");
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _closed) != 0, this);
        return new SendBuffer(Stack.Allocate(InetService.SendHeadroom + size, "a send buffer"), size);
    }

    /// <summary>Gives back a rented buffer that was not sent.</summary>
    public void ReturnSendBuffer(SendBuffer buffer)
    {
        if (!buffer.IsEmpty) Stack.Free(buffer.Ica);
    }

    /// <summary>
    /// Sends the first <paramref name="length"/> bytes of a rented buffer without copying them;
    /// the buffer passes to inet whatever the outcome. Returns the bytes sent.
    /// </summary>
    public int Send(SendBuffer buffer, int length, SendTrace? trace = null)
    {
        if (buffer.IsEmpty) throw new ArgumentException("the buffer was not rented", nameof(buffer));
        if ((uint)length > (uint)buffer.Capacity)
        {
            ReturnSendBuffer(buffer);
            throw new ArgumentOutOfRangeException(nameof(length), $"the buffer holds {buffer.Capacity} bytes");
        }
        bool datagram = _type == AbiSocketType.Datagram;
        IPEndPoint? to = datagram ? RemoteEndPoint ?? throw NotConnectedDatagram() : null;
        IcaLease control;
        try
        {
            control = Request(datagram ? InetOp.SendTo : InetOp.Send, CallFlags, RequestFrameFlags.DirectReturn);
        }
        catch
        {
            ReturnSendBuffer(buffer);
            throw;
        }
        StampStart(control);
        var a = InetStack.Args(control);
        if (to is not null)
        {
            a.Address = ToAbiAddress(to.Address);
            a.Port = (ushort)to.Port;
        }
        a.SetData(0, InetService.SendHeadroom, length);
        a.Small = 1;
        _sendGate.Wait();
        try
        {
            using var reply = Run(control, datagram ? InetOp.SendTo : InetOp.Send, [new DataIca(buffer.Ica, InetService.SendHeadroom + length)], InetTraceStage.AppRequest);
            StampReturned(reply, trace);
            reply.ThrowIfFailed($"send to {(datagram ? to : RemoteEndPoint)}");
            return Accepted(reply, length);
        }
        finally
        {
            _sendGate.Release();
        }
    }

    /// <summary>
    /// The payload per data ICA of a send: what one full segment of the connection carries
    /// (asked once: the MSS less the timestamp option), at most a page less the headroom. Cut
    /// to the bare MSS, every ICA would leave as a full segment and one of 12 bytes.
    /// </summary>
    public int SendSegmentSize
    {
        get
        {
            if (_segment != 0) return _segment;
            int mss = DefaultSegment;
            try
            {
                var info = GetInfo();
                if (info.SegmentPayload > 0) mss = info.SegmentPayload;
                _offloadSegments = info.OffloadSegments;
            }
            catch (SocketException)
            {
                // Not connected yet, or the server has no figure: the Ethernet default.
            }
            return _segment = Math.Clamp(mss, 536, MaxSegmentPayload);
        }
    }

    /// <summary>
    /// The payload per data ICA of a send larger than one segment: as many full segments as
    /// inet's segmentation offload sends from one ICA in place (one ICA of up to 16 pages
    /// instead of one per segment), but no more than a quarter of the send buffer, so that a
    /// call's ICAs never wait for most of the buffer to drain.
    /// </summary>
    private int SendChunkSize
    {
        get
        {
            int seg = SendSegmentSize;
            int k = _offloadSegments;
            if (k <= 1) return seg;
            long buffer = SendBufferBytes;
            return buffer <= 0 ? seg : seg * (int)Math.Clamp((buffer / 4 - InetService.SendHeadroom) / seg, 1, k);
        }
    }

    /// <summary>Copies up to three segments of <paramref name="src"/> into fresh data ICAs; returns the bytes taken.</summary>
    private int FillSend(IcaLease control, ReadOnlySpan<byte> src, ref ReadOnlySpanHolder data)
    {
        int seg = src.Length > SendSegmentSize ? SendChunkSize : SendSegmentSize;
        var a = InetStack.Args(control);
        int n = 0;
        try
        {
            while (data.Count < _icasPerSend && n < src.Length)
            {
                int len = Math.Min(seg, src.Length - n);
                var ica = Stack.Allocate(InetService.SendHeadroom + len, "send");
                src.Slice(n, len).CopyTo(ica.Span.Slice(InetService.SendHeadroom, len));
                a.SetData(data.Count, InetService.SendHeadroom, len);
                data.Add(new DataIca(ica, InetService.SendHeadroom + len));
                n += len;
            }
        }
        catch
        {
            Stack.Free(control);
            foreach (var d in data.AsSpan()) Stack.Free(d.Ica);
            throw;
        }
        a.Small = (byte)data.Count;
        return n;
    }

    private int Accepted(in InetReply reply, int expected)
    {
        long accepted = reply.Result.Value;
        if (accepted != expected)
        {
            Stack.CountMalformed();
            throw InetErrors.Local(SocketError.SocketError, $"the inet server accepted {accepted} of {expected} bytes with status Ok, which the ABI does not allow");
        }
        return expected;
    }

    private void StampStart(IcaLease control)
    {
        if (ControlIca.TryOpen(control.Span, out var c)) c.Stamp(InetTraceStage.AppStart, Stack.Kernel.Id.Value);
    }

    private void StampReturned(in InetReply reply, SendTrace? trace)
    {
        if (!ControlIca.TryOpen(reply.Message.Control.Span, out var c)) return;
        c.Stamp(InetTraceStage.AppReturned, Stack.Kernel.Id.Value);
        trace?.CopyFrom(c);
    }

    // ---- Receive ---------------------------------------------------------------------

    public int Receive(byte[] buffer) => Receive(buffer.AsSpan());

    public int Receive(byte[] buffer, int offset, int size) => Receive(buffer.AsSpan(offset, size));

    /// <summary>
    /// Receives into <paramref name="buffer"/>: what this socket already holds, else waits (unless
    /// non-blocking) for data from inet. Returns 0 at the end of the stream.
    /// </summary>
    public unsafe int Receive(Span<byte> buffer)
    {
        fixed (byte* bytes = buffer) return ReceiveCore(CallerBuffer.Pinned(bytes, buffer.Length), default, sync: true).Sync();
    }

    public ValueTask<int> ReceiveAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
        ReceiveCore(new CallerBuffer(buffer), cancellationToken, sync: false);

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<int> ReceiveCore(CallerBuffer buffer, CancellationToken ct, bool sync)
    {
        if (_type == AbiSocketType.Datagram) return (await ReceiveFromCore(buffer, ct, sync).ConfigureAwait(false)).ReceivedBytes;
        await Enter(_receiveGate, ct, sync).ConfigureAwait(false);
        try
        {
            int n = TakeBuffered(buffer.Span);
            // A zero-byte read waits until data (or the end) is there, as NetworkStream's does: HttpClient uses one on idle connections.
            if (n > 0 || IsEof || (buffer.Length == 0 && BufferedBytes > 0)) return n;
            Keep(await ReceiveCall(InetOp.Receive, ct, sync).ConfigureAwait(false));
            return TakeBuffered(buffer.Span);
        }
        finally
        {
            _receiveGate.Release();
        }
    }

    /// <summary>
    /// Receives without copying: the next payload in the ICA it arrived in (dispose the lease to
    /// give it back). A lease with <see cref="ReceiveLease.IsEndOfStream"/> marks the end of the stream.
    /// </summary>
    public ReceiveLease ReceiveLease() => ReceiveLeaseCore(default, sync: true).Sync();

    public ValueTask<ReceiveLease> ReceiveLeaseAsync(CancellationToken cancellationToken = default) => ReceiveLeaseCore(cancellationToken, sync: false);

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<ReceiveLease> ReceiveLeaseCore(CancellationToken ct, bool sync)
    {
        if (_type == AbiSocketType.Datagram) throw InetErrors.Local(SocketError.OperationNotSupported, "a UDP socket receives with ReceiveFrom");
        await Enter(_receiveGate, ct, sync).ConfigureAwait(false);
        try
        {
            if (TakeLease(out var lease) || IsEof) return lease;
            Keep(await ReceiveCall(InetOp.Receive, ct, sync).ConfigureAwait(false));
            TakeLease(out lease);
            return lease;
        }
        finally
        {
            _receiveGate.Release();
        }
    }

    private bool IsEof
    {
        get { lock (_rxLock) return _eof && _rxCount == 0; }
    }

    /// <summary>
    /// A Receive with no byte limit: inet then hands over the frames' own ICAs (a limit below
    /// what is queued makes it copy into a new one), and this socket keeps what the caller's
    /// buffer does not take.
    /// </summary>
    private IcaLease ReceiveRequest(InetOp op = InetOp.Receive)
    {
        var control = Request(op, CallFlags);
        InetStack.Args(control).Value = 0;
        return control;
    }

    /// <summary>
    /// Milliseconds a blocking Receive or ReceiveFrom waits before it fails with
    /// <see cref="SocketError.TimedOut"/>; 0 (or -1) waits as long as it takes, as Socket.ReceiveTimeout.
    /// </summary>
    public int ReceiveTimeout
    {
        get => _receiveTimeout;
        set => _receiveTimeout = value >= -1 ? Math.Max(0, value) : throw new ArgumentOutOfRangeException(nameof(value), "-1, 0 or a number of milliseconds");
    }

    private int _receiveTimeout;

    /// <summary>
    /// A receive call (Receive or ReceiveFrom). A blocking sync one with a receive timeout waits
    /// with a token that cancels its held call when the time is up.
    /// </summary>
    private ValueTask<InetReply> ReceiveCall(InetOp op, CancellationToken ct, bool sync) =>
        sync && _receiveTimeout > 0 && _blocking ? ReceiveWithin(op, _receiveTimeout) : Call(ReceiveRequest(op), op, default, ct, sync);

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<InetReply> ReceiveWithin(InetOp op, int timeout)
    {
        using var timer = new CancellationTokenSource(timeout);
        try
        {
            return await Call(ReceiveRequest(op), op, default, timer.Token, sync: true).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (timer.IsCancellationRequested)
        {
            throw InetErrors.Local(SocketError.TimedOut, $"receive on {LocalEndPoint}: nothing came within {timeout} ms (ReceiveTimeout)");
        }
    }

    /// <summary>Takes a Receive reply's data ICAs into this socket's queue (or notes the end of the stream).</summary>
    private void Keep(in InetReply reply)
    {
        if (reply.Status != InetStatus.Ok)
        {
            reply.Dispose();
            throw InetErrors.For(reply.Status, $"receive from {RemoteEndPoint}");
        }
        var m = reply.Message;
        var r = reply.Result;
        if (r.DataCount != m.DataCount)
        {
            reply.Dispose();
            Stack.CountMalformed();
            throw InetErrors.Local(SocketError.SocketError, $"the inet server's receive answer names {r.DataCount} payloads but carries {m.DataCount} data ICAs");
        }
        bool closed;
        lock (_rxLock)
        {
            // Close sets _closed before it empties the queue under this lock: an answer that
            // comes after that is nobody's, and its ICAs go back now.
            closed = Volatile.Read(ref _closed) != 0;
            for (int i = 0; i < m.DataCount && !closed; i++)
            {
                var d = m.GetData(i);
                long off = r.DataOffset(i), len = r.DataLength(i);
                if (off + len > d.Ica.Length || len == 0)
                {
                    if (len != 0) Stack.CountMalformed();
                    Stack.Free(d.Ica);
                    continue;
                }
                int at = (_rxHead + _rxCount) % _rxIca.Length;
                _rxIca[at] = d.Ica;
                _rxOffset[at] = (int)off;
                _rxLength[at] = (int)len;
                _rxCount++;
            }
            if (m.DataCount == 0) _eof = true;
        }
        if (closed)
        {
            reply.Dispose();
            throw InetErrors.Local(SocketError.OperationAborted, "receive: the socket was closed");
        }
        reply.FreeControl();
    }

    /// <summary>Copies what this socket holds into <paramref name="dest"/>, freeing ICAs it empties.</summary>
    private int TakeBuffered(Span<byte> dest)
    {
        int n = 0;
        lock (_rxLock)
        {
            while (_rxCount > 0 && n < dest.Length)
            {
                int h = _rxHead;
                int len = Math.Min(_rxLength[h], dest.Length - n);
                _rxIca[h].Span.Slice(_rxOffset[h], len).CopyTo(dest[n..]);
                n += len;
                _rxOffset[h] += len;
                _rxLength[h] -= len;
                if (_rxLength[h] == 0) DropHead();
            }
        }
        return n;
    }

    private bool TakeLease(out ReceiveLease lease)
    {
        lock (_rxLock)
        {
            if (_rxCount == 0)
            {
                lease = default;
                return false;
            }
            int h = _rxHead;
            lease = new ReceiveLease(Stack.Kernel, _rxIca[h], _rxOffset[h], _rxLength[h]);
            _rxIca[h] = default;
            _rxHead = (h + 1) % _rxIca.Length;
            _rxCount--;
            return true;
        }
    }

    private void DropHead()
    {
        int h = _rxHead;
        Stack.Free(_rxIca[h]);
        _rxIca[h] = default;
        _rxHead = (h + 1) % _rxIca.Length;
        _rxCount--;
    }

    private void FreeReceived()
    {
        lock (_rxLock)
        {
            while (_rxCount > 0) DropHead();
        }
    }

    // ---- UDP -------------------------------------------------------------------------

    public int SendTo(byte[] buffer, EndPoint remoteEP) => SendTo(buffer.AsSpan(), remoteEP);

    /// <summary>Sends one datagram to <paramref name="remoteEP"/>.</summary>
    public unsafe int SendTo(ReadOnlySpan<byte> buffer, EndPoint remoteEP)
    {
        fixed (byte* bytes = buffer) return SendToCore(CallerBuffer.Pinned(bytes, buffer.Length), remoteEP, default, sync: true).Sync();
    }

    public ValueTask<int> SendToAsync(ReadOnlyMemory<byte> buffer, EndPoint remoteEP, CancellationToken cancellationToken = default) =>
        SendToCore(new CallerBuffer(buffer), remoteEP, cancellationToken, sync: false);

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<int> SendToCore(CallerBuffer buffer, EndPoint remoteEP, CancellationToken ct, bool sync)
    {
        var control = SendToRequest(buffer.Span, ToIPv4(remoteEP, nameof(remoteEP)), out var data);
        using var reply = await Call(control, InetOp.SendTo, data.AsSpan(), ct, sync, InetTraceStage.AppRequest).ConfigureAwait(false);
        StampReturned(reply, null);
        reply.ThrowIfFailed($"send to {remoteEP}");
        return Accepted(reply, buffer.Length);
    }

    private IcaLease SendToRequest(ReadOnlySpan<byte> payload, IPEndPoint to, out ReadOnlySpanHolder data)
    {
        if (_type != AbiSocketType.Datagram) throw InetErrors.Local(SocketError.OperationNotSupported, "SendTo is for UDP sockets; a TCP socket sends with Send");
        if (payload.Length > MaxDatagram) throw InetErrors.Local(SocketError.MessageSize, $"a UDP datagram holds at most {MaxDatagram} bytes, not {payload.Length}");
        var control = Request(InetOp.SendTo, CallFlags, RequestFrameFlags.DirectReturn);
        StampStart(control);
        IcaLease ica;
        try
        {
            ica = Stack.Allocate(InetService.SendHeadroom + Math.Max(1, payload.Length), "send");
        }
        catch
        {
            Stack.Free(control);
            throw;
        }
        payload.CopyTo(ica.Span[InetService.SendHeadroom..]);
        var a = InetStack.Args(control);
        a.Address = ToAbiAddress(to.Address);
        a.Port = (ushort)to.Port;
        a.SetData(0, InetService.SendHeadroom, payload.Length);
        a.Small = 1;
        data = default;
        data.Add(new DataIca(ica, InetService.SendHeadroom + payload.Length));
        return control;
    }

    /// <summary>Receives one datagram (truncated to the buffer, as on Linux) and who sent it.</summary>
    public unsafe int ReceiveFrom(Span<byte> buffer, ref EndPoint remoteEP)
    {
        SocketReceiveFromResult result;
        fixed (byte* bytes = buffer) result = ReceiveFromCore(CallerBuffer.Pinned(bytes, buffer.Length), default, sync: true).Sync();
        remoteEP = result.RemoteEndPoint;
        return result.ReceivedBytes;
    }

    public int ReceiveFrom(byte[] buffer, ref EndPoint remoteEP) => ReceiveFrom(buffer.AsSpan(), ref remoteEP);

    public ValueTask<SocketReceiveFromResult> ReceiveFromAsync(Memory<byte> buffer, EndPoint remoteEndPoint, CancellationToken cancellationToken = default)
    {
        _ = remoteEndPoint;
        return ReceiveFromCore(new CallerBuffer(buffer), cancellationToken, sync: false);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<SocketReceiveFromResult> ReceiveFromCore(CallerBuffer buffer, CancellationToken ct, bool sync)
    {
        if (_type != AbiSocketType.Datagram) throw InetErrors.Local(SocketError.OperationNotSupported, "ReceiveFrom is for UDP sockets; a TCP socket receives with Receive");
        await Enter(_receiveGate, ct, sync).ConfigureAwait(false);
        try
        {
            using var reply = await ReceiveCall(InetOp.ReceiveFrom, ct, sync).ConfigureAwait(false);
            int n = Datagram(reply, buffer.Span, out var from);
            return new SocketReceiveFromResult { ReceivedBytes = n, RemoteEndPoint = from };
        }
        finally
        {
            _receiveGate.Release();
        }
    }

    private int Datagram(in InetReply reply, Span<byte> buffer, out IPEndPoint from)
    {
        reply.ThrowIfFailed($"receive on {LocalEndPoint}");
        var r = reply.Result;
        var m = reply.Message;
        from = Remote(r) ?? new IPEndPoint(IPAddress.Any, 0);
        if (m.DataCount == 0) return 0;
        var d = m.GetData(0);
        long off = r.DataOffset(0), len = r.DataLength(0);
        if (off + len > d.Ica.Length)
        {
            Stack.CountMalformed();
            throw InetErrors.Local(SocketError.SocketError, "the inet server's datagram lies outside its data ICA");
        }
        int n = (int)Math.Min(len, buffer.Length);
        d.Ica.Span.Slice((int)off, n).CopyTo(buffer);
        return n;
    }

    private static InetSocketException NotConnectedDatagram() =>
        InetErrors.Local(SocketError.NotConnected, "a UDP socket without Connect sends with SendTo");
}
