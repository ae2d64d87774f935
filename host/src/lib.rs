//! The vmprobe host harness as a library: the `vmprobe` binary is a thin shell over it.
pub mod clock;
pub mod commands;
pub mod cpus;
pub mod duration;
pub mod export;
pub mod floor;
pub mod load;
pub mod netsetup;
pub mod os;
pub mod probe;
pub mod proto;
pub mod report;
pub mod rr;
pub mod rundir;
pub mod stats;
pub mod trace;
pub mod vm;
