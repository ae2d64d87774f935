//! vmprobe guest probe.
//!
//! Pure logic (boot arguments, device tree interpretation, the network services) builds and is
//! tested on the host; the platform code under `arch` only builds for `aarch64-unknown-none`.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

extern crate alloc;

pub mod config;
pub mod services;
