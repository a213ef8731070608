// The control ICA: one page that IS the request. It travels with the request
// from process to process (its ownership moves like any ICA's), so an
// intermediate server adds to it instead of building a new message, and the
// last server can answer the original requester directly.
//
//   0     magic "ACTL" (u32) | version (u16) | flags (u16)
//   8     request id of the original requester (u32)
//   12    original requester (process id, u32)
//   16    frame count (u16) | trace count (u16) | status (i32)
//   24    result length (u32) | reserved
//   32    result area (96 B)
//   128   frame stack: 8 frames x 128 B, frame 0 = the original request
//         frame: service id u32 | opcode u16 | flags u16 | return-to process u32 |
//                return request id u32 | argument length u32 | reserved u32 |
//                arguments (104 B)
//   1152  trace area: 32 entries x 16 B
//         entry: Stopwatch timestamp i64 | stage u16 | reserved u16 | process id u32
//   1664  inline payload area, up to the end of the page (2432 B)
//
// Timestamps are Stopwatch.GetTimestamp (CLOCK_MONOTONIC on Linux), which is
// one clock for every process on the machine, so the stamps of one request
// line up across processes and give the per-stage timeline.
using System.Buffers.Binary;
using System.Diagnostics;

namespace AntHost.Kernel.Ipc;

/// <summary>One frame of the request stack.</summary>
public readonly record struct RequestFrame(uint ServiceId, ushort Opcode, RequestFrameFlags Flags, uint ReturnTo, uint ReturnRequestId);

[Flags]
public enum RequestFrameFlags : ushort
{
    None = 0,
    /// <summary>This stage's result goes straight to the original requester.</summary>
    DirectReturn = 1,
    /// <summary>The stage that pushed this frame wants its data ICAs back when the next stage is done.</summary>
    WantsDataBack = 2,
    /// <summary>
    /// The requester does not wait for this result (a posted send): it is returned with
    /// <see cref="MessageFlags.Quiet"/>, so it does not wake a requester that sleeps for
    /// something else; whoever answers (or passes the request on) keeps the flag.
    /// </summary>
    QuietReturn = 4,
}

