using System.Net;
using System.Net.Sockets;
using AntHost.Bench.Net;

namespace AntHost.Cli.Tests;

/// <summary>`bench loss`'s report and its kernel baseline's congestion control.</summary>
public sealed class LossReportTests
{
    private static LossResult Row(string stack, double mbps, bool baseline = false) => new()
    {
        LossPercent = 5, Stack = stack, Direction = "to the peer", Sender = stack, Bytes = (long)(mbps * 1e6 / 8), Seconds = 1, Baseline = baseline,
    };

    [Fact]
    public void Every_ratio_is_taken_against_the_baseline_row_not_the_first_kernel_row()
    {
        var md = LossReport.ToMarkdown(
            [Row("host kernel (bbr)", 1000), Row("host kernel (cubic)", 20, baseline: true), Row("AntHost", 30)], []);
        var lines = md.Split('\n');
        Assert.Contains("| 1.50x |", lines.Single(l => l.Contains("| AntHost |", StringComparison.Ordinal)), StringComparison.Ordinal);
        Assert.Contains("| 50.00x |", lines.Single(l => l.Contains("(bbr)", StringComparison.Ordinal)), StringComparison.Ordinal);
        Assert.Contains("|  |", lines.Single(l => l.Contains("(cubic)", StringComparison.Ordinal)), StringComparison.Ordinal);
    }

    [Fact]
    public void A_kernel_socket_gets_the_algorithm_asked_for_and_an_unknown_one_is_a_clear_error()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var remote = (IPEndPoint)listener.LocalEndpoint;
        // reno is built in and in every namespace's allowed list, so this needs no privilege.
        var reno = new KernelStack(null, null, (_, make) => make(), "reno");
        Assert.Equal("host kernel (reno)", reno.Name);
        using (reno.Connect(remote))
        using (var accepted = listener.AcceptSocket())
        {
            // The connecting socket's algorithm, as `ss -i` shows it (the accepted one keeps the default).
            var client = (IPEndPoint)accepted.RemoteEndPoint!;
            var ss = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("ss", ["-tinH", "src", client.ToString()]) { RedirectStandardOutput = true })!;
            string info = ss.StandardOutput.ReadToEnd();
            ss.WaitForExit();
            Assert.Contains(" reno ", info, StringComparison.Ordinal);
        }
        var bogus = new KernelStack(null, null, (_, make) => make(), "no_such_cc");
        var e = Assert.Throws<InvalidOperationException>(() => bogus.Connect(remote));
        Assert.Contains("no_such_cc", e.Message, StringComparison.Ordinal);
    }
}
