namespace AntHost.Inet.Core.Buffers;

/// <summary>
/// A pool of array-backed buffers, for tests, simulations and benchmarks. It counts
/// what is out, so a test can assert that nothing leaked.
/// </summary>
public sealed class HeapBufferPool : IPacketBufferPool
{
    private readonly Stack<ArrayBuffer> _free = new();
    private readonly int _bufferSize;
    private readonly int _limit;
    private int _created;

    /// <param name="bufferSize">Bytes of each buffer (a page, as a data ICA has).</param>
    /// <param name="limit">Most buffers out at once; beyond it <see cref="Rent"/> returns null.</param>
    public HeapBufferPool(int bufferSize = 4096, int limit = int.MaxValue)
    {
        _bufferSize = bufferSize;
        _limit = limit;
    }

    /// <summary>Bytes of each buffer.</summary>
    public int BufferSize => _bufferSize;

    /// <summary>Buffers handed out and not yet released.</summary>
    public int Outstanding { get; private set; }

    public PacketBuffer? Rent(int headroom, int dataCapacity)
    {
        if (headroom + dataCapacity > _bufferSize || Outstanding >= _limit) return null;
        ArrayBuffer b;
        if (!_free.TryPop(out b!))
        {
            b = new ArrayBuffer(this, new byte[_bufferSize]);
            _created++;
        }
        b.Activate(headroom);
        Outstanding++;
        return b;
    }

    private void Return(ArrayBuffer b)
    {
        Outstanding--;
        _free.Push(b);
    }

    private sealed class ArrayBuffer(HeapBufferPool pool, byte[] array) : PacketBuffer
    {
        protected override Span<byte> Backing => array;

        public override int Capacity => array.Length;

        public void Activate(int headroom)
        {
            Revive();
            Reset(headroom);
        }

        protected override void OnRelease() => pool.Return(this);
    }
}
