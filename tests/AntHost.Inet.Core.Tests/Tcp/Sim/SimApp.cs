using AntHost.Inet.Core.Buffers;
using AntHost.Inet.Core.Randomness;
using AntHost.Inet.Core.Tcp;
using AntHost.Inet.Core.Time;

namespace AntHost.Inet.Core.Tests.Tcp.Sim;

/// <summary>
/// The scripted application on one side of the simulation: connect (or listen and accept),
/// send its whole stream in random-sized writes (copying writes and zero-copy buffers),
/// half-close, read the peer's stream to the end checking every byte, then close.
/// </summary>
public sealed class SimApp
{
    private readonly string _name;
    private readonly TcpLayer _tcp;
    private readonly HeapBufferPool _pool;
    private readonly SeededRandom _random;
    private readonly ulong _sendKey, _receiveKey;
    private readonly long _sendTotal, _receiveTotal;
    private readonly bool _isClient;
    private readonly TcpEndPoint _serverEndPoint;
    private readonly double _readProbability;
    private readonly bool _noDelay;
    private readonly byte[] _scratch = new byte[16 * 1024];

    private TcpSocket _listener, _socket;
    private bool _adopts;
    private long _sent, _received;
    private bool _shutdown, _eof, _closed, _started;

    public SimApp(string name, TcpLayer tcp, HeapBufferPool pool, SeededRandom random, bool isClient, TcpEndPoint server,
        ulong sendKey, long sendTotal, ulong receiveKey, long receiveTotal, double readProbability, bool noDelay)
    {
        _name = name;
        _tcp = tcp;
        _pool = pool;
        _random = random;
        _isClient = isClient;
        _serverEndPoint = server;
        _sendKey = sendKey;
        _sendTotal = sendTotal;
        _receiveKey = receiveKey;
        _receiveTotal = receiveTotal;
        _readProbability = readProbability;
        _noDelay = noDelay;
    }

    public bool Done => _closed;

    public long Sent => _sent;

    public long Received => _received;

    /// <summary>The app writes only this far into its stream (and half-closes only at its end); the whole stream by default.</summary>
    public long SendAllowance { get; set; } = long.MaxValue;

    /// <summary>The connected socket (none before connect or accept).</summary>
    public TcpSocket Socket => _socket;

    public string Status =>
        $"{_name}: sent {_sent}/{_sendTotal} received {_received}/{_receiveTotal} shutdown={_shutdown} eof={_eof} closed={_closed} " +
        $"state={(_socket == default ? "-" : _tcp.GetState(_socket).ToString())} error={(_socket == default ? "-" : _tcp.GetError(_socket).ToString())}" +
        (_socket == default ? "" : $" info={_tcp.GetInfo(_socket)}");

    /// <summary>
    /// A server-side app that does not listen itself: the simulation's shared listener accepts
    /// and hands it its connection with <see cref="Adopt"/> (several connections to one port).
    /// </summary>
    public SimApp AdoptsConnection()
    {
        _adopts = true;
        return this;
    }

    /// <summary>Takes an accepted connection (see <see cref="AdoptsConnection"/>).</summary>
    public void Adopt(TcpSocket socket, Instant now)
    {
        _started = true;
        _socket = socket;
        if (_noDelay) Check(_tcp.SetOption(_socket, TcpOption.NoDelay, 1, now), "set no-delay");
    }

    /// <summary>Next instant the app wants to run although nothing happened (a slow reader's next read).</summary>
    public Instant? WakeAt { get; private set; }

    /// <summary>Does whatever the app can do now. Throws <see cref="SimulationFailure"/> on a broken promise.</summary>
    public void Step(Instant now, bool force)
    {
        if (!_started && !_adopts)
        {
            _started = true;
            Start(now);
        }
        if (_closed) return;
        if (_socket == default)
        {
            if (_isClient || _adopts) return;
            var e = _tcp.Accept(_listener, out var s);
            if (e == TcpError.WouldBlock) return;
            Check(e, "accept");
            _socket = s;
            Check(_tcp.Close(_listener, now), "close listener");
            if (_noDelay) Check(_tcp.SetOption(_socket, TcpOption.NoDelay, 1, now), "set no-delay");
        }

        var error = _tcp.GetError(_socket);
        if (error != TcpError.None) throw new SimulationFailure($"{_name}: the connection failed with {error}");
        var state = _tcp.GetState(_socket);
        if (state is TcpState.SynSent or TcpState.SynReceived) return;

        Write(now);
        if (force || _readProbability >= 1 || _random.NextDouble() < _readProbability) Read(now);
        WakeAt = _eof || _readProbability >= 1 ? null : now + TimeSpan.FromMilliseconds(1 + _random.Next(20));

        if (_eof && _shutdown && !_closed)
        {
            Check(_tcp.Close(_socket, now), "close");
            _closed = true;
            WakeAt = null;
        }
    }

