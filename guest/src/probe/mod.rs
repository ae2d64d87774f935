//! The probe protocol (UDP 7777) on the guest side, as pure logic.
//!
//! - [`handler`]: turns a received probe datagram into its reply, through the
//!   [`ProbePlatform`] hooks (counter, stats, micro-benchmarks, power-off).
//! - [`stamp`]: lets the device layer write counter readings into probe frames in place: arrival
//!   readings into echo requests as the driver takes them off the receive queue, departure
//!   readings into echo replies just before the TX notify.
//! - [`self_report`]: the same micro-benchmarks run once at boot (`bench=`) and printed as
//!   result lines on the console, for boards without a host harness.
//!
//! The pieces fit together like this, per echo:
//! ```text
//! driver RX:    stamp_rx(frame, {irq entry, rx seen})      -> smoltcp -> UDP 7777 socket
//! main loop:    ProbeHandler::handle(request, reply buf)    -> reply (handled = now())
//! driver TX:    stamp_tx(frame, {tx notify = now(), previous notify duration}); notify
//! ```
//! Nothing here touches hardware or sockets, so all of it runs under `cargo test` on the host.

pub mod handler;
pub mod platform;
pub mod self_report;
pub mod stamp;

pub use handler::{DropReason, Outcome, ProbeCounters, ProbeHandler};
pub use platform::{BenchError, ProbePlatform};
pub use stamp::{stamp_rx, stamp_tx};

#[cfg(test)]
mod tests;
