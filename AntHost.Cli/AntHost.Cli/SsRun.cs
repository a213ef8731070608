// anthost ss: inet's socket table (every TCP connection, orphans and children not yet
// accepted included, and every UDP socket), with the owning process from the pool's process
// table, and `--arp` for the ARP cache. Asked with inet's SocketTable / ArpTable requests,
// which any process of the instance may make.
using System.Globalization;
using System.Text.Json;
using AntHost.Inet.Abi;
using Spectre.Console;

namespace AntHost.Cli;

/// <summary>A socket as `anthost ss --json` prints it.</summary>
internal sealed record SsSocket(
    string Protocol, string State, string Local, string Remote, int? Pid, string? Process, int SendQueue, int ReceiveQueue,
    double? SrttMs, double? RttvarMs, double? RtoMs, int? Cwnd, int? Ssthresh, int? Mss, uint? PeerWindow,
    int? Retransmits, int? RetransmitsTimeout, int? RetransmitsFast, int? RetransmitsRack, int? RetransmitsTlp,
    bool? Sack, bool? WindowScale, int? SendWindowScale, int? ReceiveWindowScale, bool? Timestamps, bool? InRecovery, string Handle);

internal sealed record SsArp(string Address, string Mac, string State);

internal static class SsRun
{
    private static readonly CultureInfo Ci = CultureInfo.InvariantCulture;
    private static readonly string[] TcpStates = ["CLOSED", "LISTEN", "SYN-SENT", "SYN-RECEIVED", "ESTABLISHED", "FIN-WAIT-1", "FIN-WAIT-2", "CLOSE-WAIT", "CLOSING", "LAST-ACK", "TIME-WAIT"];
    private static readonly string[] ArpStates = ["free", "incomplete", "reachable", "stale", "probe"];

    public static List<SsSocket> Sockets(string instance)
    {
        var rows = InetProbe.Table(instance, InetOp.SocketTable, SocketRow.Size, TimeSpan.FromSeconds(2)).Select(b => SocketRow.Read(b)).ToList();
        Dictionary<uint, PoolProcess> owners = [];
        try
        {
            var state = InstanceState.Load(instance);
            var pool = PoolSnapshot.Read(state?.PoolPath ?? AntHost.Kernel.Pool.IcaPool.PathFor(instance));
            owners = pool.Processes.Where(p => p.Id != 0).GroupBy(p => p.Id).ToDictionary(g => g.Key, g => g.First());
        }
        catch (Exception e) when (e is IOException or CliException or UnauthorizedAccessException)
        {
            // no owners' names: the table stands without them
        }
        return rows.Select(r =>
        {
            bool tcp = r.Protocol == 6;
            owners.TryGetValue(r.Owner, out var owner);
            string state = tcp ? (r.State < TcpStates.Length ? TcpStates[r.State] : $"state {r.State}") : r.State switch { 2 => "CONNECTED", 1 => "BOUND", _ => "UNBOUND" };
            return new SsSocket(tcp ? "tcp" : "udp", state, Endpoint(r.LocalAddress, r.LocalPort), Endpoint(r.RemoteAddress, r.RemotePort),
                owner?.Pid, owner?.Name ?? (r.Owner == 0 ? null : $"#{r.Owner}"), r.SendQueued, r.ReceiveQueued,
                tcp ? r.SmoothedRttMicros / 1000.0 : null, tcp ? r.RttVarianceMicros / 1000.0 : null, tcp ? r.RtoMicros / 1000.0 : null,
                tcp ? r.Cwnd : null, tcp ? r.Ssthresh : null, tcp ? r.Mss : null, tcp ? r.PeerWindow : null,
                tcp ? r.Retransmits : null, tcp ? r.RetransmitsTimeout : null, tcp ? r.RetransmitsFast : null, tcp ? r.RetransmitsRack : null, tcp ? r.RetransmitsTlp : null,
                tcp ? (r.Flags & SocketRowFlags.Sack) != 0 : null, tcp ? (r.Flags & SocketRowFlags.WindowScale) != 0 : null,
                tcp ? r.SendWindowScale : null, tcp ? r.ReceiveWindowScale : null, tcp ? (r.Flags & SocketRowFlags.Timestamps) != 0 : null,
                tcp ? (r.Flags & SocketRowFlags.InRecovery) != 0 : null, $"0x{r.Handle:x}");
        }).ToList();
    }