/// <summary>A view over a control ICA's page. Checks its bounds; never throws on a hostile page.</summary>
public readonly ref struct ControlIca
{
    public const uint Magic = 0x4C544341; // "ACTL"
    public const int MaxFrames = 8;
    public const int FrameSize = 128;
    public const int FrameArgBytes = 104;
    public const int MaxTrace = 32;
    public const int ResultBytes = 96;

    private static class Field
    {
        public const int Magic = 0;
        public const int Version = 4;
        public const int RequestId = 8;
        public const int Requester = 12;
        public const int FrameCount = 16;
        public const int TraceCount = 18;
        public const int Status = 20;
        public const int ResultLength = 24;
        public const int Result = 32;
        public const int Frames = 128;
        public const int Trace = Frames + MaxFrames * FrameSize;
        public const int Inline = Trace + MaxTrace * 16;
    }

    public const int InlineOffset = Field.Inline;
    public const int MinSize = 4096;

    private readonly Span<byte> _b;

    private ControlIca(Span<byte> page) => _b = page;

    /// <summary>A view over an existing control ICA; false when the page is too small or not one.</summary>
    public static bool TryOpen(Span<byte> page, out ControlIca ica)
    {
        ica = default;
        if (page.Length < MinSize || BinaryPrimitives.ReadUInt32LittleEndian(page) != Magic) return false;
        ica = new ControlIca(page);
        return true;
    }

    /// <summary>Formats a fresh control ICA for a new request from <paramref name="requester"/>.</summary>
    public static ControlIca Initialize(Span<byte> page, uint requestId, uint requester)
    {
        if (page.Length < MinSize) throw new ArgumentException("a control ICA is at least one page", nameof(page));
        page[..Field.Inline].Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(page, Magic);
        BinaryPrimitives.WriteUInt16LittleEndian(page[Field.Version..], 1);
        var c = new ControlIca(page);
        c.RequestId = requestId;
        c.OriginalRequester = requester;
        return c;
    }

    public uint RequestId
    {
        get => BinaryPrimitives.ReadUInt32LittleEndian(_b[Field.RequestId..]);
        set => BinaryPrimitives.WriteUInt32LittleEndian(_b[Field.RequestId..], value);
    }

    public uint OriginalRequester
    {
        get => BinaryPrimitives.ReadUInt32LittleEndian(_b[Field.Requester..]);
        set => BinaryPrimitives.WriteUInt32LittleEndian(_b[Field.Requester..], value);
    }

    public int FrameCount => Math.Min(MaxFrames, (int)BinaryPrimitives.ReadUInt16LittleEndian(_b[Field.FrameCount..]));

    public int Status
    {
        get => BinaryPrimitives.ReadInt32LittleEndian(_b[Field.Status..]);
        set => BinaryPrimitives.WriteInt32LittleEndian(_b[Field.Status..], value);
    }

    /// <summary>The result area (its length as last set by <see cref="SetResultLength"/>).</summary>
    public Span<byte> Result => _b.Slice(Field.Result, Math.Min(ResultBytes, (int)BinaryPrimitives.ReadUInt32LittleEndian(_b[Field.ResultLength..])));

    public Span<byte> ResultArea => _b.Slice(Field.Result, ResultBytes);

    public void SetResultLength(int length) =>
        BinaryPrimitives.WriteUInt32LittleEndian(_b[Field.ResultLength..], (uint)Math.Clamp(length, 0, ResultBytes));

    /// <summary>Bytes after the header, frames and trace, for small inline arguments or data.</summary>
    public Span<byte> Inline => _b[Field.Inline..];

    /// <summary>Pushes a frame; returns its argument area (104 B), or false when the stack is full.</summary>
    public bool TryPushFrame(in RequestFrame frame, out Span<byte> arguments)
    {
        int n = FrameCount;
        if (n >= MaxFrames) { arguments = default; return false; }
        var f = _b.Slice(Field.Frames + n * FrameSize, FrameSize);
        f.Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(f, frame.ServiceId);
        BinaryPrimitives.WriteUInt16LittleEndian(f[4..], frame.Opcode);
        BinaryPrimitives.WriteUInt16LittleEndian(f[6..], (ushort)frame.Flags);
        BinaryPrimitives.WriteUInt32LittleEndian(f[8..], frame.ReturnTo);
        BinaryPrimitives.WriteUInt32LittleEndian(f[12..], frame.ReturnRequestId);
        BinaryPrimitives.WriteUInt16LittleEndian(_b[Field.FrameCount..], (ushort)(n + 1));
        arguments = f.Slice(24, FrameArgBytes);
        return true;
    }

    /// <summary>Removes the top frame (a stage that finished and returns to the one below).</summary>
    public bool TryPopFrame()
    {
        int n = FrameCount;
        if (n == 0) return false;
        BinaryPrimitives.WriteUInt16LittleEndian(_b[Field.FrameCount..], (ushort)(n - 1));
        return true;
    }

    public bool TryGetFrame(int index, out RequestFrame frame)
    {
        if ((uint)index >= (uint)FrameCount) { frame = default; return false; }
        var f = _b.Slice(Field.Frames + index * FrameSize, FrameSize);
        frame = new RequestFrame(
            BinaryPrimitives.ReadUInt32LittleEndian(f),
            BinaryPrimitives.ReadUInt16LittleEndian(f[4..]),
            (RequestFrameFlags)BinaryPrimitives.ReadUInt16LittleEndian(f[6..]),
            BinaryPrimitives.ReadUInt32LittleEndian(f[8..]),
            BinaryPrimitives.ReadUInt32LittleEndian(f[12..]));
        return true;
    }

    /// <summary>The argument bytes of frame <paramref name="index"/>.</summary>
    public Span<byte> FrameArguments(int index) =>
        (uint)index < (uint)FrameCount ? _b.Slice(Field.Frames + index * FrameSize + 24, FrameArgBytes) : Span<byte>.Empty;

    public int TraceCount => Math.Min(MaxTrace, (int)BinaryPrimitives.ReadUInt16LittleEndian(_b[Field.TraceCount..]));

    /// <summary>Stamps the monotonic clock into the next trace slot (ignored once the area is full).</summary>
    public void Stamp(ushort stage, uint process) => Stamp(stage, process, Stopwatch.GetTimestamp());

    public void Stamp(ushort stage, uint process, long timestamp)
    {
        int n = TraceCount;
        if (n >= MaxTrace) return;
        var e = _b.Slice(Field.Trace + n * 16, 16);
        BinaryPrimitives.WriteInt64LittleEndian(e, timestamp);
        BinaryPrimitives.WriteUInt16LittleEndian(e[8..], stage);
        BinaryPrimitives.WriteUInt32LittleEndian(e[12..], process);
        BinaryPrimitives.WriteUInt16LittleEndian(_b[Field.TraceCount..], (ushort)(n + 1));
    }

    public void ClearTrace() => BinaryPrimitives.WriteUInt16LittleEndian(_b[Field.TraceCount..], 0);

    public bool TryGetStamp(int index, out long timestamp, out ushort stage, out uint process)
    {
        timestamp = 0; stage = 0; process = 0;
        if ((uint)index >= (uint)TraceCount) return false;
        var e = _b.Slice(Field.Trace + index * 16, 16);
        timestamp = BinaryPrimitives.ReadInt64LittleEndian(e);
        stage = BinaryPrimitives.ReadUInt16LittleEndian(e[8..]);
        process = BinaryPrimitives.ReadUInt32LittleEndian(e[12..]);
        return true;
    }
}
