using System.Diagnostics;
using System.Net.Sockets;
using AntHost.Kernel.Interop;
using AntHost.Kernel.Pool;
using AntHost.Kernel.Tests.Infrastructure;
using AntHost.TestSupport;

namespace AntHost.Kernel.Tests.Processes;

/// <summary>
/// Who may use an instance, and how much of it one app may take: real processes run as an
/// unprivileged user (uid 65534, through setpriv) outside the instance's group and inside it,
/// against a broker limited to group 'nogroup'. Needs root (to start them as another user)
/// and setpriv (util-linux).
/// </summary>
public sealed class LocalUserTests
{
    private const string Group = "nogroup";

    private static string[] AsUser(uint gid, bool dacOverride = false)
    {
        Assert.True(File.Exists("/usr/bin/setpriv") || File.Exists("/bin/setpriv"), "these tests need setpriv (util-linux) to run a process as another user");
        string[] user = ["setpriv", "--reuid", "65534", "--regid", gid.ToString(System.Globalization.CultureInfo.InvariantCulture), "--clear-groups"];
        // With CAP_DAC_OVERRIDE the file modes do not stop it: what is left is the broker's own check.
        return dacOverride ? [.. user, "--inh-caps", "+dac_override", "--ambient-caps", "+dac_override"] : user;
    }

    private static uint Gid(string group)
    {
        Assert.True(UnixAccess.TryResolveGroup(group, out uint gid), $"these tests need the group '{group}' in /etc/group");
        return gid;
    }

    /// <summary>A group the test user is not in: 'users' (or 'daemon').</summary>
    private static uint OutsideGid() => UnixAccess.TryResolveGroup("users", out uint g) ? g : Gid("daemon");

    private static string Stat(string format, string path)
    {
        using var p = Process.Start(new ProcessStartInfo("stat", ["-c", format, path]) { RedirectStandardOutput = true })!;
        string s = p.StandardOutput.ReadToEnd().Trim();
        p.WaitForExit();
        return s;
    }

    [RootFact]
    public void The_pool_file_and_socket_belong_to_root_and_the_group_and_the_tables_to_the_broker_alone()
    {
        using var b = BrokerProcess.Start(TransferMode.Direct, null, "--group", Group);
        Assert.Equal("660 root " + Group, Stat("%a %U %G", b.PoolPath));
        Assert.Equal("660 root " + Group, Stat("%a %U %G", b.SocketPath));
        Assert.Equal("600 root", Stat("%a %U", IcaPool.TablesPathOf(b.PoolPath)));
    }

    [RootFact]
    public void A_user_outside_the_group_can_neither_read_the_pool_nor_register()
    {
        using var b = BrokerProcess.Start(TransferMode.Direct, null, "--group", Group);
        var outsider = b.ActorUnder(AsUser(OutsideGid()), "outsider");
        Assert.Equal("UID 65534", outsider.WaitLine("UID"));
        Assert.Equal("POOL-READ denied", outsider.WaitLine("POOL-READ"));
        Assert.Equal("TABLES-READ denied", outsider.WaitLine("TABLES-READ"));
        string register = outsider.WaitLine("REGISTER");
        Assert.StartsWith("REGISTER refused PermissionDenied", register, StringComparison.Ordinal);
        Assert.Contains("permission denied", register, StringComparison.Ordinal);
        Assert.Equal(0, outsider.WaitExit());

        // Past the file modes (CAP_DAC_OVERRIDE), the broker's check of the peer's credentials refuses it.
        Assert.Equal(0, b.OpenPoolCounter(BrokerCounter.PermissionDenied));
        var past = b.ActorUnder(AsUser(OutsideGid(), dacOverride: true), "outsider");
        Assert.Equal("POOL-READ allowed", past.WaitLine("POOL-READ"));
        string refused = past.WaitLine("REGISTER");
        Assert.StartsWith("REGISTER refused PermissionDenied", refused, StringComparison.Ordinal);
        Assert.Contains($"uid 65534 (gid {OutsideGid()}) is neither root nor a member of group '{Group}'", refused, StringComparison.Ordinal);
        Assert.Equal(0, past.WaitExit());
        Assert.Equal(1, b.OpenPoolCounter(BrokerCounter.PermissionDenied));
        using var pool = b.OpenPool();
        Assert.Equal(0, new OwnershipTable(pool).AllocatedPages());
    }

