using AntHost.TestSupport;
using Xunit.Abstractions;

namespace AntHost.Cli.Tests;

/// <summary>A wrong command line is refused before anything is made: exit code 2 and a message naming the problem.</summary>
public sealed class ArgumentTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData("direct and mediated", "up", "--transfer", "sideways")]
    [InlineData("instance name", "up", "--instance", "Bad_Name")]
    [InlineData("instance name", "down", "--instance", "../etc")]
    [InlineData("--adapter needs --address", "up", "--adapter", "nosuch0")]
    [InlineData("go with --adapter", "up", "--address", "198.18.0.2/24")]
    [InlineData("is not an IPv4 address with a prefix length", "up", "--adapter", "nosuch0", "--address", "198.18.0.2")]
    [InlineData("--gateway 'x' is not an IPv4 address", "up", "--adapter", "nosuch0", "--address", "198.18.0.2/24", "--gateway", "x")]
    [InlineData("--spin-us takes 0..100000", "up", "--spin-us", "-5")]
    [InlineData("sandbox prefix", "up", "--prefix", "UPPER")]
    [InlineData("--group: there is no group 'no-such-group'", "up", "--group", "no-such-group")]
    [InlineData("--dns wants an IPv4 address, not 'resolver.example'", "up", "--dns", "resolver.example")]
    [InlineData("--pings takes 1..100000", "demo", "--pings", "0")]
    [InlineData("Unrecognized command or argument 'sideways'", "sideways")]
    [InlineData("Unrecognized command or argument '--nope'", "ps", "--nope")]
    [InlineData("Argument 'reno' not recognized", "up", "--tcp-cc", "reno")]
    [InlineData("--fault-drop takes a probability 0..1", "up", "--fault-drop", "1.5")]
    [InlineData("--pool-size takes a size like 64M", "up", "--pool-size", "lots")]
    [InlineData("Argument 'xml' not recognized", "up", "--log-format", "xml")]
    [InlineData("--nic-spin-us takes 0..100000", "up", "--nic-spin-us", "-1")]
    [InlineData("--count takes 1 or more", "capture", "--count", "0")]
    [InlineData("Unrecognized command or argument '--nope'", "ss", "--nope")]
    public void A_wrong_command_line_exits_2_saying_what_is_wrong(string expected, params string[] args)
    {
        var r = Cli.Run(output, args);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains(expected.Replace("direct and mediated", "mediated", StringComparison.Ordinal), r.StandardError, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", r.All, StringComparison.Ordinal); // no stack trace
    }

    [Fact]
    public void Help_lists_every_command()
    {
        var r = Cli.Run(output, "--help");
        Assert.Equal(0, r.ExitCode);
        foreach (var c in new[] { "up", "down", "ps", "ss", "capture", "bench", "demo" }) Assert.Contains($"  {c} ", r.StandardOutput, StringComparison.Ordinal);
        r = Cli.Run(output, "bench", "--help");
        Assert.Contains("ipc", r.StandardOutput, StringComparison.Ordinal);
    }

    [Fact]
    public void Up_help_lists_every_setting_of_the_servers_with_its_default()
    {
        var r = Cli.Run(output, "up", "--help");
        Assert.Equal(0, r.ExitCode);
        foreach (var o in new[] { "--pool-size", "--tcp-cc", "--tcp-sndbuf", "--tcp-rcvbuf", "--tcp-mem-pages", "--rx-reserve-pages", "--spin-us", "--inet-spin-us", "--nic-spin-us", "--fault-drop", "--fault-reorder",
            "--fault-duplicate", "--fault-corrupt", "--fault-seed", "--fault-direction", "--verbose", "--log-format", "--no-capture", "--transfer", "--group" })
            Assert.Contains(o, r.StandardOutput, StringComparison.Ordinal);
        foreach (var d in new[] { "default 64M", "default cubic", "default 262144", "[default: text]", "default 1)", "default both" })
            Assert.Contains(d, r.StandardOutput, StringComparison.Ordinal);
    }

    [Fact]
    public void Every_server_parses_its_command_line_with_System_CommandLine_takes_instance_and_log_format_and_answers_help()
    {
        string Dll(string project, string name)
        {
            var dir = new DirectoryInfo(Path.GetDirectoryName(Cli.Dll)!);
            string tfm = dir.Name, config = dir.Parent!.Name;
            var root = dir.Parent!.Parent!.Parent!.Parent!.Parent!.FullName;
            return Path.Combine(root, project, "bin", config, tfm, name);
        }
        foreach (var (project, name) in new[] { ("AntHost.Kernel/AntHost.Broker", "anthost-kernel.dll"), ("AntHost.Inet/AntHost.Inet", "anthost-inet.dll"), ("AntHost.Nic8139/AntHost.Nic8139", "anthost-nic.dll") })
        {
            var help = Cli.RunDllUnder(output, [], Dll(project, name), "--help");
            Assert.Equal(0, help.ExitCode);
            Assert.Contains("--instance", help.StandardOutput, StringComparison.Ordinal);
            Assert.Contains("--log-format", help.StandardOutput, StringComparison.Ordinal);
            Assert.DoesNotContain("  --kernel", help.StandardOutput, StringComparison.Ordinal); // an alias at most, never the name
            var wrong = Cli.RunDllUnder(output, [], Dll(project, name), "--no-such-option");
            Assert.Equal(2, wrong.ExitCode);
            Assert.Contains("'--no-such-option'", wrong.StandardError, StringComparison.Ordinal);
        }
    }

    [RootFact]
    public void Ps_and_down_of_an_instance_that_is_not_up_say_so()
    {
        string instance = $"test-cli-none-{Random.Shared.Next(10000, 100000)}";
        var ps = Cli.Run(output, "ps", "--instance", instance);
        Assert.Equal(1, ps.ExitCode);
        Assert.Contains($"instance '{instance}' is not up", ps.StandardError, StringComparison.Ordinal);
        var down = Cli.Run(output, "down", "--instance", instance);
        Assert.Equal(0, down.ExitCode); // idempotent: nothing to do is not an error
        Assert.Contains("is not up", down.StandardOutput, StringComparison.Ordinal);
    }
}
