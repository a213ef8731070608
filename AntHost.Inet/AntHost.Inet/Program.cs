// anthost-inet: the inet server process of one AntHost kernel instance.
using AntHost.Inet;
using AntHost.Kernel;
using AntHost.Kernel.Logging;

return ServerCommandLine.Run("anthost-inet", "anthost-inet: the AntHost inet server (TCP/IP stack) of one instance",
    InetOptions.Options, args, InetOptions.Parse,
    o => ServerHost.Run<InetServer, InetOptions, KernelException>("anthost-inet", o, o.LogFormat, o.Verbose, TimeSpan.FromSeconds(10)));
