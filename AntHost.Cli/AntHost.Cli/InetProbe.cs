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

    public static string FormatMac(long m) => string.Join(':', Enumerable.Range(0, 6).Select(i => ((m >> (40 - 8 * i)) & 0xFF).ToString("x2", System.Globalization.CultureInfo.InvariantCulture)));
}
