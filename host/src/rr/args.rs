//! `vmprobe rr` command-line arguments (parsing only; [`RrOptions::validate`] judges values).
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::engine::Limit;
use super::options::{Proto, RrOptions};
use super::pacing::Pacing;
use crate::duration::parse_duration;
use crate::export::Format;

/// Request/response latency against an echo server (UDP or TCP), like netperf TCP_RR/UDP_RR.
#[derive(Args, Debug, Clone)]
#[command(after_help = "DUR is a number with a unit: 500us, 10ms, 2s, 1m.\n\
Example (netperf -t TCP_RR -l -1000 -w 10ms -b 1):\n  \
vmprobe rr --target 192.168.20.1:7 --proto tcp --count 1000 --interval 10ms")]
pub struct RrArgs {
    /// Echo target.
    #[arg(long, value_name = "HOST:PORT")]
    pub target: String,
    /// Transport protocol.
    #[arg(long, value_enum, default_value_t = Proto::Udp)]
    pub proto: Proto,
    /// Everything else about the run.
    #[command(flatten)]
    pub measure: MeasureArgs,
}

/// The `rr` options other than `--target` and `--proto`: what `vmprobe run` takes as well
/// (it knows the target and measures one protocol or both).
#[derive(Args, Debug, Clone)]
pub struct MeasureArgs {
    /// Number of measured transactions (warm-up excluded).
    #[arg(long, value_name = "N", conflicts_with = "duration")]
    pub count: Option<u64>,
    /// Length of the measured phase [default: 10s].
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Start a burst of transactions every DUR (netperf -w); back to back without it.
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub interval: Option<Duration>,
    /// Transactions per interval, one after the other (netperf -b).
    #[arg(long, value_name = "N", requires = "interval", default_value_t = 1)]
    pub burst: u32,
    /// Request and reply size in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 64)]
    pub size: usize,
    /// Unmeasured transactions before the measured ones.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub warmup: u64,
    /// A transaction without reply after DUR is lost.
    #[arg(long, value_name = "DUR", value_parser = parse_duration, default_value = "1s")]
    pub timeout: Duration,
    /// Pin the measuring thread to CPU N [default: any CPU but cpu0].
    #[arg(long, value_name = "N")]
    pub cpu: Option<usize>,
    /// Spin on a non-blocking socket instead of sleeping in receive.
    #[arg(long)]
    pub busy_poll: bool,
    /// Output format of the summary on stdout.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Write every sample as CSV: seq, send time, RTT (ns), lost flag, ...
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Write the RTT histogram as an HdrHistogram log.
    #[arg(long, value_name = "FILE")]
    pub hist: Option<PathBuf>,
    /// The target is a vmprobe guest's probe port (UDP 7777): send timestamped echo requests
    /// and split each round trip into host->guest, guest residence and guest->host.
    #[arg(long)]
    pub probe: bool,
    /// With --probe: how guest time is mapped onto host time
    #[arg(long, value_enum, requires = "probe", default_value = "min-rtt")]
    pub clock: crate::probe::ClockChoice,
    /// Number of largest round trips to report with their times.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub outliers: usize,
}

impl RrArgs {
    /// The run these arguments describe (not yet validated).
    pub fn to_options(&self) -> RrOptions {
        self.measure.to_options(self.target.clone(), self.proto)
    }
}

impl MeasureArgs {
    /// The run against `target` over `proto` these arguments describe (not yet validated).
    pub fn to_options(&self, target: String, proto: Proto) -> RrOptions {
        RrOptions {
            target,
            proto,
            limit: match (self.count, self.duration) {
                (Some(n), _) => Limit::Count(n),
                (None, Some(d)) => Limit::Duration(d),
                (None, None) => Limit::Duration(Duration::from_secs(10)),
            },
            pacing: self.interval.map(|interval| Pacing {
                interval,
                burst: self.burst,
            }),
            size: self.size,
            warmup: self.warmup,
            timeout: self.timeout,
            cpu: self.cpu,
            busy_poll: self.busy_poll,
            outliers: self.outliers,
            log: self.log.clone(),
            hist: self.hist.clone(),
        }
    }
}
