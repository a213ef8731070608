// anthost-kernel: the broker process of one AntHost instance.
using AntHost.Broker;
using AntHost.Kernel.Logging;

return ServerCommandLine.Run("anthost-kernel", "anthost-kernel: the AntHost broker (ICA pool, ownership, names, death and reclaim)",
    BrokerOptions.Options, args, BrokerOptions.Parse,
    o => ServerHost.Run<BrokerService, BrokerOptions, BrokerStartException>("anthost-kernel", o, o.LogFormat, o.Verbose, TimeSpan.FromSeconds(5)));
