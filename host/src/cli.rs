//! Command-line definition. Each subcommand's arguments live with the module that runs it.
use clap::{Parser, Subcommand};

/// Measure and take apart the network latency of AArch64 virtual machines.
#[derive(Parser, Debug)]
#[command(name = "vmprobe", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Request/response latency against an echo server (UDP or TCP).
    Rr(crate::rr::RrArgs),
    /// Follow packets through a host trace (ftrace) stage by stage.
    Trace(crate::trace::TraceArgs),
    /// Boot the probe VM and keep it running; prints how to reach each service; Ctrl-C stops.
    Vm(crate::vm::VmArgs),
    /// Charts (CDF, histogram, RTT over time; SVG and PNG) and a Markdown page from run directories.
    Report(crate::report::ReportArgs),
    /// Boot the probe VM, measure UDP and TCP echo round trips against it, tear down.
    Run(crate::run::RunArgs),
    /// Run each configuration of a TOML file; print the comparison table.
    Matrix(crate::matrix::MatrixArgs),
    /// The default experiment on this machine: a short matrix of what this host can run.
    Quickstart(crate::matrix::quickstart::QuickstartArgs),
    /// Boot the probe VM and run its micro-benchmarks (exits, interrupts, timer, IPI).
    Micro(crate::probe::micro_command::MicroArgs),
}
