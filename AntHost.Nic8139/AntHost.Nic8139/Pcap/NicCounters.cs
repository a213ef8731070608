namespace AntHost.Nic8139.Pcap;

/// <summary>A snapshot of a device's counters.</summary>
/// <param name="RxFrames">Frames read from the adapter (after the kernel's BPF filter).</param>
/// <param name="RxBytes">Their bytes (wire length).</param>
/// <param name="RxDelivered">Frames handed to the receive callback.</param>
/// <param name="RxOversize">Frames longer than MTU + 18 (segmentation/GRO offload left on produces these): dropped.</param>
/// <param name="RxTruncated">Frames cut by the snaplen: dropped.</param>
/// <param name="RxRunt">Frames shorter than an Ethernet header: dropped.</param>
/// <param name="RxNotForUs">Frames to another unicast address that reached us anyway (queued before the filter took effect): dropped.</param>
/// <param name="RxHandlerErrors">Exceptions thrown by the receive callback (the frame is lost, the loop goes on).</param>
/// <param name="KernelDrops">Frames the kernel dropped because libpcap's ring was full (pcap_stats ps_drop, summed over reopens).</param>
/// <param name="InterfaceDrops">Frames the interface dropped (pcap_stats ps_ifdrop).</param>
/// <param name="TxFrames">Frames handed to the adapter.</param>
/// <param name="TxBytes">Their bytes.</param>
/// <param name="TxErrors">Transmits that libpcap refused.</param>
/// <param name="TxRejected">Transmits refused before libpcap: shorter than a header or longer than MTU + 18.</param>
/// <param name="TxLinkDown">Transmits while the link was down (the frame is lost, as on a wire without carrier).</param>
/// <param name="LinkDownEvents">Times the link went down.</param>
/// <param name="Reopens">Times the adapter was reopened after the link came back.</param>
public readonly record struct NicCounters(
    long RxFrames,
    long RxBytes,
    long RxDelivered,
    long RxOversize,
    long RxTruncated,
    long RxRunt,
    long RxNotForUs,
    long RxHandlerErrors,
    long KernelDrops,
    long InterfaceDrops,
    long TxFrames,
    long TxBytes,
    long TxErrors,
    long TxRejected,
    long TxLinkDown,
    long LinkDownEvents,
    long Reopens);
