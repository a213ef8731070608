// What `anthost ps` reads from the pool, without joining the instance: the tables file and
// the pool file are read (never mapped writable, never written) at the offsets
// docs/kernel.md documents and PoolLayout computes: from the tables, the header and the
// broker's counters, the process table, the service and channel tables, the ownership
// table (pages and ICAs per owner); from the pool, the ring indices (messages waiting). It is a snapshot of memory others change as it is
// read: fine for a person, not for a check.
using System.Buffers.Binary;
using System.Text;
using AntHost.Kernel.Pool;

namespace AntHost.Cli;

internal sealed record PoolProcess(int Slot, string State, int Pid, string Name, int Pages, int Icas, long Uplink, long Downlink, uint Uid, bool Server, uint Id = 0);

internal sealed record PoolChannel(int Index, string Service, string Client, string Server, long ToServer, long ToClient);

internal sealed record PoolSnapshot(
    string Path, string Transfer, int BrokerPid, int DataPages, int AllocatedPages, int RingCapacity,
    IReadOnlyDictionary<string, long> Counters, IReadOnlyList<PoolProcess> Processes, IReadOnlyList<string> Services,
    IReadOnlyList<PoolChannel> Channels)
{
    public static PoolSnapshot Read(string path)
    {
        using var tables = new FileStream(IcaPool.TablesPathOf(path), FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        var header = new byte[PoolLayout.HeaderSize];
        tables.ReadExactly(header);
        if (BinaryPrimitives.ReadUInt64LittleEndian(header) != 0x4C4F4F5048544E41UL)
            throw new CliException($"{path} is not an AntHost pool");
        int I32(int o) => BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(o));
        if (I32(48) != 1) throw new CliException($"pool {path} is not ready (its broker is starting or died)");
        var layout = new PoolLayout { DataPages = I32(16), MaxProcesses = I32(20), MaxServices = I32(24), MaxChannels = I32(28), RingCapacity = I32(32) };
        string transfer = (TransferMode)I32(36) switch { TransferMode.Direct => "direct", TransferMode.Mediated => "mediated", var v => $"unknown ({(int)v})" };
        var counters = new Dictionary<string, long>();
        for (int c = 0; c < (int)BrokerCounter.Count; c++)
            counters[((BrokerCounter)c).ToString()] = BinaryPrimitives.ReadInt64LittleEndian(header.AsSpan(256 + 8 * c));

        byte[] meta = new byte[layout.MetaSize];
        tables.Position = 0;
        tables.ReadExactly(meta);

        // Ownership: pages and ICAs (head pages) per owner tag (slot + 1).
        var pages = new int[layout.MaxProcesses + 1];
        var icas = new int[layout.MaxProcesses + 1];
        int allocated = 0;
        for (int p = 0; p < layout.DataPages; p++)
        {
            var e = meta.AsSpan((int)layout.OwnershipOffset + p * PoolLayout.OwnershipEntrySize, PoolLayout.OwnershipEntrySize);
            ushort owner = BinaryPrimitives.ReadUInt16LittleEndian(e[4..]);
            ushort flags = BinaryPrimitives.ReadUInt16LittleEndian(e[12..]); // 6 is the transfer count
            if ((flags & 1) == 0) continue;
            allocated++;
            if (owner == 0 || owner > layout.MaxProcesses) continue;
            pages[owner]++;
            if ((flags & 2) != 0) icas[owner]++;
        }

        long Depth(int ring)
        {
            Span<byte> idx = stackalloc byte[72];
            fs.Position = layout.RingOffset(ring);
            fs.ReadExactly(idx);
            long d = BinaryPrimitives.ReadInt64LittleEndian(idx) - BinaryPrimitives.ReadInt64LittleEndian(idx[64..]);
            return d < 0 || d > layout.RingCapacity ? -1 : d;
        }

        var names = new Dictionary<uint, string>();
        var processes = new List<PoolProcess>();
        for (int s = 0; s < layout.MaxProcesses; s++)
        {
            var e = meta.AsSpan((int)layout.ProcessTableOffset + s * PoolLayout.ProcessEntrySize, PoolLayout.ProcessEntrySize);
            uint state = BinaryPrimitives.ReadUInt32LittleEndian(e);
            if (state == 0) continue;
            uint id = BinaryPrimitives.ReadUInt32LittleEndian(e[4..]);
            int nameLength = BinaryPrimitives.ReadInt32LittleEndian(e[16..]);
            string name = nameLength is > 0 and <= 64 ? Encoding.UTF8.GetString(e.Slice(32, nameLength)) : "";
            names[id] = name;
            processes.Add(new PoolProcess(s, state switch { 1 => "alive", 2 => "cut off", 3 => "dead", _ => $"state {state}" },
                BinaryPrimitives.ReadInt32LittleEndian(e[8..]), name, pages[s + 1], icas[s + 1],
                Depth(layout.UplinkRing(s)), Depth(layout.DownlinkRing(s)),
                BinaryPrimitives.ReadUInt32LittleEndian(e[20..]), (BinaryPrimitives.ReadUInt32LittleEndian(e[12..]) & 2) != 0, id));
        }

        var services = new List<string>();
        var serviceNames = new Dictionary<uint, string>();
        for (int i = 0; i < layout.MaxServices; i++)
        {
            var e = meta.AsSpan((int)layout.ServiceTableOffset + i * PoolLayout.ServiceEntrySize, PoolLayout.ServiceEntrySize);
            if (BinaryPrimitives.ReadUInt32LittleEndian(e) == 0) continue;
            uint owner = BinaryPrimitives.ReadUInt32LittleEndian(e[4..]);
            int n = BinaryPrimitives.ReadInt32LittleEndian(e[8..]);
            string name = n is > 0 and <= 48 ? Encoding.UTF8.GetString(e.Slice(16, n)) : "";
            serviceNames[(uint)i + 1] = name;
            services.Add($"{name} ({(names.TryGetValue(owner, out var o) ? o : new ProcessId(owner).ToString())})");
        }

        var channels = new List<PoolChannel>();
        for (int c = 0; c < layout.MaxChannels; c++)
        {
            var e = meta.AsSpan((int)layout.ChannelTableOffset + c * PoolLayout.ChannelEntrySize, PoolLayout.ChannelEntrySize);
            if (BinaryPrimitives.ReadUInt32LittleEndian(e) != 1) continue; // open only
            uint client = BinaryPrimitives.ReadUInt32LittleEndian(e[8..]), server = BinaryPrimitives.ReadUInt32LittleEndian(e[12..]);
            uint service = BinaryPrimitives.ReadUInt32LittleEndian(e[16..]);
            string Name(uint id) => names.TryGetValue(id, out var n) && n.Length > 0 ? n : new ProcessId(id).ToString();
            channels.Add(new PoolChannel(c, service == 0 ? "(return)" : serviceNames.GetValueOrDefault(service, $"#{service}"),
                Name(client), Name(server), Depth(layout.ChannelRingToServer(c)), Depth(layout.ChannelRingToClient(c))));
        }

        return new PoolSnapshot(path, transfer, I32(44), layout.DataPages, allocated, layout.RingCapacity, counters, processes, services, channels);
    }
}
