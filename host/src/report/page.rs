//! The Markdown page that ties the charts together: a table of every run and protocol, then
//! the charts, by relative link so the directory can be moved or committed as is.
use std::fmt::Write;

use super::input::{RunData, PERCENTILES};

/// One chart on the page.
#[derive(Debug, Clone)]
pub struct Figure {
    /// Heading above it.
    pub heading: String,
    /// PNG file name, relative to the page.
    pub png: String,
    /// SVG file name, relative to the page.
    pub svg: String,
}

fn us(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.1}"))
}

/// The table: one row per run and protocol, the users' columns plus the percentiles.
pub fn table(runs: &[RunData]) -> String {
    let mut s = String::from("| run | proto | transactions | lost | min | avg | max | stddev |");
    for (name, _) in &PERCENTILES[..4] {
        let _ = write!(s, " {name} |");
    }
    s.push_str("\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for run in runs {
        for series in &run.series {
            let f = &series.figures;
            let _ = write!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                run.name.replace('|', "/"),
                series.proto,
                f.transactions,
                f.lost,
                us(f.min_us),
                us(f.mean_us),
                us(f.max_us),
                us(f.stddev_us),
            );
            for p in &f.percentiles_us[..4] {
                let _ = write!(s, " {} |", us(*p));
            }
            s.push('\n');
        }
    }
    s
}

/// The load table, when any run had load.
fn load_table(runs: &[RunData]) -> Option<String> {
    let mut rows = String::new();
    for run in runs {
        let Some(list) = run.results.get("load").and_then(|l| l.as_array()) else {
            continue;
        };
        for l in list {
            let get = |k: &str| l.get(k).cloned().unwrap_or(serde_json::Value::Null);
            let num = |k: &str| get(k).as_f64().map_or("-".into(), |v| format!("{v:.1}"));
            let _ = writeln!(
                rows,
                "| {} | {} | {} | {} | {} | {} |",
                run.name.replace('|', "/"),
                get("spec").as_str().unwrap_or("?"),
                num("mbit_s"),
                num("packets_s"),
                get("bytes"),
                get("errors"),
            );
        }
    }
    (!rows.is_empty()).then(|| {
        format!("| run | load | Mbit/s | packets/s | bytes | errors |\n|---|---|---:|---:|---:|---:|\n{rows}")
    })
}

/// The whole page.
pub fn markdown(title: &str, runs: &[RunData], figures: &[Figure]) -> String {
    let mut s = format!("# {title}\n\nRound-trip times in microseconds");
    s.push_str(" (avg = mean, stddev = population standard deviation, as netperf reports).\n\n");
    s.push_str(&table(runs));
    if let Some(load) = load_table(runs) {
        s.push_str("\nBackground load during the latency runs (achieved):\n\n");
        s.push_str(&load);
    }
    s.push_str("\nRun directories:\n\n");
    for run in runs {
        let _ = writeln!(s, "- {}: `{}`", run.name, run.dir.display());
    }
    for f in figures {
        let _ = write!(
            s,
            "\n## {}\n\n![{}]({})\n\n([SVG]({}))\n",
            f.heading, f.heading, f.png, f.svg
        );
    }
    s
}
