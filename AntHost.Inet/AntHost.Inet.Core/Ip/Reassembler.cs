using System.Buffers.Binary;
using AntHost.Inet.Core.Buffers;
using AntHost.Inet.Core.Counters;
using AntHost.Inet.Core.Iface;
using AntHost.Inet.Core.Time;
using AntHost.Inet.Core.Wire;

namespace AntHost.Inet.Core.Ip;

/// <summary>
/// IPv4 reassembly (RFC 791 3.2, RFC 1122 3.3.2) with limits on time, slots, fragments
/// and memory.
/// </summary>
/// <remarks>
/// Fragments are kept as they came, in their receive buffers (no copy until the datagram
/// is complete), sorted by offset in a fixed per-datagram array. Because no two held
/// fragments overlap, the datagram is complete exactly when its end is known (a fragment
/// without MF arrived) and the held payload bytes add up to it; this is RFC 815's hole
/// list reduced to a count, which the sorted array makes safe.
///
/// Overlaps: an exact duplicate (same offset, same length: a retransmitted or duplicated
/// fragment) is dropped alone; any other overlap discards the whole datagram, as RFC 5722
/// requires for IPv6 and Linux does for IPv4 since the FragmentSmack fixes, because
/// overlapping fragments are how firewalls and IDSs are evaded and no sender makes them.
///
/// Limits: at most <see cref="ReassemblyConfig.MaxDatagrams"/> datagrams and
/// <see cref="ReassemblyConfig.MemoryLimit"/> bytes of buffer capacity held (the oldest
/// datagram is evicted to make room), <see cref="ReassemblyConfig.MaxFragmentsPerDatagram"/>
/// fragments per datagram, and <see cref="ReassemblyConfig.Timeout"/> from the first
/// fragment; a datagram that times out after its first fragment (offset 0) arrived is
/// reported with ICMP time exceeded, code 1 (RFC 1122 3.3.2, RFC 792).
///
/// The complete datagram is copied once into a buffer rented for its full length (the
/// pool must hand out buffers that large, or the datagram is dropped and counted).
/// </remarks>
internal sealed class Reassembler
{
    private struct Slot
    {
        public bool Used;
        public Ipv4Address Source, Destination;
        public ushort Id;
        public byte Protocol;
        public Instant Deadline;
        public Instant Created;
        public int Count;
        public int End;          // payload length once the last fragment is known, else -1
        public int Received;     // payload bytes held
        public int Memory;       // buffer capacity held
    }

    private readonly Interface _iface;
    private readonly ReassemblyConfig _config;
    private readonly Slot[] _slots;
    private readonly PacketBuffer?[] _fragments;   // [slot * perDatagram + k], sorted by offset
    private readonly int[] _offsets;               // payload offset of each
    private readonly int[] _lengths;               // payload length of each
    private readonly int _per;
    private int _memory;
    private int _held;

    public Reassembler(Interface iface, ReassemblyConfig config)
    {
        if (config.MaxDatagrams < 1 || config.MaxFragmentsPerDatagram < 2 || config.MemoryLimit < 1)
            throw new ArgumentException("reassembly needs a slot, two fragments a datagram and some memory", nameof(config));
        _iface = iface;
        _config = config;
        _slots = new Slot[config.MaxDatagrams];
        _per = config.MaxFragmentsPerDatagram;
        _fragments = new PacketBuffer?[_slots.Length * _per];
        _offsets = new int[_fragments.Length];
        _lengths = new int[_fragments.Length];
    }

    public int HeldBuffers => _held;

    public int MemoryInUse => _memory;

