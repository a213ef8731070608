using System.Globalization;
using System.Text;
using AntHost.Inet.Core.Buffers;
using AntHost.Inet.Core.Randomness;
using AntHost.Inet.Core.Tcp;
using AntHost.Inet.Core.Tcp.Recovery;
using AntHost.Inet.Core.Time;
using AntHost.Inet.Core.Wire;

namespace AntHost.Inet.Core.Tests.Tcp.Sim;

/// <summary>Everything one simulated run depends on; derived from the seed alone, so a seed replays.</summary>
public sealed record SimParameters
{
    public ulong Seed { get; init; }
    public LinkProfile ClientToServer { get; init; } = new();
    public LinkProfile ServerToClient { get; init; } = new();
    public int Mtu { get; init; } = 1500;
    public long ClientBytes { get; init; }
    public long ServerBytes { get; init; }
    public TcpConfig ClientConfig { get; init; } = new();
    public TcpConfig ServerConfig { get; init; } = new();
    public double ClientReadProbability { get; init; } = 1;
    public double ServerReadProbability { get; init; } = 1;
    public bool ClientNoDelay { get; init; }
    public bool ServerNoDelay { get; init; }

    /// <summary>Connections between the two layers at once, to one listening port, sharing the link (the byte counts are per connection).</summary>
    public int Connections { get; init; } = 1;

    /// <summary>Loss rates the seeds cycle through (up to 20%).</summary>
    public static readonly double[] LossRates = [0, 0.01, 0.05, 0.1, 0.2];

    /// <summary>The parameters of <paramref name="seed"/>: a pure function of it.</summary>
    public static SimParameters FromSeed(ulong seed, long minBytes = 100 * 1024, long maxBytes = 300 * 1024)
    {
        var r = new SeededRandom(seed ^ 0x5EED_0F_7C9_51Bul);
        double loss = LossRates[seed % (ulong)LossRates.Length];
        double Pick(params double[] xs) => xs[r.Next(xs.Length)];
        LinkProfile Link()
        {
            long bw = r.Next(3) == 0 ? 0 : (long)Pick(1e6, 10e6, 100e6, 1e9) / 8;
            return new LinkProfile
            {
                Delay = TimeSpan.FromMicroseconds(Pick(50, 500, 5_000, 20_000, 50_000)),
                BandwidthBytesPerSecond = bw,
                QueueLimitBytes = (int)Pick(16 * 1024, 64 * 1024, 256 * 1024),
                Loss = Math.Min(0.2, loss * (0.5 + r.NextDouble())),   // at most 20% each way
                Reorder = r.Next(2) == 0 ? 0 : Pick(0.01, 0.05, 0.1),
                Duplicate = r.Next(2) == 0 ? 0 : Pick(0.01, 0.05),
                Corrupt = r.Next(2) == 0 ? 0 : Pick(0.005, 0.02),
            };
        }
        TcpConfig Config() => new()
        {
            CongestionControl = r.Next(2) == 0 ? CongestionControlKind.NewReno : CongestionControlKind.Cubic,
            Sack = r.Next(5) != 0,
            Timestamps = r.Next(5) != 0,
            WindowScaling = r.Next(5) != 0,
            SendBufferSize = (int)Pick(16 * 1024, 64 * 1024, 256 * 1024),
            ReceiveBufferSize = (int)Pick(8 * 1024, 64 * 1024, 256 * 1024),
            Msl = TimeSpan.FromSeconds(5),
        };
        long Bytes() => r.Next(10) == 0 ? r.Next(3000) : minBytes + (long)(r.NextDouble() * (maxBytes - minBytes));
        var p = new SimParameters
        {
            Seed = seed,
            ClientToServer = Link(),
            ServerToClient = Link(),
            Mtu = (int)Pick(576, 1280, 1500, 1500),
            ClientBytes = Bytes(),
            ServerBytes = Bytes(),
            ClientConfig = Config(),
            ServerConfig = Config(),
            ClientReadProbability = r.Next(4) == 0 ? Pick(0.1, 0.5) : 1,
            ServerReadProbability = r.Next(4) == 0 ? Pick(0.1, 0.5) : 1,
            ClientNoDelay = r.Next(2) == 0,
            ServerNoDelay = r.Next(2) == 0,
        };
        // Drawn last, so that the draws above stay what they were for every seed.
        int connections = r.Next(5) == 0 ? 2 + r.Next(3) : 1;
        // Loss detection with SACK: RACK-TLP (the default) on most seeds, RFC 6675 on a quarter
        // of the sides, so that both stay exercised.
        if (r.Next(4) == 0) p = p with { ClientConfig = p.ClientConfig with { LossDetection = LossDetection.Rfc6675 } };
        if (r.Next(4) == 0) p = p with { ServerConfig = p.ServerConfig with { LossDetection = LossDetection.Rfc6675 } };
        return connections == 1 ? p : p with
        {
            Connections = connections,
            ClientBytes = p.ClientBytes / connections,
            ServerBytes = p.ServerBytes / connections,
        };
    }

