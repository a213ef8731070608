// Roles run as an unprivileged user (the test starts them under setpriv): one
// outside the instance's group, one inside it. Each tries what a hostile local
// user would and reports, one line per attempt, what the system let it do.
using System.Net.Sockets;
using AntHost.Kernel.Interop;
using AntHost.Kernel.Pool;
using AntHost.Kernel.Protocol;

namespace AntHost.Kernel.TestActor;

internal static class LocalUser
{
    /// <summary>Outside the group: read the pool and the tables, register.</summary>
    public static int Outsider(Args a)
    {
        string instance = a.Get("instance");
        Out.Line($"UID {UnixAccess.EffectiveUid()}");
        Out.Line("POOL-READ " + TryOpen(IcaPool.PathFor(instance), FileAccess.Read));
        Out.Line("TABLES-READ " + TryOpen(IcaPool.TablesPathFor(instance), FileAccess.Read));
        try
        {
            using var k = a.Connect("outsider");
            Out.Line("REGISTER accepted");
        }
        catch (KernelException e)
        {
            Out.Line($"REGISTER refused {e.Error}: {e.Message}");
        }
        return 0;
    }

    /// <summary>
    /// Inside the group: register; try to make the tables writable; take pages, services,
    /// channels and registrations until the broker refuses; then hold everything.
    /// </summary>
    public static int Member(Args a)
    {
        string instance = a.Get("instance");
        using var k = a.Connect("member");
        Out.Line($"REGISTERED {k.Id.Value}");

        // The descriptor the broker hands every process.
        using (var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
        {
            s.Connect(new UnixDomainSocketEndPoint(ControlProtocol.SocketPathFor(instance)));
            using var tables = KernelConnection.ReceiveTables(s, instance);
            int fd = (int)tables.DangerousGetHandle();
            long size = k.Pool.Layout.TablesFileSize;
            Out.Line($"MAP-READ {Native.TryMapShared(fd, size, Native.ProtRead)}");
            Out.Line($"MAP-WRITE {Native.TryMapShared(fd, size, Native.ProtRead | Native.ProtWrite)}");
            Out.Line("REOPEN-WRITE " + TryOpen($"/proc/self/fd/{fd}", FileAccess.ReadWrite));
        }
        Out.Line("TABLES-PATH-WRITE " + TryOpen(IcaPool.TablesPathFor(instance), FileAccess.ReadWrite));
        Out.Line("POOL-WRITE " + TryOpen(IcaPool.PathFor(instance), FileAccess.ReadWrite));

        var held = new List<IcaLease>();
        try
        {
            while (true) held.Add(k.Allocate(a.Int("pages", 4)));
        }
        catch (KernelException e)
        {
            Out.Line($"PAGES {held.Sum(l => l.Pages)} refused {e.Error}: {e.Message}");
        }
        int services = 0;
        try
        {
            while (true) k.RegisterService($"member-{services++}");
        }
        catch (KernelException e)
        {
            Out.Line($"SERVICES {services - 1} refused {e.Error}: {e.Message}");
        }
        var channels = new List<Endpoint>();
        try
        {
            while (true) channels.Add(k.Open(a.Get("target")));
        }
        catch (KernelException e)
        {
            Out.Line($"CHANNELS {channels.Count} refused {e.Error}: {e.Message}");
        }
        try
        {
            using var s = KernelConnection.Connect(new KernelOptions { Instance = instance, ProcessName = "member-server", Server = true });
            Out.Line("SERVER accepted");
        }
        catch (KernelException e)
        {
            Out.Line($"SERVER refused {e.Error}: {e.Message}");
        }
        var more = new List<KernelConnection>();
        try
        {
            while (true) more.Add(a.Connect("member-more"));
        }
        catch (KernelException e)
        {
            Out.Line($"REGISTRATIONS {more.Count + 1} refused {e.Error}: {e.Message}");
        }
        // Raw connections, each asking for the tables, until the broker closes one unanswered.
        var sockets = new List<Socket>();
        try
        {
            while (sockets.Count < 10_000)
            {
                var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                sockets.Add(s);
                s.Connect(new UnixDomainSocketEndPoint(ControlProtocol.SocketPathFor(instance)));
                KernelConnection.ReceiveTables(s, instance).Dispose();
            }
            Out.Line($"CONNECTIONS {sockets.Count} never refused");
        }
        catch (Exception e) when (e is KernelException or SocketException)
        {
            Out.Line($"CONNECTIONS {sockets.Count - 1} then closed: {e.Message}");
        }
        foreach (var s in sockets) s.Dispose();
        Out.Line("HOLDING");
        Thread.Sleep(Timeout.Infinite);
        return 0;
    }

    private static string TryOpen(string path, FileAccess access)
    {
        try
        {
            using var h = File.OpenHandle(path, FileMode.Open, access, FileShare.ReadWrite);
            return "allowed";
        }
        catch (UnauthorizedAccessException) { return "denied"; }
        catch (IOException e) { return "failed " + e.Message; }
    }
}
