// The kernel these tests fake is Linux-only (/dev/shm).
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]
