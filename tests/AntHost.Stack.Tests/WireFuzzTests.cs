using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using AntHost.Client;
using AntHost.Inet.Abi;
using AntHost.Sandbox;
using AntHost.Stack.Tests.Infrastructure;
using AntHost.TestSupport;
using Xunit.Abstractions;
using static AntHost.Stack.Tests.Infrastructure.PeerSockets;

namespace AntHost.Stack.Tests;

/// <summary>
/// The wire fuzz: mutated frames injected on the peer's end of the veth (an AF_PACKET socket
/// in the peer's namespace, so they arrive as any frame from the wire does) while a transfer
/// from the peer's kernel to an app runs through the stack: random bytes, truncated frames,
/// bad IPv4 and TCP checksums, fragment floods, every combination of the eight TCP flags,
/// ARP floods (some claiming the peer's address) and SYN floods from random sources. After
/// it: inet and the driver still run, their resident memory is within 10% of what it was,
/// the transfer arrived byte-exact, every frame inet got is accounted for (drops by reason
/// plus what each protocol took), and both give every page back at stop. 1,000,000 frames by
/// default (about 6 s of injection, 20 s in all); ANTHOST_FUZZ_FRAMES sets another count.
/// </summary>
public sealed partial class WireFuzzTests(ITestOutputHelper output)
{
    private const int EthPAll = 0x0003;
    private const int AfPacket = 17;
    private const int SockRaw = 3;

    [LibraryImport("libc", EntryPoint = "socket", SetLastError = true)]
    private static partial int Socket(int domain, int type, int protocol);

    [LibraryImport("libc", EntryPoint = "bind", SetLastError = true)]
    private static unsafe partial int Bind(int fd, byte* addr, int len);

    [LibraryImport("libc", EntryPoint = "send", SetLastError = true)]
    private static unsafe partial nint Send(int fd, byte* buf, nint len, int flags);

    [LibraryImport("libc", EntryPoint = "close")]
    private static partial int Close(int fd);

    [LibraryImport("libc", EntryPoint = "if_nametoindex", StringMarshalling = StringMarshalling.Utf8)]
    private static partial uint IfNameToIndex(string name);

    private static int FrameCount =>
        int.TryParse(Environment.GetEnvironmentVariable("ANTHOST_FUZZ_FRAMES"), out int n) && n > 0 ? n : 1_000_000;

    /// <summary>An AF_PACKET socket bound to the peer's veth end, made inside the peer's namespace.</summary>
    private static unsafe int PeerPacketSocket(RunningStack stack) => NamespaceThread.Run(stack.Sandbox.PeerNamespace, () =>
    {
        int fd = Socket(AfPacket, SockRaw, BinaryPrimitives.ReverseEndianness((ushort)EthPAll));
        if (fd < 0) throw new IOException($"AF_PACKET socket: errno {Marshal.GetLastPInvokeError()}");
        uint index = IfNameToIndex(stack.Sandbox.PeerInterface);
        byte* sll = stackalloc byte[20];
        new Span<byte>(sll, 20).Clear();
        BinaryPrimitives.WriteUInt16LittleEndian(new Span<byte>(sll, 2), AfPacket);
        BinaryPrimitives.WriteUInt16BigEndian(new Span<byte>(sll + 2, 2), EthPAll);
        BinaryPrimitives.WriteInt32LittleEndian(new Span<byte>(sll + 4, 4), (int)index);
        if (Bind(fd, sll, 20) != 0) throw new IOException($"bind to {stack.Sandbox.PeerInterface}: errno {Marshal.GetLastPInvokeError()}");
        return fd;
    });

    private static byte[] Mac(string text) => text.Trim().Split(':').Select(h => byte.Parse(h, NumberStyles.HexNumber, CultureInfo.InvariantCulture)).ToArray();

