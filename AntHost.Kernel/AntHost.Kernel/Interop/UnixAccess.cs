// Who may use an instance, and how the broker hands out its tables. .NET exposes
// neither SO_PEERCRED's uid and gid, nor SCM_RIGHTS, nor chown, nor a group
// lookup; each is here for one reason:
//  - SO_PEERCRED: the broker checks the uid and gid of the process at the other
//    end of its socket (as the kernel recorded them at connect time, not as the
//    process claims them);
//  - sendmsg/recvmsg with SCM_RIGHTS: the tables file goes to a process only as a
//    read-only descriptor, never by a path it could open for writing;
//  - chown and /etc/group: the pool file and socket belong to root and one group.
using System.Buffers.Binary;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace AntHost.Kernel.Interop;

/// <summary>The credentials the kernel recorded for the peer of a Unix socket.</summary>
public readonly record struct PeerCredentials(int Pid, uint Uid, uint Gid);

/// <summary>Unix users, groups, file ownership, and descriptors passed over a Unix socket.</summary>
public static unsafe partial class UnixAccess
{
    private const int SolSocket = 1;
    private const int SoPeerCred = 17;
    private const int ScmRights = 1;
    private const int MsgNoSignal = 0x4000;
    private const int MsgCmsgCloexec = 0x40000000;

    [StructLayout(LayoutKind.Sequential)]
    private struct IoVec
    {
        public void* Base;
        public nuint Length;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct MsgHdr
    {
        public void* Name;
        public uint NameLength;
        public IoVec* Iov;
        public nuint IovLength;
        public void* Control;
        public nuint ControlLength;
        public int Flags;
    }

    // struct cmsghdr { size_t len; int level; int type; } followed by the descriptor.
    private const int CmsgHeader = 16;
    private const int CmsgSpaceOneFd = 24; // CMSG_SPACE(sizeof(int)) on 64-bit Linux
    private const int CmsgLenOneFd = 20;   // CMSG_LEN(sizeof(int))

    [LibraryImport("libc", EntryPoint = "sendmsg", SetLastError = true)]
    private static partial nint SendMsg(nint fd, MsgHdr* msg, int flags);

    [LibraryImport("libc", EntryPoint = "recvmsg", SetLastError = true)]
    private static partial nint RecvMsg(nint fd, MsgHdr* msg, int flags);

