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
using AbiFlags = AntHost.Inet.Abi.SocketFlags;

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
    public int Send(ReadOnlySpan<byte> buffer, SendTrace? trace)
    {
        if (_type == AbiSocketType.Datagram) return SendTo(buffer, RemoteEndPoint ?? throw NotConnectedDatagram());
        if (buffer.IsEmpty) return 0;
        if (trace is null && SendIsTimed) return SendWithin(buffer);
        _sendGate.Wait();
        try
        {
            ThrowIfPostedFailed();
            if (buffer.Length > SendSegmentSize * _icasPerSend && CanPipeline()) return SendPipelined(buffer, trace);
            if (trace is null && _blocking && Stack.PostsSmallSends && buffer.Length <= SendSegmentSize) return SendPosted(buffer);
            int sent = 0;
            while (sent < buffer.Length)
            {
                var control = Request(InetOp.Send, CallFlags, RequestFrameFlags.DirectReturn);
                StampStart(control);
                var data = default(ReadOnlySpanHolder);
                int n = FillSend(control, buffer[sent..], ref data);
                using var reply = Run(control, InetOp.Send, data.AsSpan(), InetTraceStage.AppRequest);
                StampReturned(reply, trace);
                if (reply.Status != InetStatus.Ok)
                {
                    if (reply.Status == SocketStatus.NoBufferSpace && data.Count > 1)
                    {
                        // The send buffer is smaller than three segments' ICAs: one ICA per call from now on.
                        _icasPerSend = 1;
                        continue;
                    }
                    if (sent > 0 && reply.Status == SocketStatus.WouldBlock) return sent;
                    throw InetErrors.For(reply.Status, $"send to {RemoteEndPoint}");
                }
                sent += Accepted(reply, n);
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

    /// <summary>One segment's worth, posted: returns once inet has the request, not its answer.</summary>
    private int SendPosted(ReadOnlySpan<byte> buffer)
    {
        Stack.WaitForPostedRoom(this);
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

    public ValueTask<int> SendAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (_type == AbiSocketType.Datagram) return SendToAsync(buffer, RemoteEndPoint ?? throw NotConnectedDatagram(), cancellationToken);
        return buffer.IsEmpty ? ValueTask.FromResult(0) : SendStreamAsync(buffer, cancellationToken);
    }

    // The state kept across the await is the buffer, the count and the call: the request and
    // the answer are built and read in the synchronous helpers, so the pooled state machine
    // stays small.
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<int> SendStreamAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken)
    {
        await _sendGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (buffer.Length > SendSegmentSize * _icasPerSend && CanPipeline())
                return await SendPipelinedAsync(buffer, cancellationToken).ConfigureAwait(false);
            int sent = 0;
            while (sent < buffer.Length)
            {
                var call = BeginSend(buffer.Span[sent..], cancellationToken, out int n, out int icas);
                Message answer;
                try
                {
                    answer = await call.Task.ConfigureAwait(false);
                }
                finally
                {
                    EndAsync(call);
                }
                int accepted = EndSend(answer, n, icas, sent, cancellationToken, null);
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

    private int SendPipelined(ReadOnlySpan<byte> buffer, SendTrace? trace)
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
                    _window[slot] = BeginSend(buffer[posted..], default, out _windowBytes[slot], out _windowIcas[slot], syncWait: true);
                }
                catch (Exception e) when (e is SocketException or ObjectDisposedException or KernelException)
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
                Message answer;
                try
                {
                    answer = call.Op.WaitSync();
                }
                finally
                {
                    EndAsync(call);
                }
                int accepted = EndSend(answer, _windowBytes[h], _windowIcas[h], sent, default, trace);
                if (accepted <= 0)
                    throw InetErrors.Local(SocketError.SocketError, "the inet server refused a pipelined send for buffer space; this should not happen with the send buffer it reported");
                sent += accepted;
            }
            catch (SocketException e)
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
                var m = call.Op.WaitSync();
                Stack.FreeMessage(m);
            }
            catch (SocketException)
            {
            }
            finally
            {
                EndAsync(call);
            }
        }
        if (failure is not null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure);
        return sent;
    }

    /// <summary>As <see cref="SendPipelined"/>, awaiting the answers (the caller holds the send gate).</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<int> SendPipelinedAsync(ReadOnlyMemory<byte> buffer, CancellationToken ct)
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
                    _window[slot] = BeginSend(buffer.Span[posted..], ct, out _windowBytes[slot], out _windowIcas[slot]);
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
                Message answer;
                try
                {
                    answer = await call.Task.ConfigureAwait(false);
                }
                finally
                {
                    EndAsync(call);
                }
                int accepted = EndSend(answer, _windowBytes[h], _windowIcas[h], sent, ct, null);
                if (accepted <= 0)
                    throw InetErrors.Local(SocketError.SocketError, "the inet server refused a pipelined send for buffer space; this should not happen with the send buffer it reported");
                sent += accepted;
            }
            catch (Exception e) when (e is SocketException or OperationCanceledException)
            {
                failure = e;
            }
        }
        while (count > 0)
        {
            int h = head;
            head = (head + 1) % SendWindow;
            count--;
            var call = _window[h];
            _window[h] = default;
            try
            {
                var m = await call.Task.ConfigureAwait(false);
                Stack.FreeMessage(m);
            }
            catch (SocketException)
            {
            }
            finally
            {
                EndAsync(call);
            }
        }
        if (failure is not null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure);
        return sent;
    }

    private InetStack.AsyncCall BeginSend(ReadOnlySpan<byte> src, CancellationToken ct, out int bytes, out int icas, bool syncWait = false)
    {
        var control = Request(InetOp.Send, CallFlags, RequestFrameFlags.DirectReturn);
        StampStart(control);
        var data = default(ReadOnlySpanHolder);
        bytes = FillSend(control, src, ref data);
        icas = data.Count;
        return BeginAsync(control, InetOp.Send, data.AsSpan(), ct, InetTraceStage.AppRequest, syncWait);
    }

    /// <summary>Reads a Send answer: the bytes accepted, 0 to send them again (one ICA per call), -1 for WouldBlock after some bytes went.</summary>
    private int EndSend(in Message answer, int bytes, int icas, int sentBefore, CancellationToken ct, SendTrace? trace)
    {
        using var reply = FinishAsync(answer, InetOp.Send, ct);
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
            reply.ThrowIfFailed(datagram ? $"send to {to}" : $"send to {RemoteEndPoint}");
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
    public int Receive(Span<byte> buffer)
    {
        if (_type == AbiSocketType.Datagram)
        {
            EndPoint any = new IPEndPoint(IPAddress.Any, 0);
            return ReceiveFrom(buffer, ref any);
        }
        _receiveGate.Wait();
        try
        {
            int n = TakeBuffered(buffer);
            // A zero-byte read waits until data (or the end) is there, as NetworkStream's does: HttpClient uses one on idle connections.
            if (n > 0 || IsEof || (buffer.IsEmpty && BufferedBytes > 0)) return n;
            var reply = RunReceive(InetOp.Receive);
            Keep(reply);
            return TakeBuffered(buffer);
        }
        finally
        {
            _receiveGate.Release();
        }
    }

    public ValueTask<int> ReceiveAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
        _type == AbiSocketType.Datagram ? ReceiveDatagramAsync(buffer, cancellationToken) : ReceiveStreamAsync(buffer, cancellationToken);

    private async ValueTask<int> ReceiveDatagramAsync(Memory<byte> buffer, CancellationToken cancellationToken) =>
        (await ReceiveFromAsync(buffer, new IPEndPoint(IPAddress.Any, 0), cancellationToken).ConfigureAwait(false)).ReceivedBytes;

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<int> ReceiveStreamAsync(Memory<byte> buffer, CancellationToken cancellationToken)
    {
        await _receiveGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            int n = TakeBuffered(buffer.Span);
            // A zero-byte read waits until data (or the end) is there, as NetworkStream's does: HttpClient uses one on idle connections.
            if (n > 0 || IsEof || (buffer.IsEmpty && BufferedBytes > 0)) return n;
            var call = BeginAsync(ReceiveRequest(), InetOp.Receive, default, cancellationToken);
            Message answer;
            try
            {
                answer = await call.Task.ConfigureAwait(false);
            }
            finally
            {
                EndAsync(call);
            }
            Keep(answer, cancellationToken);
            return TakeBuffered(buffer.Span);
        }
        finally
        {
            _receiveGate.Release();
        }
    }

    private void Keep(in Message answer, CancellationToken ct)
    {
        var reply = FinishAsync(answer, InetOp.Receive, ct);
        Keep(reply);
    }

    /// <summary>
    /// Receives without copying: the next payload in the ICA it arrived in (dispose the lease to
    /// give it back). A lease with <see cref="ReceiveLease.IsEndOfStream"/> marks the end of the stream.
    /// </summary>
    public ReceiveLease ReceiveLease()
    {
        if (_type == AbiSocketType.Datagram) throw InetErrors.Local(SocketError.OperationNotSupported, "a UDP socket receives with ReceiveFrom");
        _receiveGate.Wait();
        try
        {
            if (TakeLease(out var lease) || IsEof) return lease;
            var reply = RunReceive(InetOp.Receive);
            Keep(reply);
            TakeLease(out lease);
            return lease;
        }
        finally
        {
            _receiveGate.Release();
        }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<ReceiveLease> ReceiveLeaseAsync(CancellationToken cancellationToken = default)
    {
        if (_type == AbiSocketType.Datagram) throw InetErrors.Local(SocketError.OperationNotSupported, "a UDP socket receives with ReceiveFrom");
        await _receiveGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (TakeLease(out var lease) || IsEof) return lease;
            var call = BeginAsync(ReceiveRequest(), InetOp.Receive, default, cancellationToken);
            Message answer;
            try
            {
                answer = await call.Task.ConfigureAwait(false);
            }
            finally
            {
                EndAsync(call);
            }
            var reply = FinishAsync(answer, InetOp.Receive, cancellationToken);
            Keep(reply);
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
    /// A blocking receive call: a plain sync call, or, with a receive timeout, an async one
    /// waited for here whose token sends the Cancel when the time is up.
    /// </summary>
    private InetReply RunReceive(InetOp op)
    {
        int timeout = _receiveTimeout;
        if (timeout <= 0 || !_blocking) return Run(ReceiveRequest(op), op);
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            return ReceiveWithin(op, cts.Token).AsTask().GetAwaiter().GetResult();
        }
        catch (OperationCanceledException) when (cts.IsCancellationRequested)
        {
            throw InetErrors.Local(SocketError.TimedOut, $"receive on {LocalEndPoint}: nothing came within {timeout} ms (ReceiveTimeout)");
        }
    }

    private async ValueTask<InetReply> ReceiveWithin(InetOp op, CancellationToken ct)
    {
        var call = BeginAsync(ReceiveRequest(op), op, default, ct);
        Message answer;
        try
        {
            answer = await call.Task.ConfigureAwait(false);
        }
        finally
        {
            EndAsync(call);
        }
        return FinishAsync(answer, op, ct);
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
    public int SendTo(ReadOnlySpan<byte> buffer, EndPoint remoteEP)
    {
        var control = SendToRequest(buffer, ToIPv4(remoteEP, nameof(remoteEP)), out var data);
        using var reply = Run(control, InetOp.SendTo, [data], InetTraceStage.AppRequest);
        StampReturned(reply, null);
        reply.ThrowIfFailed($"send to {remoteEP}");
        return Accepted(reply, buffer.Length);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<int> SendToAsync(ReadOnlyMemory<byte> buffer, EndPoint remoteEP, CancellationToken cancellationToken = default)
    {
        var control = SendToRequest(buffer.Span, ToIPv4(remoteEP, nameof(remoteEP)), out var d);
        var data = default(ReadOnlySpanHolder);
        data.Add(d);
        var call = BeginAsync(control, InetOp.SendTo, data.AsSpan(), cancellationToken, InetTraceStage.AppRequest);
        Message answer;
        try
        {
            answer = await call.Task.ConfigureAwait(false);
        }
        finally
        {
            EndAsync(call);
        }
        using var reply = FinishAsync(answer, InetOp.SendTo, cancellationToken);
        StampReturned(reply, null);
        reply.ThrowIfFailed($"send to {remoteEP}");
        return Accepted(reply, buffer.Length);
    }

    private IcaLease SendToRequest(ReadOnlySpan<byte> payload, IPEndPoint to, out DataIca data)
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
        data = new DataIca(ica, InetService.SendHeadroom + payload.Length);
        return control;
    }

    /// <summary>Receives one datagram (truncated to the buffer, as on Linux) and who sent it.</summary>
    public int ReceiveFrom(Span<byte> buffer, ref EndPoint remoteEP)
    {
        if (_type != AbiSocketType.Datagram) throw InetErrors.Local(SocketError.OperationNotSupported, "ReceiveFrom is for UDP sockets; a TCP socket receives with Receive");
        _receiveGate.Wait();
        try
        {
            using var reply = RunReceive(InetOp.ReceiveFrom);
            int n = Datagram(reply, buffer, out var from);
            remoteEP = from;
            return n;
        }
        finally
        {
            _receiveGate.Release();
        }
    }

    public int ReceiveFrom(byte[] buffer, ref EndPoint remoteEP) => ReceiveFrom(buffer.AsSpan(), ref remoteEP);

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<SocketReceiveFromResult> ReceiveFromAsync(Memory<byte> buffer, EndPoint remoteEndPoint, CancellationToken cancellationToken = default)
    {
        _ = remoteEndPoint;
        if (_type != AbiSocketType.Datagram) throw InetErrors.Local(SocketError.OperationNotSupported, "ReceiveFrom is for UDP sockets; a TCP socket receives with Receive");
        await _receiveGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var call = BeginAsync(ReceiveRequest(InetOp.ReceiveFrom), InetOp.ReceiveFrom, default, cancellationToken);
            Message answer;
            try
            {
                answer = await call.Task.ConfigureAwait(false);
            }
            finally
            {
                EndAsync(call);
            }
            using var reply = FinishAsync(answer, InetOp.ReceiveFrom, cancellationToken);
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
