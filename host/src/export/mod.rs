//! Summary formats of an [`RrReport`]: one file per format, each a pure function of the
//! report, as hyperfine's exporters. The JSON and CSV shapes are a contract.
pub mod csv;
mod json;
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
    };
    exporter.serialize(report)
}
