//! The `vmprobe rr` command: signals, progress display, run, export.
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use super::{args::RrArgs, engine::Limit, system, Control, Progress, RrError, RrOptions};
use crate::export::{self, Format};

/// How long a run goes before a progress display appears.
const PROGRESS_AFTER: Duration = Duration::from_secs(2);

/// Runs the command; the summary goes to stdout. Returns the run's own error (e.g. the
/// connection dropped mid-run) after printing what was measured.
pub fn execute(args: &RrArgs) -> Result<(), RrError> {
    let options = args.to_options();
    if args.measure.probe {
        let clock = args.measure.clock;
        crate::probe::rr::validate(&options, clock)?;
        let run = measure(args, &options, |o, c| crate::probe::run_probe(o, c, clock))?;
        let report = crate::probe::ProbeReport::from(&run);
        let bytes = crate::probe::report::serialize(args.measure.format, &report, None)
            .map_err(RrError::Output)?;
        return finish(&bytes, &run.rr.report.error);
    }
    options.validate()?;
    let run = measure(args, &options, super::run)?;
    let bytes = export::serialize(args.measure.format, &run.report).map_err(RrError::Output)?;
    finish(&bytes, &run.report.error)
}

/// Prints the summary; the run's own error comes after it.
fn finish(bytes: &[u8], error: &Option<String>) -> Result<(), RrError> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
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
