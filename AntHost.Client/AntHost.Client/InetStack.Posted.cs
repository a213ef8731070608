// Posted sends: a blocking send of at most one segment on a stream socket does not wait for
// its answer, nor does one of one call's worth (a 64 KiB write), PostLargeSends. The data is
// copied into the send's ICAs, the request is posted and the call returns, as a kernel's
// send() returns once the bytes are in the socket buffer. The answer
// (from the NIC driver by direct return, or from inet) comes back quietly (MessageFlags
// .Quiet): it does not wake the app, which is usually asleep in its next call (a receive),
// and is taken with that call's own reply. So a request/response exchange costs the app one
// wake-up, not two, and inet takes the send and the receive that follows it in one wake-up.
//
// The answers are settled by whoever takes messages off the rings: after every sync call,
// and by the dispatcher when it runs. A send that failed makes the socket's next call throw
// the error (as a kernel reports a failed asynchronous send on the next call). At most
// PostedWindow sends per socket are unanswered (of one call's worth: as many as inet's send
// buffer holds, at least one); the next one waits for the oldest, so the app cannot run ahead
// of inet's send buffer by more than a window.
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
        // A slot is taken first (its id still 0) and the request posted outside the lock: a post
        // may wait for room on the ring, and whoever settles answers (the dispatcher) must not
        // wait behind it.
        lock (_postedLock)
        {
            if (_postedCount == MaxPosted)
            {
                FreeUnsent(control, data);
                throw InetErrors.Local(System.Net.Sockets.SocketError.NoBufferSpaceAvailable, $"more than {MaxPosted} sends of this process are unanswered");
            }
            _postedIds[_postedCount] = 0;
            _postedSockets[_postedCount] = socket;
            _postedCount++;
            socket.PostedOutstanding++;
        }
        uint id;
        try
        {
            id = _kernel.Post(_inet, control, (ushort)InetOp.Send, data, traceStage);
        }
        catch (KernelException e)
        {
            SetPostedId(socket, 0, remove: true);
            throw Translate(e, "Send could not be sent to the inet server");
        }
        // An answer that overtook the id's registration was parked with the async calls' early
        // ones; both are looked at under the lock Complete holds while it decides.
        Message early;
        bool overtaken;
        lock (_opsLock)
        {
            SetPostedId(socket, id, remove: false);
            overtaken = _early.Remove(id, out early);
        }
        if (overtaken) TrySettlePosted(early);
    }

    /// <summary>Gives the slot <paramref name="socket"/> took (id still 0) its request id, or frees it.</summary>
    private void SetPostedId(InetSocket socket, uint id, bool remove)
    {
        lock (_postedLock)
        {
            for (int i = 0; i < _postedCount; i++)
            {
                if (_postedIds[i] != 0 || _postedSockets[i] != socket) continue;
                if (!remove)
                {
                    _postedIds[i] = id;
                    return;
                }
                _postedCount--;
                _postedIds[i] = _postedIds[_postedCount];
                _postedSockets[i] = _postedSockets[_postedCount];
                _postedSockets[_postedCount] = null;
                socket.PostedOutstanding--;
                return;
            }
        }
    }

    /// <summary>True when <paramref name="requestId"/> is a posted send's, not answered yet.</summary>
    private bool IsPosted(uint requestId)
    {
        lock (_postedLock)
        {
            for (int i = 0; i < _postedCount; i++)
                if (_postedIds[i] == requestId) return true;
            return false;
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

    /// <summary>Waits until <paramref name="socket"/> has fewer than <paramref name="window"/> unanswered sends.</summary>
    internal void WaitForPostedRoom(InetSocket socket, int window)
    {
        while (Volatile.Read(ref socket.PostedOutstanding) >= window)
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
