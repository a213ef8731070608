using System.Runtime.ExceptionServices;

namespace AntHost.Nic8139.Pcap;

/// <summary>
/// Runs code inside a named network namespace (<c>/var/run/netns/NAME</c>, as <c>ip netns</c>
/// makes them). <c>setns</c> moves only the calling thread, so the code runs on a fresh thread
/// that enters the namespace and then ends: the caller's thread never changes namespace and
/// nothing has to be restored. Sockets made there (a pcap handle, a link-state socket) stay
/// bound to that namespace whichever thread uses them later.
/// </summary>
public static class NetworkNamespace
{
    /// <summary>The path of a named namespace.</summary>
    public static string PathOf(string name) => Path.Combine("/var/run/netns", name);

    /// <summary>Moves the calling thread into the namespace (for a thread the caller owns).</summary>
    /// <exception cref="InvalidOperationException">The namespace does not exist or cannot be entered.</exception>
    public static void EnterOnThisThread(string name)
    {
        var path = PathOf(name);
        int fd = Linux.Open(path, Linux.ORdOnly | Linux.OCloexec);
        if (fd < 0)
        {
            int errno = System.Runtime.InteropServices.Marshal.GetLastPInvokeError();
            throw new InvalidOperationException($"network namespace '{name}': cannot open {path}: {Linux.Error(errno)}");
        }
        try
        {
            if (Linux.SetNs(fd, Linux.CloneNewNet) != 0)
            {
                int errno = System.Runtime.InteropServices.Marshal.GetLastPInvokeError();
                throw new InvalidOperationException($"network namespace '{name}': setns failed: {Linux.Error(errno)} (needs root)");
            }
        }
        finally
        {
            Linux.Close(fd);
        }
    }

    /// <summary>Runs <paramref name="body"/> in the namespace (or inline when it is null) and returns its result.</summary>
    public static T Run<T>(string? name, Func<T> body)
    {
        ArgumentNullException.ThrowIfNull(body);
        if (name is null) return body();
        T result = default!;
        ExceptionDispatchInfo? failure = null;
        var thread = new Thread(() =>
        {
            try
            {
                EnterOnThisThread(name);
                result = body();
            }
            catch (Exception e)
            {
                failure = ExceptionDispatchInfo.Capture(e);
            }
        })
        { IsBackground = true, Name = "netns " + name };
        thread.Start();
        thread.Join();
        failure?.Throw();
        return result;
    }
}