    public static List<SsArp> Arp(string instance) =>
        InetProbe.Table(instance, InetOp.ArpTable, ArpRow.Size, TimeSpan.FromSeconds(2)).Select(b => ArpRow.Read(b))
            .Select(a => new SsArp(Ip(a.Address), InetProbe.FormatMac((long)a.Mac), a.State < ArpStates.Length ? ArpStates[a.State] : $"state {a.State}")).ToList();

    public static int Run(string instance, bool json, bool arp)
    {
        Instance.RequireRoot("anthost ss");
        if (InstanceState.Load(instance) is null) throw new CliException($"instance '{instance}' is not up (no {InstanceState.PathFor(instance)})");
        var options = new JsonSerializerOptions { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase };
        if (arp)
        {
            var entries = Arp(instance);
            if (json) { Console.WriteLine(JsonSerializer.Serialize(entries, options)); return 0; }
            var t = new Table().AddColumn("address").AddColumn("MAC").AddColumn("state");
            foreach (var e in entries) t.AddRow(e.Address, e.Mac, e.State);
            AnsiConsole.Write(t);
            AnsiConsole.MarkupLineInterpolated($"{entries.Count} ARP entries");
            return 0;
        }
        var sockets = Sockets(instance);
        if (json) { Console.WriteLine(JsonSerializer.Serialize(sockets, options)); return 0; }
        var table = new Table().AddColumn("proto").AddColumn("state").AddColumn("local").AddColumn("remote").AddColumn("process")
            .AddColumn(new TableColumn("send-q").RightAligned()).AddColumn(new TableColumn("recv-q").RightAligned())
            .AddColumn(new TableColumn("srtt/rttvar ms").RightAligned()).AddColumn(new TableColumn("rto ms").RightAligned())
            .AddColumn(new TableColumn("cwnd").RightAligned()).AddColumn(new TableColumn("ssthresh").RightAligned()).AddColumn(new TableColumn("mss").RightAligned())
            .AddColumn(new TableColumn("peer wnd").RightAligned()).AddColumn(new TableColumn("rtx (rto/fast/rack/tlp)").RightAligned()).AddColumn("options");
        foreach (var s in sockets)
        {
            string process = s.Pid is { } pid ? $"{s.Process} ({pid})" : s.Process ?? "-";
            bool tcp = s.Protocol == "tcp";
            string options2 = tcp ? string.Join(' ', new[] { s.Sack == true ? "sack" : null, s.WindowScale == true ? $"ws {s.SendWindowScale}/{s.ReceiveWindowScale}" : null, s.Timestamps == true ? "ts" : null, s.InRecovery == true ? "recovery" : null }.Where(x => x is not null)) : "";
            table.AddRow(s.Protocol, s.State, s.Local, s.Remote, Markup.Escape(process), s.SendQueue.ToString(Ci), s.ReceiveQueue.ToString(Ci),
                tcp ? $"{s.SrttMs:F3}/{s.RttvarMs:F3}" : "", tcp ? $"{s.RtoMs:F0}" : "", tcp ? $"{s.Cwnd}" : "", tcp ? $"{s.Ssthresh}" : "", tcp ? $"{s.Mss}" : "",
                tcp ? $"{s.PeerWindow}" : "", tcp ? $"{s.Retransmits} ({s.RetransmitsTimeout}/{s.RetransmitsFast}/{s.RetransmitsRack}/{s.RetransmitsTlp})" : "", options2);
        }
        AnsiConsole.Write(table);
        AnsiConsole.MarkupLineInterpolated($"{sockets.Count} sockets ({sockets.Count(s => s.Protocol == "tcp")} TCP, {sockets.Count(s => s.Protocol == "udp")} UDP)");
        return 0;
    }

    private static string Ip(uint a) => string.Create(Ci, $"{a >> 24}.{(a >> 16) & 0xFF}.{(a >> 8) & 0xFF}.{a & 0xFF}");

    private static string Endpoint(uint a, ushort port) => a == 0 && port == 0 ? "*:*" : $"{(a == 0 ? "*" : Ip(a))}:{(port == 0 ? "*" : port.ToString(Ci))}";
}
