// anthost capture: every frame the NIC driver receives and transmits, from the capture ring
// of its panel (NicPanel: the driver copies frames there only while a capture holds it, and
// drops, counting, what finds no room), written as pcapng with each frame's direction and
// the driver's timestamp, or printed one line per frame (FrameFormatter). A BPF filter is
// compiled by libpcap (SharpPcap's BpfProgram) and applied here, on the reader's side.
using AntHost.Inet.Abi;
using SharpPcap;
using SharpPcap.LibPcap;

namespace AntHost.Cli;

internal sealed record CaptureOptions
{
    public string Instance { get; init; } = "default";
    public string? Write { get; init; }
    public long? Count { get; init; }
    public string? Filter { get; init; }
    public bool Print { get; init; }
    public double? Seconds { get; init; }
    /// <summary>Where a line per frame and the summary go.</summary>
    public TextWriter Out { get; init; } = Console.Out;
}

/// <summary>What a capture saw.</summary>
internal sealed record CaptureSummary(long Taken, long Matched, long In, long Out, long DroppedByDriver, string? File);

internal static class CaptureRun
{
    public static CaptureSummary Run(CaptureOptions o, CancellationToken ct, Action? started = null)
    {
        Instance.RequireRoot("anthost capture");
        var state = InstanceState.Load(o.Instance) ?? throw new CliException($"instance '{o.Instance}' is not up (no {InstanceState.PathFor(o.Instance)})");
        string adapter = state.Adapter ?? throw new CliException($"instance '{o.Instance}' records no adapter");
        string path = NicPanel.PathFor(o.Instance, adapter);
        BpfProgram? filter = null;
        if (o.Filter is { } text)
        {
            filter = BpfProgram.TryCreate(PacketDotNet.LinkLayers.Ethernet, text);
            if (filter is null) throw new UsageException($"--filter '{text}' is not a filter libpcap compiles (see pcap-filter(7))");
        }
        NicPanel panel;
        try { panel = NicPanel.Open(path, writable: true); }
        catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException)
        {
            throw new CliException($"the NIC driver of '{o.Instance}' offers no capture: {e.Message}");
        }
        int me = Environment.ProcessId;
        PcapNgWriter? writer = null;
        try
        {
            if (!panel.CaptureOffered) throw new CliException($"the NIC driver of '{o.Instance}' offers no capture (it runs with --no-capture; see anthost up --no-capture)");
            if (!panel.TryStartCapture(me, pid => ServerProcess.StartTicks(pid) is not null, out int holder))
                throw new CliException($"another capture (pid {holder}) runs on '{o.Instance}'; one at a time");
            long dropsAtStart = panel.CaptureDrops;
            if (o.Write is { } file)
                writer = new PcapNgWriter(new FileStream(file, FileMode.Create, FileAccess.Write, FileShare.Read), adapter, 65535, "anthost capture");
            bool print = o.Print || o.Write is null;
            started?.Invoke();
            var buffer = new byte[70_000];
            long taken = 0, matched = 0, rx = 0, tx = 0;
            long deadline = o.Seconds is { } s ? Environment.TickCount64 + (long)(s * 1000) : long.MaxValue;
            long nextAliveCheck = 0;
            while (!ct.IsCancellationRequested && (o.Count is not { } c || matched < c) && Environment.TickCount64 < deadline)
            {
                if (!panel.TryTake(buffer, out var f))
                {
                    writer?.Flush();
                    if (Environment.TickCount64 >= nextAliveCheck)
                    {
                        nextAliveCheck = Environment.TickCount64 + 1000;
                        if (ServerProcess.StartTicks(panel.DriverPid) is null) throw new CliException($"the NIC driver (pid {panel.DriverPid}) is gone");
                        if (panel.CaptureOwner != me) throw new CliException("the capture was taken over (the ring was given to another reader)");
                    }
                    Thread.Sleep(1);
                    continue;
                }
                taken++;
                var bytes = buffer.AsSpan(0, f.Captured);
                if (filter is not null && !filter.Matches(bytes)) continue;
                matched++;
                if (f.Direction == CaptureDirection.In) rx++;
                else tx++;
                long ns = panel.ToUnixNs(f.Ticks);
                writer?.Write(ns, bytes, f.WireLength, f.Direction == CaptureDirection.In);
                if (print) o.Out.WriteLine(FrameFormatter.Format(DateTime.UnixEpoch.AddTicks(ns / 100), f.Direction == CaptureDirection.In, bytes, f.WireLength));
            }
            long dropped = panel.CaptureDrops - dropsAtStart;
            o.Out.WriteLine($"{matched} frames ({rx} in, {tx} out){(filter is null ? "" : $" matched the filter of {taken} taken")}; {dropped} dropped by the driver (the reader was too slow){(o.Write is null ? "" : $"; written to {o.Write}")}");
            return new CaptureSummary(taken, matched, rx, tx, dropped, o.Write);
        }
        finally
        {
            panel.StopCapture(me);
            writer?.Dispose();
            panel.Dispose();
            filter?.Dispose();
        }
    }
}

