// The inet server runs on Linux only, as the kernel it joins does.
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]
