// anthost-nic: the NIC driver process, one per adapter. It joins a kernel instance, attaches
// the adapter to the inet server (ifattach) and carries frames both ways (Driver/). With
// --probe it runs alone instead: says what it sees and measures raw injection and a pcap ping.
using System.CommandLine;
using System.Net;
using System.Runtime.InteropServices;
using AntHost.Inet.Core.Wire;
using AntHost.Kernel;
using AntHost.Kernel.Logging;
using AntHost.Nic8139;
using AntHost.Nic8139.Driver;
using AntHost.Nic8139.Pcap;
using AntHost.Nic8139.Probe;
using Microsoft.Extensions.Logging;

var cli = new DriverCommandLine();
var parsed = cli.Root.Parse(args);
if (parsed.Errors.Count > 0)
{
    // A wrong command line is exit code 2, as in every AntHost program.
    foreach (var e in parsed.Errors) Console.Error.WriteLine($"anthost-nic: {e.Message}");
    Console.Error.WriteLine("see: anthost-nic --help");
    return 2;
}
return parsed.Invoke();

namespace AntHost.Nic8139
{
    using AntHost.Nic8139.Faults;

    /// <summary>The driver's command line; parsing is separate from running so tests can check it.</summary>
    internal sealed class DriverCommandLine
    {
        public Option<string> Adapter { get; } = new("--adapter") { Description = "the interface to drive (e.g. anthost0 in the sandbox)", Required = true };
        public Option<string?> Mac { get; } = new("--mac") { Description = "our MAC (default: locally administered, derived from the adapter name and --index)" };
        public Option<int> Index { get; } = new("--index") { Description = "driver number on this adapter (changes the derived MAC)", DefaultValueFactory = _ => 0 };
        public Option<int?> Mtu { get; } = new("--mtu") { Description = "IP MTU (default: the adapter's)" };
        public Option<string?> Netns { get; } = new("--netns") { Description = "open the adapter inside this named network namespace" };
        public Option<int> SpinUs { get; } = new("--spin-us") { Description = "poll an empty receive ring this many microseconds before sleeping", DefaultValueFactory = _ => 0 };
        public Option<int> BufferMiB { get; } = new("--buffer-mib") { Description = "libpcap kernel buffer in MiB", DefaultValueFactory = _ => 8 };
        public Option<bool> Multicast { get; } = new("--multicast") { Description = "accept multicast frames too" };
        public Option<double> FaultDrop { get; } = new("--fault-drop") { Description = "probability a frame is dropped" };
        public Option<double> FaultDuplicate { get; } = new("--fault-duplicate") { Description = "probability a frame is duplicated" };
        public Option<double> FaultCorrupt { get; } = new("--fault-corrupt") { Description = "probability a frame has bits of one byte flipped" };
        public Option<double> FaultReorder { get; } = new("--fault-reorder") { Description = "probability a frame is held back behind the next" };
        public Option<double> FaultDelay { get; } = new("--fault-delay") { Description = "probability a frame is delayed" };
        public Option<double> FaultDelayMs { get; } = new("--fault-delay-ms") { Description = "delay of a delayed frame, ms", DefaultValueFactory = _ => 10 };
        public Option<ulong> FaultSeed { get; } = new("--fault-seed") { Description = "fault injector seed", DefaultValueFactory = _ => 1 };
        public Option<string> FaultDirection { get; } = new("--fault-direction") { Description = "rx, tx or both", DefaultValueFactory = _ => "both" };
        public Option<bool> Probe { get; } = new("--probe") { Description = "open the adapter, print what it sees, exit" };
        public Option<int> ProbeSeconds { get; } = new("--probe-seconds") { Description = "how long --probe listens", DefaultValueFactory = _ => 5 };
        public Option<string?> Address { get; } = new("--address") { Description = "the IPv4 address we speak as (for --ping)" };
        public Option<string?> Ping { get; } = new("--ping") { Description = "measure a pcap ping (ARP, then ICMP echo) to this IPv4 address" };
        public Option<int> PingCount { get; } = new("--ping-count") { Description = "echo requests for --ping", DefaultValueFactory = _ => 2000 };
        public Option<int> InjectSeconds { get; } = new("--inject-seconds") { Description = "measure frames/s of raw injection for this long", DefaultValueFactory = _ => 0 };
        public Option<int> InjectLength { get; } = new("--inject-length") { Description = "frame length for --inject-seconds", DefaultValueFactory = _ => 1514 };
        public Option<string> Instance { get; } = new("--instance", "--kernel") { Description = "the AntHost instance to join (the broker's --instance; --kernel is its old name)", DefaultValueFactory = _ => "default" };
        public Option<string> Service { get; } = new("--service") { Description = "the inet server's service name", DefaultValueFactory = _ => "inet" };
        public Option<int> IpcSpinUs { get; } = new("--ipc-spin-us") { Description = "driver mode: how long the one loop spins over the pcap ring and the kernel rings before it sleeps, microseconds (0 = frugal)", DefaultValueFactory = _ => 20 };
        public Option<bool> NoCoalesce { get; } = new("--no-gro") { Description = "driver mode: hand every received segment to inet as it came (no receive coalescing)" };
        public Option<bool> NoFrameLists { get; } = new("--no-frame-lists") { Description = "driver mode: post each header-only TCP segment (an ACK) in a data ICA of its own, not packed into frame lists" };
        public Option<bool> NoCompletionBatches { get; } = new("--no-completion-batches") { Description = "driver mode: give each transmit's lent ICAs back to inet in a message of its own, not several completions to a TxCompletions message" };
        public Option<bool> NoKernelGso { get; } = new("--no-kernel-gso") { Description = "cut offloaded TCP sends into frames in the driver (one sendmmsg per send) instead of handing each to the kernel's segmentation as one frame with a virtio_net_hdr" };
        public Option<bool> Verbose { get; } = new("--verbose") { Description = "debug logging" };
        public Option<string> LogFormat { get; } = new("--log-format") { Description = "text, or json: one object per line (timestamp, level, category, message, the template's fields)", DefaultValueFactory = _ => "text" };
        public Option<bool> NoCapture { get; } = new("--no-capture") { Description = "driver mode: offer no capture (the panel carries the live counters only)" };

