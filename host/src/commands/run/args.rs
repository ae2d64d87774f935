//! `vmprobe run` arguments: the VM options and the rr options (both flattened, so each stays
//! defined once, with its module), plus what only `run` has.
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde::Serialize;

use crate::commands::rr::MeasureArgs;
use crate::commands::vm_options::VmOptions;
use crate::rr::Proto;

/// Boot the probe VM, measure UDP and TCP echo round trips against it, tear everything down.
#[derive(Args, Debug, Clone)]
#[command(
    after_help = "Every run writes runs/<time>-<label>/ (or --run-dir): qemu-command.sh, \
console.log, results.json, samples-<proto>.csv, hist-<proto>.hlog.\n\
Example (netperf -t TCP_RR -l -1000 -w 10ms, over a tap):\n  \
vmprobe run --net tap --proto tcp --count 1000 --interval 10ms"
)]
pub struct RunArgs {
    /// The VM under test.
    #[command(flatten)]
    pub vm: VmOptions,
    /// How to measure (`vmprobe rr`'s options; the target is the guest's echo service).
    #[command(flatten)]
    pub rr: MeasureArgs,
    /// Background traffic during the measurement.
    #[command(flatten)]
    pub load: super::load::LoadArgs,
    /// Host tracing while measuring (`--trace`).
    #[command(flatten)]
    pub trace: super::trace::TraceRunArgs,
    /// Protocols to measure, one after the other
    #[arg(long, value_enum, default_value = "both")]
    pub proto: Protocols,
    /// Run twice, guest mode irq then poll, with --probe: the difference of the host-to-guest
    /// delays is the cost of interrupt injection and vCPU wake-up
    #[arg(long, conflicts_with = "mode")]
    pub compare_modes: bool,
    /// Seconds to wait for the guest's ready line
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub ready_timeout: u64,
    /// Fail (exit status 3) when a figure is over this bound: FIGURE=VALUE, the figure (min,
    /// mean, p50, p99, p99.9, max, lost, boot) optionally led by a series (udp, tcp, floor,
    /// residence): p99=200us, udp-max=5ms, lost=0, lost=0.1%, boot=2s (repeatable)
    #[arg(long = "limit", value_name = "FIGURE=VALUE")]
    pub limits: Vec<crate::limits::Limit>,
}

/// `--proto` of `run`: one protocol or both.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocols {
    /// UDP echo (port 7) only.
    Udp,
    /// TCP echo (port 7) only.
    Tcp,
    /// UDP, then TCP.
    Both,
}

impl Protocols {
    /// The protocols in measuring order.
    pub fn list(self) -> &'static [Proto] {
        match self {
            Protocols::Udp => &[Proto::Udp],
            Protocols::Tcp => &[Proto::Tcp],
            Protocols::Both => &[Proto::Udp, Proto::Tcp],
        }
    }
}

impl RunArgs {
    /// How long the guest may take to print its ready line.
    pub fn ready_timeout(&self) -> Duration {
        Duration::from_secs(self.ready_timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        run: RunArgs,
    }

    #[test]
    fn vm_and_rr_options_flatten_without_clashes() {
        let t = T::try_parse_from([
            "t",
            "--net",
            "tap",
            "--mode",
            "poll",
            "--count",
            "200",
            "--interval",
            "1ms",
            "--proto",
            "tcp",
            "--busy-poll",
            "--format",
            "json",
        ])
        .unwrap();
        assert_eq!(t.run.proto, Protocols::Tcp);
        assert_eq!(t.run.rr.count, Some(200));
        assert!(t.run.rr.busy_poll);
        assert_eq!(t.run.vm.mode, crate::vm::options::Mode::Poll);
        let d = T::try_parse_from(["t"]).unwrap();
        assert_eq!(d.run.proto.list(), &[Proto::Udp, Proto::Tcp]);
        assert!(T::try_parse_from(["t", "--target", "x:7"]).is_err());
        assert!(T::try_parse_from(["t", "--proto", "sctp"]).is_err());
        let l = T::try_parse_from(["t", "--limit", "p99=200us", "--limit", "lost=0"]).unwrap();
        assert_eq!(l.run.limits.len(), 2);
        let e = T::try_parse_from(["t", "--limit", "p99=200"])
            .err()
            .unwrap();
        assert!(e.to_string().contains("duration '200' has no unit"), "{e}");
    }
}
