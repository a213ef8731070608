// A DNS stub resolver whose queries travel over AntHost's own UDP and TCP (InetSocket), never
// the host kernel's. It asks the configured servers for A records as glibc's stub does:
//
// - the search list: a name with fewer than ndots dots is tried with each search domain
//   first, then as it is; one with more the other way round; a final dot means as it is only;
// - each name: every server in turn, `attempts` rounds, each query waiting `timeout`; an
//   answer with TC set (too big for 512 bytes of UDP) is asked again over TCP of the same
//   server; SERVFAIL, REFUSED, a malformed answer, an ICMP port unreachable or silence move
//   on to the next server;
// - CNAME chains are followed in the answer, and asked again for their end when the answer
//   stops at a CNAME (at most 8 links);
// - answers are cached per name for the smallest TTL of the chain (capped).
//
// Failures are the SocketErrors .NET's Dns gives: a name that does not exist (NXDOMAIN, or a
// name with no A record) is HostNotFound; servers that fail or stay silent are TryAgain, both
// within attempts x servers x timeout. Each query's socket is closed whatever happens (its
// held receive canceled first), so nothing stays in inet.
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using AntHost.Client.Dns;

namespace AntHost.Client;

/// <summary>The stub resolver of an <see cref="InetStack"/> (see <see cref="InetStack.ResolveAsync"/>).</summary>
public sealed class InetResolver
{
    private const int MaxChain = 8;
    private const int MaxCacheEntries = 4096;

    private readonly InetStack _stack;
    private readonly ConcurrentDictionary<string, (IPAddress[] Addresses, long ExpiresAt)> _cache = new(StringComparer.Ordinal);
    private long _queries, _tcpQueries, _cacheHits, _timeouts, _failures;

    internal InetResolver(InetStack stack, DnsOptions options)
    {
        _stack = stack;
        Options = options;
    }

    /// <summary>The servers, search list and limits in use.</summary>
    public DnsOptions Options { get; }

    /// <summary>Queries sent (UDP and TCP).</summary>
    public long QueriesSent => Volatile.Read(ref _queries);

    /// <summary>Queries asked again over TCP because the UDP answer was truncated.</summary>
    public long TcpQueries => Volatile.Read(ref _tcpQueries);

    /// <summary>Lookups answered from the cache.</summary>
    public long CacheHits => Volatile.Read(ref _cacheHits);

    /// <summary>Queries that got no answer within the timeout.</summary>
    public long Timeouts => Volatile.Read(ref _timeouts);

    /// <summary>Answers that were malformed, SERVFAIL, REFUSED or not for the question.</summary>
    public long BadAnswers => Volatile.Read(ref _failures);

    /// <summary>Forgets every cached answer.</summary>
    public void FlushCache() => _cache.Clear();

    /// <summary>
    /// The IPv4 addresses of <paramref name="host"/> (an address literal is returned as it is).
    /// Throws a <see cref="SocketException"/>: HostNotFound when the name does not exist or has
    /// no address, TryAgain when no server gave an answer.
    /// </summary>
    public async Task<IPAddress[]> ResolveAsync(string host, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(host);
        if (IPAddress.TryParse(host, out var literal))
        {
            if (literal.AddressFamily == AddressFamily.InterNetwork) return [literal];
            throw InetErrors.Local(SocketError.AddressFamilyNotSupported, $"AntHost speaks IPv4, not {literal}");
        }
        if (DnsMessage.Invalid(host) is { } why) throw InetErrors.Local(SocketError.HostNotFound, $"'{host}' is not a host name: {why}");
        string key = host.ToLowerInvariant();
        if (_cache.TryGetValue(key, out var hit) && hit.ExpiresAt > Environment.TickCount64)
        {
            Interlocked.Increment(ref _cacheHits);
            return (IPAddress[])hit.Addresses.Clone();
        }
        if (Options.Servers.Count == 0)
            throw InetErrors.Local(SocketError.TryAgain, $"cannot resolve '{host}': no IPv4 name server is configured ({Options.Source ?? "DnsOptions"})");

        string? lastFailure = null;
        var tried = new List<string>();
        foreach (var name in Candidates(key))
        {
            tried.Add(name);
            var (addresses, ttl, failure) = await LookupAsync(name, cancellationToken).ConfigureAwait(false);
            if (addresses is { Length: > 0 })
            {
                var cap = Options.MaxCacheTtl;
                long ms = (long)Math.Min(ttl * 1000.0, cap.TotalMilliseconds);
                if (ms > 0)
                {
                    if (_cache.Count >= MaxCacheEntries) _cache.Clear();
                    _cache[key] = (addresses, Environment.TickCount64 + ms);
                }
                return (IPAddress[])addresses.Clone();
            }
            lastFailure ??= failure;
        }
        string servers = string.Join(", ", Options.Servers);
        if (lastFailure is not null)
            throw InetErrors.Local(SocketError.TryAgain, $"cannot resolve '{host}': {lastFailure} (servers {servers}; tried {string.Join(", ", tried)})");
        throw InetErrors.Local(SocketError.HostNotFound, $"no such host is known: '{host}' (servers {servers} answered: no such name; tried {string.Join(", ", tried)})");
    }

