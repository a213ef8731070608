using System.Net;
using AntHost.Inet.Abi;
using AntHost.Inet.Core.Wire;
using AntHost.Nic8139.Pcap;
using AntHost.TestSupport;
using PacketDotNet;
using PacketDotNet.Utils;
using Phys = System.Net.NetworkInformation.PhysicalAddress;

namespace AntHost.Nic8139.Tests;

/// <summary>
/// Segmentation offload: the frames TcpSegmentation cuts from one header template and a
/// payload are, byte for byte, the segments PacketDotNet builds one at a time (sequence
/// numbers, lengths, identification, flags, both checksums); and the device puts exactly
/// those frames on a real veth in one sendmmsg per batch.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class SegmentationOffloadTests(SandboxFixture fixture) : IClassFixture<SandboxFixture>
{
    private static readonly byte[] Timestamps = [1, 1, 8, 10, 0, 0, 0, 7, 0, 0, 0, 9];
    private const uint FirstSeq = 4_294_960_000; // wraps within the payload

    /// <summary>One segment as PacketDotNet builds it: the oracle.</summary>
    private static byte[] Segment(uint seq, ReadOnlySpan<byte> payload, ushort ipId, bool push, bool fin, bool cwr, string to = "02-00-00-00-00-01")
    {
        int thl = 20 + Timestamps.Length;
        var header = new byte[thl];
        header[12] = (byte)(thl / 4 << 4);
        Timestamps.CopyTo(header, 20);
        var tcp = new TcpPacket(new ByteArraySegment(header))
        {
            SourcePort = 40000,
            DestinationPort = 9,
            SequenceNumber = seq,
            AcknowledgmentNumber = 777,
            Acknowledgment = true,
            Push = push,
            Finished = fin,
            CongestionWindowReduced = cwr,
            WindowSize = 1024,
            PayloadData = payload.ToArray(),
        };
        var ip = new IPv4Packet(IPAddress.Parse("198.18.0.2"), IPAddress.Parse("198.18.0.1"))
        {
            PayloadPacket = tcp,
            TimeToLive = 64,
            Protocol = PacketDotNet.ProtocolType.Tcp,
            FragmentFlags = 2, // DF
            Id = ipId,
        };
        var eth = new EthernetPacket(Phys.Parse("02-00-00-00-00-02"), Phys.Parse(to), EthernetType.IPv4) { PayloadPacket = ip };
        eth.UpdateCalculatedValues();
        ip.UpdateIPChecksum();
        tcp.UpdateTcpChecksum();
        return eth.Bytes;
    }

    private static byte[] Payload(int length)
    {
        var p = new byte[length];
        new Random(length).NextBytes(p);
        return p;
    }

    /// <summary>The template the stack hands down: the first segment's headers, flags of the whole send.</summary>
    private static byte[] Template(ushort ipId, string to = "02-00-00-00-00-01") =>
        Segment(FirstSeq, ReadOnlySpan<byte>.Empty, ipId, push: true, fin: true, cwr: true, to);

    [Theory]
    [InlineData(10_000, 1448)]
    [InlineData(1448 * 44, 1448)]
    [InlineData(3000, 536)]
    [InlineData(1449, 1448)]
    public void Each_cut_frame_is_the_segment_built_one_at_a_time(int length, int segmentSize)
    {
        var payload = Payload(length);
        var template = Template(ipId: 65530); // the identification wraps too
        Assert.Equal(template.Length, TcpSegmentation.Validate(template));
        int n = TcpSegmentation.FrameCount(length, segmentSize);
        Assert.Equal((length + segmentSize - 1) / segmentSize, n);
        var frame = new byte[template.Length + segmentSize];
        for (int i = 0; i < n; i++)
        {
            int at = i * segmentSize;
            var slice = payload.AsSpan(at, Math.Min(segmentSize, length - at));
            bool last = i == n - 1;
            var expected = Segment(FirstSeq + (uint)at, slice, (ushort)(65530 + i), push: last, fin: last, cwr: i == 0);
            int written = TcpSegmentation.WriteFrame(template, payload, i, segmentSize, frame);
            Assert.Equal(expected, frame.AsSpan(0, written).ToArray());
        }
    }

    [Fact]
    public void What_is_not_an_ethernet_ipv4_tcp_template_is_refused()
    {
        var good = Template(1);
        Assert.Equal(-1, TcpSegmentation.Validate(good.AsSpan(0, 40)));
        var arp = (byte[])good.Clone();
        arp[12] = 0x08;
        arp[13] = 0x06;
        Assert.Equal(-1, TcpSegmentation.Validate(arp));
        var udp = (byte[])good.Clone();
        udp[14 + 9] = 17;
        Assert.Equal(-1, TcpSegmentation.Validate(udp));
        var fragment = (byte[])good.Clone();
        fragment[14 + 6] |= 0x20; // more fragments
        Assert.Equal(-1, TcpSegmentation.Validate(fragment));
        var longer = new byte[good.Length + 4];
        good.CopyTo(longer, 0);
        Assert.Equal(-1, TcpSegmentation.Validate(longer)); // the template holds headers only
    }

    [PcapTheory]
    [InlineData(true)]
    [InlineData(false)]
    public void The_device_puts_exactly_the_cut_frames_on_the_veth(bool kernelSegmentation)
    {
        using var device = fixture.OpenHost(o => o with { KernelSegmentation = kernelSegmentation });
        // The kernel cuts (PACKET_VNET_HDR GSO) when asked; its frames must be ours byte for byte.
        Assert.True(device.KernelSegmentation == kernelSegmentation, $"kernel segmentation {device.KernelSegmentation}: {device.LastError}");
        using var peer = fixture.OpenPeerTap();
        var log = new FrameLog();
        peer.Start(log.Add);
        var payload = Payload(100 * 1448 + 17); // more than one sendmmsg batch
        var template = Template(ipId: 100, to: peer.Mac.ToString().Replace(':', '-'));
        long framesBefore = device.Counters.TxFrames;
        // `anthost capture` sees the cut frames too: a panel with a capture running is the device's tap.
        string panelPath = $"/dev/shm/anthost-test-tso-{Environment.ProcessId}.nic-unit0";
        using var panel = NicPanel.Create(panelPath, ringBytes: 1 << 20);
        panel.CaptureOffered = true;
        using var reader = NicPanel.Open(panelPath, writable: true);
        File.Delete(panelPath);
        Assert.True(reader.TryStartCapture(Environment.ProcessId, _ => true, out _));
        device.CaptureTap = panel;
        Assert.Equal(TransmitResult.Sent, device.TransmitSegmented(template, payload, 1448));
        device.CaptureTap = null;
        int n = TcpSegmentation.FrameCount(payload.Length, 1448);
        var expected = new List<byte[]>();
        var frame = new byte[template.Length + 1448];
        for (int i = 0; i < n; i++) expected.Add(frame.AsSpan(0, TcpSegmentation.WriteFrame(template, payload, i, 1448, frame)).ToArray());
        log.WaitFor(f => f.AsSpan().SequenceEqual(expected[^1]), "the last cut frame");
        peer.Stop();
        var seen = log.Snapshot().Where(f => f.Length >= 54 && f[12] == 0x08 && f[13] == 0x00 && f[14 + 9] == 6).ToList();
        Assert.Equal(expected.Count, seen.Count);
        for (int i = 0; i < n; i++) Assert.Equal(expected[i], seen[i]);
        var buffer = new byte[2048];
        for (int i = 0; i < n; i++)
        {
            Assert.True(reader.TryTake(buffer, out var captured), $"the capture holds {i} of the {n} cut frames");
            Assert.Equal(CaptureDirection.Out, captured.Direction);
            Assert.Equal(expected[i], buffer.AsSpan(0, captured.Captured).ToArray());
        }
        Assert.False(reader.TryTake(buffer, out _));
        Assert.Equal(n, device.Counters.TxFrames - framesBefore);
        Assert.Equal(1, device.TxOffloads);
        Assert.Equal(n, device.TxOffloadFrames);
        Assert.Equal(kernelSegmentation ? 1 : 0, device.TxKernelSegmented);

        // A segment size that makes frames longer than the MTU is refused, and counted.
        long rejected = device.Counters.TxRejected;
        Assert.Equal(TransmitResult.TooLong, device.TransmitSegmented(template, payload, 1600));
        Assert.Equal(rejected + 1, device.Counters.TxRejected);
    }
}