    private void Start(Instant now)
    {
        if (_isClient)
        {
            Check(_tcp.Open(out _socket), "open");
            if (_noDelay) Check(_tcp.SetOption(_socket, TcpOption.NoDelay, 1, now), "set no-delay");
            Check(_tcp.Connect(_socket, _serverEndPoint, now), "connect");
        }
        else
        {
            Check(_tcp.Open(out _listener), "open listener");
            Check(_tcp.Bind(_listener, _serverEndPoint), "bind");
            Check(_tcp.Listen(_listener, 4), "listen");
        }
    }

    private void Write(Instant now)
    {
        long limit = Math.Min(_sendTotal, SendAllowance);
        while (_sent < limit)
        {
            int want = (int)Math.Min(limit - _sent, 1 + _random.Next(_random.Next(4) == 0 ? 200 : 12_000));
            if (_random.Next(3) == 0)
            {
                // Zero copy: a buffer with the headroom for in-place transmission, at most one of the pool's.
                int n = Math.Min(want, _pool.BufferSize - TcpLayer.SendHeadroom);
                var b = _pool.Rent(TcpLayer.SendHeadroom, n);
                if (b is null) return;
                StreamPattern.Fill(_sendKey, _sent, b.Append(n));
                var e = _tcp.Send(_socket, b, now);
                if (e == TcpError.WouldBlock || e == TcpError.NoBufferSpace)
                {
                    b.Release();
                    return;
                }
                Check(e, "send (buffer)");
                _sent += n;
            }
            else
            {
                var span = _scratch.AsSpan(0, Math.Min(want, _scratch.Length));
                StreamPattern.Fill(_sendKey, _sent, span);
                var e = _tcp.Send(_socket, span, out int written, now);
                if (written == 0)
                {
                    if (e is TcpError.WouldBlock or TcpError.NoBufferSpace or TcpError.None) return;
                    Check(e, "send");
                }
                _sent += written;
            }
        }
        if (!_shutdown && _sent == _sendTotal)
        {
            Check(_tcp.Shutdown(_socket, now), "shutdown");
            _shutdown = true;
        }
    }

    private void Read(Instant now)
    {
        while (!_eof)
        {
            if (_random.Next(2) == 0)
            {
                var e = _tcp.Receive(_socket, out PacketBuffer? b, now);
                if (e == TcpError.WouldBlock) return;
                Check(e, "receive (buffer)");
                if (b is null)
                {
                    EndOfStream();
                    return;
                }
                Verify(b.Data);
                b.Release();
            }
            else
            {
                var e = _tcp.Receive(_socket, _scratch.AsSpan(0, 1 + _random.Next(_scratch.Length)), out int read, now);
                if (e == TcpError.WouldBlock) return;
                Check(e, "receive");
                if (read == 0)
                {
                    EndOfStream();
                    return;
                }
                Verify(_scratch.AsSpan(0, read));
            }
        }
    }

    private void Verify(ReadOnlySpan<byte> data)
    {
        if (_received + data.Length > _receiveTotal)
            throw new SimulationFailure($"{_name}: received {_received + data.Length} bytes, more than the {_receiveTotal} the peer sent");
        int bad = StreamPattern.FirstMismatch(_receiveKey, _received, data);
        if (bad >= 0)
            throw new SimulationFailure($"{_name}: byte {_received + bad} of the stream is wrong (got {data[bad]}, expected {StreamPattern.At(_receiveKey, _received + bad)})");
        _received += data.Length;
    }

    private void EndOfStream()
    {
        if (_received != _receiveTotal)
            throw new SimulationFailure($"{_name}: end of stream after {_received} bytes, expected {_receiveTotal}");
        _eof = true;
    }

    private void Check(TcpError e, string what)
    {
        if (e != TcpError.None) throw new SimulationFailure($"{_name}: {what} failed with {e}");
    }
}

/// <summary>A broken promise of the stack, found by the simulation.</summary>
public sealed class SimulationFailure(string message) : Exception(message);
