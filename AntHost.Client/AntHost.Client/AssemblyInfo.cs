// The client library: see docs/client.md.

// The kernel it rides on is Linux-only (/dev/shm, futex, Unix domain sockets).
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]
