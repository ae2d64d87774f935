//! The probe's network device: virtio-net found over virtio-mmio or virtio-pci, driven through
//! `virtio_drivers`' non-blocking `VirtIONetRaw` and presented to smoltcp as a `phy::Device`.
//!
//! Generic over the virtio `Hal` and `Transport` and over a [`Counter`], so the same code runs on
//! the probe and, against fakes, in host unit tests.

pub mod discover;
pub mod doorbell;
pub mod msix;
pub mod notify;
pub mod phy;
pub mod stamps;

pub use discover::{BenchRegisters, InterruptPath, PciMsix, TransportKind, VirtioNic};
pub use doorbell::{Doorbells, QueueDoorbells, Register};
pub use notify::{NotifyControl, QueueRings};
pub use phy::VirtioPhy;
pub use stamps::{Counter, Timestamps};

#[cfg(test)]
mod fake;
#[cfg(test)]
mod tests;
