//! The vmprobe probe protocol: one definition of every byte that crosses the wire
//! between the host harness and the guest probe (UDP port 7777).
#![no_std]
#![deny(unsafe_code)]

/// UDP port the guest listens on for the probe protocol.
pub const PROBE_PORT: u16 = 7777;
