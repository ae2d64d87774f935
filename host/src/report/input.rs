//! Reading a run directory: `results.json` (what `vmprobe run` measured, with its summary)
//! and the per-sample CSV of each protocol (`samples-udp.csv`, `samples-tcp.csv`).
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::ReportError;
use crate::stats::Recorder;

/// The summary keys of one protocol, as `rr`'s JSON has them (microseconds).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Figures {
    /// Transactions with a reply.
    pub transactions: u64,
    /// Lost transactions.
    pub lost: u64,
    /// Smallest, mean, largest, standard deviation.
    pub min_us: Option<f64>,
    /// Mean.
    pub mean_us: Option<f64>,
    /// Largest.
    pub max_us: Option<f64>,
    /// Population standard deviation.
    pub stddev_us: Option<f64>,
    /// p50, p90, p99, p99.9, p99.99.
    pub percentiles_us: [Option<f64>; 5],
}

/// Percentile names matching [`Figures::percentiles_us`].
pub const PERCENTILES: [(&str, f64); 5] = [
    ("p50", 50.0),
    ("p90", 90.0),
    ("p99", 99.0),
    ("p99.9", 99.9),
    ("p99.99", 99.99),
];
const PERCENTILE_KEYS: [&str; 5] = ["p50_us", "p90_us", "p99_us", "p999_us", "p9999_us"];

/// One sample row that matters to a plot.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// Seconds since the first measured request.
    pub t_s: f64,
    /// Round trip in microseconds; `None` when lost or altered.
    pub rtt_us: Option<f64>,
    /// Sequence number.
    pub seq: u64,
}

/// One protocol of one run.
#[derive(Debug, Clone)]
pub struct Series {
    /// `udp` or `tcp`.
    pub proto: String,
    /// From `results.json`.
    pub figures: Figures,
    /// Sequence numbers of the reported outliers (largest first).
    pub outlier_seqs: Vec<u64>,
    /// Every sample, in order.
    pub points: Vec<Point>,
    /// Every answered round trip in the statistics core, as `run` recorded them: its
    /// percentiles are the ones `results.json` reports.
    pub latency: Recorder,
}

impl Series {
    /// The round trips (µs) of the answered samples, sorted.
    pub fn sorted_rtts(&self) -> Vec<f64> {
        let mut v: Vec<f64> = self.points.iter().filter_map(|p| p.rtt_us).collect();
        v.sort_by(f64::total_cmp);
        v
    }
}

/// One run directory.
#[derive(Debug, Clone)]
pub struct RunData {
    /// Where it was read from.
    pub dir: PathBuf,
    /// A short human name: the configuration label, plus the load when there was one.
    pub name: String,
    /// The load kinds and CPUs, e.g. `to-guest (cpu 1)`, if any.
    pub load: Option<String>,
    /// Per-protocol series (UDP first).
    pub series: Vec<Series>,
    /// The whole `results.json`.
    pub results: Value,
}

/// Reads `dir`. Each protocol in `results.json` must have its samples file.
pub fn read_run(dir: &Path) -> Result<RunData, ReportError> {
    if !dir.is_dir() {
        return Err(ReportError::NotADir(dir.to_path_buf()));
    }
    let results_path = dir.join("results.json");
    let text = std::fs::read_to_string(&results_path).map_err(|source| ReportError::Read {
        path: results_path.clone(),
        source,
    })?;
    let results: Value = serde_json::from_str(&text).map_err(|e| ReportError::BadResults {
        path: results_path.clone(),
        message: e.to_string(),
    })?;
    let mut series = Vec::new();
    for proto in ["udp", "tcp"] {
        let Some(report) = results.get(proto).filter(|v| v.is_object()) else {
            continue;
        };
        let csv = dir.join(format!("samples-{proto}.csv"));
        let start_unix_ns = report
            .get("start_unix_ns")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let (points, latency) = read_samples(&csv, start_unix_ns)?;
        series.push(Series {
            proto: proto.to_string(),
            figures: figures(report),
            outlier_seqs: report
                .get("outliers")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|o| o.get("seq").and_then(Value::as_u64))
                        .collect()
                })
                .unwrap_or_default(),
            points,
            latency,
        });
    }
    if series.is_empty() {
        return Err(ReportError::BadResults {
            path: results_path,
            message: "no `udp` or `tcp` results in it".into(),
        });
    }
    let load = load_text(&results);
    let label = results
        .get("label")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| dir_name(dir));
    let name = match (matrix_row_name(dir), &load) {
        (Some(row), _) => row,
        (None, Some(l)) => format!("{label} + {l}"),
        (None, None) => label,
    };
    Ok(RunData {
        dir: dir.to_path_buf(),
        name,
        load,
        series,
        results,
    })
}

