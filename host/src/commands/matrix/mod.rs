//! `vmprobe matrix FILE.toml` and `vmprobe quickstart`: run configuration after configuration
//! through `run`'s [`run_one`](crate::commands::run::run_one), print the comparison table, and write it
//! as `table.csv`, `table.md` and `table.txt` into the matrix's run directory, next to each
//! configuration's own run directory (`01-<name>/`, ...). A failing configuration is
//! reported in its row and the matrix goes on; Ctrl-C ends the current configuration with
//! its partial numbers and stops the matrix.
pub mod file;

pub mod table;

use std::path::{Path, PathBuf};

use clap::Args;

pub use file::{FileError, Matrix, Row};
use table::{RowResult, NOT_RUN};

use crate::commands::run::signals::Signals;
use crate::commands::run::{hooks_for, limit_verdict, run_one, RunError, RunPlan};
use crate::export::lava::{self, Outcome, Sheet};
use crate::export::Format;
use crate::limits::{Limit, LimitsExceeded};
use crate::rundir::{RunDir, RunDirError};

/// File names in a matrix's run directory.
pub mod files {
    /// The matrix as run.
    pub const MATRIX: &str = "matrix.toml";
    /// The table as CSV.
    pub const CSV: &str = "table.csv";
    /// The table as Markdown.
    pub const MARKDOWN: &str = "table.md";
    /// The table as printed.
    pub const TEXT: &str = "table.txt";
}

/// Arguments of `vmprobe matrix`.
#[derive(Args, Debug, Clone)]
#[command(
    after_help = "See examples/matrix.toml: shared defaults at the top, then one \
[[config]] table per configuration with a name and any `vmprobe run` option."
)]
pub struct MatrixArgs {
    /// The matrix file (TOML).
    #[arg(value_name = "FILE.toml")]
    pub file: PathBuf,
    /// Run directory [default: runs/<time>-matrix-<file name>/]
    #[arg(long, value_name = "DIR")]
    pub run_dir: Option<PathBuf>,
    /// What to print and how to end.
    #[command(flatten)]
    pub output: Output,
}

/// What `matrix` and `quickstart` print on stdout, and the limits that decide their exit
/// status.
#[derive(Args, Debug, Clone)]
pub struct Output {
    /// Output format on stdout (the table files are written in every format)
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Bound a figure in every configuration, after the file's own limits (see `vmprobe run
    /// --limit`): p99=200us, lost=0 (repeatable)
    #[arg(long = "limit", value_name = "FIGURE=VALUE")]
    pub limits: Vec<Limit>,
}

impl Output {
    /// Adds the command line's limits to every configuration (after the file's: they win).
    pub fn apply_limits(&self, matrix: &mut Matrix) {
        for row in &mut matrix.rows {
            row.args.limits.extend(self.limits.iter().cloned());
            for l in &self.limits {
                row.argv.extend(["--limit".to_string(), l.text.clone()]);
            }
        }
    }
}

/// Why a matrix could not run or did not fully succeed.
#[derive(Debug, thiserror::Error)]
pub enum MatrixError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is wrong.
    #[error("{}: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        source: FileError,
    },
    /// The run directory.
    #[error(transparent)]
    RunDir(#[from] RunDirError),
    /// Every configuration ran, but a figure was over its limit.
    #[error(transparent)]
    LimitsExceeded(#[from] LimitsExceeded),
    /// Some configurations failed (the table says which and why).
    #[error("{failed} of {total} configurations failed: see the table")]
    RowsFailed {
        /// How many.
        failed: usize,
        /// Of how many.
        total: usize,
    },
    /// A configuration's options are wrong (found before anything boots).
    #[error("configuration {name:?}: {source}")]
    Config {
        /// The configuration's name.
        name: String,
        /// What is wrong.
        source: RunError,
    },
    /// No guest image and no way to build one.
    #[error("{0}")]
    Image(String),
    /// Anything else.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// `vmprobe matrix FILE.toml`.
pub fn execute(args: MatrixArgs) -> anyhow::Result<()> {
    finish(run_matrix(&args))
}

/// Limits exceeded leave as themselves (their own exit status), everything else as is.
pub fn finish(r: Result<(), MatrixError>) -> anyhow::Result<()> {
    match r {
        Err(MatrixError::LimitsExceeded(e)) => Err(e.into()),
        r => Ok(r?),
    }
}

fn run_matrix(args: &MatrixArgs) -> Result<(), MatrixError> {
    let text = std::fs::read_to_string(&args.file).map_err(|source| MatrixError::Read {
        path: args.file.clone(),
        source,
    })?;
    let mut matrix = Matrix::parse(&text).map_err(|source| MatrixError::File {
        path: args.file.clone(),
        source,
    })?;
    args.output.apply_limits(&mut matrix);
    let stem = args
        .file
        .file_stem()
        .map_or("matrix".into(), |s| s.to_string_lossy().into_owned());
    check(&matrix)?;
    let dir = RunDir::create(args.run_dir.as_deref(), &format!("matrix-{}", slug(&stem)))?;
    dir.write(files::MATRIX, &text)?;
    run_and_report(&matrix, &dir, args.output.format)
}

/// Checks every configuration's options, so a mistake stops the matrix before anything boots
/// instead of failing each row in turn.
pub fn check(matrix: &Matrix) -> Result<(), MatrixError> {
    for row in &matrix.rows {
        RunPlan::check_measurement(&row.args).map_err(|source| MatrixError::Config {
            name: row.name.clone(),
            source,
        })?;
    }
    Ok(())
}

/// Runs every row, prints the table (or the rows in `format`) on stdout and writes the table
/// into `dir`.
pub fn run_and_report(matrix: &Matrix, dir: &RunDir, format: Format) -> Result<(), MatrixError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let rows = rt.block_on(run_rows(matrix, dir.path()))?;
    let text = table::text(&rows);
    let csv = table::csv(&rows)?;
    dir.write(files::TEXT, &text)?;
    dir.write(files::CSV, &csv)?;
    dir.write(files::MARKDOWN, &table::markdown(&rows))?;
    let tcg = rows
        .iter()
        .filter_map(|r| r.results.as_ref())
        .any(|r| r.config.accel == crate::vm::options::Accel::Tcg);
    let mut notes = String::new();
    if tcg {
        notes.push_str(
            "round trips in microseconds, measured under TCG emulation: not KVM numbers\n",
        );
    }
    notes.push_str(&format!(
        "table: {} ({}, {}); each configuration's run directory is inside\n",
        dir.file(files::TEXT).display(),
        files::CSV,
        files::MARKDOWN
    ));
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        match format {
            Format::Text => write!(out, "{text}{notes}")?,
            Format::Csv => out.write_all(csv.as_bytes())?,
            Format::Json => {
                let doc = serde_json::json!({ "configurations": rows, "run_dir": dir.path() });
                serde_json::to_writer_pretty(&mut out, &doc).map_err(std::io::Error::from)?;
                writeln!(out)?;
            }
            Format::Lava => lava::emit(&cases(&rows), &mut out)?,
        }
        out.flush()?;
        if format != Format::Text {
            eprint!("{notes}");
        }
    }
    // Rows Ctrl-C kept from running are not failures: the user stopped the matrix.
    let failed = rows
        .iter()
        .filter(|r| r.error.as_deref().is_some_and(|e| e != NOT_RUN))
        .count();
    let limits = limit_verdict(rows.iter().flat_map(|r| r.checks()));
    if failed > 0 {
        return Err(MatrixError::RowsFailed {
            failed,
            total: rows.len(),
        });
    }
    Ok(limits?)
}

