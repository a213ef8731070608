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
//
// Better still, where the kernel lets us (KernelSegmentation, the default): a second packet
// socket, for sending only, takes a struct virtio_net_hdr in front of each frame
// (PACKET_VNET_HDR), as a virtio NIC's driver hands frames to its device. The device then
// gives the kernel the whole send as one frame of up to 64 KiB, marked TCPv4 GSO with the
// segment size and "checksum needed" from the TCP header on: the kernel cuts it and computes
// every checksum itself (its software GSO, tcp_gso_segment: the same fields change from frame
// to frame as in TcpSegmentation, so the frames on the wire are the same), while it copies
// the payload, which it does anyway. One sendmsg per 64 KiB, and no pass of ours over the
// payload. With the fault injector on each frame still goes through it whole (cut here).
public sealed unsafe partial class NicDevice
{
    /// <summary>Frames given to the kernel per sendmmsg.</summary>
    private const int SegmentBatch = 64;

    private byte* _segmentHeaders;
    private Linux.MmsgHdr* _segmentMessages;
    private Linux.IoVec* _segmentVectors;
    private long _txOffloads, _txOffloadFrames, _txKernelSegmented;

    // The kernel-segmentation socket (-1: none; the device cuts), its destination, and a
    // scratch area for one virtio_net_hdr and one header template.
    private int _gsoFd = -1;
    private Linux.SockaddrLl _gsoAddress;
    private byte* _gsoScratch;
    private const int VnetHeaderLength = 10;

    /// <summary>Offload sends given to the kernel to cut (PACKET_VNET_HDR GSO); the rest of <see cref="TxOffloads"/> the device cut itself.</summary>
    public long TxKernelSegmented => Volatile.Read(ref _txKernelSegmented);

    /// <summary>True while sends are handed to the kernel to cut (see <see cref="NicDeviceOptions.KernelSegmentation"/>).</summary>
    public bool KernelSegmentation => Volatile.Read(ref _gsoFd) >= 0;

    /// <summary>Opens the send-only PACKET_VNET_HDR socket beside libpcap's (the calling thread is in the adapter's namespace).</summary>
    private void OpenKernelSegmentation()
    {
        if (!_options.KernelSegmentation) return;
        int fd = Linux.VnetPacketSocket(Adapter, out var address, out string? error);
        lock (_handleLock)
        {
            if (fd < 0)
            {
                _lastError = "kernel segmentation off: " + error;
                return;
            }
            _gsoFd = fd;
            _gsoAddress = address;
            if (_gsoScratch == null) _gsoScratch = (byte*)NativeMemory.AllocZeroed((nuint)(VnetHeaderLength + TcpSegmentation.MaxHeaderLength));
        }
    }