    public override string ToString()
    {
        static string Cfg(TcpConfig c) => string.Create(CultureInfo.InvariantCulture,
            $"cc={c.CongestionControl} sack={c.Sack} loss={c.LossDetection} ts={c.Timestamps} ws={c.WindowScaling} sndbuf={c.SendBufferSize} rcvbuf={c.ReceiveBufferSize}");
        return string.Create(CultureInfo.InvariantCulture,
            $"seed={Seed} mtu={Mtu} connections={Connections} bytes per connection c->s={ClientBytes} s->c={ServerBytes}\n  link c->s: {ClientToServer}\n  link s->c: {ServerToClient}\n" +
            $"  client: {Cfg(ClientConfig)} nodelay={ClientNoDelay} read={ClientReadProbability}\n  server: {Cfg(ServerConfig)} nodelay={ServerNoDelay} read={ServerReadProbability}");
    }
}

/// <summary>
/// Two TCP layers joined by a simulated IP link and driven by a virtual clock: the
/// deterministic simulation. Each step jumps the clock to the next event (a segment arriving,
/// a layer's <c>PollAt</c>, an app's wake-up), delivers, polls, and lets both apps act.
/// </summary>
public sealed class Simulation
{
    public static readonly Ipv4Address ClientAddress = Ipv4Address.Parse("198.18.0.1");
    public static readonly Ipv4Address ServerAddress = Ipv4Address.Parse("198.18.0.2");
    public const ushort ServerPort = 5001;

    /// <summary>Virtual time after which a run that has not finished counts as hung.</summary>
    public static readonly TimeSpan TimeLimit = TimeSpan.FromHours(2);

    private const long StepLimit = 5_000_000;

    public readonly SimParameters Parameters;
    public readonly HeapBufferPool ClientPool = new(4096);
    public readonly HeapBufferPool ServerPool = new(4096);
    public readonly SimPipe ClientToServer, ServerToClient;
    public readonly SimIp ClientIp, ServerIp;
    public readonly TcpLayer Client, Server;
    public readonly SimApp ClientApp, ServerApp;
    public readonly SimApp[] ClientApps, ServerApps;
    private readonly StringBuilder? _trace;
    private TcpSocket _listener;
    private int _accepted;

    public Instant Now { get; private set; } = Instant.FromMilliseconds(1_000);

