// Reading the NIC driver's live counters from its panel in shared memory (see NicPanel in
// AntHost.Inet.Abi): no IPC, and the driver is not woken.
using AntHost.Inet.Abi;

namespace AntHost.Cli;

internal sealed record NicPanelSnapshot(long[]? Values, DateTime Published, int CaptureOwner, long Captured, long CaptureDrops, string? Error);

internal static class NicPanelReader
{
    public static NicPanelSnapshot Read(string instance, string? adapter)
    {
        if (adapter is null) return new NicPanelSnapshot(null, default, 0, 0, 0, "no adapter recorded");
        string path = NicPanel.PathFor(instance, adapter);
        try
        {
            using var panel = NicPanel.Open(path, writable: false);
            var values = new long[(int)NicStat.Count];
            if (!panel.TryRead(values, out long ns)) return new NicPanelSnapshot(null, default, 0, 0, 0, $"{path}: the driver kept writing; try again");
            return new NicPanelSnapshot(values, DateTime.UnixEpoch.AddTicks(ns / 100), panel.CaptureOwner, panel.CapturedFrames, panel.CaptureDrops, null);
        }
        catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException)
        {
            return new NicPanelSnapshot(null, default, 0, 0, 0, $"the driver's live counters cannot be read: {e.Message}");
        }
    }
}
