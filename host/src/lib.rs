//! The vmprobe host harness as a library: the `vmprobe` binary is a thin shell over it.
pub mod cli;
pub mod netsetup;
pub mod rundir;
pub mod vm;
