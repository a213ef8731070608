using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using AntHost.Kernel.Ipc;
using AntHost.Kernel.Pool;

namespace AntHost.Kernel;

/// <summary>
/// A received message: a request, a reply (or completion), a notification with ICAs, or a
/// notice from the broker (channel opened, peer died, refused). The ICAs it names are owned
/// by the receiving process from the moment it is returned.
/// </summary>
public readonly struct Message
{
    internal Message(MessageKind kind, MessageFlags flags, uint requestId, int word, ProcessId source, Endpoint? endpoint,
        IcaLease control, int dataCount, DataIca d0, DataIca d1, DataIca d2)
    {
        Kind = kind; Flags = flags; RequestId = requestId; Word = word; Source = source; Endpoint = endpoint;
        Control = control; DataCount = dataCount;
        _data[0] = d0; _data[1] = d1; _data[2] = d2;
    }

    [InlineArray(RingMessage.MaxData)]
    private struct DataArray
    {
        private DataIca _e;
    }

    private readonly DataArray _data;

    /// <summary>The data ICAs, e.g. to pass them on: <c>k.Forward(next, m.Control, op, m.Data)</c>.</summary>
    [UnscopedRef]
    public ReadOnlySpan<DataIca> Data => ((ReadOnlySpan<DataIca>)_data)[..DataCount];

    public MessageKind Kind { get; }
    public MessageFlags Flags { get; }
    public uint RequestId { get; }

    /// <summary>Opcode of a request, status of a reply, error of a refusal.</summary>
    public int Word { get; }

    public ushort Opcode => (ushort)Word;
    public int Status => Word;

    /// <summary>The sending process (for broker notices: the process the notice is about).</summary>
    public ProcessId Source { get; }

    /// <summary>The channel the message came on (null for broker notices about unknown channels).</summary>
    public Endpoint? Endpoint { get; }

    public IcaLease Control { get; }
    public int DataCount { get; }

    public bool IsSync => (Flags & MessageFlags.Sync) != 0;

    public DataIca GetData(int i) => (uint)i < (uint)DataCount ? _data[i] : throw new ArgumentOutOfRangeException(nameof(i));

    public override string ToString() => $"{Kind} id={RequestId} word={Word} from {Source} ctrl={Control} data={DataCount}";
}
