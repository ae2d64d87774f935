//! `vmprobe report RUN_DIR...`: charts, a Markdown page and an HTML page from run directories.
use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use crate::report::{generate, ReportOptions};

/// `vmprobe report` options.
#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// Run directories written by `vmprobe run` (results.json and samples-<proto>.csv).
    #[arg(required = true, value_name = "RUN_DIR")]
    pub runs: Vec<PathBuf>,
    /// Where the charts, report.md and report.html go [default: RUN_DIR/report for one run,
    /// ./vmprobe-report for several].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Font file for chart text [default: DejaVu Sans from the system].
    #[arg(long, value_name = "TTF")]
    pub font: Option<PathBuf>,
}

/// The `vmprobe report` command: writes the files and says where.
pub fn execute(args: ReportArgs) -> anyhow::Result<()> {
    let out = &mut std::io::stdout().lock();
    let written = generate(&ReportOptions {
        runs: args.runs.clone(),
        out: args.out.clone(),
        font: args.font.clone(),
    })?;
    let _ = writeln!(
        out,
        "report: {} ({} charts, SVG and PNG); all in one file: {}",
        written.page.display(),
        written.charts.len() / 2,
        written.html.display()
    );
    Ok(())
}
