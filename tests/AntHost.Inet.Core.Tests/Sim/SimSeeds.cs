namespace AntHost.Inet.Core.Tests.Sim;

/// <summary>
/// The seeds a full-stack simulation runs: ANTHOST_SIM_SEED replays one, ANTHOST_SIM_SEEDS
/// sets how many (a soak), otherwise the test's default count from 0.
/// </summary>
internal static class SimSeeds
{
    public static IEnumerable<ulong> FromEnvironment(int defaultCount)
    {
        if (ulong.TryParse(Environment.GetEnvironmentVariable("ANTHOST_SIM_SEED"), out var one))
        {
            yield return one;
            yield break;
        }
        int n = int.TryParse(Environment.GetEnvironmentVariable("ANTHOST_SIM_SEEDS"), out var m) ? m : defaultCount;
        for (int i = 0; i < n; i++) yield return (ulong)i;
    }
}
