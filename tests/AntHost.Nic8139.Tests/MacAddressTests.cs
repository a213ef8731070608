using AntHost.Inet.Abi;
using AntHost.Inet.Core.Wire;
using AntHost.Nic8139.Pcap;

namespace AntHost.Nic8139.Tests;

public class MacAddressTests
{
    [Fact]
    public void Parses_and_formats_round_trip()
    {
        var mac = MacAddress.Parse("02:00:5E:10:00:0a");
        Assert.Equal("02:00:5e:10:00:0a", mac.ToString());
        Assert.Equal(mac, MacAddress.Parse("02-00-5e-10-00-0a"));
        Span<byte> b = stackalloc byte[6];
        mac.WriteTo(b);
        Assert.Equal(mac, MacAddress.Read(b));
        Assert.Equal(mac, MacAddress.Read(b));
        Assert.NotEqual(MacAddress.Broadcast, MacAddress.Read(b));
    }

    [Theory]
    [InlineData("")]
    [InlineData("02:00:5e:10:00")]
    [InlineData("02:00:5e:10:00:zz")]
    [InlineData("02.00.5e.10.00.0a")]
    public void Refuses_what_is_not_a_mac_with_a_message(string text)
    {
        Assert.False(MacAddress.TryParse(text, out _));
        var e = Assert.Throws<FormatException>(() => MacAddress.Parse(text));
        Assert.Contains("not a MAC address", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Derived_address_is_locally_administered_unicast_stable_and_distinct()
    {
        var a = NicDevice.DeriveMac("anthost0", 0);
        Assert.True(a.IsLocallyAdministered);
        Assert.False(a.IsMulticast);
        Assert.Equal(a, NicDevice.DeriveMac("anthost0", 0));
        Assert.NotEqual(a, NicDevice.DeriveMac("anthost0", 1));
        Assert.NotEqual(a, NicDevice.DeriveMac("anthost1", 0));
        Assert.True(MacAddress.Broadcast.IsMulticast);
    }

    [Fact]
    public void Filter_accepts_our_address_and_broadcast_and_multicast_only_when_asked()
    {
        var mac = MacAddress.Parse("02:00:5e:10:00:01");
        Assert.Equal("ether dst 02:00:5e:10:00:01 or ether broadcast", NicDevice.BuildFilter(mac, false));
        Assert.Equal("ether dst 02:00:5e:10:00:01 or ether broadcast or ether multicast", NicDevice.BuildFilter(mac, true));
    }
}