    /// <summary>
    /// A fragment whose data is the whole IP datagram (validated, trimmed to its total length);
    /// ownership passes in. Returns the reassembled datagram (data = header + payload) when
    /// this fragment completed one, else null (the fragment is held or was dropped, counted).
    /// </summary>
    public PacketBuffer? Accept(PacketBuffer fragment, Instant now)
    {
        var counters = _iface.Counters;
        Ipv4Packet.TryCreate(fragment.Data, out var ip);
        int ihl = ip.HeaderLength;
        int offset = ip.FragmentOffset;
        int length = ip.TotalLength - ihl;
        bool more = ip.MoreFragments;

        // RFC 791: every fragment but the last carries a multiple of 8 bytes; nothing may
        // reach past 65535 (the "ping of death"); an empty fragment says nothing.
        if ((more && (length & 7) != 0) || length == 0 || offset + length + ihl > Ipv4Packet.MaxTotalLength)
        {
            _iface.DropRx(fragment, RxDrop.FragmentInvalid);
            return null;
        }

        int s = Find(ip.Source, ip.Destination, ip.Identification, ip.Protocol);
        if (s < 0)
        {
            s = AllocateSlot(now);
            ref var n = ref _slots[s];
            n.Used = true;
            n.Source = ip.Source;
            n.Destination = ip.Destination;
            n.Id = ip.Identification;
            n.Protocol = ip.Protocol;
            n.Created = now;
            n.Deadline = now + _config.Timeout;
            n.End = -1;
        }
        ref var slot = ref _slots[s];
        int baseIndex = s * _per;

        // The end of the datagram: once known, it may not move, and nothing may pass it.
        int fragEnd = offset + length;
        if ((!more && slot.End >= 0 && slot.End != fragEnd) || (slot.End >= 0 && fragEnd > slot.End)
            || (!more && HasDataBeyond(baseIndex, slot.Count, fragEnd)))
        {
            counters.Drop(RxDrop.FragmentInvalid);
            fragment.Release();
            Discard(s);
            return null;
        }

        // Where it goes in the sorted list, and whether it overlaps a neighbour.
        int k = 0;
        while (k < slot.Count && _offsets[baseIndex + k] < offset) k++;
        if (k < slot.Count && _offsets[baseIndex + k] == offset && _lengths[baseIndex + k] == length)
        {
            _iface.DropRx(fragment, RxDrop.FragmentDuplicate);
            return null;
        }
        bool overlapsPrevious = k > 0 && _offsets[baseIndex + k - 1] + _lengths[baseIndex + k - 1] > offset;
        bool overlapsNext = k < slot.Count && _offsets[baseIndex + k] < fragEnd;
        if (overlapsPrevious || overlapsNext)
        {
            counters.Drop(RxDrop.FragmentOverlap);
            fragment.Release();
            Discard(s);
            return null;
        }
        if (slot.Count == _per)
        {
            counters.Drop(RxDrop.FragmentNoRoom);
            fragment.Release();
            Discard(s);
            return null;
        }

        // Memory: evict the oldest other datagrams until this fragment fits.
        int cost = fragment.Capacity;
        while (_memory + cost > _config.MemoryLimit)
        {
            int victim = Oldest(except: s);
            if (victim < 0) break;
            Discard(victim);
        }
        if (_memory + cost > _config.MemoryLimit)
        {
            counters.Drop(RxDrop.FragmentNoRoom);
            fragment.Release();
            if (slot.Count == 0) slot = default;
            return null;
        }

        for (int j = slot.Count; j > k; j--)
        {
            _fragments[baseIndex + j] = _fragments[baseIndex + j - 1];
            _offsets[baseIndex + j] = _offsets[baseIndex + j - 1];
            _lengths[baseIndex + j] = _lengths[baseIndex + j - 1];
        }
        _fragments[baseIndex + k] = fragment;
        _offsets[baseIndex + k] = offset;
        _lengths[baseIndex + k] = length;
        slot.Count++;
        slot.Received += length;
        slot.Memory += cost;
        _memory += cost;
        _held++;
        if (!more) slot.End = fragEnd;
        counters.Add(Counter.IpFragmentsHeld);

        if (slot.End < 0 || slot.Received != slot.End) return null;
        return Complete(s);
    }

    private bool HasDataBeyond(int baseIndex, int count, int end)
    {
        for (int k = 0; k < count; k++)
            if (_offsets[baseIndex + k] + _lengths[baseIndex + k] > end) return true;
        return false;
    }

