// How a process learns that its broker is gone, without waking to ask. One thread
// sleeps in poll(2) on three descriptors: the control socket for a hang-up
// (POLLRDHUP: the broker's end closed, which the kernel does when the broker dies,
// kill -9 included), a pidfd of the broker's process (readable once it ended, should
// its socket outlive it), and an eventfd that Dispose writes. Between requests nothing
// is due on the control socket, and poll asks for no POLLIN, so the rare operations
// that use it are never disturbed. An idle process therefore costs nothing here, and a
// broker's death is seen within the time it takes to schedule the thread.
using System.Net.Sockets;
using AntHost.Kernel.Interop;

namespace AntHost.Kernel;

internal sealed unsafe class BrokerWatch : IDisposable
{
    private readonly int _stopFd;
    private readonly int _pidFd;
    private readonly Socket _socket;
    private readonly CancellationTokenSource _gone;
    private readonly Thread _thread;

    private BrokerWatch(Socket socket, int brokerPid, CancellationTokenSource gone)
    {
        _socket = socket;
        _gone = gone;
        _stopFd = Native.EventFd();
        _pidFd = brokerPid > 0 ? Native.PidfdOpen(brokerPid) : -1;
        if (_stopFd < 0) throw new KernelException(KernelError.BrokerUnavailable, "eventfd failed: cannot watch the broker");
        _thread = new Thread(Run) { IsBackground = true, Name = "anthost-broker-watch" };
    }

    public static BrokerWatch Start(Socket socket, int brokerPid, CancellationTokenSource gone)
    {
        var w = new BrokerWatch(socket, brokerPid, gone);
        if (brokerPid > 0 && w._pidFd < 0 && !Native.ProcessExists(brokerPid)) gone.Cancel();
        w._thread.Start();
        return w;
    }

    private void Run()
    {
        var fds = stackalloc Native.PollFd[3];
        fds[0] = new Native.PollFd { Fd = _stopFd, Events = Native.PollIn };
        fds[1] = new Native.PollFd { Fd = (int)_socket.Handle, Events = Native.PollRdHup };
        fds[2] = new Native.PollFd { Fd = _pidFd, Events = Native.PollIn };
        uint n = _pidFd >= 0 ? 3u : 2u;
        while (true)
        {
            int r = Native.Poll(fds, n, -1);
            if (r < 0) continue; // EINTR
            if (fds[0].Revents != 0) return;
            if (fds[1].Revents != 0 || (n == 3 && fds[2].Revents != 0)) break;
        }
        try { _gone.Cancel(); }
        catch (AggregateException) { }
        catch (ObjectDisposedException) { }
    }

    public void Dispose()
    {
        ulong one = 1;
        Native.Write(_stopFd, &one, sizeof(ulong));
        if (Thread.CurrentThread != _thread) _thread.Join();
        Native.Close(_stopFd);
        if (_pidFd >= 0) Native.Close(_pidFd);
    }
}