    /// <summary>The names to ask, in order (resolv.conf's search and ndots rules).</summary>
    internal IEnumerable<string> Candidates(string host)
    {
        if (host.EndsWith('.'))
        {
            yield return host.TrimEnd('.');
            yield break;
        }
        int dots = host.Count(c => c == '.');
        if (dots >= Options.Ndots) yield return host;
        foreach (var domain in Options.Search) yield return host + "." + domain;
        if (dots < Options.Ndots) yield return host;
    }

    /// <summary>One name's addresses with the chain's smallest TTL; or no addresses and why (null: the name does not exist).</summary>
    private async Task<(IPAddress[]? Addresses, uint Ttl, string? Failure)> LookupAsync(string name, CancellationToken ct)
    {
        string current = name;
        uint ttl = uint.MaxValue;
        for (int links = 0; links <= MaxChain; links++)
        {
            var (answer, failure) = await AskAsync(current, ct).ConfigureAwait(false);
            if (answer is null) return (null, 0, failure);
            if (answer.Rcode == DnsRcode.NameError) return (null, 0, null);
            // Follow the chain inside this answer.
            var addresses = new List<IPAddress>();
            for (int hop = 0; hop <= MaxChain; hop++)
            {
                foreach (var r in answer.Records)
                    if (r.Type == DnsMessage.TypeA && r.Owner == current)
                    {
                        addresses.Add(r.Address!);
                        ttl = Math.Min(ttl, r.Ttl);
                    }
                if (addresses.Count > 0) return (addresses.ToArray(), ttl, null);
                var cname = answer.Records.FirstOrDefault(r => r.Type == DnsMessage.TypeCname && r.Owner == current);
                if (cname.Target is null) break;
                ttl = Math.Min(ttl, cname.Ttl);
                current = cname.Target;
            }
            // No A record: either the chain ends at a name this answer has nothing more for
            // (ask for it), or the name has no address (NODATA: as .NET, no such host).
            if (current == answer.Question) return (null, 0, null);
        }
        return (null, 0, $"the CNAME chain of {name} is longer than {MaxChain}");
    }