/// The configuration's name when `dir` is a row of a `vmprobe matrix` run: the matrix
/// directory keeps its `matrix.toml` and names each row's directory `NN-<slug>`.
fn matrix_row_name(dir: &Path) -> Option<String> {
    let index: usize = dir_name(dir).split('-').next()?.parse().ok()?;
    let parent = std::fs::canonicalize(dir).ok()?.parent()?.to_path_buf();
    let text = std::fs::read_to_string(parent.join("matrix.toml")).ok()?;
    let table: toml::Table = text.parse().ok()?;
    let row = table
        .get("config")?
        .as_array()?
        .get(index.checked_sub(1)?)?;
    Some(row.get("name")?.as_str()?.to_string())
}

/// The directory's last component.
pub fn dir_name(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string())
}

/// `to-guest+udp-flood:1000 (cpu 1)` from `results.load`.
fn load_text(results: &Value) -> Option<String> {
    let list = results.get("load")?.as_array()?;
    if list.is_empty() {
        return None;
    }
    let specs: Vec<&str> = list
        .iter()
        .filter_map(|l| l.get("spec").and_then(Value::as_str))
        .collect();
    let cpus = list[0]
        .get("cpus_used")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_u64)
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    Some(format!("load {} (cpu {cpus})", specs.join("+")))
}

fn figures(report: &Value) -> Figures {
    let f = |k: &str| report.get(k).and_then(Value::as_f64);
    let mut percentiles_us = [None; 5];
    for (slot, key) in percentiles_us.iter_mut().zip(PERCENTILE_KEYS) {
        *slot = f(key);
    }
    Figures {
        transactions: report
            .get("transactions")
            .and_then(Value::as_u64)
            .unwrap_or(0),
        lost: report.get("lost").and_then(Value::as_u64).unwrap_or(0),
        min_us: f("min_us"),
        mean_us: f("mean_us"),
        max_us: f("max_us"),
        stddev_us: f("stddev_us"),
        percentiles_us,
    }
}

/// Streams the CSV (`seq,send_unix_ns,rtt_ns,lost,status,...`), keeping three numbers a row
/// and recording every round trip.
fn read_samples(path: &Path, start_unix_ns: u64) -> Result<(Vec<Point>, Recorder), ReportError> {
    let file = std::fs::File::open(path).map_err(|source| ReportError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |line: usize, message: String| ReportError::BadSamples {
        path: path.to_path_buf(),
        line,
        message,
    };
    let mut lines = BufReader::new(file).lines();
    match lines.next() {
        Some(Ok(h)) if h.starts_with("seq,send_unix_ns,rtt_ns,lost") => {}
        Some(Ok(h)) => return Err(bad(1, format!("not a vmprobe sample log (header `{h}`)"))),
        Some(Err(e)) => return Err(bad(1, e.to_string())),
        None => return Err(bad(1, "empty file".into())),
    }
    let mut points = Vec::new();
    let mut latency = Recorder::new(0);
    let mut origin = (start_unix_ns > 0).then_some(start_unix_ns);
    // A run killed mid-write may end in a partial row: a bad last row is dropped, a bad row
    // anywhere else is an error.
    let mut bad_row: Option<ReportError> = None;
    for (i, line) in lines.enumerate() {
        let n = i + 2;
        let line = line.map_err(|e| bad(n, e.to_string()))?;
        if line.is_empty() {
            continue;
        }
        if let Some(e) = bad_row.take() {
            return Err(e);
        }
        match parse_row(&line, n, &bad) {
            Ok((seq, send, rtt)) => {
                let t0 = *origin.get_or_insert(send);
                if let Some(ns) = rtt {
                    latency.record_value(ns);
                }
                points.push(Point {
                    t_s: send.saturating_sub(t0) as f64 / 1e9,
                    rtt_us: rtt.map(|ns| ns as f64 / 1e3),
                    seq,
                });
            }
            Err(e) => bad_row = Some(e),
        }
    }
    Ok((points, latency))
}

/// `(seq, send_unix_ns, rtt_ns)` of one row; the `lost` column must follow, so that `rtt_ns`
/// is known to be complete.
fn parse_row(
    line: &str,
    n: usize,
    bad: &dyn Fn(usize, String) -> ReportError,
) -> Result<(u64, u64, Option<u64>), ReportError> {
    let cols: Vec<&str> = line.split(',').collect();
    if cols.len() < 4 {
        return Err(bad(
            n,
            format!("{} columns, expected at least 4", cols.len()),
        ));
    }
    let num = |i: usize, what: &str| -> Result<Option<u64>, ReportError> {
        match cols[i] {
            "" => Ok(None),
            v => v
                .parse()
                .map(Some)
                .map_err(|_| bad(n, format!("bad {what} `{v}`"))),
        }
    };
    let seq = num(0, "seq")?.ok_or_else(|| bad(n, "empty seq".into()))?;
    let send = num(1, "send_unix_ns")?.ok_or_else(|| bad(n, "empty send_unix_ns".into()))?;
    Ok((seq, send, num(2, "rtt_ns")?))
}