    public Simulation(SimParameters p, bool trace = false)
    {
        Parameters = p;
        var linkRandom = new SeededRandom(p.Seed * 3 + 1);
        ClientToServer = new SimPipe(p.ClientToServer, linkRandom);
        ServerToClient = new SimPipe(p.ServerToClient, linkRandom);
        ClientIp = new SimIp(ClientAddress, ServerAddress, p.Mtu, ClientToServer);
        ServerIp = new SimIp(ServerAddress, ClientAddress, p.Mtu, ServerToClient);
        Client = new TcpLayer(ClientIp, ClientPool, new SeededRandom(p.Seed * 5 + 2), p.ClientConfig);
        Server = new TcpLayer(ServerIp, ServerPool, new SeededRandom(p.Seed * 7 + 3), p.ServerConfig);
        var server = new TcpEndPoint(ServerAddress, ServerPort);
        int n = Math.Max(1, p.Connections);
        ClientApps = new SimApp[n];
        ServerApps = new SimApp[n];
        for (int i = 0; i < n; i++)
        {
            ulong cKey = p.Seed * 11 + 4 + (ulong)i * 1_000_003, sKey = p.Seed * 13 + 5 + (ulong)i * 1_000_033;
            string suffix = n == 1 ? "" : $"#{i}";
            ClientApps[i] = new SimApp("client" + suffix, Client, ClientPool, new SeededRandom(p.Seed * 17 + 6 + (ulong)i * 101), true, server,
                cKey, p.ClientBytes, sKey, p.ServerBytes, p.ClientReadProbability, p.ClientNoDelay);
            ServerApps[i] = new SimApp("server" + suffix, Server, ServerPool, new SeededRandom(p.Seed * 19 + 7 + (ulong)i * 103), false, server,
                sKey, p.ServerBytes, cKey, p.ClientBytes, p.ServerReadProbability, p.ServerNoDelay);
            if (n > 1) ServerApps[i].AdoptsConnection();
        }
        ClientApp = ClientApps[0];
        ServerApp = ServerApps[0];
        if (n > 1)
        {
            // One listener for every connection; each accepted one goes to the server app whose
            // client has that port.
            Check(Server.Open(out _listener), "open listener");
            Check(Server.Bind(_listener, server), "bind");
            Check(Server.Listen(_listener, n), "listen");
        }
        if (trace) _trace = new StringBuilder();
    }

    public string Trace => _trace?.ToString() ?? "";

    private static void Check(TcpError e, string what)
    {
        if (e != TcpError.None) throw new SimulationFailure($"server: {what} failed with {e}");
    }

    private void StepApps(bool force)
    {
        foreach (var a in ClientApps) a.Step(Now, force);
        if (_listener != default)
        {
            while (Server.Accept(_listener, out var s) == TcpError.None)
            {
                ushort port = Server.GetRemoteEndPoint(s).Port;
                int i = Array.FindIndex(ClientApps, c => c.Socket != default && Client.GetLocalEndPoint(c.Socket).Port == port);
                if (i < 0) throw new SimulationFailure($"server: accepted a connection from port {port}, which no client has");
                ServerApps[i].Adopt(s, Now);
                if (++_accepted == ServerApps.Length)
                {
                    Check(Server.Close(_listener, Now), "close listener");
                    _listener = default;
                    break;
                }
            }
        }
        foreach (var a in ServerApps) a.Step(Now, force);
    }

    private Instant? AppsWakeAt()
    {
        Instant? t = null;
        foreach (var a in ClientApps) t = Instant.Earliest(t, a.WakeAt);
        foreach (var a in ServerApps) t = Instant.Earliest(t, a.WakeAt);
        return t;
    }

    /// <summary>True unless segments are also injected from outside the link (fuzzing), so that refused segments must match the link's corruption exactly.</summary>
    public bool OnlyTheLinkCorrupts { get; set; } = true;

    /// <summary>Delivers everything on the wire and runs the timers due, without moving the clock past <paramref name="until"/>.</summary>
    public void Settle(Instant until)
    {
        for (int i = 0; i < 1_000_000; i++)
        {
            Instant? next = Instant.Earliest(Instant.Earliest(ClientToServer.NextArrival, ServerToClient.NextArrival),
                Instant.Earliest(Client.PollAt, Server.PollAt));
            if (next is null || next.Value > until) return;
            if (next.Value > Now) Now = next.Value;
            Deliver(ServerToClient, Client, ClientPool, "s->c");
            Deliver(ClientToServer, Server, ServerPool, "c->s");
            Client.Poll(Now);
            Server.Poll(Now);
        }
        throw new SimulationFailure("the link never settles");
    }

