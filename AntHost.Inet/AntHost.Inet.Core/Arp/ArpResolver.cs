using AntHost.Inet.Core.Buffers;
using AntHost.Inet.Core.Counters;
using AntHost.Inet.Core.Iface;
using AntHost.Inet.Core.Time;
using AntHost.Inet.Core.Wire;

namespace AntHost.Inet.Core.Arp;

/// <summary>The state of a neighbour cache entry (the names of RFC 4861 7.3.2, which ARP lacks).</summary>
public enum NeighborState : byte
{
    Free,
    /// <summary>Resolving: broadcast requests are out, packets wait.</summary>
    Incomplete,
    /// <summary>Confirmed within <see cref="ArpConfig.ReachableTime"/>.</summary>
    Reachable,
    /// <summary>Older than that, or learned without our asking; still used.</summary>
    Stale,
    /// <summary>A stale entry in use: unicast requests are out to confirm it.</summary>
    Probe,
}

/// <summary>What <see cref="ArpResolver.Resolve"/> did with a packet.</summary>
internal enum ResolveResult
{
    /// <summary>The MAC is known; the caller sends now.</summary>
    Resolved,
    /// <summary>The packet waits in the entry's queue (ownership taken).</summary>
    Queued,
    /// <summary>The packet was dropped and counted (ownership taken).</summary>
    Dropped,
}

/// <summary>
/// ARP (RFC 826) for one interface: the neighbour cache, the packets waiting for a
/// resolution, requests and their retries, replies for our address, and gratuitous
/// announcements.
/// </summary>
/// <remarks>
/// The cache is a fixed array of entries with an index by address, so nothing is
/// allocated per packet. Each entry has a bounded queue of IPv4 datagrams (their IP
/// header written, the Ethernet header not yet) in a slice of one flat array.
///
/// Entry life: a send to an unknown address makes an Incomplete entry and broadcasts a
/// request, repeated every <see cref="ArpConfig.RetransmitInterval"/> up to
/// <see cref="ArpConfig.MaxRequests"/> times (RFC 1122 2.3.2.1 limits the rate to one per
/// second). No reply: the waiting datagrams are dropped and each transport is told, through
/// the same path as a received ICMP host-unreachable (an <see cref="Ip.IcmpError"/> of kind
/// Unreachable, type 3 code 1, synthesized from the datagram), so TCP and UDP handle a
/// local resolution failure exactly as a router's report. A reply makes the entry Reachable;
/// after <see cref="ArpConfig.ReachableTime"/> it goes Stale but stays usable (RFC 1122
/// 2.3.2.1's "unicast poll"): the first send through a stale entry moves it to Probe, which
/// unicasts up to <see cref="ArpConfig.MaxProbes"/> requests to the cached MAC; no answer
/// flushes the entry. A stale entry unused for <see cref="ArpConfig.StaleTime"/> is freed.
///
/// Receiving follows RFC 826's packet reception algorithm (an entry is created only when the
/// packet is for our address), hardened against a host on the link that forges answers,
/// as Linux's neighbour code is with its lock time and more:
/// <list type="bullet">
/// <item>Only an answer to a question confirms: a reply for our address makes an entry
/// Reachable when we have a request out for it (Incomplete, or Probe from its cached MAC).
/// Any other packet from a known address confirms nothing; a reply nobody asked for is
/// counted (<see cref="Counter.ArpRefusedUnsolicited"/>) and creates no entry.</item>
/// <item>A MAC that differs from the cached one is a claim, never believed outright. Within
/// <see cref="ArpConfig.LockTime"/> of the entry's MAC being set or confirmed it is refused
/// (<see cref="Counter.ArpRefusedLocked"/>: of two answers to one request the first wins).
/// After it, the cached MAC is asked by unicast probes (<see cref="Counter.ArpChangeProbes"/>);
/// traffic keeps going to it meanwhile. If the old owner answers, the claim is refused
/// (<see cref="Counter.ArpRefusedChange"/>); if it stays silent for
/// <see cref="ArpConfig.MaxProbes"/> probes, the claimed MAC is taken, unconfirmed (Stale,
/// so its first use probes it in turn; <see cref="Counter.ArpChangesAccepted"/>).</item>
/// <item>A gratuitous ARP (sender address = target address) neither changes a cached MAC nor
/// adds an address unless <see cref="ArpConfig.AcceptGratuitous"/> says so
/// (<see cref="Counter.ArpRefusedGratuitous"/>); accepted, it is believed at once. For an
/// address being resolved it counts as any packet from the host (the MAC, unconfirmed).</item>
/// </list>
/// A packet claiming our own address from another MAC is a conflict: counted, and never let
/// into the cache. A packet whose sender hardware address is not the Ethernet frame's source
/// is refused (RFC 826 does not ask this; it keeps one damaged packet from redirecting a
/// neighbour's traffic). The packets waiting for resolution are bounded per address and
/// altogether (<see cref="ArpConfig.PendingTotal"/>), so that answers to a flood from
/// addresses nobody owns cannot hold the buffer pool.
/// </remarks>
public sealed class ArpResolver
{
    private struct Entry
    {
        public Ipv4Address Ip;
        public MacAddress Mac;
        public NeighborState State;
        public byte Sent;            // requests or probes sent in the current round
        public Instant Timer;        // next retry (Incomplete, Probe) or next state change (Reachable, Stale)
        public Instant LastUsed;
        public Instant Updated;      // the MAC was last set or confirmed (the lock time runs from it)
        public MacAddress Claimed;   // another MAC claiming the address, being checked by probes (Zero: none)
        public int PendingCount;
        public int PendingHead;
    }

