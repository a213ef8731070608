using System.Diagnostics.Metrics;
using AntHost.Inet.Abi;
using AntHost.Nic8139.Driver;

namespace AntHost.Nic8139.Tests;

/// <summary>The driver's panel (live counters and the capture ring) and its Meter, in-process.</summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class PanelTests : IDisposable
{
    private readonly string _path = $"/dev/shm/anthost-test-ops-{Random.Shared.Next(10000, 100000)}.nic-unit0";

    public void Dispose() => File.Delete(_path);

    [Fact]
    public void Counters_published_by_the_driver_are_read_back_by_a_tool()
    {
        using var driver = NicPanel.Create(_path);
        using var tool = NicPanel.Open(_path, writable: false);
        var values = new long[(int)NicStat.Count];
        for (int i = 0; i < values.Length; i++) values[i] = 1000 + i;
        driver.Publish(values);
        var read = new long[(int)NicStat.Count];
        Assert.True(tool.TryRead(read, out long ns));
        Assert.Equal(values, read);
        Assert.InRange(DateTime.UnixEpoch.AddTicks(ns / 100), DateTime.UtcNow.AddMinutes(-1), DateTime.UtcNow.AddMinutes(1));
        Assert.Equal(Environment.ProcessId, tool.DriverPid);
    }

    [Fact]
    public void Nothing_is_captured_while_no_capture_runs()
    {
        using var driver = NicPanel.Create(_path);
        Assert.False(driver.Capturing);
        using var reader = NicPanel.Open(_path, writable: true);
        Assert.False(reader.TryTake(new byte[2048], out _));
        Assert.Equal(0, driver.CapturedFrames);
    }

    [Fact]
    public void Frames_come_back_in_order_across_the_ring_end_and_a_full_ring_drops_and_counts()
    {
        using var driver = NicPanel.Create(_path, ringBytes: 64 * 1024);
        driver.CaptureOffered = true;
        using var reader = NicPanel.Open(_path, writable: true);
        Assert.True(reader.CaptureOffered);
        Assert.True(reader.TryStartCapture(Environment.ProcessId, _ => true, out _));
        Assert.True(driver.Capturing);
        // A second reader is refused while the first lives, and takes over from a dead one.
        Assert.False(reader.TryStartCapture(Environment.ProcessId + 1, _ => true, out int holder));
        Assert.Equal(Environment.ProcessId, holder);

        var buffer = new byte[4096];
        long taken = 0;
        for (int round = 0; round < 500; round++)
        {
            var frame = new byte[60 + round % 1400];
            BitConverter.TryWriteBytes(frame, round);
            driver.Capture(frame, round % 2 == 0 ? CaptureDirection.In : CaptureDirection.Out, 1000 + round);
            Assert.True(reader.TryTake(buffer, out var f));
            Assert.Equal(round, BitConverter.ToInt32(buffer));
            Assert.Equal(frame.Length, f.Captured);
            Assert.Equal(frame.Length, f.WireLength);
            Assert.Equal(1000 + round, f.Ticks);
            Assert.Equal(round % 2 == 0 ? CaptureDirection.In : CaptureDirection.Out, f.Direction);
            taken++;
        }
        Assert.Equal(0, driver.CaptureDrops);

        // The reader stops reading: the driver never waits, it drops and counts.
        for (int i = 0; i < 200; i++) driver.Capture(new byte[1514], CaptureDirection.In, i);
        Assert.True(driver.CaptureDrops > 0, "a full ring dropped nothing");
        long kept = 200 - driver.CaptureDrops;
        int got = 0;
        while (reader.TryTake(buffer, out _)) got++;
        Assert.Equal(kept, got);
        Assert.Equal(taken + kept, driver.CapturedFrames);

        reader.StopCapture(Environment.ProcessId);
        Assert.False(driver.Capturing); // the device asks this before it offers a frame
        Assert.Equal(0, reader.CaptureOwner);
    }

    [Fact]
    public void The_meter_anthost_nic_reports_frames_bytes_and_drops_by_reason_to_a_listener()
    {
        var values = new long[(int)NicStat.Count + 2];
        values[(int)NicStat.RxFrames] = 11;
        values[(int)NicStat.TxFrames] = 7;
        values[(int)NicStat.RxBytes] = 1100;
        values[(int)NicStat.RxOversize] = 3;
        values[(int)NicStat.RxNoIca] = 2;
        values[(int)NicStat.PagesOwned] = 42;
        values[(int)NicStat.Count + 1] = 5;
        using var meter = new NicMeter(() => values);
        var seen = new List<(string Instrument, long Value, string? Tag)>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (i, l) => { if (i.Meter.Name == NicMeter.Name) l.EnableMeasurementEvents(i); };
        listener.SetMeasurementEventCallback<long>((i, v, tags, _) =>
        {
            string? tag = tags.Length > 0 ? $"{tags[0].Key}={tags[0].Value}" : null;
            lock (seen) seen.Add((i.Name, v, tag));
        });
        listener.Start();
        listener.RecordObservableInstruments();
        Assert.Contains(("anthost.nic.frames", 11L, "direction=in"), seen);
        Assert.Contains(("anthost.nic.frames", 7L, "direction=out"), seen);
        Assert.Contains(("anthost.nic.bytes", 1100L, "direction=in"), seen);
        Assert.Contains(("anthost.nic.drops", 3L, "reason=oversize"), seen);
        Assert.Contains(("anthost.nic.drops", 2L, "reason=no_ica"), seen);
        Assert.Contains(("anthost.nic.pages_owned", 42L, null), seen);
        Assert.Contains(("anthost.nic.capture.drops", 5L, null), seen);
        Assert.Equal("anthost-nic", meter.Meter.Name);
    }
}
