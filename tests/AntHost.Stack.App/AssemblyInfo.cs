// The app runs where the kernel it joins runs: on Linux.
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]
