namespace AntHost.Inet.Core.Tcp;

/// <summary>
/// What TCP's buffers may hold, all connections together, and what they hold now: the
/// pressure the shell's memory puts on TCP (Linux's tcp_mem in spirit). The shell sets
/// <see cref="Limit"/> from what its pool can give (the core has no idea of pages or pools:
/// it is a number of bytes of buffer capacity); the core keeps <see cref="Used"/> as its
/// receive queues and send buffers take and give back buffers.
/// </summary>
/// <remarks>
/// Each connection that holds buffer memory may hold a fair share of the limit,
/// <c>Limit / Holders</c> (a connection asking for room counts itself), half for receiving and
/// half for sending, never less than <see cref="TcpConfig.PressureFloorBytes"/> each way (so a
/// connection always moves) and never more than its own buffer sizes. The receive share
/// bounds the window the connection offers (its right edge never moves left: RFC 9293 3.8.6
/// lets a window shrink only as data arrives), the send share bounds its send space. Idle
/// connections (no buffers) take no share. With no limit set every connection has its own
/// buffer sizes, as before.
/// </remarks>
public sealed class TcpMemory
{
    /// <summary>Bytes of buffer capacity TCP may hold in all (<see cref="long.MaxValue"/>: no limit).</summary>
    public long Limit { get; private set; } = long.MaxValue;

    /// <summary>Bytes of buffer capacity TCP's receive queues and send buffers hold now.</summary>
    public long Used { get; private set; }

    /// <summary>Connections that hold buffer memory.</summary>
    public int Holders { get; private set; }

    /// <summary>The most <see cref="Used"/> has been.</summary>
    public long UsedPeak { get; private set; }

    /// <summary>True while an even share of the limit is less than a connection's default buffers (send, or receive memory).</summary>
    public bool UnderPressure(TcpConfig config) =>
        Limit != long.MaxValue && Limit / Math.Max(1, Holders) / 2 < Math.Max(config.SendBufferSize, (long)config.ReceiveBufferSize * config.ReceiveMemoryFactor);

    /// <summary>
    /// True when TCP holds all the limit allows: listeners drop new SYNs (counted,
    /// <see cref="TcpDropReason.MemoryPressure"/>), so that what is left goes to the connections
    /// that have data on the way (the peer retransmits its SYN).
    /// </summary>
    public bool Exhausted => Limit != long.MaxValue && Used >= Limit;

    /// <summary>Sets the limit (the shell, from what its pool can give); a negative value means none left.</summary>
    public void SetLimit(long bytes) => Limit = Math.Max(0, bytes);

    /// <summary>Removes the limit.</summary>
    public void ClearLimit() => Limit = long.MaxValue;

    /// <summary>One connection's share of the limit, both directions together.</summary>
    internal long ShareFor(MemoryAccount account)
    {
        if (Limit == long.MaxValue) return long.MaxValue;
        int holders = Holders + (account.Held > 0 ? 0 : 1);
        return Limit / holders;
    }

    internal void Change(MemoryAccount account, long delta)
    {
        bool held = account.Held > 0;
        account.Held += delta;
        Used += delta;
        if (Used > UsedPeak) UsedPeak = Used;
        bool holds = account.Held > 0;
        if (holds != held) Holders += holds ? 1 : -1;
    }
}

/// <summary>One connection's buffer memory, kept in its layer's <see cref="TcpMemory"/>.</summary>
internal sealed class MemoryAccount(TcpMemory memory)
{
    public long Held { get; set; }

    public TcpMemory Memory => memory;

    public void Add(long delta)
    {
        if (delta != 0) memory.Change(this, delta);
    }
}