    private PacketBuffer? Complete(int s)
    {
        ref var slot = ref _slots[s];
        int baseIndex = s * _per;
        var first = _fragments[baseIndex]!;
        Ipv4Packet.TryCreate(first.Data, out var firstIp);
        int ihl = firstIp.HeaderLength;
        int total = ihl + slot.End;
        var whole = _iface.Pool.Rent(EthernetFrame.HeaderLength, total);
        if (whole is null)
        {
            _iface.Counters.Drop(TxDrop.NoBuffer);
            Discard(s);
            return null;
        }
        var dst = whole.Append(total);
        first.Data[..ihl].CopyTo(dst);
        for (int k = 0; k < slot.Count; k++)
        {
            var f = _fragments[baseIndex + k]!;
            Ipv4Packet.TryCreate(f.Data, out var fip);
            fip.Payload.CopyTo(dst[(ihl + _offsets[baseIndex + k])..]);
        }
        // The header now describes the whole datagram.
        BinaryPrimitives.WriteUInt16BigEndian(dst[2..], (ushort)total);
        BinaryPrimitives.WriteUInt16BigEndian(dst[6..], (ushort)(BinaryPrimitives.ReadUInt16BigEndian(dst[6..]) & Ipv4Packet.DontFragmentFlag));
        Ipv4Packet.TryCreate(dst, out var wip);
        wip.FillChecksum();
        Free(s);
        _iface.Counters.Add(Counter.IpReassembled);
        return whole;
    }

    /// <summary>Times out datagrams whose deadline passed.</summary>
    public void Poll(Instant now)
    {
        for (int s = 0; s < _slots.Length; s++)
        {
            if (!_slots[s].Used || _slots[s].Deadline > now) continue;
            _iface.Counters.Add(Counter.IpReassemblyTimeouts);
            int baseIndex = s * _per;
            if (_slots[s].Count > 0 && _offsets[baseIndex] == 0)
            {
                // RFC 1122 3.3.2: time exceeded, code 1, if fragment zero is available.
                var first = _fragments[baseIndex]!;
                _iface.Icmp.SendErrorForDatagram(IcmpType.TimeExceeded, 1, 0, first.Data, isBroadcast: IsBroadcast(_slots[s].Destination), now);
            }
            Free(s);
        }
    }

    public Instant? PollAt
    {
        get
        {
            Instant? at = null;
            for (int s = 0; s < _slots.Length; s++)
                if (_slots[s].Used) at = Instant.Earliest(at, _slots[s].Deadline);
            return at;
        }
    }

    private bool IsBroadcast(Ipv4Address a) =>
        a.IsBroadcast || (_iface.Config.PrefixLength < 31 && a == _iface.Address.SubnetBroadcast(_iface.Config.PrefixLength));

    private int Find(Ipv4Address src, Ipv4Address dst, ushort id, byte protocol)
    {
        for (int s = 0; s < _slots.Length; s++)
        {
            ref var e = ref _slots[s];
            if (e.Used && e.Id == id && e.Source == src && e.Destination == dst && e.Protocol == protocol) return s;
        }
        return -1;
    }

    private int AllocateSlot(Instant now)
    {
        for (int s = 0; s < _slots.Length; s++)
            if (!_slots[s].Used) return s;
        int victim = Oldest(except: -1);
        Discard(victim);
        return victim;
    }

    private int Oldest(int except)
    {
        int victim = -1;
        Instant oldest = Instant.MaxValue;
        for (int s = 0; s < _slots.Length; s++)
        {
            if (s == except || !_slots[s].Used) continue;
            if (_slots[s].Created < oldest) { oldest = _slots[s].Created; victim = s; }
        }
        return victim;
    }

    /// <summary>Gives up on every datagram in progress (the interface goes down): each is released and counted as discarded.</summary>
    public void DiscardAll()
    {
        for (int s = 0; s < _slots.Length; s++)
            if (_slots[s].Used) Discard(s);
    }

    /// <summary>Gives up on a datagram: its fragments are released and it is counted.</summary>
    private void Discard(int s)
    {
        _iface.Counters.Add(Counter.IpReassemblyDiscarded);
        Free(s);
    }

    private void Free(int s)
    {
        ref var slot = ref _slots[s];
        int baseIndex = s * _per;
        for (int k = 0; k < slot.Count; k++)
        {
            _fragments[baseIndex + k]!.Release();
            _fragments[baseIndex + k] = null;
            _held--;
        }
        _memory -= slot.Memory;
        slot = default;
    }
}