    /// <summary>Moves the virtual clock forward (events due meanwhile must have been run by <see cref="Settle"/>).</summary>
    public void Advance(TimeSpan by) => Now += by;

    /// <summary>Wraps a failure with the parameters and the state of both sides.</summary>
    public SimulationFailure Explain(Exception e) =>
        new($"{e.Message}\n  at {Now}\n{Parameters}\n  {string.Join("\n  ", ClientApps.Select(a => a.Status))}\n  {string.Join("\n  ", ServerApps.Select(a => a.Status))}\n" +
            $"  c->s {Stats(ClientToServer)}\n  s->c {Stats(ServerToClient)}\n" +
            $"  replay: ANTHOST_SIM_SEED={Parameters.Seed} (ANTHOST_SIM_TRACE=1 for a segment trace)");

    /// <summary>Runs to the end; throws <see cref="SimulationFailure"/> (with the parameters) when a promise is broken.</summary>
    public void Run()
    {
        try
        {
            RunCore();
            CheckEnd();
        }
        catch (SimulationFailure e)
        {
            throw Explain(e);
        }
        finally
        {
            ClientToServer.Clear();
            ServerToClient.Clear();
        }
    }

    private static string Stats(SimPipe p) =>
        $"sent={p.Sent} delivered={p.Delivered} lost={p.Lost} queue-drops={p.QueueDrops} dup={p.Duplicated} corrupt={p.Corrupted}";

    private void RunCore() => RunUntil(() => Finished);

    /// <summary>Runs events until <paramref name="condition"/> holds after the apps have acted.</summary>
    public void RunUntil(Func<bool> condition)
    {
        for (long step = 0; step < StepLimit; step++)
        {
            StepApps(force: false);
            if (condition()) return;

            Instant? next = Instant.Earliest(Instant.Earliest(ClientToServer.NextArrival, ServerToClient.NextArrival),
                Instant.Earliest(Client.PollAt, Server.PollAt));
            next = Instant.Earliest(next, AppsWakeAt());
            if (next is null)
            {
                // Nothing is scheduled: let the apps read whatever is left, then it must be over.
                StepApps(force: true);
                if (condition()) return;
                next = Instant.Earliest(Instant.Earliest(ClientToServer.NextArrival, ServerToClient.NextArrival),
                    Instant.Earliest(Client.PollAt, Server.PollAt));
                if (next is null) throw new SimulationFailure("hung: nothing is scheduled and the exchange is not over");
            }
            if (next.Value > Now) Now = next.Value;
            if (Now - Instant.FromMilliseconds(1_000) > TimeLimit) throw new SimulationFailure($"hung: not finished after {TimeLimit} of virtual time");

            Deliver(ServerToClient, Client, ClientPool, "s->c");
            Deliver(ClientToServer, Server, ServerPool, "c->s");
            Client.Poll(Now);
            Server.Poll(Now);
        }
        throw new SimulationFailure($"hung: more than {StepLimit} steps");
    }

    /// <summary>Both apps closed, both layers empty, nothing on the wire.</summary>
    public bool Finished =>
        Array.TrueForAll(ClientApps, a => a.Done) && Array.TrueForAll(ServerApps, a => a.Done)
        && Client.ConnectionCount == 0 && Server.ConnectionCount == 0
        && ClientToServer.InFlight == 0 && ServerToClient.InFlight == 0;