    private readonly Interface _iface;
    private readonly ArpConfig _config;
    private readonly Entry[] _entries;
    private readonly Dictionary<Ipv4Address, int> _index;
    private readonly PacketBuffer?[] _pending;
    private readonly int _perEntry;
    private int _used;
    private int _held;

    internal ArpResolver(Interface iface, ArpConfig config)
    {
        if (config.CacheCapacity < 1 || config.PendingPerAddress < 1 || config.MaxRequests < 1)
            throw new ArgumentException("the ARP cache needs at least one entry, one pending packet and one request", nameof(config));
        _iface = iface;
        _config = config;
        _entries = new Entry[config.CacheCapacity];
        _index = new Dictionary<Ipv4Address, int>(config.CacheCapacity);
        _perEntry = config.PendingPerAddress;
        _pending = new PacketBuffer?[config.CacheCapacity * _perEntry];
    }

    /// <summary>Entries in use.</summary>
    public int Count => _used;

    /// <summary>Entries the cache can hold (slots of <see cref="TryGetSlot"/>).</summary>
    public int Capacity => _entries.Length;

    /// <summary>The entry in slot <paramref name="slot"/> if it is in use (for the ARP table of <c>anthost ss --arp</c>).</summary>
    public bool TryGetSlot(int slot, out Ipv4Address address, out MacAddress mac, out NeighborState state)
    {
        if ((uint)slot < (uint)_entries.Length && _entries[slot].State != NeighborState.Free
            && _index.TryGetValue(_entries[slot].Ip, out int i) && i == slot)
        {
            address = _entries[slot].Ip;
            mac = _entries[slot].Mac;
            state = _entries[slot].State;
            return true;
        }
        address = default;
        mac = default;
        state = NeighborState.Free;
        return false;
    }

    internal int HeldBuffers => _held;

    /// <summary>The cached MAC and state of <paramref name="address"/>, for display and tests.</summary>
    public bool TryGet(Ipv4Address address, out MacAddress mac, out NeighborState state)
    {
        if (_index.TryGetValue(address, out int i))
        {
            mac = _entries[i].Mac;
            state = _entries[i].State;
            return true;
        }
        mac = default;
        state = NeighborState.Free;
        return false;
    }