    [RootFact]
    public void A_member_cannot_write_the_tables_nor_take_another_apps_share()
    {
        using var b = BrokerProcess.Start(TransferMode.Direct, null, "--group", Group,
            "--app-pages", "256", "--app-services", "2", "--app-channels", "3", "--registrations-per-uid", "3", "--connections-per-uid", "10");
        using var victim = b.Connect("victim");
        victim.RegisterService("victim");
        var member = b.ActorUnder(AsUser(Gid(Group)), "member", "--target", "victim", "--pages", "4");
        var id = new ProcessId(uint.Parse(member.WaitLine("REGISTERED").Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture));

        // The tables come as a read-only descriptor: readable, never writable, by no route.
        Assert.Equal("MAP-READ 0", member.WaitLine("MAP-READ"));
        Assert.Equal("MAP-WRITE 13", member.WaitLine("MAP-WRITE")); // EACCES
        Assert.Equal("REOPEN-WRITE denied", member.WaitLine("REOPEN-WRITE"));
        Assert.Equal("TABLES-PATH-WRITE denied", member.WaitLine("TABLES-PATH-WRITE"));
        Assert.Equal("POOL-WRITE allowed", member.WaitLine("POOL-WRITE")); // rings and pages are the group's

        // Each limit refuses with its name.
        string pages = member.WaitLine("PAGES");
        Assert.Contains("refused QuotaExceeded", pages, StringComparison.Ordinal);
        Assert.Contains("limit of 256 pages (--app-pages)", pages, StringComparison.Ordinal);
        string services = member.WaitLine("SERVICES");
        Assert.StartsWith("SERVICES 2 refused QuotaExceeded", services, StringComparison.Ordinal);
        Assert.Contains("--app-services 2", services, StringComparison.Ordinal);
        string channels = member.WaitLine("CHANNELS");
        Assert.StartsWith("CHANNELS 3 refused QuotaExceeded", channels, StringComparison.Ordinal);
        Assert.Contains("--app-channels 3", channels, StringComparison.Ordinal);
        string server = member.WaitLine("SERVER");
        Assert.StartsWith("SERVER refused PermissionDenied", server, StringComparison.Ordinal);
        Assert.Contains("only root may register as a server", server, StringComparison.Ordinal);
        string registrations = member.WaitLine("REGISTRATIONS");
        Assert.StartsWith("REGISTRATIONS 3 refused QuotaExceeded", registrations, StringComparison.Ordinal);
        Assert.Contains("--registrations-per-uid 3", registrations, StringComparison.Ordinal);
        // Its 3 registrations hold 3 of its 10 connections: at most 7 more, then the broker closes
        // the next unread (fewer when the broker has not yet seen the refused ones close).
        var connections = member.WaitLine("CONNECTIONS").Split(' ');
        Assert.Equal("then closed:", $"{connections[2]} {connections[3]}");
        Assert.InRange(int.Parse(connections[1], System.Globalization.CultureInfo.InvariantCulture), 1, 7);
        member.WaitLine("HOLDING");

        // While the member holds all it could get, another app still gets its own share.
        victim.Commit();
        var table = new OwnershipTable(victim.Pool);
        Assert.True(table.PagesOwnedBy(id) <= 256, $"the member holds {table.PagesOwnedBy(id)} pages");
        var mine = new List<IcaLease>();
        for (int i = 0; i < 64; i++) mine.Add(victim.Allocate(4));
        Assert.Equal(256, mine.Sum(l => l.Pages));
        foreach (var c in new[] { BrokerCounter.QuotaPages, BrokerCounter.QuotaServices, BrokerCounter.QuotaChannels, BrokerCounter.QuotaRegistrations, BrokerCounter.QuotaConnections })
            Assert.True(victim.Pool.Counter(c) >= 1, $"{c} was not counted");
        foreach (var l in mine) victim.Free(l);
    }

    [RootFact]
    public void An_app_cannot_take_the_servers_reserve()
    {
        // 4096 pages, 3584 of them for anyone, the last 512 for servers.
        using var b = BrokerProcess.Start(TransferMode.Direct, null, "--app-pages", "100000", "--server-reserve", "512");
        using var app = b.Connect("app");
        var held = new List<IcaLease>();
        void TakeAll()
        {
            while (true) held.Add(app.Allocate(16));
        }
        var e = Assert.Throws<KernelException>(TakeAll);
        Assert.Equal(KernelError.QuotaExceeded, e.Error);
        Assert.Contains("servers' reserve (--server-reserve)", e.Message, StringComparison.Ordinal);
        using var server = b.Connect("server", server: true);
        var reserve = new List<IcaLease>();
        for (int i = 0; i < 16; i++) reserve.Add(server.Allocate(16));
        Assert.Equal(256, reserve.Sum(l => l.Pages));
        Assert.True(app.Pool.Counter(BrokerCounter.QuotaReserve) >= 1);
    }

    [RootFact]
    public void Idle_connections_cost_the_broker_no_thread_and_leave_nothing_when_they_go()
    {
        using var b = BrokerProcess.Start();
        int before = Threads(b.Process.Pid);
        var idle = new List<Socket>();
        try
        {
            for (int i = 0; i < 1000; i++)
            {
                var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                idle.Add(s);
                s.Connect(new UnixDomainSocketEndPoint(b.SocketPath));
            }
            // Every connection is accepted (a registration behind them all gets its answer).
            using (var k = b.Connect("after-1000"))
                Assert.Equal(1, k.Allocate(1).Pages);
            int during = Threads(b.Process.Pid);
            Assert.True(during <= before + 4, $"broker threads: {before} before, {during} with 1000 idle connections");
        }
        finally
        {
            foreach (var s in idle) s.Dispose();
        }
        using var again = b.Connect("after-close");
        Assert.Equal(1, again.Allocate(1).Pages);
    }

    private static int Threads(int pid)
    {
        foreach (string line in File.ReadLines($"/proc/{pid}/status"))
            if (line.StartsWith("Threads:", StringComparison.Ordinal)) return int.Parse(line[8..].Trim(), System.Globalization.CultureInfo.InvariantCulture);
        return -1;
    }
}
