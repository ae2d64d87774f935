//! The command layer: the command line (every clap argument group lives here; libraries only
//! derive clap's `ValueEnum` on their value types), the VM flags several commands share
//! ([`vm_options`]), and one module per subcommand, each with the same entry point,
//! `execute(args) -> anyhow::Result<()>`. Commands
//! compose the libraries below (rr, probe, vm, netsetup, load, trace, report, export, stats);
//! no library imports a command.
pub mod matrix;
pub mod micro;
pub mod quickstart;
pub mod report;
pub mod rr;
pub mod run;
pub mod trace;
pub mod vm;
pub mod vm_options;

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
    Rr(rr::RrArgs),
    /// Follow packets through a host trace (ftrace) stage by stage.
    Trace(trace::TraceArgs),
    /// Boot the probe VM and keep it running; prints how to reach each service; Ctrl-C stops.
    Vm(vm::VmArgs),
    /// Charts (CDF, histogram, RTT over time; SVG and PNG) and a Markdown page from run directories.
    Report(report::ReportArgs),
    /// Boot the probe VM, measure UDP and TCP echo round trips against it, tear down.
    Run(Box<run::RunArgs>),
    /// Run each configuration of a TOML file; print the comparison table.
    Matrix(matrix::MatrixArgs),
    /// The default experiment on this machine: a short matrix of what this host can run.
    Quickstart(quickstart::QuickstartArgs),
    /// Boot the probe VM and run its micro-benchmarks (exits, interrupts, timer, IPI).
    Micro(micro::MicroArgs),
}

/// Runs the subcommand `cli` names.
pub fn execute(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Rr(args) => rr::execute(args),
        Command::Trace(args) => trace::execute(args),
        Command::Vm(args) => vm::execute(args),
        Command::Report(args) => report::execute(args),
        Command::Run(args) => run::execute(*args),
        Command::Matrix(args) => matrix::execute(args),
        Command::Quickstart(args) => quickstart::execute(args),
        Command::Micro(args) => micro::execute(args),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every duration flag of every command takes the one grammar: a bare number is refused,
    /// with the same message.
    #[test]
    fn every_duration_flag_refuses_a_bare_number_alike() {
        let cases: &[&[&str]] = &[
            &["rr", "--target", "h:7", "--interval", "10"],
            &["rr", "--target", "h:7", "--duration", "10"],
            &["rr", "--target", "h:7", "--timeout", "10"],
            &["run", "--interval", "10"],
            &["run", "--timeout", "10"],
            &["run", "--trace", "--gap", "10"],
            &["trace", "analyze", "f", "--gap", "10"],
            &["trace", "analyze", "f", "--timeout", "10"],
        ];
        for args in cases {
            let argv = std::iter::once("vmprobe").chain(args.iter().copied());
            let e = match Cli::try_parse_from(argv) {
                Ok(_) => panic!("{args:?} was accepted"),
                Err(e) => e.to_string(),
            };
            assert!(
                e.contains("duration '10' has no unit (use ns, us, ms, s, m or h)"),
                "{args:?}: {e}"
            );
        }
        let ok = Cli::try_parse_from(["vmprobe", "trace", "analyze", "f", "--gap", "10us"]);
        assert!(ok.is_ok());
    }
}
