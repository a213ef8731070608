// One engine for the sync and the async calls of a socket.
//
// Each operation that has both forms (Connect, Accept, Send, Receive, ReceiveLease, SendTo,
// ReceiveFrom) is written once, as an async method on a pooling builder that takes a `sync`
// flag; the public pair are one-line wrappers, as System.Net.Sockets runs its sync calls on
// the engine of its async ones. The flag decides only how a call waits for its answer:
//
// - sync: a single call is KernelConnection.Call (the calling thread takes its own reply, no
//   thread switch); a call that must be waited for later (a pipelined send's window) or
//   canceled (SendTimeout, ReceiveTimeout) is posted and waited for on an event. Every wait
//   has ended when it returns, so the method never suspends: its state machine stays on the
//   caller's stack, nothing is allocated, and `Sync()` reads the finished result.
// - async: the same calls are posted and awaited (the dispatcher completes them).
//
// A sync call's span is pinned for the call and reaches the engine as a CallerBuffer, as
// .NET's sync socket operations carry a pinned pointer.
using System.Runtime.CompilerServices;
using AntHost.Inet.Abi;
using AntHost.Kernel;

namespace AntHost.Client;

public sealed partial class InetSocket
{
    /// <summary>
    /// One call of this socket and its answer. Sync without a token: a plain
    /// KernelConnection.Call, finished when this returns. Otherwise: posted, and waited for
    /// (sync: on an event; async: awaited). The control ICA and the data ICAs pass to inet.
    /// </summary>
    private ValueTask<InetReply> Call(IcaLease control, InetOp op, ReadOnlySpan<DataIca> data, CancellationToken ct, bool sync, ushort traceStage = 0)
    {
        if (sync && !ct.CanBeCanceled) return new(Run(control, op, data, traceStage));
        return Stack.AwaitCall(BeginAsync(control, op, data, ct, traceStage, syncWait: sync), op, ct, sync, this);
    }

    /// <summary>Waits for a socket's send or receive gate.</summary>
    private static ValueTask Enter(SemaphoreSlim gate, CancellationToken ct, bool sync)
    {
        if (!sync) return new(gate.WaitAsync(ct));
        gate.Wait(ct);
        return default;
    }

    /// <summary>A sync call of this socket; connection errors mark it not connected.</summary>
    private InetReply Run(IcaLease control, InetOp op, ReadOnlySpan<DataIca> data = default, ushort traceStage = 0)
    {
        Interlocked.Increment(ref _inFlight);
        try
        {
            var reply = Stack.Call(control, op, data, traceStage);
            Observe(reply.Status);
            return reply;
        }
        finally
        {
            Interlocked.Decrement(ref _inFlight);
        }
    }

    /// <summary>Posts a call of this socket (the caller then waits for it with InetStack.AwaitCall, naming this socket).</summary>
    private InetStack.AsyncCall BeginAsync(IcaLease control, InetOp op, ReadOnlySpan<DataIca> data, CancellationToken ct, ushort traceStage,
        bool syncWait)
    {
        Interlocked.Increment(ref _inFlight);
        try
        {
            return Stack.StartCall(control, op, data, Handle, ct, traceStage, syncWait);
        }
        catch
        {
            Interlocked.Decrement(ref _inFlight);
            throw;
        }
    }

    /// <summary>A call of this socket started by <see cref="BeginAsync"/> has ended.</summary>
    internal void CallEnded() => Interlocked.Decrement(ref _inFlight);
}

/// <summary>
/// The caller's bytes as the engine carries them: an async call's memory, or a sync call's
/// span, pinned by the caller for as long as the call runs (see the file comment).
/// </summary>
internal readonly unsafe struct CallerBuffer
{
    private readonly Memory<byte> _memory;
    private readonly byte* _pinned;
    private readonly int _length;

    public CallerBuffer(ReadOnlyMemory<byte> memory)
    {
        // Sends only read it: the writable view serves receives and sends with one type.
        _memory = System.Runtime.InteropServices.MemoryMarshal.AsMemory(memory);
        _length = memory.Length;
    }

    private CallerBuffer(byte* pinned, int length)
    {
        _pinned = pinned;
        _length = length;
    }

    /// <summary>A span the caller has pinned (fixed) for the whole sync call.</summary>
    public static CallerBuffer Pinned(byte* pinned, int length) => new(pinned, length);

    public int Length => _length;

    public Span<byte> Span => _pinned != null ? new Span<byte>(_pinned, _length) : _memory.Span;
}

internal static class SyncCalls
{
    /// <summary>
    /// The result of an engine method run with sync = true. Its waits all ended before it
    /// returned, so the task is complete; should it not be, this blocks until it is.
    /// </summary>
    public static T Sync<T>(this ValueTask<T> task) => task.IsCompleted ? task.GetAwaiter().GetResult() : task.AsTask().GetAwaiter().GetResult();

    /// <inheritdoc cref="Sync{T}(ValueTask{T})"/>
    public static void Sync(this ValueTask task)
    {
        if (task.IsCompleted) task.GetAwaiter().GetResult();
        else task.AsTask().GetAwaiter().GetResult();
    }
}
