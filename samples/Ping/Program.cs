// ICMP echo from AntHost to the peer: the inet server sends the echo requests and
// times each reply.
using System.Globalization;
using AntHost.Samples;

const string Usage = "Ping [--instance NAME] [--to 198.18.0.1] [--count 5] [--timeout-ms 1000] [--size 56]";
var cli = SampleArgs.Parse(Environment.GetCommandLineArgs()[1..], Usage, "count", "timeout-ms", "size");
return SampleArgs.Run(() =>
{
    using var stack = cli.Connect();
    int count = Math.Max(1, cli.Int("count", 5)), size = cli.Int("size", 56);
    var timeout = TimeSpan.FromMilliseconds(Math.Max(1, cli.Int("timeout-ms", 1000)));
    var rtts = new List<double>();
    for (int i = 1; i <= count; i++)
    {
        var rtt = stack.Ping(cli.To, timeout, size);
        rtts.Add(rtt.TotalMicroseconds);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{size} bytes from {cli.To}: seq={i} time={rtt.TotalMicroseconds:F0} us"));
    }
    rtts.Sort();
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"{count} sent, {count} answered; rtt min/median/max = {rtts[0]:F0}/{rtts[rtts.Count / 2]:F0}/{rtts[^1]:F0} us"));
    return 0;
});
