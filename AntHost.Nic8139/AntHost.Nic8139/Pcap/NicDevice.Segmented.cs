using System.Diagnostics;
using System.Runtime.InteropServices;
using AntHost.Inet.Abi;
using AntHost.Inet.Core.Wire;

namespace AntHost.Nic8139.Pcap;

// Segmentation offload on the way out: the inet server hands one header template and up to
// 64 KiB of TCP payload; the device cuts the frames (TcpSegmentation: per-frame lengths,
// identification, sequence numbers, flags and checksums) and gives them to the kernel in
// one sendmmsg on libpcap's own packet socket, each frame gathered from two pieces: its
// header, written here, and its slice of the payload, read where inet's ICA holds it. So the
// payload is copied once, by the kernel, as pcap_inject would, and a 44-frame send costs
// one system call instead of 44.
public sealed unsafe partial class NicDevice
{
    /// <summary>Frames given to the kernel per sendmmsg.</summary>
    private const int SegmentBatch = 64;

    private byte* _segmentHeaders;
    private Linux.MmsgHdr* _segmentMessages;
    private Linux.IoVec* _segmentVectors;
    private long _txOffloads, _txOffloadFrames;

    /// <summary>Offload sends cut, and the frames they made (also in <see cref="Counters"/>' transmit figures).</summary>
    public long TxOffloads => Volatile.Read(ref _txOffloads);

    public long TxOffloadFrames => Volatile.Read(ref _txOffloadFrames);

    /// <summary>
    /// Transmits <paramref name="payload"/> as TCP frames of <paramref name="segmentSize"/>
    /// payload bytes each, headed by copies of <paramref name="template"/> (Ethernet, IPv4,
    /// TCP) fixed up per frame. Never throws: the result says, and it is counted. With the
    /// fault injector on, each frame goes through it as a whole frame.
    /// </summary>
    public TransmitResult TransmitSegmented(ReadOnlySpan<byte> template, ReadOnlySpan<byte> payload, int segmentSize)
    {
        if (TcpSegmentation.Validate(template) < 0 || segmentSize <= 0 || payload.IsEmpty)
        {
            Interlocked.Increment(ref _txRejected);
            return TransmitResult.TooShort;
        }
        if (template.Length + segmentSize > MaxFrameLength)
        {
            Interlocked.Increment(ref _txRejected);
            return TransmitResult.TooLong;
        }
        int frames = TcpSegmentation.FrameCount(payload.Length, segmentSize);
        Interlocked.Increment(ref _txOffloads);
        Interlocked.Add(ref _txOffloadFrames, frames);
        if (_txFaults.Enabled) return TransmitSegmentedThroughFaults(template, payload, segmentSize, frames);

        lock (_handleLock)
        {
            if (_pcapFd < 0)
            {
                Interlocked.Increment(ref _txLinkDown);
                return TransmitResult.LinkDown;
            }
            EnsureSegmentBuffers();
            fixed (byte* data = payload)
            {
                for (int first = 0; first < frames; first += SegmentBatch)
                {
                    int n = Math.Min(SegmentBatch, frames - first);
                    long bytes = 0;
                    for (int k = 0; k < n; k++)
                    {
                        int index = first + k;
                        var slice = TcpSegmentation.Slice(payload, index, segmentSize);
                        byte* header = _segmentHeaders + k * TcpSegmentation.MaxHeaderLength;
                        TcpSegmentation.WriteSliceHeader(template, index, segmentSize, index == frames - 1, slice, new Span<byte>(header, TcpSegmentation.MaxHeaderLength));
                        var v = _segmentVectors + 2 * k;
                        v[0] = new Linux.IoVec { Base = header, Length = (nuint)template.Length };
                        v[1] = new Linux.IoVec { Base = data + index * segmentSize, Length = (nuint)slice.Length };
                        _segmentMessages[k] = new Linux.MmsgHdr { Header = new Linux.MsgHdr { Iov = v, IovLength = 2 } };
                        bytes += template.Length + slice.Length;
                    }
                    if (!SendAll(n))
                    {
                        Interlocked.Increment(ref _txErrors);
                        return TransmitResult.Error;
                    }
                    Interlocked.Add(ref _txFrames, n);
                    Interlocked.Add(ref _txBytes, bytes);
                    if (_tap is { Capturing: true } tap) CaptureSent(tap, n);
                }
            }
        }
        return TransmitResult.Sent;
    }

    /// <summary>The capture tap sees each cut frame whole, as it went (header and payload slice joined).</summary>
    private void CaptureSent(NicPanel tap, int n)
    {
        Span<byte> frame = stackalloc byte[MaxFrameLength];
        long ticks = Stopwatch.GetTimestamp();
        for (int k = 0; k < n; k++)
        {
            var v = _segmentVectors + 2 * k;
            int h = (int)v[0].Length, p = (int)v[1].Length;
            new ReadOnlySpan<byte>(v[0].Base, h).CopyTo(frame);
            new ReadOnlySpan<byte>(v[1].Base, p).CopyTo(frame[h..]);
            tap.Capture(frame[..(h + p)], CaptureDirection.Out, ticks);
        }
    }

    /// <summary>Hands the prepared messages to the kernel, retrying a partial send; false on an error (kept in <see cref="LastError"/>).</summary>
    private bool SendAll(int n)
    {
        int done = 0;
        while (done < n)
        {
            int rc = Linux.SendMmsg(_pcapFd, _segmentMessages + done, (uint)(n - done), 0);
            if (rc < 0)
            {
                int errno = Marshal.GetLastPInvokeError();
                if (errno == Linux.Eintr) continue;
                _lastError = "transmit (sendmmsg): " + Linux.Error(errno);
                return false;
            }
            done += rc;
        }
        return true;
    }

    private TransmitResult TransmitSegmentedThroughFaults(ReadOnlySpan<byte> template, ReadOnlySpan<byte> payload, int segmentSize, int frames)
    {
        Span<byte> frame = stackalloc byte[MaxFrameLength];
        for (int i = 0; i < frames; i++)
        {
            int length = TcpSegmentation.WriteFrame(template, payload, i, segmentSize, frame);
            var r = Transmit(frame[..length]);
            if (r != TransmitResult.Sent) return r;
        }
        return TransmitResult.Sent;
    }

    private void EnsureSegmentBuffers()
    {
        if (_segmentHeaders != null) return;
        _segmentHeaders = (byte*)NativeMemory.AllocZeroed((nuint)(SegmentBatch * TcpSegmentation.MaxHeaderLength));
        _segmentMessages = (Linux.MmsgHdr*)NativeMemory.AllocZeroed((nuint)(SegmentBatch * sizeof(Linux.MmsgHdr)));
        _segmentVectors = (Linux.IoVec*)NativeMemory.AllocZeroed((nuint)(2 * SegmentBatch * sizeof(Linux.IoVec)));
    }

    private void FreeSegmentBuffers()
    {
        NativeMemory.Free(_segmentHeaders);
        NativeMemory.Free(_segmentMessages);
        NativeMemory.Free(_segmentVectors);
        _segmentHeaders = null;
        _segmentMessages = null;
        _segmentVectors = null;
    }
}
