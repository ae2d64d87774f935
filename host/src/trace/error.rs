//! Errors of trace analysis and recording.
use std::path::PathBuf;

/// Everything that can go wrong reading a path file, analysing a trace or recording one.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// A path definition (built-in name, TOML file or stage) is invalid.
    #[error("path definition: {0}")]
    Path(String),
    /// Reading or writing a file failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The input holds no line in a known trace format.
    #[error(
        "{path}: no trace event found in {lines} line(s){}; expected `trace-cmd report` output or a tracefs `trace` file",
        first_bad.as_ref().map(|l| format!(" (first unparseable line: {l:?})")).unwrap_or_default()
    )]
    NoEvents {
        /// The input file.
        path: PathBuf,
        /// Lines read.
        lines: u64,
        /// The first line that was neither an event nor a header.
        first_bad: Option<String>,
    },
    /// `trace-cmd report` (used to read binary trace.dat files) failed.
    #[error("trace-cmd report -i {path}: {reason}")]
    TraceCmd {
        /// The trace.dat file.
        path: PathBuf,
        /// Why it failed.
        reason: String,
    },
    /// tracefs is not usable for recording.
    #[error("tracefs: {0}")]
    Tracefs(String),
}
