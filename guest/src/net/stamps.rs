//! Generic-counter timestamps of the packet path, kept by the device layer and the IRQ handler.
//!
//! These are the spots the latency breakdown reads: when the driver saw a received buffer, when it
//! was about to notify the device of a reply, how long that notify took (a VM exit on KVM) and
//! when the last interrupt entered the guest. All values are counter ticks (see `cntfrq`).

/// A monotonic tick counter (the arm64 generic counter on the probe).
pub trait Counter {
    /// The current tick count, ordered after earlier instructions.
    fn now() -> u64;
}

/// The most recent timestamps of the packet path, in counter ticks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timestamps {
    /// The driver saw the last received buffer in the used ring.
    pub rx_seen: u64,
    /// Just before the last transmit was published to the device and notified.
    pub tx_notify: u64,
    /// How long the last transmit queue notify took: the `QueueNotify` write alone, timed inside
    /// the transport (under KVM the exit to QEMU or vhost).
    pub notify_ticks: u64,
    /// Entry of the device interrupt that woke the guest (IRQ mode). It belongs only to the
    /// frames the device had returned to the receive ring when the interrupt was taken (the
    /// driver notes the ring's used index then); frames that arrive later carry none.
    pub irq_entry: Option<u64>,
    /// Received probe echo requests stamped with their arrival readings.
    pub probe_rx_stamped: u64,
    /// Probe echo replies stamped with their departure readings.
    pub probe_tx_stamped: u64,
    /// Frames received.
    pub rx_frames: u64,
    /// Frames handed to the device.
    pub tx_frames: u64,
    /// Frames smoltcp produced that the device refused (queue full or error).
    pub tx_dropped: u64,
}
