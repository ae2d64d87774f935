//! `vmprobe trace`: follow packets through a host trace, stage by stage, and explain the gaps.
//!
//! - [`line`] parses one line of `trace-cmd report` text or of a tracefs `trace` file.
//! - [`path`] defines the stage boundaries (built-ins `arm64-vhost`, `tap-tcg`, or TOML), each
//!   in one or several forms (a tracepoint, traced functions, name patterns).
//! - [`analyze`] reconstructs packets in a single streaming pass with bounded state,
//!   using [`timeline`] to say what ran on a CPU during a gap and [`stats`] for percentiles.
//! - [`report`] is the result (its JSON keys are a stable interface: only ever added) and its
//!   text form; [`input`] streams files.
//! - [`record`] records a trace for a path through a private tracefs instance.
//!
//! Recording while measuring, then analysing (what `vmprobe run --trace` does):
//!
//! ```no_run
//! use vmprobe::trace::{analyze_file, Config, PathSpec, RecordOptions, Recorder};
//! # fn main() -> Result<(), vmprobe::trace::TraceError> {
//! let vars = [("tap".to_owned(), "vmptap0".to_owned()), ("qemu_pid".to_owned(), "4242".to_owned())];
//! let path = PathSpec::resolve_with("tap-tcg", &vars)?;
//! let out = std::path::Path::new("run.trace");
//! let rec = Recorder::start(&path, out, &RecordOptions::default())?;
//! for note in rec.notes() {
//!     eprintln!("trace: {note}"); // e.g. an event this kernel lacks; recording goes on
//! }
//! let marker = rec.marker(); // Clone + Send: give it to the measuring thread
//! // ... measure; for each outlier:
//! marker.mark(17, 4372.0).ok();
//! drop(marker);
//! let summary = rec.stop()?; // tracing off, buffer drained, instance removed
//! let report = analyze_file(&summary.output, path, Config::default())?;
//! println!("{} packets, {} gaps", report.packets, report.gaps.len());
//! # Ok(())
//! # }
//! ```

pub mod analyze;
pub mod error;
pub mod fields;
pub mod input;
pub mod line;
pub mod path;
pub mod pattern;
pub mod record;
pub mod report;
pub mod stats;
pub mod timeline;

pub use analyze::{Analyzer, Config};
pub use error::TraceError;
pub use path::PathSpec;
pub use record::{MarkerWriter, RecordOptions, RecordSummary, Recorder};
pub use report::Report;

use std::path::Path;

/// Analyses the trace at `file` along `spec`, streaming.
pub fn analyze_file(file: &Path, spec: PathSpec, cfg: Config) -> Result<Report, TraceError> {
    let mut a = Analyzer::new(spec, cfg);
    input::read_trace(file, |l| a.feed_line(l))?;
    a.finish(file)
}
