// The kernel interface: see docs/kernel.md.

// The kernel is Linux-only: /dev/shm, futex, mprotect, Unix domain sockets.
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]
