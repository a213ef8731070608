using BenchmarkDotNet.Running;

namespace AntHost.Inet.Core.Bench;

/// <summary>
/// Every benchmark class in this assembly, chosen on the command line:
/// <c>dotnet run -c Release -- --filter '*Checksum*'</c>, or with no arguments a menu.
/// </summary>
public static class Program
{
    public static void Main(string[] args) => BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
}
