// Ctrl-C (SIGINT), SIGTERM and SIGHUP during `up` or `demo` must not end this process
// before it has taken down what it started: each becomes a cancellation that the steps
// check, and the teardown runs in the ordinary way. (PosixSignalRegistration also covers a
// SIGINT that a shell set to ignored for a background job.)
using System.Runtime.InteropServices;

namespace AntHost.Cli;

/// <summary>A cancellation token that the terminating signals cancel, for the life of this object.</summary>
internal sealed class Interruption : IDisposable
{
    private readonly CancellationTokenSource _cts = new();
    private readonly PosixSignalRegistration[] _registrations;

    public Interruption()
    {
        _registrations = [.. new[] { PosixSignal.SIGINT, PosixSignal.SIGTERM, PosixSignal.SIGHUP }.Select(s => PosixSignalRegistration.Create(s, c =>
        {
            c.Cancel = true;
            _cts.Cancel();
        }))];
    }

    public CancellationToken Token => _cts.Token;

    public void Dispose()
    {
        foreach (var r in _registrations) r.Dispose();
        _cts.Dispose();
    }
}
