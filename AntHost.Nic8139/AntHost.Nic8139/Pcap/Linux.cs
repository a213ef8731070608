using System.Runtime.InteropServices;

namespace AntHost.Nic8139.Pcap;

/// <summary>
/// The few Linux calls the device layer makes itself, each for one reason:
/// <list type="bullet">
/// <item><c>eventfd</c>, <c>poll</c>, <c>read</c>, <c>write</c>: the receive loop sleeps in one
/// <c>poll</c> over the pcap descriptor and a wake-up eventfd, so <c>Stop</c> and the fault
/// injector's deadlines wake it without a frame arriving.</item>
/// <item><c>socket</c> + <c>ioctl(SIOCGIFFLAGS/SIOCGIFMTU/SIOCGIFHWADDR)</c>: link state, MTU and
/// hardware address of the adapter, asked of the kernel in the adapter's own network
/// namespace (<c>/sys/class/net</c> shows the namespace that mounted sysfs, not the
/// thread's).</item>
/// <item>an rtnetlink socket (<c>RTMGRP_LINK</c>): link changes arrive as events, so an idle
/// receive loop never wakes to ask about the link.</item>
/// <item><c>setns</c>: a driver or test in the root namespace can open an adapter that lives
/// in another one; the socket made there stays bound to it.</item>
/// </list>
/// </summary>
internal static unsafe partial class Linux
{
    public const string Library = "libc";

    public const short PollIn = 0x1;
    public const short PollErr = 0x8;
    public const short PollHup = 0x10;
    public const short PollNval = 0x20;

    public const int EfdCloexec = 0x80000;
    public const int EfdNonblock = 0x800;

    public const int AfInet = 2;
    public const int SockDgram = 2;
    public const int SockCloexec = 0x80000;

    public const uint SiocGifFlags = 0x8913;
    public const uint SiocGifMtu = 0x8921;
    public const uint SiocGifHwaddr = 0x8927;

    public const int IffUp = 0x1;
    public const int IffRunning = 0x40;
    public const int IffLowerUp = 0x10000;

    public const int CloneNewNet = 0x40000000;
    public const int ORdOnly = 0;
    public const int OCloexec = 0x80000;

    public const int EIntr = 4;
    public const int EAgain = 11;
    public const int ENoDev = 19;
    public const int ENxio = 6;

