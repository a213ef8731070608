namespace AntHost.Nic8139.Pcap;

/// <summary>
/// Work that a caller runs inside the device's loop (<see cref="NicDevice.Run"/>), on the same
/// thread as the frames it receives and waited for in the same poll(2): the NIC driver's
/// transmit requests and completions. One thread on the data path means one wake-up per event
/// instead of two threads handing work to each other.
/// </summary>
public interface IDeviceLoopWork
{
    /// <summary>Does what is due now (bounded); returns how many things it did (0: nothing).</summary>
    int Service();

    /// <summary>A cheap check, made while the loop spins, of whether <see cref="Service"/> has something to do.</summary>
    bool HasWork { get; }

    /// <summary>The descriptor that becomes readable when there is work (polled with the device's own).</summary>
    int Descriptor { get; }

    /// <summary>When <see cref="Service"/> must run even without an event (Stopwatch ticks), or null.</summary>
    long? NextDeadline { get; }

    /// <summary>Right before the loop sleeps: false (do not sleep) when work came in meanwhile.</summary>
    bool PrepareToSleep();

    /// <summary>Right after the loop's poll returned.</summary>
    void AfterSleep();

    /// <summary>A drain of the receive ring that delivered frames ended (what was held for a batch goes now).</summary>
    void FramesDone();
}
