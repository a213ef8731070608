// The kernel interface: see docs/kernel.md.