    /// <summary>
    /// Finds the MAC for <paramref name="nextHop"/>. When it is unknown the datagram is
    /// queued (or dropped, counted) and the resolver owns it; when known, the caller keeps it.
    /// </summary>
    internal ResolveResult Resolve(Ipv4Address nextHop, PacketBuffer datagram, Instant now, out MacAddress mac)
    {
        if (_index.TryGetValue(nextHop, out int i))
        {
            ref var e = ref _entries[i];
            e.LastUsed = now;
            switch (e.State)
            {
                case NeighborState.Reachable:
                case NeighborState.Probe:
                    mac = e.Mac;
                    return ResolveResult.Resolved;
                case NeighborState.Stale:
                    // RFC 1122 2.3.2.1: confirm an entry in use by unicast requests to it.
                    mac = e.Mac;
                    e.State = NeighborState.Probe;
                    e.Sent = 1;
                    e.Timer = now + _config.RetransmitInterval;
                    SendRequest(nextHop, e.Mac);
                    return ResolveResult.Resolved;
                default: // Incomplete
                    mac = default;
                    return Enqueue(ref e, datagram);
            }
        }

        mac = default;
        int slot = Allocate(nextHop, now);
        if (slot < 0)
        {
            _iface.Counters.Drop(TxDrop.ArpTableFull);
            datagram.FinishTransmit();
            return ResolveResult.Dropped;
        }
        ref var n = ref _entries[slot];
        n.State = NeighborState.Incomplete;
        n.Sent = 1;
        n.Timer = now + _config.RetransmitInterval;
        SendRequest(nextHop, MacAddress.Broadcast);
        return Enqueue(ref n, datagram);
    }

    private ResolveResult Enqueue(ref Entry e, PacketBuffer datagram)
    {
        if (e.PendingCount == _perEntry)
        {
            _iface.Counters.Drop(TxDrop.ArpQueueFull);
            datagram.FinishTransmit();
            return ResolveResult.Dropped;
        }
        if (_held >= _config.PendingTotal)
        {
            _iface.Counters.Drop(TxDrop.ArpPendingFull);
            datagram.FinishTransmit();
            return ResolveResult.Dropped;
        }
        int baseIndex = IndexOf(ref e) * _perEntry;
        _pending[baseIndex + (e.PendingHead + e.PendingCount) % _perEntry] = datagram;
        e.PendingCount++;
        _held++;
        return ResolveResult.Queued;
    }

    private int IndexOf(ref Entry e) =>
        (int)(System.Runtime.CompilerServices.Unsafe.ByteOffset(ref _entries[0], ref e) / System.Runtime.CompilerServices.Unsafe.SizeOf<Entry>());

    /// <summary>An ARP packet (the Ethernet header trimmed); ownership passes in. <paramref name="ethernetSource"/> is the frame's source MAC.</summary>
    internal void Receive(PacketBuffer packet, MacAddress ethernetSource, Instant now)
    {
        var counters = _iface.Counters;
        if (!ArpPacket.TryCreate(packet.Data, out var arp)) { _iface.DropRx(packet, RxDrop.ArpMalformed); return; }
        var op = arp.OperationValue;
        if (op is not ((ushort)ArpOperation.Request or (ushort)ArpOperation.Reply)) { _iface.DropRx(packet, RxDrop.ArpBadOperation); return; }
        var senderMac = arp.SenderHardware;
        var senderIp = arp.SenderProtocol;
        var targetIp = arp.TargetProtocol;
        if (senderMac.IsMulticast || senderMac == MacAddress.Zero || senderIp.IsBroadcast || senderIp.IsMulticast || senderIp.IsLoopback)
        {
            _iface.DropRx(packet, RxDrop.ArpBadSender);
            return;
        }
        if (senderMac != ethernetSource)
        {
            // A station answers for itself, so the frame's source and the sender hardware
            // address agree; when they do not, the packet was damaged (a cache poisoned by one
            // flipped bit sends every datagram to nobody until the entry ages out) or forged.
            _iface.DropRx(packet, RxDrop.ArpSenderMismatch);
            return;
        }
        if (senderIp == _iface.Address)
        {
            // Someone else claims our address (RFC 5227 2.4); our own frames never get here.
            _iface.DropRx(packet, RxDrop.ArpAddressConflict);
            return;
        }
        counters.Add(op == (ushort)ArpOperation.Request ? Counter.ArpRequestsIn : Counter.ArpRepliesIn);
        counters.Add(Counter.ArpIn);
        bool forUs = targetIp == _iface.Address;
        bool isReply = op == (ushort)ArpOperation.Reply;
        // RFC 5227's announcement (a request) or a gratuitous reply: sender and target address equal.
        bool gratuitous = senderIp == targetIp;
        packet.Release();

        if (!senderIp.IsUnspecified)
        {
            if (_index.TryGetValue(senderIp, out int i))
            {
                // RFC 826: "If the pair <protocol type, sender protocol address> is already in my
                // translation table, update the sender hardware address field of the entry" -
                // here only as far as the rules above let it.
                Update(ref _entries[i], senderMac, answer: isReply && forUs, gratuitous, now);
            }
            else if (senderIp.IsInSubnet(_iface.Address, _iface.Config.PrefixLength))
            {
                // RFC 826: "If Merge_flag is false, add the triplet" - for a request to us, whose
                // sender is about to talk to us (as Linux does); learned without asking, so
                // stale, and the first use confirms it. A reply to us when there is no entry
                // answers no question of ours.
                if ((forUs && !isReply) || (gratuitous && _config.AcceptGratuitous)) Learn(senderIp, senderMac, now);
                else if (isReply && forUs) counters.Add(Counter.ArpRefusedUnsolicited);
            }
        }

        if (forUs && !isReply)
            SendReply(senderMac, senderIp);
    }