    [StructLayout(LayoutKind.Sequential)]
    public struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }

    /// <summary><c>struct ifreq</c>: a 16-byte name and a 24-byte union.</summary>
    [StructLayout(LayoutKind.Sequential, Size = 40)]
    public struct IfReq
    {
        public fixed byte Name[16];
        public fixed byte Data[24];
    }

    [LibraryImport(Library, EntryPoint = "eventfd", SetLastError = true)]
    public static partial int EventFd(uint initial, int flags);

    [LibraryImport(Library, EntryPoint = "poll", SetLastError = true)]
    public static partial int Poll(PollFd* fds, nuint count, int timeoutMs);

    [LibraryImport(Library, EntryPoint = "read", SetLastError = true)]
    public static partial nint Read(int fd, void* buffer, nuint count);

    [LibraryImport(Library, EntryPoint = "write", SetLastError = true)]
    public static partial nint Write(int fd, void* buffer, nuint count);

    [LibraryImport(Library, EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);

    [LibraryImport(Library, EntryPoint = "socket", SetLastError = true)]
    public static partial int Socket(int domain, int type, int protocol);

    [LibraryImport(Library, EntryPoint = "ioctl", SetLastError = true)]
    public static partial int Ioctl(int fd, nuint request, IfReq* request2);

    [LibraryImport(Library, EntryPoint = "setns", SetLastError = true)]
    public static partial int SetNs(int fd, int nsType);

    [LibraryImport(Library, EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Open(string path, int flags);

    public const int AfNetlink = 16;
    public const int SockRaw = 3;
    public const int SockNonblock = 0x800;
    public const int NetlinkRoute = 0;
    public const uint RtmgrpLink = 1;

    [StructLayout(LayoutKind.Sequential)]
    private struct SockaddrNl
    {
        public ushort Family;
        public ushort Pad;
        public uint Pid;
        public uint Groups;
    }

    [LibraryImport(Library, EntryPoint = "bind", SetLastError = true)]
    private static partial int Bind(int fd, void* addr, uint length);

    /// <summary>
    /// A non-blocking rtnetlink socket subscribed to link changes, in the calling thread's
    /// network namespace: it becomes readable whenever an adapter's flags or carrier change,
    /// so the receive loop learns of a link going down or up without polling for it. -1 when
    /// the kernel refuses (the loop then asks at an interval).
    /// </summary>
    public static int LinkEventSocket()
    {
        int fd = Socket(AfNetlink, SockRaw | SockCloexec | SockNonblock, NetlinkRoute);
        if (fd < 0) return -1;
        var a = new SockaddrNl { Family = AfNetlink, Groups = RtmgrpLink };
        if (Bind(fd, &a, (uint)sizeof(SockaddrNl)) == 0) return fd;
        Close(fd);
        return -1;
    }

    /// <summary>Reads and discards everything queued on a non-blocking descriptor.</summary>
    public static void Drain(int fd)
    {
        byte* buf = stackalloc byte[4096];
        while (Read(fd, buf, 4096) > 0) { }
    }

    public const int Eintr = 4;

    [StructLayout(LayoutKind.Sequential)]
    public struct IoVec
    {
        public byte* Base;
        public nuint Length;
    }

    /// <summary>struct msghdr (x86-64 and arm64 layout).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct MsgHdr
    {
        public void* Name;
        public uint NameLength;
        public IoVec* Iov;
        public nuint IovLength;
        public void* Control;
        public nuint ControlLength;
        public int Flags;
    }

    /// <summary>struct mmsghdr.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct MmsgHdr
    {
        public MsgHdr Header;
        public uint Length;
    }

    /// <summary>sendmmsg(2): several datagrams (here: frames on a packet socket) in one call; returns how many went.</summary>
    [LibraryImport(Library, EntryPoint = "sendmmsg", SetLastError = true)]
    public static partial int SendMmsg(int fd, MmsgHdr* messages, uint count, int flags);

    /// <summary>sendmsg(2).</summary>
    [LibraryImport(Library, EntryPoint = "sendmsg", SetLastError = true)]
    public static partial nint SendMsg(int fd, MsgHdr* message, int flags);

    [LibraryImport(Library, EntryPoint = "setsockopt", SetLastError = true)]
    private static partial int SetSockOpt(int fd, int level, int name, void* value, uint length);

    [LibraryImport(Library, EntryPoint = "if_nametoindex", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial uint IfNameToIndex(string name);

    public const int AfPacket = 17;
    private const int SolPacket = 263, PacketVnetHdr = 15;

    /// <summary>struct sockaddr_ll (20 bytes).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct SockaddrLl
    {
        public ushort Family;
        public ushort Protocol; // network order
        public int IfIndex;
        public ushort HaType;
        public byte PktType;
        public byte HaLength;
        public ulong Address;
    }

    /// <summary>
    /// A packet socket for sending only (protocol 0: it receives nothing), in the calling
    /// thread's namespace, bound to <paramref name="adapter"/>, that takes a
    /// <c>struct virtio_net_hdr</c> in front of each frame (PACKET_VNET_HDR): the kernel then
    /// segments a large TCP frame itself and fills in its checksums (software GSO, as it does
    /// for its own TCP on an adapter without TSO). -1 and the reason when the kernel refuses.
    /// </summary>
    public static int VnetPacketSocket(string adapter, out SockaddrLl address, out string? error)
    {
        address = default;
        error = null;
        uint index = IfNameToIndex(adapter);
        if (index == 0)
        {
            error = "if_nametoindex: " + Error(Marshal.GetLastPInvokeError());
            return -1;
        }
        int fd = Socket(AfPacket, SockRaw | SockCloexec, 0);
        if (fd < 0)
        {
            error = "socket(AF_PACKET): " + Error(Marshal.GetLastPInvokeError());
            return -1;
        }
        int one = 1;
        address = new SockaddrLl { Family = AfPacket, Protocol = 0x0008 /* ETH_P_IP, network order */, IfIndex = (int)index };
        var bound = new SockaddrLl { Family = AfPacket, Protocol = 0, IfIndex = (int)index };
        if (SetSockOpt(fd, SolPacket, PacketVnetHdr, &one, sizeof(int)) != 0 || Bind(fd, &bound, (uint)sizeof(SockaddrLl)) != 0)
        {
            error = "PACKET_VNET_HDR / bind: " + Error(Marshal.GetLastPInvokeError());
            Close(fd);
            return -1;
        }
        return fd;
    }

    public static string Error(int errno) => $"{Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})";
}
