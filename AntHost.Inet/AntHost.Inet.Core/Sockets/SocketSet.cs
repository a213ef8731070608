// One table of sockets over the interface's transports, as smoltcp's SocketSet: TCP, UDP
// and ICMP echo sockets alike are named by a SocketHandle (slot and generation), and one
// change queue says which handles became worth a look (TCP's dirty queue and UDP's changed
// queue, drained here and mapped to handles). A user of the stack (the inet server) keeps
// its own per-socket state in an array indexed by the handle's slot, and needs no map from
// the transports' own socket objects back to it. A slot is reused after Remove with the
// next generation, so a stale handle names nothing. Nothing here allocates per packet; a
// slot's record is made the first time the slot is used.
using AntHost.Inet.Core.Icmp;
using AntHost.Inet.Core.Iface;
using AntHost.Inet.Core.Tcp;
using AntHost.Inet.Core.Udp;

namespace AntHost.Inet.Core.Sockets;

/// <summary>The transport a <see cref="SocketHandle"/> names.</summary>
public enum SocketKind : byte
{
    None,
    Tcp,
    Udp,
    IcmpEcho,
}

/// <summary>A socket of a <see cref="SocketSet"/>: its slot and the slot's generation (0 is never a handle).</summary>
public readonly record struct SocketHandle(int Slot, int Generation)
{
    public static SocketHandle None => default;

    public bool IsNone => Generation == 0;

    public override string ToString() => $"socket#{Slot}.{Generation}";
}

/// <summary>The interface's sockets behind one handle table (see the file comment).</summary>
public sealed class SocketSet
{
    private struct Slot
    {
        public int Generation;
        public SocketKind Kind;
        public TcpSocket Tcp;
        public UdpSocket? Udp;
        public IcmpEchoSocket? Icmp;
    }

    private readonly Interface _iface;
    private readonly TcpLayer? _tcp;
    private Slot[] _slots;
    private int _used;
    private readonly Stack<int> _free;
    // TCP's own slot index -> our slot + 1 (0: none): TCP's change queue names its sockets.
    private int[] _byTcp;

    public SocketSet(Interface iface, int capacity = 1024)
    {
        _iface = iface;
        _tcp = iface.Tcp as TcpLayer;
        _slots = new Slot[Math.Max(1, capacity)];
        _free = new Stack<int>(_slots.Length);
        _byTcp = new int[_slots.Length];
    }

    /// <summary>The interface's TCP layer (null when it has none).</summary>
    public TcpLayer? TcpLayer => _tcp;

    /// <summary>Sockets in the set.</summary>
    public int Count { get; private set; }

    /// <summary>Slots ever used (handles' slots are below this).</summary>
    public int SlotCount => _used;

    // ---- open and remove -------------------------------------------------------------------

    /// <summary>A new TCP socket (the layer's limits apply: the error when it refuses).</summary>
    public TcpError OpenTcp(out SocketHandle handle)
    {
        handle = default;
        if (_tcp is null) return TcpError.InvalidState;
        var err = _tcp.Open(out var ts);
        if (err == TcpError.None) handle = AddTcp(ts);
        return err;
    }

    /// <summary>Takes a connection TCP made (an accepted one) into the set.</summary>
    public SocketHandle AddTcp(TcpSocket ts)
    {
        int slot = Take(SocketKind.Tcp);
        _slots[slot].Tcp = ts;
        if (ts.Index >= _byTcp.Length) Array.Resize(ref _byTcp, Math.Max(ts.Index + 1, _byTcp.Length * 2));
        _byTcp[ts.Index] = slot + 1;
        return new SocketHandle(slot, _slots[slot].Generation);
    }

    /// <summary>A new, unbound UDP socket.</summary>
    public SocketHandle OpenUdp()
    {
        int slot = Take(SocketKind.Udp);
        var u = _iface.Udp.Open();
        u.SetSlot = slot;
        _slots[slot].Udp = u;
        return new SocketHandle(slot, _slots[slot].Generation);
    }

    /// <summary>A new ICMP echo socket (a free random identifier).</summary>
    public SocketHandle OpenIcmpEcho()
    {
        int slot = Take(SocketKind.IcmpEcho);
        _slots[slot].Icmp = _iface.Icmp.OpenEchoSocket();
        return new SocketHandle(slot, _slots[slot].Generation);
    }

