// Each root test brings a whole instance up (four processes) on a 2-core machine shared
// with other work: one at a time.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]
