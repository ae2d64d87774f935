//! CSV: a header and one summary row. The columns are the JSON report's scalars in the
//! order of [`COLUMNS`]; the `rx_sw` series becomes `rx_sw_*` columns, `cpus_used` a
//! space-separated list, and the outlier list is left to JSON and the per-sample log.
use std::io;

use serde_json::Value;

use super::Exporter;
use crate::rr::RrReport;

pub(super) struct CsvExporter;

/// Column order: the counts and statistics users read first, then parameters.
pub(super) const COLUMNS: &[&str] = &[
    "target",
    "address",
    "proto",
    "transactions",
    "lost",
    "errors",
    "late",
    "stray",
    "sent",
    "min_us",
    "mean_us",
    "max_us",
    "stddev_us",
    "p50_us",
    "p90_us",
    "p99_us",
    "p999_us",
    "p9999_us",
    "rate_tps",
    "samples",
    "rx_sw_samples",
    "rx_sw_min_us",
    "rx_sw_mean_us",
    "rx_sw_max_us",
    "rx_sw_stddev_us",
    "rx_sw_p50_us",
    "rx_sw_p90_us",
    "rx_sw_p99_us",
    "rx_sw_p999_us",
    "rx_sw_p9999_us",
    "size",
    "count",
    "duration_s",
    "interval_us",
    "burst",
    "warmup",
    "timeout_us",
    "cpu",
    "cpus_used",
    "busy_poll",
    "start_unix_ns",
    "elapsed_s",
    "interrupted",
    "error",
    "histogram_digits",
];

fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| cell(Some(i)))
            .collect::<Vec<_>>()
            .join(" "),
        Some(other) => other.to_string(),
    }
}

/// Quotes a field if it holds a separator, a quote or a line break.
fn quote(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

impl Exporter for CsvExporter {
    fn serialize(&self, report: &RrReport) -> io::Result<Vec<u8>> {
        let value = serde_json::to_value(report)?;
        let row: Vec<String> = COLUMNS
            .iter()
            .map(|&name| {
                let v = match name.strip_prefix("rx_sw_") {
                    Some(key) => value.get("rx_sw").and_then(|s| s.get(key)),
                    None => value.get(name),
                };
                quote(&cell(v))
            })
            .collect();
        Ok(format!("{}\n{}\n", COLUMNS.join(","), row.join(",")).into_bytes())
    }
}
