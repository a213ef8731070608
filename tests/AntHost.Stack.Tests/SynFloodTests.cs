using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using AntHost.Inet.Abi;
using AntHost.Inet.Core.Tcp;
using AntHost.Inet.Core.Wire;
using AntHost.Sandbox;
using AntHost.Stack.Tests.Infrastructure;
using AntHost.TestSupport;
using Xunit.Abstractions;
using static AntHost.Stack.Tests.Infrastructure.PeerSockets;

namespace AntHost.Stack.Tests;

/// <summary>
/// A SYN flood from the link (issue 11): spoofed SYNs from addresses of the link that nobody
/// owns fill a listener's SYN queue with half-open connections that never complete (their
/// SYN-ACKs wait for ARP answers that never come). Without SYN cookies every real client is
/// then refused until those half-open connections time out, a minute later; with them the
/// peer's kernel still connects and exchanges data while the flood goes on.
/// </summary>
public sealed class SynFloodTests(ITestOutputHelper output)
{
    private const ushort Port = 7100;
    private const int Backlog = 16;
    private const int Clients = 10;

    /// <summary>Spoofed SYNs per second (ANTHOST_SYNFLOOD_RATE; the figure by default).</summary>
    private static int Rate => int.TryParse(Environment.GetEnvironmentVariable("ANTHOST_SYNFLOOD_RATE"), out int r) && r > 0 ? r : 20_000;

    /// <summary>The clients keep connecting until the flood has run this long (and at least <see cref="Clients"/> of them connected).</summary>
    private static readonly TimeSpan FloodTime = TimeSpan.FromSeconds(3);

    /// <summary>The flood stops after this at the latest, whatever the clients do.</summary>
    private static readonly TimeSpan MaxFlood = TimeSpan.FromSeconds(20);

    [PcapFact]
    public void Real_clients_connect_and_exchange_data_while_spoofed_syns_flood_the_listener()
    {
        using var stack = new RunningStack(output);
        using var app = new TestApp(stack.Instance);
        ulong l = app.NewSocket(AbiSocketType.Stream);
        Assert.True(app.Bind(l, "0.0.0.0", Port).Ok);
        Assert.True(app.Listen(l, Backlog).Ok);
        long framesBefore = stack.Stat(InetStat.IfaceFramesIn);

        using var flood = new SpoofedSynFlood(stack.Sandbox.PeerNamespace, RunningStack.HostIp, Port, Rate, MaxFlood);
        // Many times the backlog before the first real client, so that its SYN finds the queue full.
        flood.WaitUntilSent(20 * Backlog);
        long sentBeforeClients = flood.Sent;

        // Real clients of the peer's kernel, one after the other, each connecting, sending 8000
        // bytes and reading them back, for as long as the flood runs its course.
        int connections = 0, during = 0;
        while (connections < Clients || (flood.Running && flood.Elapsed < FloodTime))
        {
            using var peer = PeerTcp(stack);
            var connecting = peer.ConnectAsync(new IPEndPoint(RunningStack.HostIp, Port));
            var a = app.Accept(l); // held until a handshake completes
            Assert.True(a.Ok, $"client {connections}: accept during the flood: {a}");
            Assert.True(connecting.Wait(PeerTimeout), $"client {connections}: the peer's connect did not complete");
            var up = Pattern(8000, connections);
            peer.Send(up);
            var got = app.ReceiveExactly(a.Socket, up.Length);
            Assert.Equal(up, got);
            app.SendAll(a.Socket, got, 4000);
            Assert.Equal(up, PeerReceiveExactly(peer, up.Length));
            Assert.True(app.Close(a.Socket).Ok);
            connections++;
            if (flood.Running) during++;
        }
        var elapsed = flood.Stop();
        long framesDuring = stack.Stat(InetStat.IfaceFramesIn) - framesBefore;

        output.WriteLine($"flood: {flood.Sent} spoofed SYNs in {elapsed.TotalSeconds:F2} s ({flood.Sent / elapsed.TotalSeconds:F0}/s, target {Rate}/s) "
            + $"from {SpoofedSynFlood.Sources} addresses, {sentBeforeClients} before the first client; inet took {framesDuring} frames; "
            + $"{during} of {connections} real connections made and echoed while it ran");
        Assert.True(during >= Clients, $"only {during} connections completed while the flood ran");
        Assert.True(framesDuring > 20 * Backlog, $"inet received only {framesDuring} frames: the flood never filled the SYN queue");

        // The interface's counters as inet writes them at stop: what answered the flood.
        stack.DisconnectObserver();
        stack.Driver.Stop();
        stack.Inet.Stop();
        var counters = Regex.Match(stack.Inet.Log, "counters: (.*)");
        output.WriteLine("inet at stop: " + counters.Groups[1].Value);
    }

