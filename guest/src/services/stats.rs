//! Counters of what the services did and what they had to drop.
//!
//! Plain `u64` fields, all monotonic from boot, so a reporter can diff two snapshots. The frame
//! counters live in `FrameCounters` (cells, because smoltcp holds the receive and the transmit
//! token of one device at once) and are copied into [`Stats::frames`] on demand.

use core::cell::Cell;

/// Frame-level counters, as seen at the device boundary before smoltcp parses anything.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrameStats {
    /// Frames received from the device.
    pub rx: u64,
    /// Frames handed to the device for transmission.
    pub tx: u64,
    /// Bytes of the received frames (Ethernet header and payload).
    pub rx_bytes: u64,
    /// Bytes of the transmitted frames.
    pub tx_bytes: u64,
    /// Received frames shorter than an Ethernet header.
    pub rx_runt: u64,
    /// Received IPv4 packets with a bad version, header length, total length or header checksum.
    pub rx_bad_ipv4: u64,
    /// Received IPv4 fragments (no reassembly: the probe answers only unfragmented requests).
    pub rx_fragment: u64,
    /// Received UDP or TCP segments whose header does not fit or whose length fields lie.
    pub rx_bad_transport: u64,
    /// Received ARP packets that are truncated or not Ethernet/IPv4 ARP.
    pub rx_bad_arp: u64,
    /// Received frames of an EtherType the probe does not speak (IPv6, VLAN, ...).
    pub rx_unsupported: u64,
    /// Times smoltcp wanted to transmit but the device had no free buffer.
    pub tx_exhausted: u64,
}

/// UDP service counters (echo, discard, sockperf).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UdpStats {
    /// Datagrams echoed on port 7.
    pub echoed: u64,
    /// Datagrams swallowed on port 9.
    pub discarded: u64,
    /// sockperf replies sent on port 11111.
    pub sockperf_replies: u64,
    /// sockperf datagrams correctly left unanswered (warm-up, no pong request, not from a client).
    pub sockperf_silent: u64,
    /// sockperf datagrams too short for the header or with an impossible length field.
    pub sockperf_malformed: u64,
    /// Datagrams from the source port of another reflecting service (7, 19, 11111), left
    /// unanswered so that two reflectors cannot bounce a datagram forever.
    pub refused: u64,
    /// Replies dropped because the socket's transmit buffer was full.
    pub tx_full: u64,
}

/// TCP service counters (echo, discard, chargen together).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpStats {
    /// Connections that reached ESTABLISHED.
    pub accepted: u64,
    /// Connections that ended with an orderly close.
    pub closed: u64,
    /// Connections that ended by reset or timeout and were recycled.
    pub aborted: u64,
    /// Bytes echoed on port 7.
    pub echo_bytes: u64,
    /// Bytes swallowed on port 9 (and read and ignored on port 19).
    pub discard_bytes: u64,
    /// Bytes queued for the peer on port 19.
    pub chargen_bytes: u64,
}

/// DHCP client counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DhcpStats {
    /// Leases applied to the interface (first lease and every change).
    pub configured: u64,
    /// Leases lost (expired or NAKed).
    pub deconfigured: u64,
}

/// Everything the services count; see [`crate::services::Services::stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Device-boundary frame counters.
    pub frames: FrameStats,
    /// UDP services.
    pub udp: UdpStats,
    /// TCP services.
    pub tcp: TcpStats,
    /// DHCP client.
    pub dhcp: DhcpStats,
}

/// Interior-mutable twin of [`FrameStats`], shared by a device's receive and transmit tokens.
#[derive(Debug, Default)]
pub(crate) struct FrameCounters {
    pub rx: Cell<u64>,
    pub tx: Cell<u64>,
    pub rx_bytes: Cell<u64>,
    pub tx_bytes: Cell<u64>,
    pub rx_runt: Cell<u64>,
    pub rx_bad_ipv4: Cell<u64>,
    pub rx_fragment: Cell<u64>,
    pub rx_bad_transport: Cell<u64>,
    pub rx_bad_arp: Cell<u64>,
    pub rx_unsupported: Cell<u64>,
    pub tx_exhausted: Cell<u64>,
}

/// Add one to a counter cell.
pub(crate) fn bump(counter: &Cell<u64>) {
    counter.set(counter.get().wrapping_add(1));
}

/// Add `n` to a counter cell.
pub(crate) fn add(counter: &Cell<u64>, n: usize) {
    counter.set(counter.get().wrapping_add(n as u64));
}

impl FrameCounters {
    /// A copy of the current values.
    pub fn snapshot(&self) -> FrameStats {
        FrameStats {
            rx: self.rx.get(),
            tx: self.tx.get(),
            rx_bytes: self.rx_bytes.get(),
            tx_bytes: self.tx_bytes.get(),
            rx_runt: self.rx_runt.get(),
            rx_bad_ipv4: self.rx_bad_ipv4.get(),
            rx_fragment: self.rx_fragment.get(),
            rx_bad_transport: self.rx_bad_transport.get(),
            rx_bad_arp: self.rx_bad_arp.get(),
            rx_unsupported: self.rx_unsupported.get(),
            tx_exhausted: self.tx_exhausted.get(),
        }
    }
}
