//! `vmprobe trace`: follow packets through a host trace, stage by stage, and explain the gaps.
//!
//! - [`line`] parses one line of `trace-cmd report` text or of a tracefs `trace` file.
//! - [`path`] defines the stage boundaries (built-ins `arm64-vhost`, `tap-tcg`, or TOML).
//! - [`analyze`] reconstructs packets in a single streaming pass with bounded state,
//!   using [`timeline`] to say what ran on a CPU during a gap and [`stats`] for percentiles.
//! - [`report`] is the result (JSON CONTRACT) and its text form; [`input`] streams files.
//! - [`record`] records a trace for a path through a private tracefs instance.

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

use clap::{Args, Subcommand, ValueEnum};
use std::io::Write;
use std::path::{Path, PathBuf};

/// `vmprobe trace ...`
#[derive(Args, Debug)]
pub struct TraceArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: TraceCommand,
}

/// Subcommands of `vmprobe trace`.
#[derive(Subcommand, Debug)]
pub enum TraceCommand {
    /// Follow packets through a recorded trace and report per-stage latency and gaps.
    Analyze(AnalyzeArgs),
    /// List the built-in paths, or print one as a TOML template.
    Paths {
        /// Built-in path to print.
        name: Option<String>,
    },
}

/// Output format of `trace analyze`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Per-stage table and gaps.
    Text,
    /// One JSON object.
    Json,
}

/// `vmprobe trace analyze FILE [--path ...] [--gap DUR] [--format text|json]`
#[derive(Args, Debug)]
pub struct AnalyzeArgs {
    /// `trace-cmd report` text, a tracefs `trace` file, a binary trace.dat, or `-` for stdin.
    pub file: PathBuf,
    /// Built-in path (arm64-vhost, tap-tcg) or a TOML path file.
    #[arg(long, default_value = "arm64-vhost")]
    pub path: String,
    /// Report stages longer than this (e.g. 500us, 2ms; bare numbers are us).
    #[arg(long, default_value = "500us", value_parser = parse_duration_arg)]
    pub gap: u64,
    /// A started packet that stalls longer than this is incomplete (default: the path's).
    #[arg(long, value_parser = parse_duration_arg)]
    pub timeout: Option<u64>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

fn parse_duration_arg(s: &str) -> Result<u64, String> {
    path::parse_duration_ns(s).map_err(|e| e.to_string())
}

/// Analyses the trace at `file` along `spec`, streaming.
pub fn analyze_file(file: &Path, spec: PathSpec, cfg: Config) -> Result<Report, TraceError> {
    let mut a = Analyzer::new(spec, cfg);
    input::read_trace(file, |l| a.feed_line(l))?;
    a.finish(file)
}

/// Runs `vmprobe trace ...`, writing to `out`.
pub fn run(args: &TraceArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    match &args.command {
        TraceCommand::Analyze(a) => {
            let spec = PathSpec::resolve(&a.path)?;
            let cfg = Config { gap_ns: a.gap, timeout_ns: a.timeout, ..Config::default() };
            let report = analyze_file(&a.file, spec, cfg)?;
            match a.format {
                Format::Json => report.write_json(out)?,
                Format::Text => report.write_text(out)?,
            }
        }
        TraceCommand::Paths { name: None } => {
            for (name, text) in path::BUILTIN {
                let spec = PathSpec::from_toml(text, name)?;
                let stages: Vec<&str> = spec.stages.iter().map(|s| s.name.as_str()).collect();
                writeln!(out, "{name}: {}", stages.join(" -> "))?;
            }
        }
        TraceCommand::Paths { name: Some(n) } => {
            let Some((_, text)) = path::BUILTIN.iter().find(|(b, _)| b == n) else {
                anyhow::bail!("no built-in path `{n}`; `vmprobe trace paths` lists them");
            };
            out.write_all(text.as_bytes())?;
        }
    }
    Ok(())
}