    /// <summary>What a packet from <paramref name="mac"/> for a cached address does to its entry (see the remarks).</summary>
    private void Update(ref Entry e, MacAddress mac, bool answer, bool gratuitous, Instant now)
    {
        var counters = _iface.Counters;
        if (e.State == NeighborState.Incomplete)
        {
            // Resolving: an answer to our request confirms; a packet the host sent on its own
            // (its request for us, its announcement) gives the MAC unconfirmed, as the first
            // answer would have (so nobody gains by it who could not answer our broadcast).
            // Either way the waiting packets go.
            e.Mac = mac;
            if (answer) Confirm(ref e, now);
            else MakeStale(ref e, now);
            Flush(ref e);
            return;
        }
        if (gratuitous && !_config.AcceptGratuitous)
        {
            if (e.Mac != mac) counters.Add(Counter.ArpRefusedGratuitous);
            return;
        }
        if (mac == e.Mac)
        {
            if (answer && e.State == NeighborState.Probe)
            {
                // The owner answered our unicast probe. If another MAC had claimed the address
                // meanwhile, the owner is alive and the claim was false.
                if (e.Claimed != MacAddress.Zero) counters.Add(Counter.ArpRefusedChange);
                Confirm(ref e, now);
            }
            else if (answer) counters.Add(Counter.ArpRefusedUnsolicited);
            // Anything else the known MAC says confirms nothing: a packet addressed to us is not
            // proof that the path to its sender works.
            return;
        }

        // Another MAC claims a cached address.
        if (gratuitous)
        {
            // Accepted by configuration: an address moved to another host.
            e.Mac = mac;
            MakeStale(ref e, now);
            counters.Add(Counter.ArpChangesAccepted);
            return;
        }
        if (now - e.Updated < _config.LockTime)
        {
            counters.Add(Counter.ArpRefusedLocked);
            return;
        }
        if (e.Claimed == mac) return; // already being checked
        // Ask the MAC we trust whether it still holds the address; traffic keeps going to it.
        if (e.Claimed == MacAddress.Zero) counters.Add(Counter.ArpChangeProbes);
        e.Claimed = mac;
        if (e.State != NeighborState.Probe)
        {
            e.State = NeighborState.Probe;
            e.Sent = 1;
            e.Timer = now + _config.RetransmitInterval;
            SendRequest(e.Ip, e.Mac);
        }
    }

    /// <summary>The entry's MAC answered us: reachable for <see cref="ArpConfig.ReachableTime"/>.</summary>
    private void Confirm(ref Entry e, Instant now)
    {
        e.State = NeighborState.Reachable;
        e.Claimed = MacAddress.Zero;
        e.Sent = 0;
        e.Updated = now;
        e.Timer = now + _config.ReachableTime;
    }

