using AntHost.Inet.Core.Time;
using AntHost.Inet.Core.Wire;

namespace AntHost.Inet.Core.Ip;

/// <summary>
/// Path MTU per destination (RFC 1191), lowered by ICMP fragmentation-needed and
/// forgotten after an age, so that a path that grew is found again (RFC 1191 6.3).
/// </summary>
/// <remarks>
/// A report is believed only when it lowers the estimate (RFC 1191 6.1: "MUST NOT
/// increase its estimate"), and never below a floor: a report under it (an attacker's
/// favourite, RFC 5927 7.2) sets the floor and marks the path as one where datagrams may
/// be fragmented, so DF is cleared on it rather than sending ever-smaller segments.
/// A report of 0 (a router older than RFC 1191) takes the next plateau below the
/// quoted datagram's length (RFC 1191 5). The cache is a fixed array with an index;
/// when full, the entry closest to expiry is replaced.
/// </remarks>
internal sealed class PathMtuCache
{
    private struct Entry
    {
        public Ipv4Address Destination;
        public int Mtu;
        public bool AllowFragmentation;
        public Instant Expires;
        public bool Used;
    }

    /// <summary>RFC 1191 7, table 7-1: the plateaus, highest first.</summary>
    private static ReadOnlySpan<int> Plateaus => [65535, 32000, 17914, 8166, 4352, 2002, 1492, 1006, 508, 296, 68];

    private readonly Entry[] _entries;
    private readonly Dictionary<Ipv4Address, int> _index;
    private readonly int _linkMtu;
    private readonly int _floor;
    private readonly TimeSpan _age;

    public PathMtuCache(int capacity, int linkMtu, int floor, TimeSpan age)
    {
        _entries = new Entry[Math.Max(1, capacity)];
        _index = new Dictionary<Ipv4Address, int>(_entries.Length);
        _linkMtu = linkMtu;
        _floor = Math.Min(Math.Max(68, floor), linkMtu);
        _age = age;
    }

    public int Count => _index.Count;

    /// <summary>The path MTU towards <paramref name="destination"/> at <paramref name="now"/>.</summary>
    public int Get(Ipv4Address destination, Instant now, out bool allowFragmentation)
    {
        allowFragmentation = false;
        if (_index.Count == 0 || !_index.TryGetValue(destination, out int i)) return _linkMtu;
        ref var e = ref _entries[i];
        if (now >= e.Expires)
        {
            _index.Remove(destination);
            e = default;
            return _linkMtu;
        }
        allowFragmentation = e.AllowFragmentation;
        return e.Mtu;
    }

    /// <summary>
    /// Applies a fragmentation-needed report. <paramref name="reported"/> is the next-hop MTU
    /// field (0 if absent), <paramref name="quotedLength"/> the total length of the quoted
    /// datagram. Returns true when the estimate went down.
    /// </summary>
    public bool Lower(Ipv4Address destination, int reported, int quotedLength, Instant now)
    {
        int current = Get(destination, now, out _);
        int mtu = reported;
        if (mtu == 0)
        {
            // RFC 1191 5: guess the next plateau below the datagram that did not fit.
            mtu = 68;
            foreach (int p in Plateaus)
            {
                if (p < quotedLength) { mtu = p; break; }
            }
        }
        if (mtu >= current) return false;
        bool allowFragmentation = false;
        if (mtu < _floor)
        {
            mtu = _floor;
            allowFragmentation = true;
            if (mtu >= current && _index.ContainsKey(destination)) return false;
        }

        int slot;
        if (!_index.TryGetValue(destination, out slot))
        {
            slot = -1;
            if (_index.Count < _entries.Length)
            {
                for (int i = 0; i < _entries.Length; i++)
                    if (!_entries[i].Used) { slot = i; break; }
            }
            else
            {
                Instant soonest = Instant.MaxValue;
                for (int i = 0; i < _entries.Length; i++)
                    if (_entries[i].Expires < soonest) { soonest = _entries[i].Expires; slot = i; }
                _index.Remove(_entries[slot].Destination);
            }
            _index[destination] = slot;
        }
        _entries[slot] = new Entry
        {
            Destination = destination,
            Mtu = mtu,
            AllowFragmentation = allowFragmentation,
            Expires = now + _age,
            Used = true,
        };
        return true;
    }
}
