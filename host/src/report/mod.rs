//! `vmprobe report RUN_DIR... [--out DIR]`: charts people look at, from run directories.
//!
//! First, per protocol, the percentile distribution with a line per run ([`percentiles`]).
//! Then for one run: the latency CDF (log RTT axis, percentiles marked), the histogram and RTT
//! over time (outliers circled, losses crossed) per protocol. For several: one CDF chart per
//! protocol with every run overlaid, and the table. Each chart as SVG and PNG, plus
//! `report.md` linking them and `report.html` holding them inline. Stages: [`input`] reads,
//! [`plot`] and [`percentiles`] draw, [`page`] writes.
pub mod input;
pub mod page;
pub mod percentiles;
pub mod plot;

use std::path::{Path, PathBuf};

use input::RunData;
use page::Figure;
use percentiles::{Line, PercentileChart};
use plot::{render, CdfChart, HistChart, TimeChart};

/// Font files tried, in order, for chart text (PNG rendering needs real glyphs).
/// `scripts/setup.sh` installs Debian's fonts-dejavu-core, which provides the first.
pub const FONT_PATHS: [&str; 3] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
];

/// What to chart, where to, with which font.
#[derive(Debug, Clone, Default)]
pub struct ReportOptions {
    /// Run directories written by `vmprobe run` (results.json and samples-<proto>.csv).
    pub runs: Vec<PathBuf>,
    /// Where the charts, report.md and report.html go [default: RUN_DIR/report for one run,
    /// ./vmprobe-report for several].
    pub out: Option<PathBuf>,
    /// Font file for chart text [default: DejaVu Sans from the system].
    pub font: Option<PathBuf>,
}

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// Not a directory.
    #[error("{}: not a run directory (no such directory)", .0.display())]
    NotADir(PathBuf),
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `results.json` is not what `vmprobe run` writes.
    #[error("{}: not a vmprobe results file: {message}", path.display())]
    BadResults {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A malformed sample log row.
    #[error("{}:{line}: {message}", path.display())]
    BadSamples {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// No usable font.
    #[error("no font for chart text: install fonts-dejavu-core (scripts/setup.sh does) or pass --font FILE.ttf ({0})")]
    Font(String),
    /// Drawing failed.
    #[error("drawing {}: {message}", path.display())]
    Draw {
        /// The chart file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// Writing the output failed.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Registers the chart font once per process.
fn load_font(explicit: Option<&Path>) -> Result<(), ReportError> {
    use std::sync::OnceLock;
    static LOADED: OnceLock<Result<(), String>> = OnceLock::new();
    let r = LOADED.get_or_init(|| {
        let candidates: Vec<PathBuf> = match explicit {
            Some(p) => vec![p.to_path_buf()],
            None => FONT_PATHS.iter().map(PathBuf::from).collect(),
        };
        let mut tried = Vec::new();
        for path in candidates {
            match std::fs::read(&path) {
                Ok(bytes) => {
                    // Registered fonts live as long as the process: leak the one copy.
                    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                    return plotters::style::register_font(
                        "sans-serif",
                        plotters::style::FontStyle::Normal,
                        bytes,
                    )
                    .map_err(|_| format!("{} is not a usable TrueType font", path.display()));
                }
                Err(e) => tried.push(format!("{}: {e}", path.display())),
            }
        }
        Err(tried.join("; "))
    });
    r.clone().map_err(ReportError::Font)
}

/// What a report wrote.
#[derive(Debug, Clone)]
pub struct Written {
    /// The Markdown page.
    pub page: PathBuf,
    /// The same page in one self-contained HTML file.
    pub html: PathBuf,
    /// Every chart file (SVG and PNG).
    pub charts: Vec<PathBuf>,
}

/// Makes the report of `args.runs` into `args.out`.
pub fn generate(args: &ReportOptions) -> Result<Written, ReportError> {
    let runs = args
        .runs
        .iter()
        .map(|d| input::read_run(d))
        .collect::<Result<Vec<RunData>, _>>()?;
    let runs = distinct_names(runs);
    load_font(args.font.as_deref())?;
    let out = match &args.out {
        Some(o) => o.clone(),
        None if runs.len() == 1 => runs[0].dir.join("report"),
        None => PathBuf::from("vmprobe-report"),
    };
    std::fs::create_dir_all(&out).map_err(|source| ReportError::Write {
        path: out.clone(),
        source,
    })?;
    let mut figures = Vec::new();
    let mut charts = Vec::new();
    let mut add = |heading: String,
                   stem: &str,
                   chart: &dyn Fn(&Path) -> Result<[PathBuf; 2], ReportError>| {
        let files = chart(&out.join(stem))?;
        figures.push(Figure {
            heading,
            png: format!("{stem}.png"),
            svg: format!("{stem}.svg"),
        });
        charts.extend(files);
        Ok::<(), ReportError>(())
    };
    // The percentile distribution leads every report: one chart per protocol, a line per run.
    for proto in ["udp", "tcp"] {
        let lines: Vec<Line> = runs
            .iter()
            .filter_map(|r| {
                let s = r.series.iter().find(|s| s.proto == proto)?;
                Line::new(r.name.clone(), &s.latency)
            })
            .collect();
        if lines.is_empty() {
            continue;
        }
        let p = proto.to_uppercase();
        let title = match runs.as_slice() {
            [run] => format!("{p} latency by percentile: {}", run.name),
            _ => format!("{p} latency by percentile, {} runs", lines.len()),
        };
        let chart = PercentileChart { title, lines };
        add(
            format!("{p} latency by percentile"),
            &format!("percentiles-{proto}"),
            &|f| render(&chart, f),
        )?;
    }
    let sorted: Vec<Vec<Vec<f64>>> = runs
        .iter()
        .map(|r| r.series.iter().map(|s| s.sorted_rtts()).collect())
        .collect();
    if runs.len() == 1 {
        let run = &runs[0];
        for (s, v) in run.series.iter().zip(&sorted[0]) {
            let p = s.proto.to_uppercase();
            let cdf = CdfChart {
                title: format!("{p} latency CDF: {}", run.name),
                lines: vec![(p.clone(), v.as_slice(), Some(&s.figures))],
            };
            add(
                format!("{p} latency CDF"),
                &format!("cdf-{}", s.proto),
                &|f| render(&cdf, f),
            )?;
            let hist = HistChart {
                title: format!("{p} round trips: {}", run.name),
                rtts: v,
            };
            add(
                format!("{p} histogram"),
                &format!("hist-{}", s.proto),
                &|f| render(&hist, f),
            )?;
            let time = TimeChart {
                title: format!("{p} round trips over time: {}", run.name),
                series: s,
            };
            add(
                format!("{p} RTT over time"),
                &format!("time-{}", s.proto),
                &|f| render(&time, f),
            )?;
        }
    } else {
        for proto in ["udp", "tcp"] {
            let lines: Vec<(String, &[f64], Option<&input::Figures>)> = runs
                .iter()
                .zip(&sorted)
                .filter_map(|(r, v)| {
                    let i = r.series.iter().position(|s| s.proto == proto)?;
                    Some((r.name.clone(), v[i].as_slice(), None))
                })
                .collect();
            if lines.is_empty() {
                continue;
            }
            let p = proto.to_uppercase();
            let cdf = CdfChart {
                title: format!("{p} latency CDF, {} runs", lines.len()),
                lines,
            };
            add(
                format!("{p}: every run"),
                &format!("compare-cdf-{proto}"),
                &|f| render(&cdf, f),
            )?;
        }
        // Each run's time line: where in the run its tail happened.
        for (i, run) in runs.iter().enumerate() {
            for s in &run.series {
                let p = s.proto.to_uppercase();
                let time = TimeChart {
                    title: format!("{p} round trips over time: {}", run.name),
                    series: s,
                };
                let stem = format!("time-{}-{}", i + 1, s.proto);
                add(format!("{p} RTT over time: {}", run.name), &stem, &|f| {
                    render(&time, f)
                })?;
            }
        }
    }
    let title = if runs.len() == 1 {
        format!("vmprobe report: {}", runs[0].name)
    } else {
        format!("vmprobe report: {} runs", runs.len())
    };
    let write = |name: &str, text: String| {
        let path = out.join(name);
        std::fs::write(&path, text).map_err(|source| ReportError::Write {
            path: path.clone(),
            source,
        })?;
        Ok::<PathBuf, ReportError>(path)
    };
    let page = write("report.md", page::markdown(&title, &runs, &figures))?;
    let svgs = figures
        .iter()
        .map(|f| {
            let path = out.join(&f.svg);
            std::fs::read_to_string(&path).map_err(|source| ReportError::Read { path, source })
        })
        .collect::<Result<Vec<String>, _>>()?;
    let html = write("report.html", page::html(&title, &runs, &figures, &svgs))?;
    Ok(Written { page, html, charts })
}

/// Runs with the same name get their directory name appended, so legends tell them apart.
fn distinct_names(mut runs: Vec<RunData>) -> Vec<RunData> {
    let names: Vec<String> = runs.iter().map(|r| r.name.clone()).collect();
    for (i, run) in runs.iter_mut().enumerate() {
        if names.iter().filter(|n| **n == names[i]).count() > 1 {
            run.name = format!("{} [{}]", run.name, input::dir_name(&run.dir));
        }
    }
    runs
}
