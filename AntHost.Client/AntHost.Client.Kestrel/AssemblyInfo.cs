// Kestrel over AntHost: see docs/client.md, "ASP.NET Core".

// The kernel it rides on is Linux-only (/dev/shm, futex, Unix domain sockets).
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]
