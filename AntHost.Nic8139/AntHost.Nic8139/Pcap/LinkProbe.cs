using System.Runtime.InteropServices;
using AntHost.Inet.Core.Wire;

namespace AntHost.Nic8139.Pcap;

/// <summary>What the kernel says of the adapter's link.</summary>
public enum LinkState
{
    /// <summary>Not yet known (the device has not looked).</summary>
    Unknown,
    /// <summary>Administratively up with carrier: frames flow.</summary>
    Up,
    /// <summary>Down, without carrier, or gone.</summary>
    Down,
}

/// <summary>
/// Asks the kernel about one adapter through an ioctl socket made in the adapter's network
/// namespace: flags (up, running = carrier), MTU, hardware address. Cheap (one syscall), so
/// the receive loop calls it whenever its poll times out.
/// </summary>
internal sealed unsafe class LinkProbe : IDisposable
{
    private readonly int _fd;
    private readonly string _adapter;

    public LinkProbe(string adapter)
    {
        if (string.IsNullOrEmpty(adapter) || System.Text.Encoding.UTF8.GetByteCount(adapter) > 15)
            throw new ArgumentException($"adapter name '{adapter}' is not a valid interface name (1-15 bytes)", nameof(adapter));
        _adapter = adapter;
        _fd = Linux.Socket(Linux.AfInet, Linux.SockDgram | Linux.SockCloexec, 0);
        if (_fd < 0)
            throw new InvalidOperationException($"socket(AF_INET) for link checks failed: {Linux.Error(Marshal.GetLastPInvokeError())}");
    }

    private bool TryIoctl(uint request, out Linux.IfReq req, out int errno)
    {
        req = default;
        fixed (Linux.IfReq* p = &req)
        {
            int n = System.Text.Encoding.UTF8.GetBytes(_adapter, new Span<byte>(p->Name, 15));
            p->Name[n] = 0;
            if (Linux.Ioctl(_fd, request, p) == 0)
            {
                errno = 0;
                return true;
            }
        }
        errno = Marshal.GetLastPInvokeError();
        return false;
    }

    /// <summary>True when the adapter exists in this namespace.</summary>
    public bool Exists => TryIoctl(Linux.SiocGifFlags, out _, out _);

    /// <summary>Up and running (carrier), down, or down because the adapter is gone.</summary>
    public LinkState State
    {
        get
        {
            if (!TryIoctl(Linux.SiocGifFlags, out var req, out _)) return LinkState.Down;
            int flags = *(short*)req.Data & 0xffff;
            return (flags & Linux.IffUp) != 0 && (flags & Linux.IffRunning) != 0 ? LinkState.Up : LinkState.Down;
        }
    }

    /// <summary>The adapter's MTU.</summary>
    public int Mtu
    {
        get
        {
            if (!TryIoctl(Linux.SiocGifMtu, out var req, out int errno))
                throw new InvalidOperationException($"adapter '{_adapter}': cannot read its MTU: {Linux.Error(errno)}");
            return *(int*)req.Data;
        }
    }

    /// <summary>The adapter's own hardware address.</summary>
    public MacAddress HardwareAddress
    {
        get
        {
            if (!TryIoctl(Linux.SiocGifHwaddr, out var req, out int errno))
                throw new InvalidOperationException($"adapter '{_adapter}': cannot read its hardware address: {Linux.Error(errno)}");
            // struct sockaddr: sa_family (2 bytes), then the address.
            return MacAddress.Read(new ReadOnlySpan<byte>(req.Data + 2, 6));
        }
    }

    public void Dispose() => Linux.Close(_fd);
}
