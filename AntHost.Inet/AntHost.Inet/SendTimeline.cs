// The protocol core's part of a send's timeline (the paper's table 3 rows for the TCP, IP
// and Ethernet layers). The core is a pure library with no clock: it calls the interface's
// transmit trace hook as a packet crosses a layer boundary, and this class, the hook the
// server provides, stamps the monotonic clock into the trace area of the app's control
// ICA whose send is being processed (InetIp when IPv4 wrote its header, InetEthernet when
// Ethernet wrote its own). Only while the socket manager hands an app's payload to TCP is
// a control ICA set (Begin/End around TcpLayer.Send), so segments sent for any other
// reason (retransmissions, ACKs, a frame released by ARP later) stamp nothing. A stamp
// costs a clock read and a 16-byte write (`anthost bench send` measures it).
using AntHost.Inet.Abi;
using AntHost.Inet.Core.Buffers;
using AntHost.Inet.Core.Iface;
using AntHost.Kernel;
using AntHost.Kernel.Ipc;

namespace AntHost.Inet;

/// <summary>Stamps the current app send's control ICA as its segments cross the core's layers.</summary>
public sealed class SendTimeline(uint self)
{
    private IcaLease _control;

    /// <summary>The send whose segments are about to pass through the core.</summary>
    public void Begin(IcaLease control) => _control = control;

    public void End() => _control = default;

    /// <summary>The interface's <see cref="InterfaceConfig.TransmitTrace"/>.</summary>
    public void OnTransmit(TransmitBoundary boundary, PacketBuffer packet)
    {
        if (_control.IsNone || !ControlIca.TryOpen(_control.Span, out var c)) return;
        c.Stamp(boundary == TransmitBoundary.IpHeaderWritten ? InetTraceStage.InetIp : InetTraceStage.InetEthernet, self);
    }
}
