// Posted sends: a blocking send of one call's worth on a stream socket does not wait for
// its answer. The data is copied into the send's ICAs, the request is posted and the call
// returns, as a kernel's send() returns once the bytes are in the socket buffer. The answer
// (from the NIC driver by direct return, or from inet) comes back quietly (MessageFlags
// .Quiet): it does not wake the app, which is usually asleep in its next call (a receive),
// and is taken with that call's own reply. So a request/response exchange costs the app one
// wake-up, not two, and inet takes the send and the receive that follows it in one wake-up.
//
// The answers are settled by whoever takes messages off the rings: after every sync call,
// and by the dispatcher when it runs. A send that failed makes the socket's next call throw
// the error (as a kernel reports a failed asynchronous send on the next call). At most
// PostedWindow sends per socket are unanswered; the next one waits for the oldest, so the
// app cannot run ahead of inet's send buffer by more than a window.
using AntHost.Inet.Abi;
using AntHost.Kernel;
using AntHost.Kernel.Ipc;

namespace AntHost.Client;

public sealed partial class InetStack
{
    private const int MaxPosted = 256;
    internal const int PostedWindow = 8;

    private readonly object _postedLock = new();
    private readonly uint[] _postedIds = new uint[MaxPosted];
    private readonly InetSocket?[] _postedSockets = new InetSocket?[MaxPosted];
    private int _postedCount;

    /// <summary>Posts a send the caller does not wait for (see the file comment); the ICAs pass to inet.</summary>
    internal void PostSend(IcaLease control, ReadOnlySpan<DataIca> data, InetSocket socket, ushort traceStage)
    {
        if (!_inet.IsOpen || Volatile.Read(ref _gone) != 0)
        {
            FreeUnsent(control, data);
            MarkGone();
            throw Gone();
        }
        lock (_postedLock)
        {
            // Registered under the lock that settling takes, so an answer that overtakes the
            // registration waits for it.
            if (_postedCount == MaxPosted)
            {
                FreeUnsent(control, data);
                throw InetErrors.Local(System.Net.Sockets.SocketError.NoBufferSpaceAvailable, $"more than {MaxPosted} sends of this process are unanswered");
            }
            uint id;
            try
            {
                id = _kernel.Post(_inet, control, (ushort)InetOp.Send, data, traceStage);
            }
            catch (KernelException e) when (e.Error is KernelError.PeerDied or KernelError.CutOff or KernelError.BrokerUnavailable)
            {
                MarkGone();
                throw Gone();
            }
            catch (KernelException e)
            {
                throw InetErrors.Local(e.Error == KernelError.RingFull ? System.Net.Sockets.SocketError.NoBufferSpaceAvailable : System.Net.Sockets.SocketError.SocketError,
                    $"Send could not be sent to the inet server: {e.Message}");
            }
            _postedIds[_postedCount] = id;
            _postedSockets[_postedCount] = socket;
            _postedCount++;
            socket.PostedOutstanding++;
        }
    }

    /// <summary>True (and the answer consumed) when <paramref name="m"/> answers a posted send.</summary>
    private bool TrySettlePosted(in Message m)
    {
        InetSocket? socket = null;
        lock (_postedLock)
        {
            for (int i = 0; i < _postedCount; i++)
            {
                if (_postedIds[i] != m.RequestId) continue;
                socket = _postedSockets[i];
                _postedCount--;
                _postedIds[i] = _postedIds[_postedCount];
                _postedSockets[i] = _postedSockets[_postedCount];
                _postedSockets[_postedCount] = null;
                socket!.PostedOutstanding--;
                break;
            }
        }
        if (socket is null) return false;
        var status = (InetStatus)m.Status;
        _kernel.FreeMessage(m);
        if (status != InetStatus.Ok) socket.PostedFailed(status);
        return true;
    }

    /// <summary>Settles what the last call's wait left on the rings or in the inbox (posted sends' answers and the like).</summary>
    internal void SettleQueued()
    {
        while (_kernel.TryReceive(out var m)) Dispatch(m);
    }

    /// <summary>Waits until <paramref name="socket"/> has fewer than <see cref="PostedWindow"/> unanswered sends.</summary>
    internal void WaitForPostedRoom(InetSocket socket)
    {
        while (Volatile.Read(ref socket.PostedOutstanding) >= PostedWindow)
        {
            ThrowIfUnusable();
            if (_kernel.Receive(out var m, TimeSpan.FromMilliseconds(20)))
            {
                Dispatch(m);
                continue;
            }
            // Another thread holds the receiver role and waits for its own reply: quiet answers
            // do not wake it, so ask it to take them.
            _kernel.WakeReceiver();
        }
    }
}