/// <summary>A capture file read back (SharpPcap's reader, libpcap's pcapng support) and summarized with PacketDotNet: what the demo shows.</summary>
internal static class CaptureReadBack
{
    /// <summary>Frames, those from <paramref name="self"/> and to it, and the TCP handshake and FINs seen each way.</summary>
    public static (bool Complete, string Text) Summarize(string file, System.Net.IPAddress self)
    {
        int frames = 0, fromUs = 0, toUs = 0, arp = 0;
        bool synOut = false, synAckIn = false, finOut = false, finIn = false, synIn = false, synAckOut = false;
        long payloadIn = 0, payloadOut = 0;
        using (var reader = new CaptureFileReaderDevice(file))
        {
            reader.Open();
            while (reader.GetNextPacket(out SharpPcap.PacketCapture e) == SharpPcap.GetPacketStatus.PacketRead)
            {
                frames++;
                var raw = e.GetPacket();
                var packet = PacketDotNet.Packet.ParsePacket(raw.LinkLayerType, raw.Data);
                if (packet.Extract<PacketDotNet.ArpPacket>() is not null) { arp++; continue; }
                if (packet.Extract<PacketDotNet.IPv4Packet>() is not { } ip) continue;
                bool outbound = ip.SourceAddress.Equals(self);
                if (outbound) fromUs++;
                else toUs++;
                if (ip.Extract<PacketDotNet.TcpPacket>() is not { } tcp) continue;
                if (outbound) payloadOut += tcp.PayloadData?.Length ?? 0;
                else payloadIn += tcp.PayloadData?.Length ?? 0;
                if (tcp.Synchronize && !tcp.Acknowledgment) { if (outbound) synOut = true; else synIn = true; }
                if (tcp.Synchronize && tcp.Acknowledgment) { if (outbound) synAckOut = true; else synAckIn = true; }
                if (tcp.Finished) { if (outbound) finOut = true; else finIn = true; }
            }
        }
        bool handshake = (synOut && synAckIn) || (synIn && synAckOut);
        string text = $"{frames} frames read back ({fromUs} IPv4 from {self}, {toUs} to it, {arp} ARP); TCP payload {payloadOut} B out, {payloadIn} B in; "
            + $"handshake {(handshake ? "seen" : "missing")} ({(synOut ? "SYN out, SYN-ACK in" : synIn ? "SYN in, SYN-ACK out" : "no SYN")}); FIN {(finOut ? "out" : "")}{(finOut && finIn ? " and " : "")}{(finIn ? "in" : "")}{(!finOut && !finIn ? "none" : "")}";
        return (handshake && finOut && finIn && fromUs > 0 && toUs > 0, text);
    }
}
