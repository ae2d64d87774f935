//! vmprobe guest probe.
//!
//! Pure logic (boot arguments, device tree interpretation, the virtio-net glue, the network
//! services) builds and is tested on the host; the platform code under `src/arch` is part of the
//! bare-metal binary only.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

extern crate alloc;

pub mod config;
pub mod dtb;
pub mod kvm_ptp;
pub mod net;
pub mod ns16550;
pub mod probe;
pub mod reloc;
pub mod services;
