// The broker is Linux-only, as the kernel interface it serves.
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]
