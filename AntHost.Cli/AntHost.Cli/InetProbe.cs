// Reading the inet server's counters from outside: a Stats request over the IPC, as any
// tool would make it (the process joins the instance for the duration of the call).
using AntHost.Inet.Abi;
using AntHost.Kernel;
using AntHost.Kernel.Ipc;

namespace AntHost.Cli;

internal static class InetProbe
{
    /// <summary>inet's counters in <see cref="InetStat"/> order; throws <see cref="CliException"/> saying why they cannot be read.</summary>
    public static long[] Stats(string instance, TimeSpan timeout)
    {
        try
        {
            using var k = KernelConnection.Connect(new KernelOptions { Instance = instance, ProcessName = "anthost-cli" });
            var inet = k.Open(InetService.Name);
            var reply = k.Call(inet, k.AllocateControl(), (ushort)InetOp.Stats, default, timeout);
            try
            {
                if (reply.Status != (int)InetStatus.Ok) throw new CliException($"inet answered Stats with status {reply.Status}");
                if (!ControlIca.TryOpen(reply.Control.Span, out var c)) throw new CliException("inet's Stats reply has no control ICA");
                return InetStats.Read(c.Inline);
            }
            finally
            {
                k.FreeMessage(reply);
            }
        }
        catch (KernelException e)
        {
            throw new CliException($"inet's counters cannot be read: {e.Message}");
        }
    }

    /// <summary>
    /// Every row of inet's socket table (<paramref name="op"/> SocketTable) or ARP cache
    /// (ArpTable), asked a reply's worth at a time from the cursor inet gives back.
    /// </summary>
    public static List<byte[]> Table(string instance, InetOp op, int rowSize, TimeSpan timeout)
    {
        var rows = new List<byte[]>();
        try
        {
            using var k = KernelConnection.Connect(new KernelOptions { Instance = instance, ProcessName = "anthost-cli" });
            var inet = k.Open(InetService.Name);
            int cursor = 0;
            for (int requests = 0; cursor >= 0; requests++)
            {
                if (requests > 100_000) throw new CliException($"inet's {op} did not end after {requests} requests");
                var control = k.AllocateControl();
                ControlIca.TryOpen(control.Span, out var c);
                c.TryPushFrame(new RequestFrame(0, (ushort)op, RequestFrameFlags.None, k.Id.Value, 0), out var args);
                System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(args, cursor);
                var reply = k.Call(inet, control, (ushort)op, default, timeout);
                try
                {
                    if (reply.Status != (int)InetStatus.Ok) throw new CliException($"inet answered {op} with status {(InetStatus)reply.Status}");
                    if (reply.Control.IsNone || !ControlIca.TryOpen(reply.Control.Span, out var rc)) throw new CliException($"inet's {op} reply has no control ICA");
                    if (!TableReply.TryRead(rc.Inline, rowSize, out int count, out int next)) throw new CliException($"inet's {op} reply does not parse (an older inet server?)");
                    for (int i = 0; i < count; i++) rows.Add(TableReply.Row(rc.Inline, i, rowSize).ToArray());
                    if (next >= 0 && next <= cursor && count == 0) throw new CliException($"inet's {op} made no progress at cursor {cursor}");
                    cursor = next;
                }
                finally
                {
                    k.FreeMessage(reply);
                }
            }
            return rows;
        }
        catch (KernelException e)
        {
            throw new CliException($"inet's {op} cannot be read: {e.Message}");
        }
    }

    public static string FormatMac(long m) => string.Join(':', Enumerable.Range(0, 6).Select(i => ((m >> (40 - 8 * i)) & 0xFF).ToString("x2", System.Globalization.CultureInfo.InvariantCulture)));
}