    [LibraryImport("libc", EntryPoint = "chown", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Chown(string path, int owner, int group);

    [LibraryImport("libc", EntryPoint = "geteuid")]
    public static partial uint EffectiveUid();

    /// <summary>The peer's pid, uid and gid as the kernel recorded them when it connected.</summary>
    public static PeerCredentials PeerOf(Socket socket)
    {
        ArgumentNullException.ThrowIfNull(socket);
        Span<byte> cred = stackalloc byte[12];
        try
        {
            int n = socket.GetRawSocketOption(SolSocket, SoPeerCred, cred);
            if (n < 12) return new PeerCredentials(0, uint.MaxValue, uint.MaxValue);
            return new PeerCredentials(BinaryPrimitives.ReadInt32LittleEndian(cred), BinaryPrimitives.ReadUInt32LittleEndian(cred[4..]),
                BinaryPrimitives.ReadUInt32LittleEndian(cred[8..]));
        }
        catch (SocketException) { return new PeerCredentials(0, uint.MaxValue, uint.MaxValue); }
    }

    /// <summary>
    /// True when the process is in <paramref name="gid"/>: its gid, or one of its supplementary
    /// groups as /proc/PID/status lists them (the process's own, not /etc/group's idea of its user).
    /// </summary>
    public static bool IsInGroup(PeerCredentials peer, uint gid)
    {
        if (peer.Gid == gid) return true;
        if (peer.Pid <= 0) return false;
        try
        {
            foreach (string line in File.ReadLines($"/proc/{peer.Pid}/status"))
            {
                if (!line.StartsWith("Groups:", StringComparison.Ordinal)) continue;
                foreach (string g in line["Groups:".Length..].Split(' ', '\t', StringSplitOptions.RemoveEmptyEntries))
                    if (uint.TryParse(g, out uint v) && v == gid) return true;
                return false;
            }
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return false;
    }

    /// <summary>The gid of a group name (or a number) from /etc/group; false when there is none.</summary>
    public static bool TryResolveGroup(string name, out uint gid)
    {
        ArgumentNullException.ThrowIfNull(name);
        gid = 0;
        if (name.Length == 0) return false;
        try
        {
            foreach (string line in File.ReadLines("/etc/group"))
            {
                var f = line.Split(':');
                if (f.Length >= 3 && f[0] == name && uint.TryParse(f[2], out gid)) return true;
            }
        }
        catch (IOException) { }
        return uint.TryParse(name, out gid);
    }

    /// <summary>Gives <paramref name="path"/> to group <paramref name="gid"/> (the owner is kept).</summary>
    public static void SetGroup(string path, uint gid)
    {
        if (Chown(path, -1, (int)gid) != 0)
            throw new IOException($"chown :{gid} {path} failed: errno {Marshal.GetLastPInvokeError()}");
    }

    /// <summary>
    /// Sends <paramref name="data"/> with one descriptor attached (SCM_RIGHTS). Returns the
    /// bytes sent, or -1 with the errno in <paramref name="errno"/>.
    /// </summary>
    public static int SendWithDescriptor(Socket socket, ReadOnlySpan<byte> data, nint descriptor, out int errno)
    {
        ArgumentNullException.ThrowIfNull(socket);
        byte* control = stackalloc byte[CmsgSpaceOneFd];
        new Span<byte>(control, CmsgSpaceOneFd).Clear();
        *(nuint*)control = CmsgLenOneFd;
        *(int*)(control + 8) = SolSocket;
        *(int*)(control + 12) = ScmRights;
        *(int*)(control + CmsgHeader) = (int)descriptor;
        fixed (byte* d = data)
        {
            var iov = new IoVec { Base = d, Length = (nuint)data.Length };
            var msg = new MsgHdr { Iov = &iov, IovLength = 1, Control = control, ControlLength = CmsgSpaceOneFd };
            nint n = SendMsg(socket.Handle, &msg, MsgNoSignal);
            errno = n < 0 ? Marshal.GetLastPInvokeError() : 0;
            return (int)n;
        }
    }

    /// <summary>
    /// Receives into <paramref name="buffer"/>, taking a descriptor that came with the bytes
    /// (close-on-exec; -1 when none came). Returns the bytes received (0: closed), or -1 with
    /// the errno in <paramref name="errno"/>.
    /// </summary>
    public static int ReceiveWithDescriptor(Socket socket, Span<byte> buffer, out nint descriptor, out int errno)
    {
        ArgumentNullException.ThrowIfNull(socket);
        descriptor = -1;
        byte* control = stackalloc byte[64];
        new Span<byte>(control, 64).Clear();
        fixed (byte* b = buffer)
        {
            var iov = new IoVec { Base = b, Length = (nuint)buffer.Length };
            var msg = new MsgHdr { Iov = &iov, IovLength = 1, Control = control, ControlLength = 64 };
            nint n = RecvMsg(socket.Handle, &msg, MsgCmsgCloexec);
            errno = n < 0 ? Marshal.GetLastPInvokeError() : 0;
            // Every descriptor that came is ours now: keep the first, close any other.
            for (long off = 0; off + CmsgHeader <= (long)msg.ControlLength;)
            {
                long len = (long)*(nuint*)(control + off);
                if (len < CmsgHeader) break;
                if (*(int*)(control + off + 8) == SolSocket && *(int*)(control + off + 12) == ScmRights)
                    for (long fdOff = off + CmsgHeader; fdOff + 4 <= off + len; fdOff += 4)
                    {
                        int fd = *(int*)(control + fdOff);
                        if (descriptor < 0) descriptor = fd;
                        else Native.CloseDescriptor(fd);
                    }
                off += (len + 7) & ~7L;
            }
            return (int)n;
        }
    }
}
