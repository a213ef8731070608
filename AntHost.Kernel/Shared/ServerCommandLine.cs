// The command line of the broker and the inet server through System.CommandLine (as
// `anthost` and `anthost-nic` do): `--help` lists every option with what it does and its
// default; an unknown option or a missing value is refused by the parser; each value is then
// checked by the server's own parser, which keeps its messages (ranges, formats).
using System.CommandLine;

namespace AntHost.Kernel.Logging;

/// <summary>One option: its name, whether it takes a value, and its help text (with the default).</summary>
internal readonly record struct ServerOption(string Name, bool TakesValue, string Description);

internal static class ServerCommandLine
{
    /// <summary>
    /// Parses <paramref name="args"/>; on success hands <paramref name="parse"/> the options
    /// given, normalized as "--name value" pairs, and runs <paramref name="run"/> with what it
    /// returns. Exit code 2 (and the message) for a bad command line.
    /// </summary>
    public static int Run<T>(string program, string description, ServerOption[] options, string[] args, Func<string[], T> parse, Func<T, int> run)
    {
        var root = new RootCommand(description);
        var declared = options.Select(o => o.TakesValue
            ? (Option)new Option<string>(o.Name) { Description = o.Description }
            : new Option<bool>(o.Name) { Description = o.Description }).ToArray();
        foreach (var o in declared) root.Options.Add(o);
        root.SetAction(r =>
        {
            var given = new List<string>();
            foreach (var o in declared)
            {
                if (r.GetResult(o) is not { Implicit: false }) continue;
                if (o is Option<bool> flag)
                {
                    if (r.GetValue(flag)) given.Add(o.Name);
                }
                else
                {
                    given.Add(o.Name);
                    given.Add(r.GetValue((Option<string>)o) ?? "");
                }
            }
            T parsed;
            try { parsed = parse([.. given]); }
            catch (ArgumentException e)
            {
                Console.Error.WriteLine($"{program}: {e.Message}");
                Console.Error.WriteLine($"see: {program} --help");
                return 2;
            }
            return run(parsed);
        });
        var result = root.Parse(args);
        if (result.Errors.Count > 0)
        {
            foreach (var e in result.Errors) Console.Error.WriteLine($"{program}: {e.Message}");
            Console.Error.WriteLine($"see: {program} --help");
            return 2;
        }
        return result.Invoke();
    }
}
