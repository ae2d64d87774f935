//! The comparison table, laid out like the users' own netperf table: one row per
//! configuration; min, avg, max, stddev and p99 of the round trip in microseconds, for UDP
//! and for TCP. As text (aligned), CSV and Markdown.
use std::fmt::Write as _;
use std::io;

use serde::Serialize;

use crate::commands::run::{FloorOutcome, RunResults};
use crate::export::lava::Check;
use crate::floor::HostFloor;
use crate::rr::{Proto, RrReport};

/// One configuration's outcome (`matrix --format json` prints them as they are).
#[derive(Debug, Clone, Serialize)]
pub struct RowResult {
    /// The configuration's name.
    pub name: String,
    /// What was measured (possibly partial), if the VM came up.
    pub results: Option<RunResults>,
    /// Why the configuration failed or stopped early.
    pub error: Option<String>,
}

impl RowResult {
    /// Every limit checked in this configuration.
    pub fn checks(&self) -> impl Iterator<Item = &Check> {
        self.results.iter().flat_map(|r| r.limits.iter().flatten())
    }

    /// The limits it exceeded, one line each.
    fn exceeded(&self) -> Vec<String> {
        self.results
            .iter()
            .flat_map(|r| r.exceeded())
            .map(Check::line)
            .collect()
    }
}

/// The note of a configuration that Ctrl-C kept from running.
pub const NOT_RUN: &str = "not run (interrupted)";

const STATS: [&str; 5] = ["min", "avg", "max", "stddev", "p99"];

fn values(r: Option<&RrReport>) -> [Option<f64>; 5] {
    match r {
        Some(r) => [
            r.rtt.min_us,
            r.rtt.mean_us,
            r.rtt.max_us,
            r.rtt.stddev_us,
            r.rtt.p99_us,
        ],
        None => [None; 5],
    }
}

fn report(row: &RowResult, proto: Proto) -> Option<&RrReport> {
    row.results.as_ref().and_then(|r| r.report(proto))
}

fn num(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.1}"))
}

/// What the notes column says: failure, partial run, losses, wrong replies.
fn note(row: &RowResult) -> String {
    let mut parts = Vec::new();
    if let Some(e) = &row.error {
        parts.push(e.clone());
    }
    for p in [Proto::Udp, Proto::Tcp] {
        if let Some(r) = report(row, p) {
            if r.lost > 0 || r.errors > 0 {
                parts.push(format!("{p}: {} lost, {} wrong", r.lost, r.errors));
            }
        }
    }
    if row.results.as_ref().is_some_and(|r| r.interrupted) {
        parts.push("interrupted".into());
    }
    for e in row.exceeded() {
        parts.push(format!("limit exceeded: {e}"));
    }
    parts.join("; ")
}

/// The NIC's interrupt path the guest reported (`spi`, `intx`, `msix-v2m`, `msix-its`, `none`).
fn interrupt(row: &RowResult) -> Option<&str> {
    row.results.as_ref()?.config.interrupt.as_deref()
}

/// The note, led by the interrupt path, for the text and Markdown tables (CSV has a column).
fn annotated(row: &RowResult) -> String {
    let n = note(row);
    match (interrupt(row), n.is_empty()) {
        (Some(i), true) => format!("interrupt {i}"),
        (Some(i), false) => format!("interrupt {i}; {n}"),
        (None, _) => n,
    }
}

/// The aligned text table.
pub fn text(rows: &[RowResult]) -> String {
    let w = rows
        .iter()
        .map(|r| r.name.chars().count())
        .max()
        .unwrap_or(0)
        .max("configuration".len());
    let col = 8;
    let group = col * STATS.len();
    let mut out = String::new();
    let head = format!(
        "{:w$}  {:<group$}  {}",
        "", "UDP round trip (us)", "TCP round trip (us)"
    );
    let _ = writeln!(out, "{head}");
    let _ = write!(out, "{:<w$}  ", "configuration");
    for _ in 0..2 {
        for s in STATS {
            let _ = write!(out, "{s:>col$}");
        }
        out.push_str("  ");
    }
    out = out.trim_end().to_string();
    out.push('\n');
    for row in rows {
        let _ = write!(out, "{:<w$}  ", row.name);
        if row.results.is_none() {
            match row.error.as_deref() {
                Some(NOT_RUN) => {
                    let _ = writeln!(out, "{NOT_RUN}");
                }
                e => {
                    let _ = writeln!(out, "failed: {}", e.unwrap_or("?"));
                }
            }
            continue;
        }
        for p in [Proto::Udp, Proto::Tcp] {
            for v in values(report(row, p)) {
                let _ = write!(out, "{:>col$}", num(v));
            }
            out.push_str("  ");
        }
        let n = annotated(row);
        out = out.trim_end().to_string();
        if !n.is_empty() {
            let _ = write!(out, "  ({n})");
        }
        out.push('\n');
    }
    let floors: Vec<(&str, &HostFloor)> = rows
        .iter()
        .filter_map(|r| match r.results.as_ref()?.host_floor.as_ref()? {
            FloorOutcome::Floor(f) => Some((r.name.as_str(), &**f)),
            FloorOutcome::Error { .. } => None,
        })
        .collect();
    if !floors.is_empty() {
        let _ = writeln!(out, "host floor, what this host costs without a VM:");
        for (name, f) in floors {
            let _ = writeln!(out, "  {name:<w$}  {}", f.line());
        }
    }
    out
}

