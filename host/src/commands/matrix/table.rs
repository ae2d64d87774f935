//! The comparison table, laid out like the users' own (CONTEXT.md): one row per
//! configuration; min, avg, max, stddev and p99 of the round trip in microseconds, for UDP
//! and for TCP. As text (aligned), CSV and Markdown.
use std::fmt::Write as _;

use crate::commands::run::RunResults;
use crate::rr::{Proto, RrReport};

/// One configuration's outcome.
#[derive(Debug, Clone)]
pub struct RowResult {
    /// The configuration's name.
    pub name: String,
    /// What was measured (possibly partial), if the VM came up.
    pub results: Option<RunResults>,
    /// Why the configuration failed or stopped early.
    pub error: Option<String>,
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
    parts.join("; ")
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
        let n = note(row);
        out = out.trim_end().to_string();
        if !n.is_empty() {
            let _ = write!(out, "  ({n})");
        }
        out.push('\n');
    }
    out
}

fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// CSV: a header and one row per configuration; empty cells where nothing was measured.
pub fn csv(rows: &[RowResult]) -> String {
    let mut header = vec!["configuration".to_string(), "label".into()];
    for p in ["udp", "tcp"] {
        for s in [
            "transactions",
            "lost",
            "errors",
            "min_us",
            "mean_us",
            "max_us",
            "stddev_us",
            "p99_us",
        ] {
            header.push(format!("{p}_{s}"));
        }
    }
    header.extend(["boot_ms", "run_dir", "note"].map(String::from));
    let mut out = header.join(",");
    out.push('\n');
    let opt = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
    for row in rows {
        let mut cells = vec![
            csv_cell(&row.name),
            row.results
                .as_ref()
                .map_or(String::new(), |r| r.label.clone()),
        ];
        for p in [Proto::Udp, Proto::Tcp] {
            let r = report(row, p);
            cells.push(r.map_or(String::new(), |r| r.transactions.to_string()));
            cells.push(r.map_or(String::new(), |r| r.lost.to_string()));
            cells.push(r.map_or(String::new(), |r| r.errors.to_string()));
            cells.extend(values(r).map(opt));
        }
        let res = row.results.as_ref();
        cells.push(opt(res.and_then(|r| r.boot_ms)));
        cells.push(csv_cell(
            &res.map_or(String::new(), |r| r.run_dir.display().to_string()),
        ));
        cells.push(csv_cell(&note(row)));
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
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
            note(row).replace('|', "\\|").replace('\n', " ")
        );
    }
    out
}
