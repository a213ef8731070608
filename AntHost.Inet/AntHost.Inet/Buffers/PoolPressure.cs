// TCP's buffers come from the kernel's pool, and so do the NIC driver's receive ICAs, the
// apps' send ICAs and everyone's control ICAs. Left alone, a hundred busy connections at
// their default buffer sizes took the whole pool: the driver found no ICA for the next frame,
// so no ACK came in to free a send buffer, and the peer's retransmissions, dropped too, backed
// off to tens of seconds (a stall). This sets the protocol core's memory limit
// (TcpMemory) from what the pool can give, once per round of the request manager: the
// core then derives every connection's window and send space from its share (the core
// stays pure: it sees a number of bytes, never the pool).
//
//   limit = min(TCP's part of the pool,  what TCP holds + (free pages - receive reserve) x page)
//
// TCP's part of the pool is --tcp-mem-pages (default: half the pool's data pages); the
// receive reserve (--rx-reserve-pages, default: an eighth of the pool) is what TCP's windows
// never promise away, so the driver always finds ICAs for frames arriving, the ACKs among
// them. The second term makes the limit follow the pool as others (apps, their caches) take
// and give back pages. And when the free pages fall below the reserve, inet gives back its own
// cache of ICAs (at most every 100 ms; the driver and the apps keep theirs).
using AntHost.Inet.Core.Tcp;
using AntHost.Inet.Core.Time;
using AntHost.Kernel;
using AntHost.Kernel.Pool;

namespace AntHost.Inet.Buffers;

/// <summary>Feeds the pool's state to the TCP layer's <see cref="TcpMemory"/> (see the file's head).</summary>
internal sealed class PoolPressure
{
    private const int PageSize = PoolLayout.PageSize;
    private static readonly TimeSpan TrimInterval = TimeSpan.FromMilliseconds(100);
    private readonly IInetKernel _kernel;
    private Instant _lastTrim;
    private bool _trimmed;

    /// <param name="tcpPages">TCP's part of the pool in pages (negative: half the pool; 0: no limit).</param>
    /// <param name="reservePages">The receive reserve in pages (negative: an eighth of the pool).</param>
    public PoolPressure(IInetKernel kernel, int tcpPages, int reservePages)
    {
        _kernel = kernel;
        int data = kernel.PoolPages;
        TcpPages = tcpPages < 0 ? data / 2 : Math.Min(tcpPages, data);
        ReservePages = reservePages < 0 ? data / 8 : Math.Min(reservePages, data);
    }

    /// <summary>TCP's part of the pool, pages (0: no limit).</summary>
    public int TcpPages { get; }

    /// <summary>Pages TCP's windows leave for the driver's receive ICAs.</summary>
    public int ReservePages { get; }

    /// <summary>The lowest count of free pages seen.</summary>
    public long FreePagesLow { get; private set; } = long.MaxValue;

    /// <summary>Times inet gave its ICA cache back because the free pages were below the reserve.</summary>
    public long CacheTrims { get; private set; }

    /// <summary>Sets <paramref name="memory"/>'s limit from the pool now.</summary>
    public void Update(TcpMemory memory, Instant now)
    {
        if (TcpPages == 0)
        {
            memory.ClearLimit();
            return;
        }
        long free = _kernel.FreePages;
        if (free < FreePagesLow) FreePagesLow = free;
        if (free < ReservePages && (!_trimmed || now - _lastTrim >= TrimInterval) && _kernel.CachedIcas > 0)
        {
            _kernel.TrimCache();
            CacheTrims++;
            _lastTrim = now;
            _trimmed = true;
        }
        long fromPool = memory.Used + (free - ReservePages) * PageSize;
        memory.SetLimit(Math.Min((long)TcpPages * PageSize, fromPool));
    }
}