    private void Deliver(SimPipe pipe, TcpLayer to, HeapBufferPool pool, string dir)
    {
        while (pipe.TryTake(Now, out var p))
        {
            try
            {
                _trace?.Append(CultureInfo.InvariantCulture, $"{Now} {dir} {Describe(p.Bytes.AsSpan(0, p.Length))}\n");
                var b = pool.Rent(AntHost.Inet.Core.Ip.IIpOutput.HeaderRoom, p.Length);
                if (b is null) continue;
                p.Bytes.AsSpan(0, p.Length).CopyTo(b.Append(p.Length));
                to.Receive(p.Source, p.Destination, b, Now);
            }
            finally
            {
                SimPipe.Recycle(p);
            }
        }
    }

    /// <summary>A one-line description of a TCP segment, for traces.</summary>
    public static string Describe(ReadOnlySpan<byte> s)
    {
        if (s.Length < 20) return $"runt {s.Length}";
        uint seq = System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(s[4..]);
        uint ack = System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(s[8..]);
        int off = (s[12] >> 4) * 4;
        byte f = s[13];
        ushort win = System.Buffers.Binary.BinaryPrimitives.ReadUInt16BigEndian(s[14..]);
        var flags = new StringBuilder();
        if ((f & 0x02) != 0) flags.Append('S');
        if ((f & 0x01) != 0) flags.Append('F');
        if ((f & 0x04) != 0) flags.Append('R');
        if ((f & 0x08) != 0) flags.Append('P');
        if ((f & 0x10) != 0) flags.Append('.');
        string ts = "";
        for (int i = 20; off <= s.Length && i + 1 < off;)
        {
            if (s[i] == 0) break;
            if (s[i] == 1) { i++; continue; }
            int len = s[i + 1];
            if (len < 2 || i + len > off) break;
            if (s[i] == 8 && len == 10)
                ts = string.Create(CultureInfo.InvariantCulture, $" ts={System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(s[(i + 2)..])}/{System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(s[(i + 6)..])}");
            i += len;
        }
        return string.Create(CultureInfo.InvariantCulture, $"[{flags}] seq={seq} ack={ack} win={win} len={s.Length - off} hdr={off}{ts}");
    }

    /// <summary>Checks the end state: complete streams, the IP seam's contract kept, no socket or buffer left.</summary>
    public void CheckEnd()
    {
        for (int i = 0; i < ClientApps.Length; i++)
            if (ClientApps[i].Received != Parameters.ServerBytes || ServerApps[i].Received != Parameters.ClientBytes)
                throw new SimulationFailure($"the streams of connection {i} are incomplete");
        foreach (var (name, ip) in new[] { ("client", ClientIp), ("server", ServerIp) })
            if (ip.ContractViolations > 0)
                throw new SimulationFailure($"{name}: {ip.ContractViolations} violations of the IIpOutput contract, first: {ip.FirstViolation}");
        // Every corrupted segment was delivered (corruption happens after the loss draw) and must
        // have been refused: by the checksum, or before it by the header's validation (a flipped
        // data offset or option length); nothing else in a simulation is malformed or corrupt.
        long caughtByServer = Server.Counters.ChecksumFailures + Server.Counters.Dropped(TcpDropReason.Malformed);
        long caughtByClient = Client.Counters.ChecksumFailures + Client.Counters.Dropped(TcpDropReason.Malformed);
        if (OnlyTheLinkCorrupts && (ClientToServer.Corrupted != caughtByServer || ServerToClient.Corrupted != caughtByClient))
            throw new SimulationFailure($"refused segments do not match the corruption: c->s corrupted {ClientToServer.Corrupted}, server refused {caughtByServer}; " +
                $"s->c corrupted {ServerToClient.Corrupted}, client refused {caughtByClient}");
        if (Client.SocketCount != 0 || Server.SocketCount != 0)
            throw new SimulationFailure($"sockets left open: client {Client.SocketCount}, server {Server.SocketCount}");
        if (ClientPool.Outstanding != 0 || ServerPool.Outstanding != 0)
            throw new SimulationFailure($"buffers leaked: client {ClientPool.Outstanding}, server {ServerPool.Outstanding}");
    }
}
