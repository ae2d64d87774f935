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
    options.validate()?;
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
    let run = std::thread::scope(|scope| {
        if show_progress {
            scope.spawn(|| display_progress(&options, &progress, &finished));
        }
        let run = super::run(
            &options,
            Control {
                stop,
                progress: &progress,
                on_sample: None,
            },
        );
        finished.store(true, Ordering::Relaxed);
        run
    })?;
    let bytes = export::serialize(args.measure.format, &run.report).map_err(RrError::Output)?;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(&bytes)
        .and_then(|()| stdout.flush())
        .map_err(RrError::Output)?;
    match run.report.error {
        Some(e) => Err(RrError::Aborted(e)),
        None => Ok(()),
    }
}

/// A progress bar on stderr, shown once the run has lasted [`PROGRESS_AFTER`].
fn display_progress(options: &RrOptions, progress: &Progress, finished: &AtomicBool) {
    let started = Instant::now();
    let mut bar: Option<ProgressBar> = None;
    while !finished.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        if started.elapsed() < PROGRESS_AFTER {
            continue;
        }
        let done = progress.done.load(Ordering::Relaxed);
        let bar = bar.get_or_insert_with(|| match options.limit {
            Limit::Count(n) => ProgressBar::new(n).with_style(
                ProgressStyle::with_template(
                    "{bar:40} {pos}/{len} transactions, {per_sec}, eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            ),
            Limit::Duration(d) => ProgressBar::new(d.as_secs())
                .with_style(
                    ProgressStyle::with_template("{bar:40} {pos}/{len} s, {msg} transactions")
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                )
                .with_message(done.to_string()),
        });
        match options.limit {
            Limit::Count(_) => bar.set_position(done),
            Limit::Duration(_) => {
                bar.set_position(started.elapsed().as_secs());
                bar.set_message(done.to_string());
            }
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
}
