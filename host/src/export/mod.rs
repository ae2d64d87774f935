//! Summary formats of an [`RrReport`]: one file per format, each a pure function of the
//! report, as hyperfine's exporters. The JSON and CSV shapes are a contract. `lava` turns
//! every figure into a LAVA test case (its [`Sheet`](lava::Sheet) also serves the commands
//! that report several configurations).
pub mod csv;
mod json;
pub mod lava;
#[cfg(test)]
mod tests;
mod text;

use std::io;

use crate::rr::RrReport;

/// The formats `--format` offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Human summary; the first line reads like netperf `-P 0 -O min,mean,max,stddev,rate`.
    Text,
    /// One JSON object.
    Json,
    /// A header row and one summary row.
    Csv,
    /// One LAVA test case per figure, as `lava-test-case` prints it (or through it, when it
    /// is on PATH).
    Lava,
}

/// Turns a report into bytes.
trait Exporter {
    fn serialize(&self, report: &RrReport) -> io::Result<Vec<u8>>;
}

/// Serializes `report` in `format`.
pub fn serialize(format: Format, report: &RrReport) -> io::Result<Vec<u8>> {
    let exporter: &dyn Exporter = match format {
        Format::Text => &text::TextExporter,
        Format::Json => &json::JsonExporter,
        Format::Csv => &csv::CsvExporter,
        Format::Lava => &lava::LavaExporter,
    };
    exporter.serialize(report)
}