    /// <summary>The entry has a MAC nobody confirmed yet: usable, and its next use probes it.</summary>
    private void MakeStale(ref Entry e, Instant now)
    {
        e.State = NeighborState.Stale;
        e.Claimed = MacAddress.Zero;
        e.Sent = 0;
        e.Updated = now;
        e.Timer = (e.LastUsed > now ? e.LastUsed : now) + _config.StaleTime;
    }

    private void Learn(Ipv4Address ip, MacAddress mac, Instant now)
    {
        int slot = Allocate(ip, now);
        if (slot < 0) return;
        ref var n = ref _entries[slot];
        n.Mac = mac;
        MakeStale(ref n, now);
    }

    /// <summary>
    /// Asks for <paramref name="address"/> now, as its first use would: a broadcast request for
    /// an unknown address, a unicast probe of a stale entry; nothing for one being resolved,
    /// probed or reachable. The answer confirms the entry (Reachable).
    /// </summary>
    internal void Solicit(Ipv4Address address, Instant now)
    {
        if (_index.TryGetValue(address, out int i))
        {
            ref var e = ref _entries[i];
            if (e.State != NeighborState.Stale) return;
            e.State = NeighborState.Probe;
            e.Sent = 1;
            e.Timer = now + _config.RetransmitInterval;
            SendRequest(address, e.Mac);
            return;
        }
        int slot = Allocate(address, now);
        if (slot < 0) return;
        ref var n = ref _entries[slot];
        n.State = NeighborState.Incomplete;
        n.Sent = 1;
        n.Timer = now + _config.RetransmitInterval;
        SendRequest(address, MacAddress.Broadcast);
    }

    /// <summary>Sends every datagram waiting on a now-resolved entry.</summary>
    private void Flush(ref Entry e)
    {
        int baseIndex = IndexOf(ref e) * _perEntry;
        var mac = e.Mac;
        while (e.PendingCount > 0)
        {
            ref var slot = ref _pending[baseIndex + e.PendingHead];
            var p = slot!;
            slot = null;
            e.PendingHead = (e.PendingHead + 1) % _perEntry;
            e.PendingCount--;
            _held--;
            _iface.SendFrame(p, mac, EtherType.Ipv4);
        }
        e.PendingHead = 0;
    }

    internal void Poll(Instant now)
    {
        if (_used == 0) return;
        for (int i = 0; i < _entries.Length; i++)
        {
            ref var e = ref _entries[i];
            if (e.State == NeighborState.Free || e.Timer > now) continue;
            switch (e.State)
            {
                case NeighborState.Incomplete:
                    if (e.Sent < _config.MaxRequests)
                    {
                        e.Sent++;
                        e.Timer = now + _config.RetransmitInterval;
                        SendRequest(e.Ip, MacAddress.Broadcast);
                    }
                    else
                    {
                        _iface.Counters.Add(Counter.ArpFailures);
                        Fail(ref e, now);
                    }
                    break;
                case NeighborState.Probe:
                    if (e.Sent < _config.MaxProbes)
                    {
                        e.Sent++;
                        e.Timer = now + _config.RetransmitInterval;
                        SendRequest(e.Ip, e.Mac);
                    }
                    else if (e.Claimed != MacAddress.Zero)
                    {
                        // The old MAC is silent: the host that claimed the address has it now.
                        e.Mac = e.Claimed;
                        MakeStale(ref e, now);
                        _iface.Counters.Add(Counter.ArpChangesAccepted);
                    }
                    else
                    {
                        _iface.Counters.Add(Counter.ArpFailures);
                        Free(ref e);
                    }
                    break;
                case NeighborState.Reachable:
                    e.State = NeighborState.Stale;
                    e.Timer = (e.LastUsed > now ? e.LastUsed : now) + _config.StaleTime;
                    break;
                case NeighborState.Stale:
                    if (now - e.LastUsed >= _config.StaleTime) Free(ref e);
                    else e.Timer = e.LastUsed + _config.StaleTime;
                    break;
            }
        }
    }

    /// <summary>The earliest entry timer, or null.</summary>
    internal Instant? PollAt
    {
        get
        {
            if (_used == 0) return null;
            Instant? at = null;
            for (int i = 0; i < _entries.Length; i++)
                if (_entries[i].State != NeighborState.Free)
                    at = Instant.Earliest(at, _entries[i].Timer);
            return at;
        }
    }

