//! `vmprobe rr`: its arguments (shared with `vmprobe run`), signals, progress display, run,
//! export.
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::duration::parse_duration;
use crate::export::{self, Format};
use crate::rr::{self, system, Control, Limit, Pacing, Progress, Proto, RrError, RrOptions};

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

/// How long a run goes before a progress display appears.
const PROGRESS_AFTER: Duration = Duration::from_secs(2);

/// Runs the command; the summary goes to stdout. Returns the run's own error (e.g. the
/// connection dropped mid-run) after printing what was measured.
pub fn execute(args: RrArgs) -> anyhow::Result<()> {
    Ok(rr_command(&args)?)
}

fn rr_command(args: &RrArgs) -> Result<(), RrError> {
    let options = args.to_options();
    if args.measure.probe {
        let clock = args.measure.clock;
        crate::probe::rr::validate(&options, clock)?;
        let run = measure(args, &options, |o, c| crate::probe::run_probe(o, c, clock))?;
        let report = crate::probe::ProbeReport::from(&run);
        let format = args.measure.format;
        let bytes =
            crate::probe::report::serialize(format, &report, None).map_err(RrError::Output)?;
        let lava = (format == Format::Lava).then(|| crate::probe::report::lava_sheet(&report));
        return finish(&bytes, lava, &run.rr.report.error);
    }
    options.validate()?;
    let run = measure(args, &options, rr::run)?;
    let bytes = export::serialize(args.measure.format, &run.report).map_err(RrError::Output)?;
    let lava = (args.measure.format == Format::Lava).then(|| export::lava::rr_sheet(&run.report));
    finish(&bytes, lava, &run.report.error)
}

/// Prints the summary (LAVA's cases through `lava-test-case` when it is on PATH); the run's
/// own error comes after it.
fn finish(
    bytes: &[u8],
    lava: Option<export::lava::Sheet>,
    error: &Option<String>,
) -> Result<(), RrError> {
    let mut stdout = std::io::stdout().lock();
    match lava {
        Some(sheet) => export::lava::emit(&sheet.cases, &mut stdout),
        None => stdout.write_all(bytes).and_then(|()| stdout.flush()),
    }
    .map_err(RrError::Output)?;
    match error {
        Some(e) => Err(RrError::Aborted(e.clone())),
        None => Ok(()),
    }
}

/// Runs `body` with stop signals routed to the measuring thread and a progress display.
fn measure<T>(
    args: &RrArgs,
    options: &RrOptions,
    body: impl FnOnce(&RrOptions, Control<'_>) -> Result<T, RrError>,
) -> Result<T, RrError> {
    let stop = system::install_stop_signals().map_err(|source| RrError::Setup {
        what: "cannot install signal handlers",
        source,
    })?;
    // Signals go to the measuring thread only (it unblocks them), see `system`.
    system::block_stop_signals();
    let progress = Progress::default();
    let finished = AtomicBool::new(false);
    let show_progress = args.measure.format == Format::Text
        && std::io::stdout().is_terminal()
        && std::io::stderr().is_terminal();
    std::thread::scope(|scope| {
        if show_progress {
            scope.spawn(|| display_progress(options.limit, &progress, &finished));
        }
        let run = body(
            options,
            Control {
                stop,
                progress: &progress,
                on_sample: None,
            },
        );
        finished.store(true, Ordering::Relaxed);
        run
    })
}

/// A progress bar on stderr, shown once the run has lasted [`PROGRESS_AFTER`], with a live
/// line (p50/p99/max of the last second, the run's max so far); returns when `finished` rises.
/// Memory stays constant however long the run: the bar reads counters, nothing accumulates.
pub fn display_progress(limit: Limit, progress: &Progress, finished: &AtomicBool) {
    let started = Instant::now();
    let mut bar: Option<ProgressBar> = None;
    while !finished.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        if started.elapsed() < PROGRESS_AFTER {
            continue;
        }
        let done = progress.done.load(Ordering::Relaxed);
        let bar = bar.get_or_insert_with(|| {
            let (len, template) = match limit {
                Limit::Count(n) => (n, "{bar:12} {pos}/{len} {msg}"),
                Limit::Duration(d) => (d.as_secs(), "{bar:12} {pos}/{len}s {msg}"),
            };
            ProgressBar::new(len).with_style(
                ProgressStyle::with_template(template)
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            )
        });
        let live = progress.live.snapshot().line().unwrap_or_default();
        match limit {
            Limit::Count(_) => {
                bar.set_position(done);
                bar.set_message(live);
            }
            Limit::Duration(_) => {
                bar.set_position(started.elapsed().as_secs());
                bar.set_message(format!("{done} tx {live}"));
            }
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
}