/// One protocol's columns of the CSV table.
#[derive(Serialize, Default)]
struct ProtoCells {
    transactions: Option<u64>,
    lost: Option<u64>,
    errors: Option<u64>,
    min_us: Option<f64>,
    mean_us: Option<f64>,
    max_us: Option<f64>,
    stddev_us: Option<f64>,
    p99_us: Option<f64>,
}

impl ProtoCells {
    fn of(r: Option<&RrReport>) -> ProtoCells {
        let Some(r) = r else {
            return ProtoCells::default();
        };
        ProtoCells {
            transactions: Some(r.transactions),
            lost: Some(r.lost),
            errors: Some(r.errors),
            min_us: r.rtt.min_us,
            mean_us: r.rtt.mean_us,
            max_us: r.rtt.max_us,
            stddev_us: r.rtt.stddev_us,
            p99_us: r.rtt.p99_us,
        }
    }
}

/// One configuration as a CSV row (the field names are the header; the csv crate cannot
/// flatten, so each protocol's columns are spelled out).
#[derive(Serialize)]
struct CsvRow<'a> {
    configuration: &'a str,
    label: Option<&'a str>,
    udp_transactions: Option<u64>,
    udp_lost: Option<u64>,
    udp_errors: Option<u64>,
    udp_min_us: Option<f64>,
    udp_mean_us: Option<f64>,
    udp_max_us: Option<f64>,
    udp_stddev_us: Option<f64>,
    udp_p99_us: Option<f64>,
    tcp_transactions: Option<u64>,
    tcp_lost: Option<u64>,
    tcp_errors: Option<u64>,
    tcp_min_us: Option<f64>,
    tcp_mean_us: Option<f64>,
    tcp_max_us: Option<f64>,
    tcp_stddev_us: Option<f64>,
    tcp_p99_us: Option<f64>,
    boot_ms: Option<f64>,
    run_dir: Option<String>,
    note: String,
    interrupt: Option<&'a str>,
    limits_exceeded: String,
}

impl<'a> CsvRow<'a> {
    fn of(row: &'a RowResult) -> CsvRow<'a> {
        let (u, t) = (
            ProtoCells::of(report(row, Proto::Udp)),
            ProtoCells::of(report(row, Proto::Tcp)),
        );
        let res = row.results.as_ref();
        CsvRow {
            configuration: &row.name,
            label: res.map(|r| r.label.as_str()),
            udp_transactions: u.transactions,
            udp_lost: u.lost,
            udp_errors: u.errors,
            udp_min_us: u.min_us,
            udp_mean_us: u.mean_us,
            udp_max_us: u.max_us,
            udp_stddev_us: u.stddev_us,
            udp_p99_us: u.p99_us,
            tcp_transactions: t.transactions,
            tcp_lost: t.lost,
            tcp_errors: t.errors,
            tcp_min_us: t.min_us,
            tcp_mean_us: t.mean_us,
            tcp_max_us: t.max_us,
            tcp_stddev_us: t.stddev_us,
            tcp_p99_us: t.p99_us,
            boot_ms: res.and_then(|r| r.boot_ms),
            run_dir: res.map(|r| r.run_dir.display().to_string()),
            note: note(row),
            interrupt: interrupt(row),
            limits_exceeded: row.exceeded().join("; "),
        }
    }
}

/// CSV: a header and one row per configuration; empty cells where nothing was measured.
pub fn csv(rows: &[RowResult]) -> io::Result<String> {
    let bytes = crate::export::csv::write_rows(rows.iter().map(CsvRow::of))?;
    String::from_utf8(bytes).map_err(io::Error::other)
}

/// Markdown: the same table for a README or a report.
pub fn markdown(rows: &[RowResult]) -> String {
    let mut out = String::from("| configuration |");
    for p in ["UDP", "TCP"] {
        for s in STATS {
            let _ = write!(out, " {p} {s} |");
        }
    }
    out.push_str(" note |\n|---|");
    out.push_str(&"---:|".repeat(2 * STATS.len()));
    out.push_str("---|\n");
    for row in rows {
        let _ = write!(out, "| {} |", row.name.replace('|', "\\|"));
        for p in [Proto::Udp, Proto::Tcp] {
            for v in values(report(row, p)) {
                let _ = write!(out, " {} |", num(v));
            }
        }
        let _ = writeln!(
            out,
            " {} |",
            annotated(row).replace('|', "\\|").replace('\n', " ")
        );
    }
    out
}
