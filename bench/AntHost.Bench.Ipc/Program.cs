// AntHost.Bench.Ipc: `ipc` runs the benchmark; the role-* commands are the
// benchmark's own child processes.
using AntHost.Bench.Ipc;
using AntHost.Kernel.Pool;

[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]

string Arg(string name, string fallback)
{
    int i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
}

string cmd = args.Length > 0 ? args[0] : "";
switch (cmd)
{
    case "role-inet": return Roles.Inet(Arg("--instance", "default"), int.Parse(Arg("--spin-us", "20")));
    case "role-nic": return Roles.Nic(Arg("--instance", "default"), int.Parse(Arg("--spin-us", "20")));
    case "role-uds": return Roles.UdsEcho(Arg("--path", ""));
    case "ipc":
        {
            var o = args.Contains("--quick") ? IpcBenchOptions.Quick : new IpcBenchOptions();
            string paths = Arg("--paths", "direct,mediated");
            o = o with
            {
                Paths = paths.Split(',').Select(p => p.Trim() switch
                {
                    "direct" => TransferMode.Direct,
                    "mediated" => TransferMode.Mediated,
                    var v => throw new ArgumentException($"--paths takes direct and/or mediated, not '{v}'"),
                }).ToArray(),
                SpinUs = int.Parse(Arg("--spin-us", o.SpinUs.ToString())),
                Log = Console.Error.WriteLine,
            };
            if (Arg("--iterations", "") is { Length: > 0 } it) o = o with { Iterations = int.Parse(it), SleepIterations = int.Parse(it) };
            var report = IpcBenchmark.Run(o);
            string md = IpcBenchReportWriter.ToMarkdown(report);
            Console.WriteLine(md);
            if (Arg("--json", "") is { Length: > 0 } json) File.WriteAllText(json, IpcBenchReportWriter.ToJson(report));
            if (Arg("--md", "") is { Length: > 0 } mdPath) File.WriteAllText(mdPath, md);
            return 0;
        }
    default:
        Console.Error.WriteLine("""
            usage: AntHost.Bench.Ipc ipc [--quick] [--paths direct,mediated] [--spin-us N] [--iterations N] [--json FILE] [--md FILE]

            The paper's three kinds of hop and the whole app -> inet -> nic -> direct return chain,
            for each transfer path, spinning and sleeping, beside a Unix domain socket (same payloads,
            same run). Median and p99. A full run takes about 1-2 minutes; --quick about 20 s.
            """);
        return cmd is "" or "--help" or "-h" ? 0 : 2;
}