    /// <summary>
    /// Spoofed SYNs from the peer's namespace through a raw socket (IP_HDRINCL), paced at a
    /// rate, from the link's addresses 198.18.0.16-254 that no host holds, random ports and
    /// ISNs; the segments are written with the protocol core's own header types.
    /// </summary>
    private sealed class SpoofedSynFlood : IDisposable
    {
        public const int Sources = 239;

        private readonly Socket _raw;
        private readonly Thread _thread;
        private readonly IPEndPoint _target;
        private readonly Ipv4Address _destination;
        private readonly ushort _port;
        private readonly int _rate;
        private readonly TimeSpan _max;
        private readonly Stopwatch _clock = new();
        private volatile bool _stop;
        private volatile bool _running = true;
        private long _sent;
        private Exception? _error;

        public SpoofedSynFlood(string peerNamespace, IPAddress target, ushort port, int rate, TimeSpan max)
        {
            _raw = NamespaceThread.Run(peerNamespace, () => new Socket(AddressFamily.InterNetwork, SocketType.Raw, ProtocolType.Raw));
            _target = new IPEndPoint(target, 0);
            _destination = Ipv4Address.Parse(target.ToString());
            _port = port;
            _rate = rate;
            _max = max;
            _thread = new Thread(Run) { IsBackground = true, Name = "syn-flood" };
            _clock.Start();
            _thread.Start();
        }

        public long Sent => Interlocked.Read(ref _sent);

        public bool Running => _running;

        public TimeSpan Elapsed => _clock.Elapsed;

        public void WaitUntilSent(long count)
        {
            var deadline = DateTime.UtcNow + StackProcess.Patience;
            while (Sent < count)
            {
                if (!_running) throw new InvalidOperationException($"the flood ended after {Sent} SYNs", _error);
                if (DateTime.UtcNow > deadline) throw new TimeoutException($"the flood sent only {Sent} SYNs");
                Thread.Sleep(5);
            }
        }

        /// <summary>Stops the flood; returns how long it ran.</summary>
        public TimeSpan Stop()
        {
            _stop = true;
            _thread.Join();
            if (_error is not null) throw new InvalidOperationException("the flood's sender failed", _error);
            return _clock.Elapsed;
        }

        private void Run()
        {
            try
            {
                var random = new Random(4987);
                var packet = new byte[Ipv4Packet.MinHeaderLength + TcpHeader.MinLength + 4];
                var options = default(TcpOptions);
                options.SetMss(1460);
                while (!_stop && _clock.Elapsed < _max)
                {
                    // Paced: as many as the rate allows by now, then a short sleep.
                    long due = (long)(_clock.Elapsed.TotalSeconds * _rate);
                    while (Sent < due && !_stop)
                    {
                        var source = new Ipv4Address(198, 18, 0, (byte)(16 + random.Next(Sources)));
                        var segment = packet.AsSpan(Ipv4Packet.MinHeaderLength);
                        new TcpHeaderFields((ushort)random.Next(1024, 65536), _port, new SeqNumber((uint)random.NextInt64(1L << 32)), default, TcpFlags.Syn, 64240)
                            .WriteTo(segment, in options);
                        TcpHeaderFields.FillChecksum(segment, source, _destination);
                        new Ipv4Header(source, _destination, 6, (ushort)packet.Length, (ushort)random.Next(65536), DontFragment: true).WriteTo(packet);
                        _raw.SendTo(packet, _target);
                        Interlocked.Increment(ref _sent);
                    }
                    Thread.Sleep(1);
                }
            }
            catch (Exception e)
            {
                _error = e;
            }
            finally
            {
                _running = false;
            }
        }

        public void Dispose()
        {
            _stop = true;
            _thread.Join();
            _raw.Dispose();
        }
    }
}