    /// <summary>Closes it (under the handle lock).</summary>
    private void CloseKernelSegmentation()
    {
        if (_gsoFd < 0) return;
        Linux.Close(_gsoFd);
        _gsoFd = -1;
    }

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
            if (_gsoFd >= 0)
            {
                var r = TransmitKernelSegmented(template, payload, segmentSize, frames);
                if (r is { } done)
                {
                    if (done == TransmitResult.Sent) CaptureCut(template, payload, segmentSize, frames);
                    return done;
                }
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
                }
            }
        }
        CaptureCut(template, payload, segmentSize, frames);
        return TransmitResult.Sent;
    }

    /// <summary>
    /// The capture tap sees the frames of a send that went, whole, as they left: cut here from
    /// the template and the payload (the kernel's segmentation makes the same frames, which the
    /// veth test checks), so a capture costs this only while it runs.
    /// </summary>
    private void CaptureCut(ReadOnlySpan<byte> template, ReadOnlySpan<byte> payload, int segmentSize, int frames)
    {
        if (_tap is not { Capturing: true } tap) return;
        Span<byte> frame = stackalloc byte[MaxFrameLength];
        long ticks = Stopwatch.GetTimestamp();
        for (int i = 0; i < frames; i++)
            tap.Capture(frame[..TcpSegmentation.WriteFrame(template, payload, i, segmentSize, frame)], CaptureDirection.Out, ticks);
    }

    /// <summary>
    /// The send as frames of at most 64 KiB (the IPv4 length's limit), each given to the kernel
    /// with a virtio_net_hdr that asks it to cut the frame at <paramref name="segmentSize"/> and
    /// compute the checksums. Null when the kernel refused the first of them: the kernel
    /// segmentation is then turned off (the reason in <see cref="LastError"/>) and the caller
    /// cuts the send itself. Under the handle lock.
    /// </summary>
    private TransmitResult? TransmitKernelSegmented(ReadOnlySpan<byte> template, ReadOnlySpan<byte> payload, int segmentSize, int frames)
    {
        int ipStart = EthernetHeader, ihl = (template[ipStart] & 0x0F) * 4, tcpStart = ipStart + ihl, tcpLength = template.Length - tcpStart;
        int perSend = Math.Max(1, (ushort.MaxValue - ihl - tcpLength) / segmentSize);
        byte* vnet = _gsoScratch;
        var header = new Span<byte>(_gsoScratch + VnetHeaderLength, template.Length);
        var address = _gsoAddress;
        var v = stackalloc Linux.IoVec[3];
        fixed (byte* data = payload)
        {
            for (int first = 0; first < frames; first += perSend)
            {
                int n = Math.Min(perSend, frames - first);
                int offset = first * segmentSize, length = Math.Min(n * segmentSize, payload.Length - offset);
                bool last = first + n == frames;
                TcpSegmentation.WriteSendHeader(template, first, segmentSize, last, length, header);
                // struct virtio_net_hdr, little-endian: NEEDS_CSUM, GSO TCPv4 (none for one frame),
                // header length, segment size, checksum start and offset (the TCP checksum field).
                vnet[0] = 1;
                vnet[1] = (byte)(n > 1 ? 1 : 0);
                *(ushort*)(vnet + 2) = (ushort)template.Length;
                *(ushort*)(vnet + 4) = (ushort)segmentSize;
                *(ushort*)(vnet + 6) = (ushort)tcpStart;
                *(ushort*)(vnet + 8) = 16;
                v[0] = new Linux.IoVec { Base = vnet, Length = VnetHeaderLength };
                v[1] = new Linux.IoVec { Base = _gsoScratch + VnetHeaderLength, Length = (nuint)template.Length };
                v[2] = new Linux.IoVec { Base = data + offset, Length = (nuint)length };
                var msg = new Linux.MsgHdr { Name = &address, NameLength = (uint)sizeof(Linux.SockaddrLl), Iov = v, IovLength = 3 };
                nint rc;
                do rc = Linux.SendMsg(_gsoFd, &msg, 0);
                while (rc < 0 && Marshal.GetLastPInvokeError() == Linux.Eintr);
                if (rc < 0)
                {
                    int errno = Marshal.GetLastPInvokeError();
                    if (first == 0)
                    {
                        _lastError = "kernel segmentation off, the kernel refused a send: " + Linux.Error(errno);
                        CloseKernelSegmentation();
                        return null;
                    }
                    _lastError = "transmit (sendmsg, kernel segmentation): " + Linux.Error(errno);
                    Interlocked.Increment(ref _txErrors);
                    return TransmitResult.Error;
                }
                Interlocked.Add(ref _txFrames, n);
                Interlocked.Add(ref _txBytes, (long)n * template.Length + length);
            }
        }
        Interlocked.Increment(ref _txKernelSegmented);
        return TransmitResult.Sent;
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
        NativeMemory.Free(_gsoScratch);
        _gsoScratch = null;
        _segmentHeaders = null;
        _segmentMessages = null;
        _segmentVectors = null;
    }
}
