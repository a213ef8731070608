// The broker's control protocol, over its Unix domain socket. Only rare
// operations travel here (registration, names, channels, batches of
// allocations, an explicit commit); messages and transfers never do.
//
// Every frame, both ways, is
//   u32 length of what follows | u16 op (request) or i32 status (response) | payload
// little-endian. Strings are u16 length + UTF-8 bytes. A request gets exactly one
// response; one connection = one registered process, and the connection closing
// is how the broker learns of that process's death (kill -9 included).
using System.Buffers.Binary;
using System.Net.Sockets;
using System.Text;

namespace AntHost.Kernel.Protocol;

public enum ControlOp : ushort
{
    Register = 1,
    RegisterService = 2,
    LookupService = 3,
    OpenChannel = 4,
    OpenReturnChannel = 5,
    Allocate = 6,
    Commit = 7,
    CloseChannel = 8,
    Unregister = 9,
    /// <summary>
    /// Before registering: the broker answers with the tables file as a read-only descriptor
    /// (SCM_RIGHTS), if the peer is root or a member of the instance's group.
    /// </summary>
    AttachTables = 10,
}

/// <summary>Flags of <see cref="ControlOp.Register"/>.</summary>
[Flags]
public enum RegisterFlags : uint
{
    None = 0,
    Strict = 1,
    /// <summary>A server of the instance (root only): no per-app limits, may use the servers' reserve.</summary>
    Server = 2,
}

/// <summary>Socket paths and limits of the control protocol.</summary>
public static class ControlProtocol
{
    public const int MaxFrame = 16 * 1024;
    public const int MaxName = 47;
    public const int MaxBatch = 256;

    public static string SocketDirectory => "/run/anthost";

    public static string SocketPathFor(string instance) => $"{SocketDirectory}/{instance}.sock";

    /// <summary>Checks an instance name: it becomes part of file names.</summary>
    public static bool IsValidInstance(string instance)
    {
        if (instance.Length is 0 or > 64) return false;
        foreach (char c in instance)
            if (!(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.')) return false;
        return instance[0] != '.';
    }

    internal static void ReadExactly(Socket s, Span<byte> buffer)
    {
        while (!buffer.IsEmpty)
        {
            int n = s.Receive(buffer);
            if (n <= 0) throw new SocketException((int)SocketError.ConnectionReset);
            buffer = buffer[n..];
        }
    }
}

/// <summary>Builds a frame payload.</summary>
internal sealed class FrameWriter
{
    private readonly byte[] _buf = new byte[ControlProtocol.MaxFrame + 8];
    private int _pos;

    public void Begin(int opOrStatus, bool request)
    {
        _pos = 4;
        if (request) { BinaryPrimitives.WriteUInt16LittleEndian(_buf.AsSpan(_pos), (ushort)opOrStatus); _pos += 2; }
        else { BinaryPrimitives.WriteInt32LittleEndian(_buf.AsSpan(_pos), opOrStatus); _pos += 4; }
    }

    public FrameWriter U32(uint v) { BinaryPrimitives.WriteUInt32LittleEndian(_buf.AsSpan(_pos), v); _pos += 4; return this; }
    public FrameWriter U64(ulong v) { BinaryPrimitives.WriteUInt64LittleEndian(_buf.AsSpan(_pos), v); _pos += 8; return this; }

    public FrameWriter Str(string s)
    {
        int n = Encoding.UTF8.GetBytes(s, _buf.AsSpan(_pos + 2, Math.Min(ControlProtocol.MaxFrame - _pos - 2, s.Length * 3)));
        BinaryPrimitives.WriteUInt16LittleEndian(_buf.AsSpan(_pos), (ushort)n);
        _pos += 2 + n;
        return this;
    }

    public ReadOnlySpan<byte> Finish()
    {
        BinaryPrimitives.WriteUInt32LittleEndian(_buf, (uint)(_pos - 4));
        return _buf.AsSpan(0, _pos);
    }
}

/// <summary>Reads a frame payload; every read is bounds-checked (the other side may be hostile).</summary>
internal ref struct FrameReader
{
    private ReadOnlySpan<byte> _b;
    public bool Failed { get; private set; }

    public FrameReader(ReadOnlySpan<byte> payload) { _b = payload; Failed = false; }

    public uint U32()
    {
        if (_b.Length < 4) { Failed = true; return 0; }
        uint v = BinaryPrimitives.ReadUInt32LittleEndian(_b);
        _b = _b[4..];
        return v;
    }

    public ulong U64()
    {
        if (_b.Length < 8) { Failed = true; return 0; }
        ulong v = BinaryPrimitives.ReadUInt64LittleEndian(_b);
        _b = _b[8..];
        return v;
    }

    public string Str()
    {
        if (_b.Length < 2) { Failed = true; return ""; }
        int n = BinaryPrimitives.ReadUInt16LittleEndian(_b);
        if (_b.Length < 2 + n || n > ControlProtocol.MaxName * 4) { Failed = true; return ""; }
        string s;
        try { s = new UTF8Encoding(false, true).GetString(_b.Slice(2, n)); }
        catch (ArgumentException) { Failed = true; return ""; }
        _b = _b[(2 + n)..];
        return s;
    }

    public bool AtEnd => _b.IsEmpty;
}
