//! Taking a round trip apart with the guest's own timestamps (the host side of the probe
//! protocol).
//!
//! `vmprobe rr --probe` sends probe-protocol echo requests (UDP 7777) through the ordinary rr
//! engine ([`framing::ProbeFraming`]); every finished sample is spooled with the guest's
//! counter readings ([`spool`]) while the exchanges the clock fit needs are kept in bounded
//! memory ([`envelope`]). After the run the guest counter is mapped onto CLOCK_MONOTONIC
//! ([`crate::clock::select`]) and one pass over the spool splits each sample into host to
//! guest, guest residence and guest to host ([`breakdown`]). [`micro`] drives the guest's
//! micro-benchmarks.
//!
//! Memory is bounded: histograms for every series, at most 512 clock candidates; the per-sample
//! records go to an unlinked spool file (80 bytes per sample on disk) until the fit is done.

pub mod breakdown;
pub mod envelope;
pub mod framing;
pub mod host_counter;
pub mod kvm_ptp;
pub mod micro;
pub mod report;
pub mod rr;
pub mod spool;

pub use breakdown::{Breakdown, ClockReport};
pub use envelope::Envelope;
pub use report::ProbeReport;
pub use rr::{run_probe, run_probe_with, ProbeRun};

/// How the guest counter is mapped onto host time (`--clock`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ClockChoice {
    /// PTP-style estimate from the minimum-RTT exchanges (works everywhere; bounded by path
    /// asymmetry).
    #[default]
    MinRtt,
    /// Exact: host and guest read the same arm64 counter (KVM on an arm64 host, guest on the
    /// physical counter, QEMU `kvm-no-adjvtime=on`); falls back to min-rtt, saying why, when
    /// the guest's readings contradict it.
    SharedCounter,
    /// Exact: the guest asks KVM's PTP service for host realtime and its counter at one
    /// instant (arm64 KVM, any host counter setup); falls back to min-rtt, saying why, where
    /// the service is absent (TCG, other hypervisors) or its readings contradict the run.
    KvmPtp,
}