    /// <summary>Asks the servers for <paramref name="name"/> until one gives a usable answer (NOERROR or NXDOMAIN).</summary>
    private async Task<(DnsAnswer? Answer, string Failure)> AskAsync(string name, CancellationToken ct)
    {
        string failure = "no server was asked";
        var sw = Stopwatch.StartNew();
        for (int attempt = 0; attempt < Options.Attempts; attempt++)
            foreach (var server in Options.Servers)
            {
                ct.ThrowIfCancellationRequested();
                try
                {
                    var answer = await QueryAsync(server, name, tcp: false, ct).ConfigureAwait(false);
                    if (answer.Truncated)
                    {
                        Interlocked.Increment(ref _tcpQueries);
                        answer = await QueryAsync(server, name, tcp: true, ct).ConfigureAwait(false);
                    }
                    if (answer.Rcode is DnsRcode.NoError or DnsRcode.NameError) return (answer, "");
                    Interlocked.Increment(ref _failures);
                    failure = $"{server} answered {answer.Rcode}";
                }
                catch (TimeoutException)
                {
                    Interlocked.Increment(ref _timeouts);
                    failure = $"no answer from {server} within {Options.Timeout.TotalSeconds:0.#} s ({Options.Attempts} attempt(s), {sw.Elapsed.TotalSeconds:0.#} s in all)";
                }
                catch (InvalidDataException e)
                {
                    Interlocked.Increment(ref _failures);
                    failure = $"{server}: {e.Message}";
                }
                catch (SocketException e) when (e.SocketErrorCode is not (SocketError.NetworkDown or SocketError.OperationAborted))
                {
                    failure = $"{server}: {e.Message}";
                }
            }
        return (null, failure);
    }

    /// <summary>One query to one server over UDP or TCP; throws TimeoutException when it is not answered in time.</summary>
    private async Task<DnsAnswer> QueryAsync(IPEndPoint server, string name, bool tcp, CancellationToken ct)
    {
        ushort id = (ushort)RandomNumberGenerator.GetInt32(0, 65536);
        byte[] query = DnsMessage.Query(id, name);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(Options.Timeout);
        Interlocked.Increment(ref _queries);
        var socket = tcp ? new InetSocket(_stack, SocketType.Stream, ProtocolType.Tcp) : new InetSocket(_stack, SocketType.Dgram, ProtocolType.Udp);
        try
        {
            if (tcp)
            {
                await socket.ConnectAsync(server, timeout.Token).ConfigureAwait(false);
                var framed = new byte[2 + query.Length];
                framed[0] = (byte)(query.Length >> 8);
                framed[1] = (byte)query.Length;
                query.CopyTo(framed, 2);
                await socket.SendAsync(framed, timeout.Token).ConfigureAwait(false);
                var len = new byte[2];
                await ReceiveExactlyAsync(socket, len, timeout.Token).ConfigureAwait(false);
                var body = new byte[(len[0] << 8) | len[1]];
                await ReceiveExactlyAsync(socket, body, timeout.Token).ConfigureAwait(false);
                return Check(DnsMessage.Parse(body), id, name, server);
            }
            socket.Connect(server);
            await socket.SendAsync(query, timeout.Token).ConfigureAwait(false);
            var buffer = new byte[DnsMessage.MaxUdpAnswer * 2];
            while (true)
            {
                int n = await socket.ReceiveAsync(buffer, timeout.Token).ConfigureAwait(false);
                var answer = DnsMessage.Parse(buffer.AsSpan(0, n));
                // An answer to another (older) query of this port is dropped, as a stub does.
                if (answer is not null && answer.Id != id) continue;
                return Check(answer, id, name, server);
            }
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            throw new TimeoutException($"no answer from {server} for {name} within {Options.Timeout}");
        }
        finally
        {
            socket.Dispose();
        }
    }

    private static DnsAnswer Check(DnsAnswer? answer, ushort id, string name, IPEndPoint server)
    {
        if (answer is null) throw new InvalidDataException($"a malformed answer for {name}");
        if (answer.Id != id || !string.Equals(answer.Question, name, StringComparison.OrdinalIgnoreCase))
            throw new InvalidDataException($"an answer from {server} that is not for the query ({answer.Question}, id {answer.Id})");
        return answer;
    }

    private static async Task ReceiveExactlyAsync(InetSocket socket, Memory<byte> into, CancellationToken ct)
    {
        int got = 0;
        while (got < into.Length)
        {
            int n = await socket.ReceiveAsync(into[got..], ct).ConfigureAwait(false);
            if (n == 0) throw new InvalidDataException($"the TCP answer ended after {got} of {into.Length} bytes");
            got += n;
        }
    }
}
