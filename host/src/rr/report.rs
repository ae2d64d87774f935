//! The result of an `rr` run: one plain `Serialize` struct, the only thing exporters see.
//! Its JSON form is a contract: keys are only ever added.
use serde::Serialize;

use super::engine::{Limit, Tally};
use super::options::{Proto, RrOptions};
use crate::stats::{Outlier, Summary};

/// Everything an `rr` run measured, with its parameters.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RrReport {
    /// The target as given.
    pub target: String,
    /// The address it resolved to.
    pub address: String,
    /// `udp` or `tcp`.
    pub proto: Proto,
    /// Request/reply size in bytes.
    pub size: usize,
    /// `--count`, if the run was limited by count.
    pub count: Option<u64>,
    /// `--duration` in seconds, if the run was limited by time.
    pub duration_s: Option<f64>,
    /// `--interval` in microseconds, or `null` for back to back.
    pub interval_us: Option<f64>,
    /// `--burst`: transactions per interval.
    pub burst: u32,
    /// Warm-up transactions (not measured).
    pub warmup: u64,
    /// `--timeout` in microseconds.
    pub timeout_us: f64,
    /// `--cpu`, or `null` for "any CPU but cpu0".
    pub cpu: Option<usize>,
    /// The CPUs the measuring thread was allowed to run on.
    pub cpus_used: Vec<usize>,
    /// Busy polling instead of blocking receive.
    pub busy_poll: bool,
    /// Wall-clock time of the first measured request, ns since the Unix epoch.
    pub start_unix_ns: u64,
    /// Measured time, seconds.
    pub elapsed_s: f64,
    /// Stopped early (SIGINT/SIGTERM).
    pub interrupted: bool,
    /// The error that ended the run early, if any.
    pub error: Option<String>,
    /// Measured requests sent.
    pub sent: u64,
    /// Transactions with an intact matching reply.
    pub transactions: u64,
    /// Transactions without a reply within the timeout.
    pub lost: u64,
    /// Transactions answered with altered bytes.
    pub errors: u64,
    /// Intact replies to earlier, timed-out requests (ignored).
    pub late: u64,
    /// Replies matching no request (ignored).
    pub stray: u64,
    /// Round-trip statistics of the transactions (user-space clocks).
    #[serde(flatten)]
    pub rtt: Summary,
    /// Transactions per second over the measured time.
    pub rate_tps: f64,
    /// Round trip up to the kernel's software RX timestamp; `null` where the kernel gives
    /// none. `rtt - rx_sw` is the cost of waking the receiving thread.
    pub rx_sw: Option<Summary>,
    /// The largest round trips, largest first, with sequence number and send times.
    pub outliers: Vec<Outlier>,
    /// Significant decimal digits of the percentile histogram (see `stats`).
    pub histogram_digits: u8,
}

/// What besides the tally goes into a report.
#[derive(Debug)]
pub struct ReportParts<'a> {
    /// Run options.
    pub options: &'a RrOptions,
    /// Resolved address.
    pub address: String,
    /// CPUs the thread could run on.
    pub cpus_used: Vec<usize>,
    /// Loop counters.
    pub tally: Tally,
    /// RTT summary.
    pub rtt: Summary,
    /// Software RX timestamp RTT summary.
    pub rx_sw: Option<Summary>,
    /// Largest samples.
    pub outliers: Vec<Outlier>,
    /// Error that ended the run.
    pub error: Option<String>,
}

impl RrReport {
    /// Assembles a report.
    pub fn new(parts: ReportParts<'_>) -> Self {
        let o = parts.options;
        let t = parts.tally;
        let elapsed_s = t.elapsed_ns as f64 / 1e9;
        Self {
            target: o.target.clone(),
            address: parts.address,
            proto: o.proto,
            size: o.size,
            count: match o.limit {
                Limit::Count(n) => Some(n),
                Limit::Duration(_) => None,
            },
            duration_s: match o.limit {
                Limit::Count(_) => None,
                Limit::Duration(d) => Some(d.as_secs_f64()),
            },
            interval_us: o.pacing.map(|p| p.interval.as_nanos() as f64 / 1e3),
            burst: o.pacing.map_or(1, |p| p.burst),
            warmup: o.warmup,
            timeout_us: o.timeout.as_nanos() as f64 / 1e3,
            cpu: o.cpu,
            cpus_used: parts.cpus_used,
            busy_poll: o.busy_poll,
            start_unix_ns: t.start_unix_ns,
            elapsed_s,
            interrupted: t.interrupted,
            error: parts.error,
            sent: t.sent,
            transactions: t.transactions,
            lost: t.lost,
            errors: t.errors,
            late: t.late,
            stray: t.stray,
            rtt: parts.rtt,
            rate_tps: if elapsed_s > 0.0 {
                (t.transactions as f64 / elapsed_s * 1e3).round() / 1e3
            } else {
                0.0
            },
            rx_sw: parts.rx_sw,
            outliers: parts.outliers,
            histogram_digits: crate::stats::SIGNIFICANT_DIGITS,
        }
    }
}
