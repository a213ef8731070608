using System.Diagnostics.Metrics;
using AntHost.Inet;
using AntHost.Inet.Abi;

namespace AntHost.Stack.Tests;

/// <summary>The inet server's Meter (anthost-inet) as a MeterListener, as dotnet-counters through EventPipe, sees it.</summary>
public sealed class MeterTests
{
    [Fact]
    public void The_meter_anthost_inet_reports_frames_retransmissions_by_cause_ipc_and_pages()
    {
        var values = new long[(int)InetStat.Count];
        values[(int)InetStat.IfaceFramesIn] = 101;
        values[(int)InetStat.IfaceFramesOut] = 99;
        values[(int)InetStat.TcpRetransmitsRack] = 4;
        values[(int)InetStat.TcpRetransmitsTimeout] = 1;
        values[(int)InetStat.EthInputMessages] = 55;
        values[(int)InetStat.SocketCalls] = 12;
        values[(int)InetStat.DirectReturns] = 8;
        values[(int)InetStat.PagesOwned] = 128;
        values[(int)InetStat.SocketsOpen] = 3;
        int reads = 0;
        using var meter = new InetMeter(() => { Interlocked.Increment(ref reads); return values; });
        var seen = new List<(string, long, string?)>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (i, l) => { if (i.Meter.Name == "anthost-inet") l.EnableMeasurementEvents(i); };
        listener.SetMeasurementEventCallback<long>((i, v, tags, _) => { lock (seen) seen.Add((i.Name, v, tags.Length > 0 ? $"{tags[0].Key}={tags[0].Value}" : null)); });
        listener.Start();
        Assert.Equal(0, reads); // nothing is read until someone collects
        listener.RecordObservableInstruments();
        Assert.Equal(1, reads); // one snapshot serves every instrument of a round
        Assert.Contains(("anthost.inet.frames", 101L, "direction=in"), seen);
        Assert.Contains(("anthost.inet.frames", 99L, "direction=out"), seen);
        Assert.Contains(("anthost.inet.tcp.retransmissions", 4L, "cause=rack"), seen);
        Assert.Contains(("anthost.inet.tcp.retransmissions", 1L, "cause=timeout"), seen);
        Assert.Contains(("anthost.inet.ipc.messages", 55L, "kind=ethinput"), seen);
        Assert.Contains(("anthost.inet.ipc.messages", 12L, "kind=socket_call"), seen);
        Assert.Contains(("anthost.inet.transfers", 8L, "kind=direct_return"), seen);
        Assert.Contains(("anthost.inet.pages_owned", 128L, null), seen);
        Assert.Contains(("anthost.inet.sockets.open", 3L, null), seen);
    }
}