/// Every row's test cases; a row that never measured is one failing `<name>-run`.
fn cases(rows: &[RowResult]) -> Vec<lava::Case> {
    let mut out = Vec::new();
    for row in rows {
        match &row.results {
            Some(r) => out.extend(r.cases.iter().cloned()),
            None => {
                let mut s = Sheet::new(&row.name, &[]);
                s.status(None, "run", Outcome::Fail);
                out.extend(s.cases);
            }
        }
    }
    out
}

async fn run_rows(matrix: &Matrix, dir: &Path) -> Result<Vec<RowResult>, MatrixError> {
    let mut signals = Signals::new()?;
    let mut out = Vec::new();
    let total = matrix.rows.len();
    for (i, row) in matrix.rows.iter().enumerate() {
        if signals.raised() {
            out.push(RowResult {
                name: row.name.clone(),
                results: None,
                error: Some(NOT_RUN.into()),
            });
            continue;
        }
        eprintln!(
            "vmprobe: [{}/{total}] {}: vmprobe run {}",
            i + 1,
            row.name,
            row.argv.join(" ")
        );
        let mut args = row.args.clone();
        let run_dir = dir.join(format!("{:02}-{}", i + 1, slug(&row.name)));
        args.vm.run_dir = Some(run_dir.clone());
        let command = std::iter::once("run".to_string())
            .chain(row.argv.iter().cloned())
            .chain(["--run-dir".to_string(), run_dir.display().to_string()])
            .collect();
        let plan = RunPlan::new(args).map(|p| p.with_command(command).with_name(&row.name));
        let result = match plan {
            Ok(plan) => {
                let mut hooks = hooks_for(&plan.args);
                run_one(&plan, &mut hooks, &mut signals).await
            }
            Err(e) => Err(e),
        };
        let r = match result {
            Ok(f) => RowResult {
                name: row.name.clone(),
                error: f.problem.as_ref().map(short),
                results: Some(f.results),
            },
            Err(e) => RowResult {
                name: row.name.clone(),
                results: None,
                error: Some(short(&e)),
            },
        };
        if let Some(e) = &r.error {
            eprintln!("vmprobe: [{}/{total}] {}: {e}", i + 1, row.name);
        }
        out.push(r);
    }
    if signals.raised() {
        eprintln!("vmprobe: interrupted: the table shows what was measured");
    }
    Ok(out)
}

/// An error for a table cell: one line; QEMU's death without the console (it is in the run
/// directory).
fn short(e: &RunError) -> String {
    match e {
        RunError::QemuDied { status, .. } => {
            format!("QEMU exited during the measurement ({status})")
        }
        other => other.to_string().lines().next().unwrap_or("").to_string(),
    }
}

/// A file-name-safe form of a configuration name.
pub fn slug(name: &str) -> String {
    let mut s = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            s.push(c.to_ascii_lowercase());
        } else if !s.ends_with('-') {
            s.push('-');
        }
    }
    let s = s.trim_matches('-').to_string();
    if s.is_empty() {
        "config".into()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::slug;

    #[test]
    fn slugs() {
        assert_eq!(slug("tap + bridge, poll"), "tap-bridge-poll");
        assert_eq!(slug("???"), "config");
    }
}