        public RootCommand Root { get; }

        public DriverCommandLine()
        {
            Root = new RootCommand("AntHost NIC driver (Nic8139): one adapter through libpcap");
            foreach (Option o in new Option[] { Adapter, Mac, Index, Mtu, Netns, SpinUs, BufferMiB, Multicast, FaultDrop, FaultDuplicate, FaultCorrupt,
                FaultReorder, FaultDelay, FaultDelayMs, FaultSeed, FaultDirection, Probe, ProbeSeconds, Address, Ping, PingCount, InjectSeconds, InjectLength,
                Instance, Service, IpcSpinUs, NoCoalesce, NoFrameLists, NoCompletionBatches, NoKernelGso, Verbose, LogFormat, NoCapture })
                Root.Options.Add(o);
            LogFormat.AcceptOnlyFromAmong(AntHost.Kernel.Logging.ServerLogging.Formats);
            Root.SetAction(Run);
        }

        /// <summary>The device options the command line asks for; throws <see cref="ArgumentException"/> with a message for bad values.</summary>
        public NicDeviceOptions ToDeviceOptions(ParseResult r)
        {
            MacAddress? mac = r.GetValue(Mac) is { } m ? MacAddress.Parse(m) : null;
            var faults = new FaultSettings
            {
                Drop = r.GetValue(FaultDrop),
                Duplicate = r.GetValue(FaultDuplicate),
                Corrupt = r.GetValue(FaultCorrupt),
                Reorder = r.GetValue(FaultReorder),
                Delay = r.GetValue(FaultDelay),
                DelayTime = TimeSpan.FromMilliseconds(r.GetValue(FaultDelayMs)),
                Seed = r.GetValue(FaultSeed),
            };
            faults.Validate();
            string direction = r.GetValue(FaultDirection) ?? "both";
            if (direction is not ("rx" or "tx" or "both")) throw new ArgumentException($"--fault-direction must be rx, tx or both (got '{direction}')");
            int bufferMiB = r.GetValue(BufferMiB);
            if (bufferMiB is < 1 or > 1024) throw new ArgumentException($"--buffer-mib must be 1..1024 (got {bufferMiB})");
            int spin = r.GetValue(SpinUs);
            if (spin is < 0 or > 1_000_000) throw new ArgumentException($"--spin-us must be 0..1000000 (got {spin})");
            return new NicDeviceOptions
            {
                Adapter = r.GetValue(Adapter)!,
                Mac = mac,
                Instance = r.GetValue(Index),
                Mtu = r.GetValue(Mtu),
                NetworkNamespace = r.GetValue(Netns),
                SpinMicroseconds = spin,
                BufferBytes = bufferMiB << 20,
                AcceptMulticast = r.GetValue(Multicast),
                ReceiveFaults = direction is "rx" or "both" ? faults : FaultSettings.None,
                TransmitFaults = direction is "tx" or "both" ? faults : FaultSettings.None,
                KernelSegmentation = !r.GetValue(NoKernelGso),
            };
        }

