using System.Runtime.CompilerServices;
using AntHost.Kernel.Ipc;
using AntHost.Kernel.Pool;

namespace AntHost.Kernel.Tests.Unit;

public class HandleAndLayoutTests
{
    [Theory]
    [InlineData(0u, 1u, (ushort)0)]
    [InlineData(12345u, 0xABCDEFu, (ushort)7)]
    [InlineData(IcaHandle.MaxPage, IcaHandle.GenerationMask, ushort.MaxValue)]
    public void Handle_round_trips_its_fields(uint page, uint gen, ushort tc)
    {
        var h = IcaHandle.Create(page, gen, tc);
        Assert.Equal(page, h.FirstPage);
        Assert.Equal(gen, h.Generation);
        Assert.Equal(tc, h.TransferCount);
        var n = h.NextTransfer();
        Assert.Equal(page, n.FirstPage);
        Assert.Equal(gen, n.Generation);
        Assert.Equal((ushort)(tc + 1), n.TransferCount);
    }

    [Fact]
    public void Slot_and_tables_have_their_documented_sizes()
    {
        Assert.Equal(64, Unsafe.SizeOf<RingMessage>());
        Assert.Equal(PoolLayout.OwnershipEntrySize, Unsafe.SizeOf<OwnershipEntry>());
        Assert.Equal(PoolLayout.ProcessEntrySize, Unsafe.SizeOf<ProcessEntry>());
        Assert.Equal(PoolLayout.ChannelEntrySize, Unsafe.SizeOf<ChannelEntry>());
        Assert.Equal(PoolLayout.HeaderSize, Unsafe.SizeOf<PoolHeader>());
    }

    [Fact]
    public void Journal_handles_overlay_bytes_8_to_55()
    {
        var m = new RingMessage();
        for (int i = 0; i < RingMessage.MaxJournalHandles; i++) m.SetJournalHandle(i, (ulong)(i + 1) * 0x0101010101010101);
        Assert.Equal(0x0101010101010101ul, m.Control);
        Assert.Equal(2 * 0x0101010101010101ul, m.Data0);
        Assert.Equal((ulong)6 * 0x0101010101010101, m.GetJournalHandle(5));
        Assert.Equal(0u, m.Source); // bytes 56..63 are not part of the journal view
    }

    [Fact]
    public void Layout_regions_are_page_aligned_and_do_not_overlap()
    {
        var l = PoolLayout.ForDataBytes(64L * 1024 * 1024);
        Assert.Equal(16384, l.DataPages);
        Assert.Equal(0, l.MetaSize % PoolLayout.PageSize);
        Assert.Equal(0, l.RwOffset % PoolLayout.PageSize);
        Assert.Equal(0, l.DataOffset % PoolLayout.PageSize);
        Assert.True(l.OwnershipOffset + (long)l.DataPages * PoolLayout.OwnershipEntrySize <= l.MetaSize);
        Assert.True(l.RingOffset(l.RingCount - 1) + l.RingBytes <= l.DataOffset);
        Assert.Equal(l.DataOffset + 16384L * 4096, l.FileSize);
        Assert.Throws<ArgumentOutOfRangeException>(() => PoolLayout.ForDataBytes(4096));
    }
}