    private static long RssKb(int pid)
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal)) return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
        return 0;
    }

    private static byte PatternAt(long offset) => (byte)(offset % 251);

    [PcapFact]
    public void A_million_mutated_frames_cost_no_crash_no_memory_and_no_byte_of_a_transfer()
    {
        using var stack = new RunningStack(output);
        // The driver's own MAC (not the veth's: the host kernel keeps that one), as inet registered it.
        long mac = stack.Stat(InetStat.Mac);
        byte[] driverMac = [.. Enumerable.Range(0, 6).Select(i => (byte)(mac >> (40 - 8 * i)))];
        byte[] peerMac = Mac(stack.Sandbox.RunInPeer("cat", $"/sys/class/net/{stack.Sandbox.PeerInterface}/address").StandardOutput);

        // The transfer: the peer's kernel sends a pattern until told to stop; the app checks every byte.
        using var listener = PeerListener(stack, 5120);
        using var inet = InetStack.Connect(new InetStackOptions { Instance = stack.Instance, ProcessName = "test-fuzz" });
        using var socket = new InetSocket(inet, SocketType.Stream, ProtocolType.Tcp);
        socket.Connect(new IPEndPoint(RunningStack.PeerIp, 5120));
        using var peer = AcceptWithin(listener);
        ushort appPort = (ushort)((IPEndPoint)peer.RemoteEndPoint!).Port;
        bool stopSending = false;
        long sent = 0, received = 0;
        var sending = Task.Run(() =>
        {
            var chunk = new byte[64 * 1024];
            while (!Volatile.Read(ref stopSending))
            {
                for (int i = 0; i < chunk.Length; i++) chunk[i] = PatternAt(sent + i);
                peer.Send(chunk);
                sent += chunk.Length;
            }
            peer.Shutdown(SocketShutdown.Send);
        });
        var receiving = Task.Run(() =>
        {
            var b = new byte[256 * 1024];
            while (true)
            {
                int n = socket.Receive(b);
                if (n == 0) return;
                for (int i = 0; i < n; i++)
                    if (b[i] != PatternAt(received + i)) throw new InvalidDataException($"byte {received + i} differs");
                Interlocked.Add(ref received, n);
            }
        });
        Thread.Sleep(2000); // warm: the servers' memory at work, before the flood
        long inetBefore = RssKb(stack.Inet.Pid), nicBefore = RssKb(stack.Driver.Pid);
        long receivedBefore = Interlocked.Read(ref received);

        int frames = FrameCount;
        int fd = PeerPacketSocket(stack);
        var counts = new long[8];
        int failed = 0, lastErrno = 0;
        var sw = Stopwatch.StartNew();
        try
        {
            var frame = new byte[1514];
            var rnd = new Random(1111);
            for (int i = 0; i < frames; i++)
            {
                int kind = i % 8;
                int len = Build(frame, kind, i, rnd, driverMac, peerMac, appPort);
                unsafe
                {
                    fixed (byte* p = frame)
                    {
                        while (true)
                        {
                            if (Send(fd, p, len, 0) >= 0) break;
                            int errno = Marshal.GetLastPInvokeError();
                            if (errno is 105 or 11) { Thread.Yield(); continue; } // ENOBUFS, EAGAIN: the veth is busy
                            failed++;
                            lastErrno = errno;
                            break;
                        }
                    }
                }
                counts[kind]++;
            }
        }
        finally
        {
            Close(fd);
        }
        var flood = sw.Elapsed;
        output.WriteLine($"sends the peer's kernel refused: {failed} (last errno {lastErrno})");

        output.WriteLine($"{frames} frames injected in {flood.TotalSeconds:F2} s ({frames / flood.TotalSeconds:F0}/s): random {counts[0]}, truncated {counts[1]}, bad IP checksum {counts[2]}, " +
            $"bad TCP checksum {counts[3]}, fragments {counts[4]}, TCP flag combinations {counts[5]}, ARP {counts[6]}, SYN {counts[7]}");

        // The transfer goes on through and after the flood, then ends; every byte checked.
        long receivedDuring = Interlocked.Read(ref received) - receivedBefore;
        Thread.Sleep(1000);
        Volatile.Write(ref stopSending, true);
        Assert.True(sending.Wait(PeerTimeout), "the peer's send did not end");
        Assert.True(receiving.Wait(PeerTimeout), "the app's receive did not end");
        receiving.GetAwaiter().GetResult();
        Assert.Equal(sent, Interlocked.Read(ref received));
        output.WriteLine($"transfer: {sent >> 20} MiB byte-exact, {receivedDuring >> 20} MiB of it during the flood");
        Assert.True(receivedDuring > 0, "nothing arrived during the flood");

        Thread.Sleep(2000);
        Assert.False(stack.Inet.HasExited, "inet died");
        Assert.False(stack.Driver.HasExited, "the driver died");
        long inetAfter = RssKb(stack.Inet.Pid), nicAfter = RssKb(stack.Driver.Pid);
        output.WriteLine($"resident memory: inet {inetBefore} -> {inetAfter} kB, driver {nicBefore} -> {nicAfter} kB");
        Assert.True(inetAfter <= inetBefore * 1.10, $"inet's memory grew from {inetBefore} to {inetAfter} kB");
        Assert.True(nicAfter <= nicBefore * 1.10, $"the driver's memory grew from {nicBefore} to {nicAfter} kB");

        // Every frame accounted for: the driver saw or counted each; inet's input balances
        // (frames in = drops by reason + what each protocol took).
        socket.Close();
        stack.DisconnectObserver();
        Assert.Equal(0, stack.Driver.Stop());
        Assert.Equal(0, stack.Inet.Stop());
        string device = stack.Driver.Log.Split('\n').Last(l => l.Contains("device counters", StringComparison.Ordinal));
        long Dev(string name) => long.Parse(Regex.Match(device, name + @" = (\d+)").Groups[1].Value, CultureInfo.InvariantCulture);
        output.WriteLine(device);
        Assert.True(Dev("RxFrames") + Dev("KernelDrops") + Dev("InterfaceDrops") >= frames, "the driver neither saw nor counted some frames");
        string counters = stack.Inet.Log.Split('\n').Last(l => l.Contains("counters: ", StringComparison.Ordinal) && l.Contains("FramesIn=", StringComparison.Ordinal));
        output.WriteLine(counters);
        var values = Regex.Matches(counters, @"([A-Za-z.]+)=(\d+)").ToDictionary(m => m.Groups[1].Value, m => long.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture));
        long V(string k) => values.GetValueOrDefault(k);
        long drops = values.Where(kv => kv.Key.StartsWith("RxDrop.", StringComparison.Ordinal)).Sum(kv => kv.Value);
        Assert.Equal(V("FramesIn") + V("IpReassembled") + V("IpLoopback"), drops + V("ArpIn") + V("IcmpIn") + V("UdpIn") + V("TcpIn") + V("IpFragmentsHeld"));
        foreach (var reason in new[] { "RxDrop.IpBadChecksum", "RxDrop.UnsupportedEtherType", "RxDrop.ArpSenderMismatch", "RxDrop.IpBadTotalLength" })
            Assert.True(V(reason) > 0, $"no frame dropped as {reason}: {counters}");
        // TCP's own drops, by reason: the segments with a bad checksum among them.
        string tcpDrops = stack.Inet.Log.Split('\n').Last(l => l.Contains("tcp drops by reason: ", StringComparison.Ordinal));
        output.WriteLine(tcpDrops);
        var tcp = Regex.Matches(tcpDrops, @"([A-Za-z]+)=(\d+)").ToDictionary(m => m.Groups[1].Value, m => long.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture));
        Assert.True(tcp.GetValueOrDefault("BadChecksum") > 0, $"no segment dropped for its checksum: {tcpDrops}");
        stack.Inet.WaitFor("pages owned at stop: 0");
        stack.Driver.WaitFor("pages owned at stop: 0");
    }

    // ---- the frames -------------------------------------------------------------------------

    private static readonly byte[] HostIp = [198, 18, 0, 2];
    private static readonly byte[] PeerIp = [198, 18, 0, 1];

    /// <summary>Writes frame number <paramref name="i"/> of kind <paramref name="kind"/>; returns its length.</summary>
    private static int Build(byte[] f, int kind, int i, Random rnd, byte[] driverMac, byte[] peerMac, ushort appPort)
    {
        var s = f.AsSpan();
        driverMac.CopyTo(s);
        peerMac.CopyTo(s[6..]);
        switch (kind)
        {
            case 0: // random bytes after the MACs, random ethertype and length
                {
                    int len = rnd.Next(14, 1515);
                    rnd.NextBytes(s[12..len]);
                    return len;
                }
            case 1: // a valid TCP segment to the app's connection, cut anywhere
                {
                    int full = Ip(s, 6, 20 + rnd.Next(0, 200), rnd);
                    Tcp(s, full, rnd, appPort, (byte)0x10, rnd.Next());
                    return 14 + rnd.Next(0, full - 1);
                }
            case 2: // IPv4 with a bad header checksum
                {
                    int full = Ip(s, 17, 8 + 32, rnd);
                    s[24] ^= 0x5a;
                    return 14 + full;
                }
            case 3: // TCP with a bad checksum
                {
                    int full = Ip(s, 6, 20 + 100, rnd);
                    Tcp(s, full, rnd, appPort, 0x18, rnd.Next());
                    s[14 + 20 + 16] ^= 0xa5;
                    return 14 + full;
                }
            case 4: // fragments that never complete: random id, offset and more-fragments flag
                {
                    int full = Ip(s, 17, 8 + rnd.Next(8, 1400) / 8 * 8, rnd);
                    ushort frag = (ushort)((rnd.Next(2) << 13) | rnd.Next(0, 8000));
                    BinaryPrimitives.WriteUInt16BigEndian(s[(14 + 4)..], (ushort)rnd.Next());
                    BinaryPrimitives.WriteUInt16BigEndian(s[(14 + 6)..], frag);
                    IpChecksum(s);
                    return 14 + full;
                }
            case 5: // every combination of the eight TCP flags, to the app's connection and to random ports
                {
                    int full = Ip(s, 6, 20 + (i & 64), rnd);
                    Tcp(s, full, rnd, (i & 1) == 0 ? appPort : (ushort)rnd.Next(1, 65536), (byte)(i >> 3), rnd.Next());
                    return 14 + full;
                }
            case 6: // ARP: requests and replies from random senders, a few claiming the peer's address
                {
                    if ((i & 1) == 0) s[..6].Fill(0xff);
                    BinaryPrimitives.WriteUInt16BigEndian(s[12..], 0x0806);
                    var a = s[14..];
                    BinaryPrimitives.WriteUInt16BigEndian(a, 1);
                    BinaryPrimitives.WriteUInt16BigEndian(a[2..], 0x0800);
                    a[4] = 6;
                    a[5] = 4;
                    BinaryPrimitives.WriteUInt16BigEndian(a[6..], (ushort)(1 + (i >> 3) % 2));
                    rnd.NextBytes(a.Slice(8, 6));
                    a[8] &= 0xfe;
                    if (i % 64 == 6) PeerIp.CopyTo(a[14..]);
                    else { a[14] = 198; a[15] = 18; a[16] = 0; a[17] = (byte)rnd.Next(3, 255); }
                    rnd.NextBytes(a.Slice(18, 6));
                    HostIp.CopyTo(a[24..]);
                    return 14 + 28 + 18;
                }
            default: // SYN flood from random sources in the sandbox's network to random ports
                {
                    int full = Ip(s, 6, 20, rnd);
                    s[14 + 15] = (byte)rnd.Next(3, 255);
                    IpChecksum(s);
                    Tcp(s, full, rnd, (ushort)rnd.Next(1, 65536), 0x02, rnd.Next());
                    return 14 + full;
                }
        }
    }

    /// <summary>An IPv4 header from the peer to AntHost for <paramref name="payload"/> bytes; returns the IP datagram's length.</summary>
    private static int Ip(Span<byte> f, byte protocol, int payload, Random rnd)
    {
        BinaryPrimitives.WriteUInt16BigEndian(f[12..], 0x0800);
        var ip = f[14..];
        int total = 20 + payload;
        ip[0] = 0x45;
        ip[1] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)total);
        BinaryPrimitives.WriteUInt16BigEndian(ip[4..], (ushort)rnd.Next());
        BinaryPrimitives.WriteUInt16BigEndian(ip[6..], 0x4000);
        ip[8] = 64;
        ip[9] = protocol;
        PeerIp.CopyTo(ip[12..]);
        HostIp.CopyTo(ip[16..]);
        rnd.NextBytes(ip.Slice(20, payload));
        IpChecksum(f);
        return total;
    }

    private static void IpChecksum(Span<byte> f)
    {
        var ip = f.Slice(14, 20);
        ip[10] = ip[11] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(ip[10..], Checksum(ip, 0));
    }

    /// <summary>A TCP header from port 5120 (the peer's end of the transfer) to <paramref name="port"/>, with a valid checksum.</summary>
    private static void Tcp(Span<byte> f, int ipLength, Random rnd, ushort port, byte flags, int seq)
    {
        var t = f.Slice(14 + 20, ipLength - 20);
        BinaryPrimitives.WriteUInt16BigEndian(t, 5120);
        BinaryPrimitives.WriteUInt16BigEndian(t[2..], port);
        BinaryPrimitives.WriteInt32BigEndian(t[4..], seq);
        BinaryPrimitives.WriteInt32BigEndian(t[8..], rnd.Next());
        t[12] = 0x50;
        t[13] = flags;
        BinaryPrimitives.WriteUInt16BigEndian(t[14..], (ushort)rnd.Next(0, 65536));
        t[16] = t[17] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(t[18..], 0);
        uint pseudo = 0;
        var ip = f.Slice(14, 20);
        pseudo += BinaryPrimitives.ReadUInt16BigEndian(ip[12..]) + (uint)BinaryPrimitives.ReadUInt16BigEndian(ip[14..]);
        pseudo += BinaryPrimitives.ReadUInt16BigEndian(ip[16..]) + (uint)BinaryPrimitives.ReadUInt16BigEndian(ip[18..]);
        pseudo += 6u + (uint)t.Length;
        BinaryPrimitives.WriteUInt16BigEndian(t[16..], Checksum(t, pseudo));
    }

    private static ushort Checksum(ReadOnlySpan<byte> data, uint sum)
    {
        int i = 0;
        for (; i + 1 < data.Length; i += 2) sum += BinaryPrimitives.ReadUInt16BigEndian(data[i..]);
        if (i < data.Length) sum += (uint)data[i] << 8;
        while (sum >> 16 != 0) sum = (sum & 0xffff) + (sum >> 16);
        return (ushort)~sum;
    }
}