        private int Run(ParseResult r)
        {
            NicDeviceOptions options;
            ProbeOptions probe;
            try
            {
                options = ToDeviceOptions(r);
                probe = new ProbeOptions(r.GetValue(ProbeSeconds), ParseIp(r.GetValue(Address), "--address"), ParseIp(r.GetValue(Ping), "--ping"),
                    r.GetValue(PingCount), r.GetValue(InjectSeconds), r.GetValue(InjectLength));
            }
            catch (Exception e) when (e is ArgumentException or FormatException)
            {
                Console.Error.WriteLine($"anthost-nic: {e.Message}");
                return 2;
            }
            if (!r.GetValue(Probe)) return OperatingSystem.IsLinux() ? RunDriver(r, options) : 2;
            try
            {
                using var device = NicDevice.Open(options);
                return ProbeRunner.Run(device, probe, Console.Out);
            }
            catch (NicDeviceException e)
            {
                Console.Error.WriteLine($"anthost-nic: {e.Message}");
                return 1;
            }
        }

        /// <summary>The driver proper: the adapter attached to the inet server until SIGTERM or SIGINT.</summary>
        [System.Runtime.Versioning.SupportedOSPlatform("linux")]
        private int RunDriver(ParseResult r, NicDeviceOptions options)
        {
            int spin = r.GetValue(IpcSpinUs);
            if (spin is < 0 or > 100_000)
            {
                Console.Error.WriteLine($"anthost-nic: --ipc-spin-us must be 0..100000 (got {spin})");
                return 2;
            }
            using var loggers = LoggerFactory.Create(b => b
                .AddServerConsole(r.GetValue(LogFormat) ?? "text")
                .SetMinimumLevel(r.GetValue(Verbose) ? LogLevel.Debug : LogLevel.Information));
            var log = loggers.CreateLogger("anthost-nic");
            using var stop = new CancellationTokenSource();
            using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop.Cancel(); });
            using var intr = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; stop.Cancel(); });
            try
            {
                // One loop serves the adapter and the kernel rings: it spins the IPC budget.
                using var device = NicDevice.Open(options with { SpinMicroseconds = spin });
                var driver = new InetDriver(device, new InetDriverOptions
                {
                    Instance = r.GetValue(Instance) ?? "default",
                    Service = r.GetValue(Service) ?? "inet",
                    SpinBudget = TimeSpan.FromMicroseconds(spin),
                    Coalesce = !r.GetValue(NoCoalesce),
                    BatchCompletions = !r.GetValue(NoCompletionBatches),
                    FrameLists = !r.GetValue(NoFrameLists),
                    Capture = !r.GetValue(NoCapture),
                }, log);
                driver.Run(stop.Token);
                return 0;
            }
            catch (NicDeviceException e)
            {
                Console.Error.WriteLine($"anthost-nic: {e.Message}");
                return 1;
            }
            catch (KernelException e)
            {
                Console.Error.WriteLine($"anthost-nic: {e.Message}");
                return 1;
            }
        }

        private static IPAddress? ParseIp(string? text, string option) =>
            text is null ? null
            : IPAddress.TryParse(text, out var ip) && ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? ip
            : throw new ArgumentException($"{option} '{text}' is not an IPv4 address");
    }
}
