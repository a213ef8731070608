// A Stream over a connected AntHost TCP socket, as NetworkStream is over a
// System.Net.Sockets.Socket, so ordinary .NET code (StreamReader, SslStream, HttpClient
// through SocketsHttpHandler.ConnectCallback) runs over AntHost unchanged.
using System.Net.Sockets;
using System.Runtime.CompilerServices;

namespace AntHost.Client;

/// <summary>A stream over a connected <see cref="InetSocket"/> (see NetworkStream).</summary>
public sealed class InetStream : Stream
{
    private readonly bool _ownsSocket;
    private int _disposed;

    /// <param name="socket">A connected stream socket.</param>
    /// <param name="ownsSocket">Whether disposing the stream closes the socket.</param>
    public InetStream(InetSocket socket, bool ownsSocket = false)
    {
        ArgumentNullException.ThrowIfNull(socket);
        if (socket.SocketType != SocketType.Stream) throw new ArgumentException("an InetStream needs a stream (TCP) socket", nameof(socket));
        if (!socket.Connected) throw new IOException("the socket is not connected");
        Socket = socket;
        _ownsSocket = ownsSocket;
    }

    public InetSocket Socket { get; }

    /// <summary>True when a Read would not wait.</summary>
    public bool DataAvailable => Socket.Available > 0;

    public override bool CanRead => _disposed == 0;
    public override bool CanWrite => _disposed == 0;
    public override bool CanSeek => false;
    public override bool CanTimeout => true;

    /// <summary>Milliseconds a Read waits before it fails (IOException, TimedOut inside); <see cref="Timeout.Infinite"/> for ever (the socket's ReceiveTimeout).</summary>
    public override int ReadTimeout
    {
        get => Socket.ReceiveTimeout is 0 ? Timeout.Infinite : Socket.ReceiveTimeout;
        set => Socket.ReceiveTimeout = value is 0 or < -1 ? throw new ArgumentOutOfRangeException(nameof(value), "a positive number of milliseconds or Timeout.Infinite") : value;
    }

    /// <summary>Milliseconds a Write waits for room before it fails (IOException, TimedOut inside); <see cref="Timeout.Infinite"/> for ever (the socket's SendTimeout).</summary>
    public override int WriteTimeout
    {
        get => Socket.SendTimeout is 0 ? Timeout.Infinite : Socket.SendTimeout;
        set => Socket.SendTimeout = value is 0 or < -1 ? throw new ArgumentOutOfRangeException(nameof(value), "a positive number of milliseconds or Timeout.Infinite") : value;
    }
    public override long Length => throw new NotSupportedException("a network stream has no length");
    public override long Position
    {
        get => throw new NotSupportedException("a network stream has no position");
        set => throw new NotSupportedException("a network stream has no position");
    }

    public override int Read(byte[] buffer, int offset, int count)
    {
        ValidateBufferArguments(buffer, offset, count);
        return Read(buffer.AsSpan(offset, count));
    }

    public override int Read(Span<byte> buffer)
    {
        ThrowIfDisposed();
        try { return Socket.Receive(buffer); }
        catch (SocketException e) { throw Wrap(e, "read from"); }
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
    {
        ValidateBufferArguments(buffer, offset, count);
        return ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        try { return await Socket.ReceiveAsync(buffer, cancellationToken).ConfigureAwait(false); }
        catch (SocketException e) { throw Wrap(e, "read from"); }
    }

    public override void Write(byte[] buffer, int offset, int count)
    {
        ValidateBufferArguments(buffer, offset, count);
        Write(buffer.AsSpan(offset, count));
    }

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        ThrowIfDisposed();
        try { Socket.Send(buffer); }
        catch (SocketException e) { throw Wrap(e, "write to"); }
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
    {
        ValidateBufferArguments(buffer, offset, count);
        return WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        try { await Socket.SendAsync(buffer, cancellationToken).ConfigureAwait(false); }
        catch (SocketException e) { throw Wrap(e, "write to"); }
    }

    /// <summary>Nothing to do: a send returns when inet has taken the bytes.</summary>
    public override void Flush() { }

    public override Task FlushAsync(CancellationToken cancellationToken) =>
        cancellationToken.IsCancellationRequested ? Task.FromCanceled(cancellationToken) : Task.CompletedTask;

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException("a network stream cannot seek");

    public override void SetLength(long value) => throw new NotSupportedException("a network stream has no length");

    protected override void Dispose(bool disposing)
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0 && disposing && _ownsSocket) Socket.Dispose();
        base.Dispose(disposing);
    }

    public override ValueTask DisposeAsync()
    {
        Dispose();
        return ValueTask.CompletedTask;
    }

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed != 0, this);

    // As NetworkStream: socket errors surface as IOException with the SocketException inside.
    private IOException Wrap(SocketException e, string what) => new($"Unable to {what} {Socket.RemoteEndPoint}: {e.Message}", e);
}
