using System.Runtime.InteropServices;
using AntHost.Kernel.Ipc;

namespace AntHost.Kernel.Tests.Unit;

public unsafe class RingAndControlIcaTests
{
    [Fact]
    public void Ring_is_fifo_refuses_when_full_and_detects_corrupt_indices()
    {
        const int cap = 8;
        byte* mem = (byte*)NativeMemory.AllocZeroed((nuint)SpscRing.Size(cap));
        try
        {
            var ring = new SpscRing(mem, cap);
            for (uint i = 0; i < cap; i++)
                Assert.Equal(RingStatus.Ok, ring.TryWrite(new RingMessage { Kind = MessageKind.Request, RequestId = i }));
            Assert.Equal(RingStatus.Full, ring.TryWrite(new RingMessage()));
            for (uint i = 0; i < 3; i++)
            {
                Assert.Equal(RingStatus.Ok, ring.TryRead(out var m));
                Assert.Equal(i, m.RequestId);
            }
            for (uint i = 0; i < 3; i++) Assert.Equal(RingStatus.Ok, ring.TryWrite(new RingMessage { RequestId = 100 + i }));
            var seen = new List<uint>();
            while (ring.TryRead(out var m) == RingStatus.Ok) seen.Add(m.RequestId);
            Assert.Equal(new uint[] { 3, 4, 5, 6, 7, 100, 101, 102 }, seen);
            Assert.Equal(RingStatus.Empty, ring.TryRead(out _));

            // A hostile peer writes an impossible head: neither side may index with it.
            *(long*)(mem + 64) = -1000;
            Assert.Equal(RingStatus.Corrupt, ring.TryRead(out _));
            Assert.Equal(RingStatus.Corrupt, ring.TryWrite(new RingMessage()));
            Assert.Equal(-1, ring.Count);
        }
        finally
        {
            NativeMemory.Free(mem);
        }
    }

    [Fact]
    public void Control_ica_keeps_frames_stamps_and_result()
    {
        var page = new byte[4096];
        var c = ControlIca.Initialize(page, 42, 7);
        Assert.True(ControlIca.TryOpen(page, out c));
        Assert.Equal(42u, c.RequestId);
        Assert.Equal(7u, c.OriginalRequester);
        Assert.True(c.TryPushFrame(new RequestFrame(1, 10, RequestFrameFlags.None, 7, 42), out var args));
        args[0] = 0xEE;
        Assert.True(c.TryPushFrame(new RequestFrame(2, 20, RequestFrameFlags.DirectReturn, 9, 5), out _));
        Assert.Equal(2, c.FrameCount);
        Assert.True(c.TryGetFrame(1, out var top));
        Assert.Equal(new RequestFrame(2, 20, RequestFrameFlags.DirectReturn, 9, 5), top);
        Assert.Equal(0xEE, c.FrameArguments(0)[0]);
        Assert.True(c.TryPopFrame());
        Assert.Equal(1, c.FrameCount);
        for (int i = 0; i < ControlIca.MaxTrace + 5; i++) c.Stamp((ushort)i, 3, 1000 + i);
        Assert.Equal(ControlIca.MaxTrace, c.TraceCount);
        Assert.True(c.TryGetStamp(4, out long ts, out ushort stage, out uint proc));
        Assert.Equal((1004L, (ushort)4, 3u), (ts, stage, proc));
        c.ResultArea[0] = 9;
        c.SetResultLength(1000);
        Assert.Equal(ControlIca.ResultBytes, c.Result.Length);
        for (int i = 0; i < ControlIca.MaxFrames; i++) c.TryPushFrame(default, out _);
        Assert.False(c.TryPushFrame(default, out _));
    }

    [Fact]
    public void Garbage_page_is_not_a_control_ica_and_hostile_counts_are_clamped()
    {
        var page = new byte[4096];
        Assert.False(ControlIca.TryOpen(page, out _));
        Assert.False(ControlIca.TryOpen(new byte[100], out _));
        var c = ControlIca.Initialize(page, 1, 1);
        page[16] = 0xFF; page[17] = 0xFF; // frame count 65535
        page[18] = 0xFF; page[19] = 0xFF; // trace count 65535
        Assert.True(ControlIca.TryOpen(page, out c));
        Assert.Equal(ControlIca.MaxFrames, c.FrameCount);
        Assert.Equal(ControlIca.MaxTrace, c.TraceCount);
        Assert.False(c.TryPushFrame(default, out _));
        Assert.True(c.TryGetFrame(ControlIca.MaxFrames - 1, out _));
    }
}
