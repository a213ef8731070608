// The stack tests start a broker, an inet server and a NIC driver per test on a
// 2-core machine shared with other work: one test at a time keeps their processes
// from starving each other.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]
