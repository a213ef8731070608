// AntHost's side of the network benchmarks: IBenchStack over the client library
// (AntHost.Client), the same loops as the host kernel's. The client library is built in
// parallel with these benchmarks; until it is part of the build this side reports that it
// was not measured, and the report says why, next to the baseline that was.
using AntHost.Bench.Net;

namespace AntHost.Cli;

internal static class AntHostStack
{
    public const string NotAvailable = "AntHost side not measured: the client library (AntHost.Client) with TCP sockets is not in this build yet; the host kernel's baseline was measured";

    /// <summary>A stack over the client library connected to <paramref name="instance"/>, or null (with a note saying why) when it cannot be had.</summary>
    public static IBenchStack? TryCreate(string instance, int spinUs, List<string> notes)
    {
        _ = instance;
        _ = spinUs;
        BenchRun.NoteOnceList(notes, NotAvailable);
        return null;
    }
}
