// The multi-process tests start brokers and actors as real processes on a
// 2-core machine shared with other work: running them one at a time keeps
// every test's processes from starving each other.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]
