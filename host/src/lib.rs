//! The vmprobe host harness as a library: the `vmprobe` binary is a thin shell over it.
pub mod cli;
pub mod clock;
pub mod duration;
pub mod export;
pub mod matrix;
pub mod netsetup;
pub mod rr;
pub mod run;
pub mod rundir;
pub mod stats;
pub mod trace;
pub mod vm;
