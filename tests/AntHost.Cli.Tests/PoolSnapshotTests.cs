using System.Buffers.Binary;
using AntHost.Kernel.Pool;

namespace AntHost.Cli.Tests;

/// <summary>
/// What `anthost ps` and `down` read from a pool, on a pool and tables file written here at
/// the offsets docs/kernel.md gives (no broker, no root): the snapshot must read each field
/// where the broker writes it.
/// </summary>
public sealed class PoolSnapshotTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("anthost-test-snapshot-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static readonly PoolLayout Layout = PoolLayout.ForDataBytes(64 * PoolLayout.PageSize, maxProcesses: 4, maxServices: 4, maxChannels: 4, ringCapacity: 8);

    /// <summary>A pool whose broker (pid <paramref name="brokerPid"/>) gave process slot 0 ICAs of the given sizes, each transferred once.</summary>
    private string WritePool(int brokerPid, int[] icaPages, (int Slot, int Pid, string Name)[] processes)
    {
        string path = Path.Combine(_dir, "test.pool");
        var meta = new byte[Layout.MetaSize];
        BinaryPrimitives.WriteUInt64LittleEndian(meta, 0x4C4F4F5048544E41UL);
        BinaryPrimitives.WriteInt32LittleEndian(meta.AsSpan(16), Layout.DataPages);
        BinaryPrimitives.WriteInt32LittleEndian(meta.AsSpan(20), Layout.MaxProcesses);
        BinaryPrimitives.WriteInt32LittleEndian(meta.AsSpan(24), Layout.MaxServices);
        BinaryPrimitives.WriteInt32LittleEndian(meta.AsSpan(28), Layout.MaxChannels);
        BinaryPrimitives.WriteInt32LittleEndian(meta.AsSpan(32), Layout.RingCapacity);
        BinaryPrimitives.WriteInt32LittleEndian(meta.AsSpan(36), (int)TransferMode.Direct);
        BinaryPrimitives.WriteInt32LittleEndian(meta.AsSpan(44), brokerPid);
        BinaryPrimitives.WriteInt32LittleEndian(meta.AsSpan(48), 1);
        uint page = 0;
        foreach (int n in icaPages)
        {
            for (uint p = page; p < page + n; p++)
            {
                var e = meta.AsSpan((int)(Layout.OwnershipOffset + p * PoolLayout.OwnershipEntrySize), PoolLayout.OwnershipEntrySize);
                BinaryPrimitives.WriteUInt16LittleEndian(e[4..], 1); // owner: slot 0
                BinaryPrimitives.WriteUInt16LittleEndian(e[6..], p == page ? (ushort)1 : (ushort)0); // transfer count
                BinaryPrimitives.WriteUInt32LittleEndian(e[8..], p == page ? (uint)n : page);
                BinaryPrimitives.WriteUInt16LittleEndian(e[12..], p == page ? (ushort)3 : (ushort)1); // allocated (+ head)
            }
            page += (uint)n;
        }
        foreach (var (slot, pid, name) in processes)
        {
            var e = meta.AsSpan((int)(Layout.ProcessTableOffset + slot * PoolLayout.ProcessEntrySize), PoolLayout.ProcessEntrySize);
            BinaryPrimitives.WriteUInt32LittleEndian(e, 1); // alive
            BinaryPrimitives.WriteUInt32LittleEndian(e[4..], (uint)(0x10000 | slot));
            BinaryPrimitives.WriteInt32LittleEndian(e[8..], pid);
            BinaryPrimitives.WriteUInt32LittleEndian(e[12..], name == "app" ? 0u : 2u); // flags: server
            BinaryPrimitives.WriteUInt32LittleEndian(e[20..], name == "app" ? 65534u : 0u); // uid
            BinaryPrimitives.WriteInt32LittleEndian(e[16..], name.Length);
            System.Text.Encoding.UTF8.GetBytes(name).CopyTo(e[32..]);
        }
        File.WriteAllBytes(IcaPool.TablesPathOf(path), meta);
        using var fs = new FileStream(path, FileMode.CreateNew);
        fs.SetLength(Layout.FileSize);
        return path;
    }

    [Fact]
    public void Ps_counts_the_pages_and_icas_the_ownership_table_gives_each_process()
    {
        var s = PoolSnapshot.Read(WritePool(brokerPid: 1, [1, 2, 61], [(0, 4242, "app")]));
        Assert.Equal(64, s.AllocatedPages);
        var app = Assert.Single(s.Processes);
        Assert.Equal(64, app.Pages);
        Assert.Equal(3, app.Icas);
        Assert.Equal(65534u, app.Uid);
        Assert.False(app.Server);
    }

    [Fact]
    public void Down_names_no_process_joined_by_hand_when_the_broker_is_dead()
    {
        // The broker died (a pid that is not running) leaving its table: every process it
        // shows as alive is a leftover of the dead instance, whatever became of its pid.
        var s = PoolSnapshot.Read(WritePool(brokerPid: int.MaxValue - 1, [], [(0, Environment.ProcessId, "inet"), (1, int.MaxValue - 2, "nic")]));
        Assert.Empty(Instance.JoinedByHand(s, recordedPids: new HashSet<int>()));
    }

    [Fact]
    public void Down_names_a_live_process_it_did_not_start_and_not_a_dead_one()
    {
        // A live broker (this process stands in for it): the table's live, unrecorded process
        // joined by hand; one whose pid is gone is not named; a recorded one is ours.
        var s = PoolSnapshot.Read(WritePool(brokerPid: Environment.ProcessId, [],
            [(0, Environment.ProcessId, "by-hand"), (1, int.MaxValue - 2, "gone"), (2, 1, "recorded")]));
        var joined = Instance.JoinedByHand(s, recordedPids: new HashSet<int> { 1 });
        Assert.Equal("by-hand", Assert.Single(joined).Name);
    }
}