    /// <summary>Drops every entry and every waiting datagram (the interface went down).</summary>
    internal void Flush(Instant now)
    {
        for (int i = 0; i < _entries.Length; i++)
        {
            ref var e = ref _entries[i];
            if (e.State == NeighborState.Free) continue;
            if (e.PendingCount > 0) Fail(ref e, now);
            else Free(ref e);
        }
    }

    /// <summary>Resolution failed: every waiting datagram is dropped and its transport told "host unreachable".</summary>
    private void Fail(ref Entry e, Instant now)
    {
        // Out of the index first: a transport that sends again while it hears of the
        // failure starts a fresh resolution instead of queueing on this dying entry.
        _index.Remove(e.Ip);
        int baseIndex = IndexOf(ref e) * _perEntry;
        while (e.PendingCount > 0)
        {
            ref var slot = ref _pending[baseIndex + e.PendingHead];
            var p = slot!;
            slot = null;
            e.PendingHead = (e.PendingHead + 1) % _perEntry;
            e.PendingCount--;
            _held--;
            _iface.Counters.Drop(TxDrop.ArpFailed);
            _iface.Icmp.DeliverLocalError(IcmpType.DestinationUnreachable, (byte)IcmpUnreachableCode.Host, p.Data, now);
            p.FinishTransmit();
        }
        e = default;
        _used--;
    }

    private int Allocate(Ipv4Address ip, Instant now)
    {
        int slot = -1;
        if (_used < _entries.Length)
        {
            for (int i = 0; i < _entries.Length; i++)
                if (_entries[i].State == NeighborState.Free) { slot = i; break; }
        }
        else
        {
            // Full: evict the least recently used stale entry; resolving and confirmed ones stay.
            Instant oldest = Instant.MaxValue;
            for (int i = 0; i < _entries.Length; i++)
            {
                if (_entries[i].State == NeighborState.Stale && _entries[i].LastUsed < oldest)
                {
                    oldest = _entries[i].LastUsed;
                    slot = i;
                }
            }
            if (slot < 0) return -1;
            Free(ref _entries[slot]);
        }
        ref var e = ref _entries[slot];
        e = default;
        e.Ip = ip;
        e.LastUsed = now;
        _index[ip] = slot;
        _used++;
        return slot;
    }

    private void Free(ref Entry e)
    {
        _index.Remove(e.Ip);
        e = default;
        _used--;
    }

    /// <summary>A request for <paramref name="target"/>, broadcast or unicast to a cached MAC.</summary>
    private void SendRequest(Ipv4Address target, MacAddress to) =>
        Send(ArpOperation.Request, to, MacAddress.Zero, target, Counter.ArpRequestsOut);

    private void SendReply(MacAddress toMac, Ipv4Address toIp) =>
        Send(ArpOperation.Reply, toMac, toMac, toIp, Counter.ArpRepliesOut);

    /// <summary>RFC 5227 2.3: a request with our address as both sender and target, broadcast.</summary>
    internal void SendAnnouncement()
    {
        _iface.Counters.Add(Counter.ArpAnnouncements);
        Send(ArpOperation.Request, MacAddress.Broadcast, MacAddress.Zero, _iface.Address, Counter.ArpRequestsOut);
    }

    private void Send(ArpOperation op, MacAddress ethDestination, MacAddress targetMac, Ipv4Address targetIp, Counter counter)
    {
        var b = _iface.Pool.Rent(EthernetFrame.HeaderLength, EthernetFrame.MinimumFrameLength);
        if (b is null)
        {
            _iface.Counters.Drop(TxDrop.NoBuffer);
            return;
        }
        // Padded to the medium's minimum frame with zeros.
        var body = b.Append(EthernetFrame.MinimumFrameLength - EthernetFrame.HeaderLength);
        body.Clear();
        new ArpHeader(op, _iface.Mac, _iface.Address, targetMac, targetIp).WriteTo(body);
        _iface.Counters.Add(counter);
        _iface.SendFrame(b, ethDestination, EtherType.Arp);
    }
}
