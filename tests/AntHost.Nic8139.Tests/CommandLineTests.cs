namespace AntHost.Nic8139.Tests;

public class CommandLineTests
{
    [Fact]
    public void Fault_options_reach_the_chosen_direction_only()
    {
        var cli = new DriverCommandLine();
        var r = cli.Root.Parse(["--adapter", "anthost0", "--fault-drop", "0.25", "--fault-corrupt", "0.5", "--fault-seed", "99", "--fault-direction", "rx", "--spin-us", "20"]);
        Assert.Empty(r.Errors);
        var o = cli.ToDeviceOptions(r);
        Assert.Equal("anthost0", o.Adapter);
        Assert.Null(o.Mac);
        Assert.Equal(20, o.SpinMicroseconds);
        Assert.Equal(0.25, o.ReceiveFaults.Drop);
        Assert.Equal(0.5, o.ReceiveFaults.Corrupt);
        Assert.Equal(99UL, o.ReceiveFaults.Seed);
        Assert.False(o.TransmitFaults.Enabled);
    }

    [Fact]
    public void Faults_are_off_unless_asked_and_the_mac_is_parsed()
    {
        var cli = new DriverCommandLine();
        var o = cli.ToDeviceOptions(cli.Root.Parse(["--adapter", "eth9", "--mac", "02:11:22:33:44:55", "--index", "3"]));
        Assert.False(o.ReceiveFaults.Enabled);
        Assert.False(o.TransmitFaults.Enabled);
        Assert.Equal("02:11:22:33:44:55", o.Mac.ToString());
        Assert.Equal(3, o.Instance);
    }

    [Fact]
    public void Bad_values_give_messages_that_name_the_option()
    {
        var cli = new DriverCommandLine();
        Assert.NotEmpty(cli.Root.Parse(["--fault-drop", "0.1"]).Errors); // --adapter is required
        var e = Assert.Throws<ArgumentException>(() => cli.ToDeviceOptions(cli.Root.Parse(["--adapter", "a", "--fault-drop", "2"])));
        Assert.Contains("Drop", e.Message, StringComparison.Ordinal);
        e = Assert.Throws<ArgumentException>(() => cli.ToDeviceOptions(cli.Root.Parse(["--adapter", "a", "--fault-direction", "up"])));
        Assert.Contains("--fault-direction", e.Message, StringComparison.Ordinal);
        Assert.Throws<FormatException>(() => cli.ToDeviceOptions(cli.Root.Parse(["--adapter", "a", "--mac", "nope"])));
    }
}
