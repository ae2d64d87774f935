//! What the integration tests share, one module per kind of test:
//! - [`guest`]: the real guest image in real QEMU, its console, echo clients;
//! - [`vm`]: a stand-in guest image, namespaces and the leftover checks of VM setups;
//! - [`run`]: `vmprobe run` / `matrix` / `quickstart`: run-directory state, JSON keys;
//! - [`rr`]: scripted echo servers on loopback for the `rr` engine and CLI.
#![allow(dead_code)]

pub mod guest;
pub mod rr;
pub mod run;
pub mod vm;

use std::process::{Command, Output};

/// The `vmprobe` binary under test.
pub fn vmprobe() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vmprobe"))
}

/// Runs `vmprobe ARGS` to the end and returns what it printed.
pub fn vmprobe_output(args: &[&str]) -> Output {
    vmprobe().args(args).output().expect("run vmprobe")
}
