// The socket table and the ARP cache for `anthost ss` (SocketTable, ArpTable; TableAbi.cs):
// any process may ask; each request is answered from the request loop with at most the rows
// one control ICA's inline area holds, from the cursor it names, so one request is bounded
// work however many sockets there are. Nothing is allocated.
using AntHost.Inet.Abi;
using AntHost.Inet.Core.Tcp;

namespace AntHost.Inet.Sockets;

public sealed partial class SocketManager
{
    // Cursors at or above this walk the UDP sockets (by entry index); below, TCP's walk.
    private const int UdpCursor = 0x4000_0000;
    private readonly TcpConnectionView[] _tableViews = new TcpConnectionView[64];

    /// <summary>Fills <paramref name="inline"/> with socket rows from <paramref name="cursor"/>.</summary>
    public void WriteSocketTable(Span<byte> inline, int cursor)
    {
        SyncInterface();
        int capacity = Math.Min(TableReply.Capacity(inline.Length, SocketRow.Size), _tableViews.Length);
        int count = 0, next = -1;
        if (cursor is >= 0 and < UdpCursor)
        {
            if (_tcp is { } tcp)
            {
                next = tcp.Walk(cursor, _tableViews.AsSpan(0, capacity), out count);
                for (int i = 0; i < count; i++) TcpRow(_tableViews[i]).WriteTo(inline[(TableReply.HeaderSize + i * SocketRow.Size)..]);
                Array.Clear(_tableViews, 0, count);
            }
            if (next < 0) next = UdpCursor;
        }
        if (cursor >= UdpCursor || (next == UdpCursor && count < capacity))
        {
            int at = Math.Max(cursor, UdpCursor) - UdpCursor;
            next = -1;
            for (; at < _entries.Count; at++)
            {
                var e = _entries[at];
                if (!e.InUse || e.Type != AbiSocketType.Datagram || e.Udp is not { } u) continue;
                if (count == capacity)
                {
                    next = UdpCursor + at;
                    break;
                }
                var row = new SocketRow
                {
                    Protocol = 17,
                    State = (byte)(u.IsConnected ? 2 : u.IsBound ? 1 : 0),
                    LocalAddress = u.IsBound && _iface is not null ? _iface.Address.Value : 0,
                    LocalPort = u.LocalPort,
                    RemoteAddress = u.RemoteAddress.Value,
                    RemotePort = u.RemotePort,
                    Owner = e.Owner.Value,
                    ReceiveQueued = (int)Math.Min(int.MaxValue, u.QueuedBytes + (e.HasPeeked ? e.Peeked.Payload.Length : 0)),
                    Handle = e.Handle,
                };
                row.WriteTo(inline[(TableReply.HeaderSize + count * SocketRow.Size)..]);
                count++;
            }
        }
        TableReply.WriteHeader(inline, count, next, SocketRow.Size);
    }

    private SocketRow TcpRow(in TcpConnectionView v)
    {
        var info = v.Info;
        SocketEntry? e = _set is { } set && set.TryFind(v.Socket, out var h) && h.Slot < _entries.Count && _entries[h.Slot] is { InUse: true } found && found.Socket == h ? found : null;
        static int Us(TimeSpan t) => (int)Math.Clamp(t.Ticks / TimeSpan.TicksPerMicrosecond, 0, int.MaxValue);
        var flags = SocketRowFlags.None;
        if (info.Sack) flags |= SocketRowFlags.Sack;
        if (info.Timestamps) flags |= SocketRowFlags.Timestamps;
        if (info.SendWindowScale != 0 || info.ReceiveWindowScale != 0) flags |= SocketRowFlags.WindowScale;
        if (info.InRecovery) flags |= SocketRowFlags.InRecovery;
        return new SocketRow
        {
            Protocol = 6,
            State = (byte)info.State,
            Flags = flags,
            SendWindowScale = info.SendWindowScale,
            ReceiveWindowScale = info.ReceiveWindowScale,
            LocalAddress = v.Local.Address.Value,
            LocalPort = v.Local.Port,
            RemoteAddress = v.Remote.Address.Value,
            RemotePort = v.Remote.Port,
            Owner = e?.Owner.Value ?? 0,
            Handle = e?.Handle ?? 0,
            SendQueued = v.SendQueued,
            ReceiveQueued = v.ReceiveQueued,
            SmoothedRttMicros = Us(info.SmoothedRtt),
            RttVarianceMicros = Us(info.RttVariance),
            RtoMicros = Us(info.Rto),
            Cwnd = info.Cwnd,
            Ssthresh = info.Ssthresh,
            Mss = info.Mss,
            PeerWindow = info.SndWnd,
            Retransmits = info.Retransmits,
            RetransmitsTimeout = info.RetransmitsTimeout,
            RetransmitsFast = info.RetransmitsDupThresh,
            RetransmitsRack = info.RetransmitsRack,
            RetransmitsTlp = info.RetransmitsTlp,
            OutOfOrderSegments = info.OutOfOrderSegments,
        };
    }

    /// <summary>Fills <paramref name="inline"/> with ARP cache rows from slot <paramref name="cursor"/>.</summary>
    public void WriteArpTable(Span<byte> inline, int cursor)
    {
        SyncInterface();
        int capacity = TableReply.Capacity(inline.Length, ArpRow.Size), count = 0, next = -1;
        if (_iface is { } iface && cursor >= 0)
        {
            var arp = iface.Arp;
            for (int slot = cursor; slot < arp.Capacity; slot++)
            {
                if (!arp.TryGetSlot(slot, out var ip, out var mac, out var state)) continue;
                if (count == capacity)
                {
                    next = slot;
                    break;
                }
                new ArpRow(ip.Value, mac.Value, (byte)state).WriteTo(inline[(TableReply.HeaderSize + count * ArpRow.Size)..]);
                count++;
            }
        }
        TableReply.WriteHeader(inline, count, next, ArpRow.Size);
    }
}
