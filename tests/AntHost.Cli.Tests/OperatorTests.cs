using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using AntHost.Client;
using AntHost.Inet.Abi;
using AntHost.Sandbox;
using AntHost.TestSupport;
using PacketDotNet;
using SharpPcap;
using SharpPcap.LibPcap;
using Xunit.Abstractions;
using ProtocolType = System.Net.Sockets.ProtocolType;

namespace AntHost.Cli.Tests;

/// <summary>
/// What an operator sees of a running instance (instance test-ops-N, sandbox aht-oN): the NIC
/// driver's live counters in `ps`, `anthost capture` during an HTTP GET read back by tshark and
/// by PacketDotNet, and `anthost ss` with a connection and a UDP socket this test holds.
/// </summary>
public sealed class OperatorTests(ITestOutputHelper output)
{
    private static readonly IPAddress Peer = IPAddress.Parse("198.18.0.1");

    private static Dictionary<string, long> NicCounters(ITestOutputHelper output, TestInstance t)
    {
        var ps = Cli.Run(output, "ps", "--instance", t.Name, "--json");
        Assert.True(ps.ExitCode == 0, ps.ToString());
        using var doc = JsonDocument.Parse(ps.StandardOutput);
        var nic = doc.RootElement.GetProperty("nic");
        Assert.True(nic.ValueKind == JsonValueKind.Object, $"no live NIC counters: {doc.RootElement.GetProperty("nicError")}");
        return nic.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetInt64());
    }

    [PcapFact]
    public void Live_counters_capture_and_socket_table_of_a_running_instance()
    {
        using var t = new TestInstance(output, "ops");
        // The servers' own settings go through up (none that would disturb the checks below).
        var up = t.Up("--log-format", "json", "--pool-size", "48M", "--tcp-cc", "newreno", "--tcp-sndbuf", "131072", "--tcp-rcvbuf", "196608",
            "--tcp-mem-pages", "4096", "--rx-reserve-pages", "1024", "--inet-spin-us", "10", "--nic-spin-us", "5", "--fault-seed", "3", "--fault-direction", "rx");
        Assert.True(up.ExitCode == 0, up.ToString());
        var recorded = t.RecordedProcesses();
        int nicPid = recorded.Single(p => p.Name == "nic").Pid;
        // up starts each server by its launcher, so it goes by its own name, not "dotnet": tools
        // that find a process by name (dotnet-counters monitor -n anthost-inet, pgrep) look it up as .NET does here.
        foreach (var (name, program) in new[] { ("broker", "anthost-kernel"), ("inet", "anthost-inet"), ("nic", "anthost-nic") })
        {
            int pid = recorded.Single(p => p.Name == name).Pid;
            Assert.Equal(program, File.ReadAllText($"/proc/{pid}/comm").TrimEnd('\n'));
            Assert.Contains(Process.GetProcessesByName(program), x => x.Id == pid);
        }
        using (var state = JsonDocument.Parse(File.ReadAllText(t.StatePath)))
        {
            string Line(string name) => string.Join(' ', state.RootElement.GetProperty("processes").EnumerateArray()
                .Single(p => p.GetProperty("name").GetString() == name).GetProperty("commandLine").EnumerateArray().Select(a => a.GetString()));
            Assert.Contains("--pool-size 48M --log-format json", Line("broker"), StringComparison.Ordinal);
            Assert.Contains("--spin-us 10 --tcp-cc newreno --tcp-sndbuf 131072 --tcp-rcvbuf 196608 --tcp-mem-pages 4096 --rx-reserve-pages 1024 --log-format json", Line("inet"), StringComparison.Ordinal);
            Assert.Contains("--instance " + t.Name + " --ipc-spin-us 5 --fault-seed 3 --fault-direction rx --log-format json", Line("nic"), StringComparison.Ordinal);
        }
        // Every server logs one JSON object per line: timestamp, level, category, message, the template's fields.
        foreach (var name in new[] { "broker", "inet", "nic" })
        {
            var logLines = File.ReadAllLines(Path.Combine(t.LogDirectory, name + ".log")).Where(l => l.Length > 0).ToList();
            Assert.NotEmpty(logLines);
            foreach (var line in logLines)
            {
                using var entry = JsonDocument.Parse(line);
                foreach (var field in new[] { "Timestamp", "LogLevel", "Category", "Message" }) Assert.True(entry.RootElement.TryGetProperty(field, out _), $"{name}.log: no {field} in {line}");
            }
        }
        Assert.Contains(File.ReadAllLines(Path.Combine(t.LogDirectory, "nic.log")), l => l.Contains("\"Adapter\":\"anthost0\"", StringComparison.Ordinal));

        // ---- live counters: read while the driver runs, and they move with traffic ----
        var before = NicCounters(output, t);
        Assert.Equal(1, before["LinkUp"]);
        Assert.Equal(1, before["Attaches"]);

        // ---- capture: an HTTP GET of the HttpGet sample, as pcapng and as lines ----
        string file = Path.Combine(t.LogDirectory, "get.pcapng");
        Directory.CreateDirectory(t.LogDirectory);
        var capture = Task.Run(() => Cli.Run(output, "capture", "--instance", t.Name, "-w", file, "--print", "--filter", "tcp port 80", "--seconds", "15"));
        var sw = Stopwatch.StartNew();
        while (true)
        {
            using (var panel = NicPanel.Open(t.PanelPath, writable: false))
                if (panel.CaptureOwner != 0) break;
            Assert.True(sw.Elapsed < TimeSpan.FromSeconds(60) && !capture.IsCompleted, $"the capture did not start: {(capture.IsCompleted ? capture.Result.ToString() : "still waiting")}");
            Thread.Sleep(100);
        }
        // One capture at a time: a second is refused, saying who holds it.
        var second = Cli.Run(output, "capture", "--instance", t.Name, "--seconds", "1");
        Assert.Equal(1, second.ExitCode);
        Assert.Contains("another capture", second.StandardError, StringComparison.Ordinal);
        var get = Cli.RunDllUnder(output, [], Binaries.FindSample("HttpGet"), "--instance", t.Name, "--to", Peer.ToString());
        Assert.True(get.ExitCode == 0, get.ToString());
        var cap = capture.Result;
        Assert.True(cap.ExitCode == 0, cap.ToString());
        Assert.True(NicProcessAlive(nicPid), "the driver died during the capture");

        // The printed lines: both directions, the handshake and the FINs, no ARP (the filter).
        string lines = cap.StandardOutput;
        Assert.Contains("Out IP 198.18.0.2.", lines, StringComparison.Ordinal);
        Assert.Contains("In  IP 198.18.0.1.80 > 198.18.0.2.", lines, StringComparison.Ordinal);
        Assert.Contains("Flags [S], seq", lines, StringComparison.Ordinal);
        Assert.Contains("Flags [S.], seq", lines, StringComparison.Ordinal);
        Assert.Contains("Flags [F.]", lines, StringComparison.Ordinal);
        Assert.Contains("options [mss ", lines, StringComparison.Ordinal);
        Assert.DoesNotContain("ARP", lines, StringComparison.Ordinal);
        Assert.Contains("0 dropped by the driver", lines, StringComparison.Ordinal);

        // Read back by PacketDotNet (through libpcap's pcapng reader).
        var frames = new List<(TcpPacket Tcp, bool Out)>();
        using (var reader = new CaptureFileReaderDevice(file))
        {
            reader.Open();
            while (reader.GetNextPacket(out PacketCapture e) == GetPacketStatus.PacketRead)
            {
                var raw = e.GetPacket();
                var tcp = Packet.ParsePacket(raw.LinkLayerType, raw.Data).Extract<TcpPacket>();
                Assert.NotNull(tcp);
                var ip = (IPv4Packet)tcp.ParentPacket;
                frames.Add((tcp, ip.SourceAddress.Equals(IPAddress.Parse("198.18.0.2"))));
            }
        }
        Assert.Contains(frames, f => f.Out && f.Tcp.Synchronize && !f.Tcp.Acknowledgment);
        Assert.Contains(frames, f => !f.Out && f.Tcp.Synchronize && f.Tcp.Acknowledgment);
        Assert.Contains(frames, f => f.Out && f.Tcp.Finished);
        Assert.Contains(frames, f => !f.Out && f.Tcp.Finished);
        Assert.Contains(frames, f => f.Out && f.Tcp.PayloadData.AsSpan().StartsWith("GET / HTTP/1.1"u8));

        // Read back by tshark, installed from Debian if it is missing: the direction of each
        // frame is the pcapng flag, and it agrees with the addresses.
        EnsureTshark();
        var tshark = CommandRunner.Run("tshark", ["-r", file, "-T", "fields", "-E", "separator=,", "-e", "frame.packet_flags_direction", "-e", "ip.src", "-e", "tcp.flags.syn", "-e", "tcp.flags.ack", "-e", "tcp.flags.fin"]);
        output.WriteLine(tshark.StandardOutput + tshark.StandardError);
        Assert.True(tshark.ExitCode == 0, tshark.StandardError);
        var rows = tshark.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split(',')).ToList();
        Assert.Equal(frames.Count, rows.Count);
        foreach (var r in rows)
            Assert.Equal(r[1] == "198.18.0.2" ? "0x00000002" : "0x00000001", r[0]);
        static bool Flag(string v) => v is "1" or "True";
        Assert.Contains(rows, r => r[1] == "198.18.0.2" && Flag(r[2]) && !Flag(r[3]));
        Assert.Contains(rows, r => r[1] == "198.18.0.1" && Flag(r[2]) && Flag(r[3]));
        Assert.Contains(rows, r => r[1] == "198.18.0.2" && Flag(r[4]));
        Assert.Contains(rows, r => r[1] == "198.18.0.1" && Flag(r[4]));

        var after = NicCounters(output, t);
        Assert.True(after["RxFrames"] >= before["RxFrames"] + frames.Count(f => !f.Out), $"RxFrames {before["RxFrames"]} -> {after["RxFrames"]}");
        Assert.True(after["TxFrames"] >= before["TxFrames"] + frames.Count(f => f.Out), $"TxFrames {before["TxFrames"]} -> {after["TxFrames"]}");
        Assert.True(after["EthInputs"] > before["EthInputs"]);

        // A filter libpcap cannot compile is a usage error.
        var bad = Cli.Run(output, "capture", "--instance", t.Name, "--filter", "tcp port nonsense-port", "--seconds", "1");
        Assert.Equal(2, bad.ExitCode);

        // ---- ss: a connection and a UDP socket this process holds ----
        using (var stack = InetStack.Connect(t.Name))
        using (var tcp = new InetSocket(stack, SocketType.Stream, ProtocolType.Tcp))
        using (var udp = new InetSocket(stack, SocketType.Dgram, ProtocolType.Udp))
        {
            tcp.Connect(new IPEndPoint(Peer, new PeerPorts().Echo));
            tcp.Send(new byte[1000]);
            var echo = new byte[1000];
            for (int got = 0; got < echo.Length;) got += tcp.Receive(echo.AsSpan(got));
            udp.Bind(new IPEndPoint(IPAddress.Any, 40123));
            int localPort = ((IPEndPoint)tcp.LocalEndPoint!).Port;

            var ss = Cli.Run(output, "ss", "--instance", t.Name, "--json");
            Assert.True(ss.ExitCode == 0, ss.ToString());
            using var doc = JsonDocument.Parse(ss.StandardOutput);
            var sockets = doc.RootElement.EnumerateArray().ToList();
            var conn = Assert.Single(sockets, s => s.GetProperty("protocol").GetString() == "tcp" && s.GetProperty("local").GetString() == $"198.18.0.2:{localPort}");
            Assert.Equal("ESTABLISHED", conn.GetProperty("state").GetString());
            Assert.Equal($"198.18.0.1:{new PeerPorts().Echo}", conn.GetProperty("remote").GetString());
            Assert.Equal(Environment.ProcessId, conn.GetProperty("pid").GetInt32());
            Assert.Equal(1460, conn.GetProperty("mss").GetInt32());
            Assert.True(conn.GetProperty("srttMs").GetDouble() > 0);
            Assert.True(conn.GetProperty("rtoMs").GetDouble() >= 200);
            Assert.True(conn.GetProperty("cwnd").GetInt32() > 0);
            Assert.True(conn.GetProperty("peerWindow").GetUInt32() > 0);
            Assert.True(conn.GetProperty("sack").GetBoolean());
            Assert.True(conn.GetProperty("timestamps").GetBoolean());
            Assert.True(conn.GetProperty("windowScale").GetBoolean());
            var u = Assert.Single(sockets, s => s.GetProperty("protocol").GetString() == "udp" && s.GetProperty("local").GetString()!.EndsWith(":40123", StringComparison.Ordinal));
            Assert.Equal(Environment.ProcessId, u.GetProperty("pid").GetInt32());

            var table = Cli.Run(output, "ss", "--instance", t.Name);
            Assert.True(table.ExitCode == 0, table.ToString());
            Assert.Contains("ESTABLISHED", table.StandardOutput, StringComparison.Ordinal);

            var arp = Cli.Run(output, "ss", "--instance", t.Name, "--arp", "--json");
            Assert.True(arp.ExitCode == 0, arp.ToString());
            using var arpDoc = JsonDocument.Parse(arp.StandardOutput);
            Assert.Contains(arpDoc.RootElement.EnumerateArray(), a => a.GetProperty("address").GetString() == "198.18.0.1"
                && a.GetProperty("mac").GetString()!.Length == 17 && a.GetProperty("state").GetString() is "reachable" or "stale" or "probe");
        }

        var down = t.Down();
        Assert.True(down.ExitCode == 0, down.ToString());
        t.AssertNothingLeft();
    }

    private static bool NicProcessAlive(int pid) => TestInstance.StartTicks(pid) is not null;

    /// <summary>tshark from Debian, non-interactively (no setuid capture for other users: only files are read).</summary>
    private void EnsureTshark()
    {
        if (CommandRunner.Run("sh", ["-c", "command -v tshark"]).ExitCode == 0) return;
        var r = CommandRunner.Run("sh", ["-c", "echo 'wireshark-common wireshark-common/install-setuid boolean false' | debconf-set-selections && DEBIAN_FRONTEND=noninteractive apt-get install -y -q tshark"]);
        output.WriteLine(r.StandardOutput + r.StandardError);
        Assert.True(r.ExitCode == 0, $"tshark could not be installed: {r.StandardError}");
    }
}
