using System.Runtime.CompilerServices;
using AntHost.Kernel.Pool;

namespace AntHost.Kernel;

/// <summary>
/// The holder's right to one ICA (n contiguous pages of the pool), with its pages as a
/// <see cref="Span{T}"/> at the same pool offset in every process.
/// </summary>
/// <remarks>
/// Ownership: the process holding a lease owns the ICA until it passes the lease to
/// <see cref="KernelConnection.Call"/>, <see cref="KernelConnection.Post"/>,
/// <see cref="KernelConnection.Reply"/>, <see cref="KernelConnection.ReplyDirect"/>,
/// <see cref="KernelConnection.Forward"/>, <see cref="KernelConnection.Notify"/> or
/// <see cref="KernelConnection.Free"/>. From that call on the ICA belongs to the receiver
/// (or back to the pool) and this lease must not be touched again: the receiver holds a
/// different lease (the same pages, one transfer later). In strict mode the pages become
/// inaccessible in this process at that moment, so a use after transfer faults.
/// A lease is a small value; copying it does not copy the right, and using a copy after
/// the transfer is the same mistake.
/// </remarks>
public readonly unsafe struct IcaLease
{
    private readonly KernelConnection? _connection;

    internal IcaLease(KernelConnection connection, IcaHandle handle, int pages)
    {
        _connection = connection;
        Handle = handle;
        Pages = pages;
    }

    public static IcaLease None => default;

    /// <summary>The handle that names this ICA, at the transfer count this holder owns it.</summary>
    public IcaHandle Handle { get; }

    public int Pages { get; }

    public int Length => Pages * PoolLayout.PageSize;

    public bool IsNone => _connection is null;

    /// <summary>The ICA's pages. Valid while this process owns the ICA (see remarks of the type).</summary>
    public Span<byte> Span
    {
        get
        {
            if (_connection is null) ThrowNone();
            return new Span<byte>(_connection!.Pool.PageAddress(Handle.FirstPage), Length);
        }
    }

    /// <summary>Offset of the first page from the start of the pool file: the same in every process.</summary>
    public long PoolOffset => _connection is null ? -1 : _connection.Pool.PageFileOffset(Handle.FirstPage);

    /// <summary>Frees the ICA (same as <see cref="KernelConnection.Free"/>).</summary>
    public void Free() => _connection?.Free(this);

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowNone() => throw new InvalidOperationException("this lease names no ICA");

    public override string ToString() => Handle.ToString();
}

/// <summary>A data ICA passed with a message and how many of its bytes are meaningful.</summary>
public readonly record struct DataIca(IcaLease Ica, int Length)
{
    public static implicit operator DataIca(IcaLease ica) => new(ica, ica.Length);

    /// <summary>The meaningful bytes.</summary>
    public Span<byte> Span => Ica.Span[..Math.Clamp(Length, 0, Ica.Length)];
}
