// The protocol core is a pure library: see docs/stack.md.
