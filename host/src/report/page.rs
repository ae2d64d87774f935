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

/// A table of text cells, written as Markdown or HTML.
struct Table {
    /// Column names, and whether the column holds numbers (right-aligned).
    columns: Vec<(&'static str, bool)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn markdown(&self) -> String {
        let mut s = String::from("|");
        let mut rule = String::from("|");
        for (name, numeric) in &self.columns {
            let _ = write!(s, " {name} |");
            rule.push_str(if *numeric { "---:|" } else { "---|" });
        }
        let _ = writeln!(s, "\n{rule}");
        for row in &self.rows {
            s.push('|');
            for cell in row {
                let _ = write!(s, " {} |", cell.replace('|', "/"));
            }
            s.push('\n');
        }
        s
    }

    fn html(&self) -> String {
        let mut s = String::from("<table>\n<tr>");
        for (name, _) in &self.columns {
            let _ = write!(s, "<th>{}</th>", escape(name));
        }
        s.push_str("</tr>\n");
        for row in &self.rows {
            s.push_str("<tr>");
            for (cell, (_, numeric)) in row.iter().zip(&self.columns) {
                let class = if *numeric { " class=\"n\"" } else { "" };
                let _ = write!(s, "<td{class}>{}</td>", escape(cell));
            }
            s.push_str("</tr>\n");
        }
        s.push_str("</table>\n");
        s
    }
}

/// Text made safe for HTML element content and attribute values.
fn escape(text: &str) -> String {
    let mut s = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => s.push_str("&amp;"),
            '<' => s.push_str("&lt;"),
            '>' => s.push_str("&gt;"),
            '"' => s.push_str("&quot;"),
            c => s.push(c),
        }
    }
    s
}

/// The table: one row per run and protocol, the users' columns plus the percentiles.
fn summary_table(runs: &[RunData]) -> Table {
    let mut columns = vec![
        ("run", false),
        ("proto", false),
        ("transactions", true),
        ("lost", true),
        ("min", true),
        ("avg", true),
        ("max", true),
        ("stddev", true),
    ];
    columns.extend(PERCENTILES[..4].iter().map(|(name, _)| (*name, true)));
    let mut rows = Vec::new();
    for run in runs {
        for series in &run.series {
            let f = &series.figures;
            let mut row = vec![
                run.name.clone(),
                series.proto.clone(),
                f.transactions.to_string(),
                f.lost.to_string(),
                us(f.min_us),
                us(f.mean_us),
                us(f.max_us),
                us(f.stddev_us),
            ];
            row.extend(f.percentiles_us[..4].iter().map(|p| us(*p)));
            rows.push(row);
        }
    }
    Table { columns, rows }
}

/// The summary table in Markdown.
pub fn table(runs: &[RunData]) -> String {
    summary_table(runs).markdown()
}

/// The load table, when any run had load.
fn load_table(runs: &[RunData]) -> Option<Table> {
    let mut rows = Vec::new();
    for run in runs {
        let Some(list) = run.results.get("load").and_then(|l| l.as_array()) else {
            continue;
        };
        for l in list {
            let get = |k: &str| l.get(k).cloned().unwrap_or(serde_json::Value::Null);
            let num = |k: &str| get(k).as_f64().map_or("-".into(), |v| format!("{v:.1}"));
            rows.push(vec![
                run.name.clone(),
                get("spec").as_str().unwrap_or("?").to_string(),
                num("mbit_s"),
                num("packets_s"),
                get("bytes").to_string(),
                get("errors").to_string(),
            ]);
        }
    }
    (!rows.is_empty()).then(|| Table {
        columns: vec![
            ("run", false),
            ("load", false),
            ("Mbit/s", true),
            ("packets/s", true),
            ("bytes", true),
            ("errors", true),
        ],
        rows,
    })
}

const UNITS: &str = "Round-trip times in microseconds \
    (avg = mean, stddev = population standard deviation, as netperf reports).";
const LOAD: &str = "Background load during the latency runs (achieved):";

/// The whole page.
pub fn markdown(title: &str, runs: &[RunData], figures: &[Figure]) -> String {
    let mut s = format!("# {title}\n\n{UNITS}\n\n");
    s.push_str(&table(runs));
    if let Some(load) = load_table(runs) {
        let _ = write!(s, "\n{LOAD}\n\n{}", load.markdown());
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

/// The same page as one self-contained HTML file: each chart's SVG inline (`svgs[i]` is the
/// document of `figures[i]`), nothing fetched from anywhere.
pub fn html(title: &str, runs: &[RunData], figures: &[Figure], svgs: &[String]) -> String {
    let mut s = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>{t}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n<h1>{t}</h1>\n\
         <p>{}</p>\n",
        escape(UNITS),
        t = escape(title),
    );
    s.push_str(&summary_table(runs).html());
    if let Some(load) = load_table(runs) {
        let _ = write!(s, "<p>{}</p>\n{}", escape(LOAD), load.html());
    }
    s.push_str("<p>Run directories:</p>\n<ul>\n");
    for run in runs {
        let _ = writeln!(
            s,
            "<li>{}: <code>{}</code></li>",
            escape(&run.name),
            escape(&run.dir.display().to_string())
        );
    }
    s.push_str("</ul>\n");
    for (f, svg) in figures.iter().zip(svgs) {
        let id = f.svg.trim_end_matches(".svg");
        let _ = write!(
            s,
            "<section id=\"{}\">\n<h2>{}</h2>\n{}</section>\n",
            escape(id),
            escape(&f.heading),
            svg
        );
    }
    s.push_str("</body>\n</html>\n");
    s
}

/// The page's look: readable width, charts scaled down to it, never up.
const STYLE: &str = "body { font-family: sans-serif; color: #222; background: #fff; \
max-width: 1040px; margin: 1em auto; padding: 0 1em; }
table { border-collapse: collapse; }
th, td { border: 1px solid #bbb; padding: 2px 8px; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
section svg { display: block; max-width: 100%; height: auto; }
";