    /// <summary>
    /// Takes the socket out of the set: a UDP or ICMP socket is closed (its queued datagrams
    /// released); a TCP socket must have been closed or aborted on the layer by the caller
    /// (TCP may keep the connection to finish it). The handle names nothing from now on.
    /// </summary>
    public bool Remove(SocketHandle h)
    {
        if (!IsValid(h)) return false;
        ref var s = ref _slots[h.Slot];
        switch (s.Kind)
        {
            case SocketKind.Tcp:
                if (s.Tcp.Index < _byTcp.Length && _byTcp[s.Tcp.Index] == h.Slot + 1) _byTcp[s.Tcp.Index] = 0;
                break;
            case SocketKind.Udp:
                s.Udp!.SetSlot = -1;
                s.Udp.Dispose();
                break;
            case SocketKind.IcmpEcho:
                s.Icmp!.Dispose();
                break;
        }
        s.Kind = SocketKind.None;
        s.Tcp = default;
        s.Udp = null;
        s.Icmp = null;
        s.Generation++;
        if (s.Generation == 0) s.Generation = 1;
        _free.Push(h.Slot);
        Count--;
        return true;
    }

    private int Take(SocketKind kind)
    {
        if (!_free.TryPop(out int slot))
        {
            if (_used == _slots.Length) Array.Resize(ref _slots, _slots.Length * 2);
            slot = _used++;
            _slots[slot].Generation = 1;
        }
        _slots[slot].Kind = kind;
        Count++;
        return slot;
    }

    // ---- lookup ----------------------------------------------------------------------------

    /// <summary>True when <paramref name="h"/> names a socket of the set now.</summary>
    public bool IsValid(SocketHandle h) =>
        (uint)h.Slot < (uint)_used && h.Generation != 0 && _slots[h.Slot].Generation == h.Generation && _slots[h.Slot].Kind != SocketKind.None;

    public SocketKind KindOf(SocketHandle h) => IsValid(h) ? _slots[h.Slot].Kind : SocketKind.None;

    /// <summary>The TCP layer's handle of a TCP socket of the set.</summary>
    public TcpSocket Tcp(SocketHandle h) => IsValid(h) && _slots[h.Slot].Kind == SocketKind.Tcp ? _slots[h.Slot].Tcp : throw Invalid(h, SocketKind.Tcp);

    public UdpSocket Udp(SocketHandle h) => IsValid(h) && _slots[h.Slot].Udp is { } u ? u : throw Invalid(h, SocketKind.Udp);

    public IcmpEchoSocket IcmpEcho(SocketHandle h) => IsValid(h) && _slots[h.Slot].Icmp is { } i ? i : throw Invalid(h, SocketKind.IcmpEcho);

    /// <summary>The set's handle of a TCP socket (a connection the layer names, e.g. in a walk), if it is in the set.</summary>
    public bool TryFind(TcpSocket ts, out SocketHandle h)
    {
        h = default;
        if (ts == default || (uint)ts.Index >= (uint)_byTcp.Length || _byTcp[ts.Index] == 0) return false;
        int slot = _byTcp[ts.Index] - 1;
        if (_slots[slot].Kind != SocketKind.Tcp || _slots[slot].Tcp != ts) return false;
        h = new SocketHandle(slot, _slots[slot].Generation);
        return true;
    }

    private static InvalidOperationException Invalid(SocketHandle h, SocketKind kind) => new($"{h} is not a {kind} socket of this set");

    // ---- changes ---------------------------------------------------------------------------

    /// <summary>
    /// A socket whose state changed (TCP: readable, writable, connected, closed, error...;
    /// UDP: a datagram or an error queued) since it was last named here. Sockets no longer in
    /// the set are skipped.
    /// </summary>
    public bool TryGetChanged(out SocketHandle h)
    {
        if (_tcp is not null)
        {
            while (_tcp.TryGetChanged(out var ts))
                if (TryFind(ts, out h)) return true;
        }
        while (_iface.Udp.TryDequeueChanged(out var u))
        {
            int slot = u.SetSlot;
            if (slot >= 0 && _slots[slot].Udp == u)
            {
                h = new SocketHandle(slot, _slots[slot].Generation);
                return true;
            }
        }
        h = default;
        return false;
    }
}
