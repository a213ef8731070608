// One accepted AntHost connection as Kestrel sees it: a ConnectionContext whose Transport
// reads the input pipe (filled by the receive loop from InetSocket.ReceiveAsync) and writes
// the output pipe (drained by the send loop into InetSocket.SendAsync).
//
// Endings, as Kestrel's own socket transport has them:
// - the client's FIN: the input pipe completes (Kestrel sees the end of the request stream);
// - the client's RST (or any receive error): the input pipe completes with a
//   ConnectionResetException and ConnectionClosed fires, so the request is aborted;
// - Kestrel completes its output (response done, Connection: close, server stopping): the
//   send loop sends what is left, shuts the socket down and closes it (gracefully: inet
//   sends the rest and the FIN);
// - Abort: pending writes are dropped and the socket is reset and closed.
// DisposeAsync waits for both loops, so the socket is closed in inet when it returns.
using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;

namespace AntHost.Client.Kestrel;

internal sealed class AntHostConnection : ConnectionContext, IConnectionIdFeature, IConnectionTransportFeature, IConnectionItemsFeature,
    IConnectionLifetimeFeature, IConnectionEndPointFeature
{
    private const int MinReceive = 4096;
    private const int SendChunk = 64 * 1024;
    private static long s_ids;

    private readonly InetSocket _socket;
    private readonly ILogger _log;
    private readonly Pipe _input;
    private readonly Pipe _output;
    private readonly CancellationTokenSource _closed = new();
    private readonly FeatureCollection _features = new();
    private Task _receiving = Task.CompletedTask;
    private Task _sending = Task.CompletedTask;
    private volatile ConnectionAbortedException? _abortReason;
    private int _socketClosed;

    public AntHostConnection(InetSocket socket, AntHostTransportOptions options, ILogger log)
    {
        _socket = socket;
        _log = log;
        ConnectionId = $"anthost-{Interlocked.Increment(ref s_ids):x}";
        LocalEndPoint = socket.LocalEndPoint;
        RemoteEndPoint = socket.RemoteEndPoint;
        _input = new Pipe(new PipeOptions(pauseWriterThreshold: options.MaxReadBufferSize, resumeWriterThreshold: options.MaxReadBufferSize / 2,
            useSynchronizationContext: false));
        _output = new Pipe(new PipeOptions(pauseWriterThreshold: options.MaxWriteBufferSize, resumeWriterThreshold: options.MaxWriteBufferSize / 2,
            useSynchronizationContext: false));
        Transport = new DuplexPipe(_input.Reader, _output.Writer);
        ConnectionClosed = _closed.Token;
        _features.Set<IConnectionIdFeature>(this);
        _features.Set<IConnectionTransportFeature>(this);
        _features.Set<IConnectionItemsFeature>(this);
        _features.Set<IConnectionLifetimeFeature>(this);
        _features.Set<IConnectionEndPointFeature>(this);
    }

    public override string ConnectionId { get; set; }
    public override IFeatureCollection Features => _features;
    public override IDictionary<object, object?> Items { get; set; } = new Dictionary<object, object?>();
    public override IDuplexPipe Transport { get; set; }
    public override CancellationToken ConnectionClosed { get; set; }
    public override EndPoint? LocalEndPoint { get; set; }
    public override EndPoint? RemoteEndPoint { get; set; }

    public void Start()
    {
        _receiving = Task.Run(ReceiveLoopAsync);
        _sending = Task.Run(SendLoopAsync);
    }

    private async Task ReceiveLoopAsync()
    {
        Exception? error = null;
        var writer = _input.Writer;
        try
        {
            while (true)
            {
                var memory = writer.GetMemory(MinReceive);
                int n = await _socket.ReceiveAsync(memory).ConfigureAwait(false);
                if (n == 0) break; // the client's FIN
                writer.Advance(n);
                var flush = await writer.FlushAsync().ConfigureAwait(false);
                if (flush.IsCompleted || flush.IsCanceled) break; // Kestrel stopped reading
            }
        }
        catch (SocketException e) when (_abortReason is not null || Volatile.Read(ref _socketClosed) != 0)
        {
            error = _abortReason;
            _ = e;
        }
        catch (ObjectDisposedException) when (Volatile.Read(ref _socketClosed) != 0)
        {
            error = _abortReason;
        }
        catch (SocketException e) when (e.SocketErrorCode is SocketError.ConnectionReset or SocketError.ConnectionAborted or SocketError.TimedOut
            or SocketError.OperationAborted or SocketError.Shutdown or SocketError.NotConnected)
        {
            _log.LogDebug("connection {Id} from {Remote}: {Error}", ConnectionId, RemoteEndPoint, e.Message);
            error = new ConnectionResetException(e.Message, e);
        }
        catch (Exception e)
        {
            _log.LogDebug(e, "connection {Id}: the receive loop failed", ConnectionId);
            error = new ConnectionResetException(e.Message, e);
        }
        finally
        {
            await writer.CompleteAsync(error).ConfigureAwait(false);
            // The request's RequestAborted fires from here when the client is gone.
            if (error is not null || _abortReason is not null) FireClosed();
        }
    }

    private async Task SendLoopAsync()
    {
        Exception? error = null;
        var reader = _output.Reader;
        byte[]? chunk = null;
        try
        {
            while (true)
            {
                var result = await reader.ReadAsync().ConfigureAwait(false);
                if (result.IsCanceled) break;
                var buffer = result.Buffer;
                if (buffer.IsSingleSegment)
                {
                    if (!buffer.IsEmpty) await _socket.SendAsync(buffer.First).ConfigureAwait(false);
                }
                else
                {
                    // Several small segments go out in calls of up to 64 KiB (pipelined sends), not one IPC call each.
                    chunk ??= ArrayPool<byte>.Shared.Rent(SendChunk);
                    var rest = buffer;
                    while (!rest.IsEmpty)
                    {
                        int k = (int)Math.Min(rest.Length, chunk.Length);
                        rest.Slice(0, k).CopyTo(chunk);
                        await _socket.SendAsync(chunk.AsMemory(0, k)).ConfigureAwait(false);
                        rest = rest.Slice(k);
                    }
                }
                reader.AdvanceTo(buffer.End);
                if (result.IsCompleted) break;
            }
        }
        catch (SocketException e)
        {
            error = _abortReason ?? (Exception)new ConnectionResetException(e.Message, e);
        }
        catch (ObjectDisposedException)
        {
            error = _abortReason;
        }
        finally
        {
            if (chunk is not null) ArrayPool<byte>.Shared.Return(chunk);
            await reader.CompleteAsync(error).ConfigureAwait(false);
            CloseSocket(graceful: _abortReason is null && error is null);
        }
    }

    /// <summary>Ends the connection: a graceful one with a FIN after the last byte, else a reset.</summary>
    private void CloseSocket(bool graceful)
    {
        if (Interlocked.Exchange(ref _socketClosed, 1) != 0) return;
        try
        {
            if (graceful) _socket.Shutdown(SocketShutdown.Send);
            else _socket.LingerState = new LingerOption(true, 0);
        }
        catch (SocketException) { }
        catch (ObjectDisposedException) { }
        // Ends the receive loop's held call (OperationAborted), then closes.
        _socket.Dispose();
        FireClosed();
    }

    private void FireClosed()
    {
        try { _closed.Cancel(); }
        catch (ObjectDisposedException) { }
    }

    public override void Abort(ConnectionAbortedException abortReason)
    {
        _abortReason ??= abortReason;
        // The send loop stops at its next read and resets the connection.
        _output.Reader.CancelPendingRead();
        CloseSocket(graceful: false);
    }

    public override async ValueTask DisposeAsync()
    {
        await _output.Writer.CompleteAsync().ConfigureAwait(false);
        await _input.Reader.CompleteAsync().ConfigureAwait(false);
        await _sending.ConfigureAwait(false);
        // Kestrel no longer reads: the receive loop ends with the socket's close.
        CloseSocket(graceful: true);
        await _receiving.ConfigureAwait(false);
        _closed.Dispose();
    }

    private sealed class DuplexPipe(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input { get; } = input;
        public PipeWriter Output { get; } = output;
    }
}
