// An ICA handle is a 64-bit value that names one ICA and says which life of it
// the holder believes in. It is a value, not a pointer: processes map the pool
// at different addresses, and the handle is what travels in ring slots, journal
// records and control ICAs.
//
//   63            48 47                      24 23                       0
//  +----------------+--------------------------+--------------------------+
//  | transfer count |        generation        |   first page (data area) |
//  +----------------+--------------------------+--------------------------+
//
// The generation changes every time the head page is allocated, so a handle
// kept after a free (stale) or made up (forged) does not match the ownership
// table. The transfer count orders the transfers of one ICA: a holder owns the
// handle whose count equals the table's; sending it hands the receiver count+1.
namespace AntHost.Kernel.Pool;

/// <summary>
/// A 64-bit name of one ICA (n contiguous pages of the pool): first page, generation
/// and transfer count. A handle proves nothing by itself; it is checked against the
/// ownership table (<see cref="OwnershipTable"/>) wherever it crosses a process boundary.
/// </summary>
public readonly record struct IcaHandle(ulong Value)
{
    public const int PageBits = 24;
    public const int GenerationBits = 24;
    public const uint MaxPage = (1u << PageBits) - 1;
    public const uint GenerationMask = (1u << GenerationBits) - 1;

    public static IcaHandle None => default;

    public static IcaHandle Create(uint firstPage, uint generation, ushort transferCount) =>
        new(((ulong)transferCount << 48) | ((ulong)(generation & GenerationMask) << PageBits) | (firstPage & MaxPage));

    /// <summary>Index of the ICA's first page in the pool's data area.</summary>
    public uint FirstPage => (uint)(Value & MaxPage);

    /// <summary>The head page's generation when this handle was issued (never 0 for a real handle).</summary>
    public uint Generation => (uint)((Value >> PageBits) & GenerationMask);

    /// <summary>How many transfers of this ICA happened before the holder got it.</summary>
    public ushort TransferCount => (ushort)(Value >> 48);

    public bool IsNone => Value == 0;

    /// <summary>The handle the receiver of a transfer holds: the same ICA, one transfer later.</summary>
    public IcaHandle NextTransfer() => Create(FirstPage, Generation, (ushort)(TransferCount + 1));

    /// <summary>The same ICA and generation with a given transfer count.</summary>
    public IcaHandle WithTransferCount(ushort count) => Create(FirstPage, Generation, count);

    public override string ToString() => IsNone ? "ica:none" : $"ica:{FirstPage}/g{Generation}/t{TransferCount}";
}
