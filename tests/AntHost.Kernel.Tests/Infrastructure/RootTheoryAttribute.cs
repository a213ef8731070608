using AntHost.TestSupport;

namespace AntHost.Kernel.Tests.Infrastructure;

/// <summary>
/// A theory that runs only as root (the broker's socket lives in /run/anthost), and is
/// otherwise skipped saying so, as [RootFact] is.
/// </summary>
public sealed class RootTheoryAttribute : TheoryAttribute
{
    public RootTheoryAttribute()
    {
        if (Requirements.RootMissing is { } why) Skip = why;
    }
}
