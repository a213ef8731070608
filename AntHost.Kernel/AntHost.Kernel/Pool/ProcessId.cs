namespace AntHost.Kernel.Pool;

/// <summary>
/// A registered process: its slot in the process table and the incarnation of that
/// slot, so that a message addressed to a dead process never reaches the next one
/// that gets the same slot.
/// </summary>
public readonly record struct ProcessId(uint Value)
{
    public static ProcessId Create(int slot, ushort incarnation) => new(((uint)incarnation << 16) | (uint)(slot + 1));

    public int Slot => (int)(Value & 0xFFFF) - 1;
    public ushort Incarnation => (ushort)(Value >> 16);
    public bool IsNone => Value == 0;

    /// <summary>The value the ownership table stores for this process (slot + 1).</summary>
    internal ushort OwnerTag => (ushort)(Value & 0xFFFF);

    public override string ToString() => IsNone ? "proc:none" : $"proc:{Slot}.{Incarnation}";
}
