//! CSV: a header and one summary row, written by the `csv` crate from [`SummaryRow`]. The
//! columns are the JSON report's scalars, the counts and statistics users read first, then
//! the parameters; the `rx_sw` series becomes `rx_sw_*` columns, `cpus_used` a
//! space-separated list, and the outlier list is left to JSON and the per-sample log.
use std::io;

use serde::Serialize;

use super::Exporter;
use crate::rr::{Proto, RrReport};
use crate::stats::Summary;

pub(super) struct CsvExporter;

/// One report as one CSV row; the field names are the header. `label` (a `run`'s
/// configuration) leads when given, and is no column of `rr`'s own CSV.
#[derive(Serialize)]
struct SummaryRow<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    label: Option<&'a str>,
    target: &'a str,
    address: &'a str,
    proto: Proto,
    transactions: u64,
    lost: u64,
    errors: u64,
    late: u64,
    stray: u64,
    sent: u64,
    min_us: Option<f64>,
    mean_us: Option<f64>,
    max_us: Option<f64>,
    stddev_us: Option<f64>,
    p50_us: Option<f64>,
    p90_us: Option<f64>,
    p99_us: Option<f64>,
    p999_us: Option<f64>,
    p9999_us: Option<f64>,
    rate_tps: f64,
    samples: u64,
    rx_sw_samples: Option<u64>,
    rx_sw_min_us: Option<f64>,
    rx_sw_mean_us: Option<f64>,
    rx_sw_max_us: Option<f64>,
    rx_sw_stddev_us: Option<f64>,
    rx_sw_p50_us: Option<f64>,
    rx_sw_p90_us: Option<f64>,
    rx_sw_p99_us: Option<f64>,
    rx_sw_p999_us: Option<f64>,
    rx_sw_p9999_us: Option<f64>,
    size: usize,
    count: Option<u64>,
    duration_s: Option<f64>,
    interval_us: Option<f64>,
    burst: u32,
    warmup: u64,
    timeout_us: f64,
    cpu: Option<usize>,
    cpus_used: String,
    busy_poll: bool,
    start_unix_ns: u64,
    elapsed_s: f64,
    interrupted: bool,
    error: Option<&'a str>,
    histogram_digits: u8,
    /// A `run`'s failed limits on this protocol's figures (`;`-separated), empty when none;
    /// no column of `rr`'s own CSV.
    #[serde(skip_serializing_if = "Option::is_none")]
    limits_exceeded: Option<String>,
}

impl<'a> SummaryRow<'a> {
    fn of(label: Option<&'a str>, r: &'a RrReport, limits_exceeded: Option<String>) -> Self {
        let rx = r.rx_sw.as_ref();
        let rx_f = |f: fn(&Summary) -> Option<f64>| rx.and_then(f);
        let s = &r.rtt;
        SummaryRow {
            label,
            target: &r.target,
            address: &r.address,
            proto: r.proto,
            transactions: r.transactions,
            lost: r.lost,
            errors: r.errors,
            late: r.late,
            stray: r.stray,
            sent: r.sent,
            min_us: s.min_us,
            mean_us: s.mean_us,
            max_us: s.max_us,
            stddev_us: s.stddev_us,
            p50_us: s.p50_us,
            p90_us: s.p90_us,
            p99_us: s.p99_us,
            p999_us: s.p999_us,
            p9999_us: s.p9999_us,
            rate_tps: r.rate_tps,
            samples: s.samples,
            rx_sw_samples: rx.map(|x| x.samples),
            rx_sw_min_us: rx_f(|x| x.min_us),
            rx_sw_mean_us: rx_f(|x| x.mean_us),
            rx_sw_max_us: rx_f(|x| x.max_us),
            rx_sw_stddev_us: rx_f(|x| x.stddev_us),
            rx_sw_p50_us: rx_f(|x| x.p50_us),
            rx_sw_p90_us: rx_f(|x| x.p90_us),
            rx_sw_p99_us: rx_f(|x| x.p99_us),
            rx_sw_p999_us: rx_f(|x| x.p999_us),
            rx_sw_p9999_us: rx_f(|x| x.p9999_us),
            size: r.size,
            count: r.count,
            duration_s: r.duration_s,
            interval_us: r.interval_us,
            burst: r.burst,
            warmup: r.warmup,
            timeout_us: r.timeout_us,
            cpu: r.cpu,
            cpus_used: r
                .cpus_used
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(" "),
            busy_poll: r.busy_poll,
            start_unix_ns: r.start_unix_ns,
            elapsed_s: r.elapsed_s,
            interrupted: r.interrupted,
            error: r.error.as_deref(),
            histogram_digits: r.histogram_digits,
            limits_exceeded,
        }
    }
}

/// Writes `rows` (each serialised to one record) with a header from the first one. Empty
/// values are empty cells; fields with a separator, quote or line break are quoted.
pub fn write_rows<T: Serialize>(rows: impl IntoIterator<Item = T>) -> io::Result<Vec<u8>> {
    let mut w = ::csv::Writer::from_writer(Vec::new());
    for row in rows {
        w.serialize(row).map_err(io::Error::other)?;
    }
    w.into_inner().map_err(|e| io::Error::other(e.to_string()))
}

/// Reports of several configurations in one CSV, each row led by its label and ended by its
/// failed limits.
pub fn labelled(rows: &[(&str, &RrReport, String)]) -> io::Result<Vec<u8>> {
    write_rows(
        rows.iter()
            .map(|(l, r, exceeded)| SummaryRow::of(Some(l), r, Some(exceeded.clone()))),
    )
}

impl Exporter for CsvExporter {
    fn serialize(&self, report: &RrReport) -> io::Result<Vec<u8>> {
        write_rows([SummaryRow::of(None, report, None)])
    }
}
