//! JSON: the report as one object (see [`RrReport`] for the keys), pretty-printed.
use std::io;

use super::Exporter;
use crate::rr::RrReport;

pub(super) struct JsonExporter;

impl Exporter for JsonExporter {
    fn serialize(&self, report: &RrReport) -> io::Result<Vec<u8>> {
        let mut out = serde_json::to_vec_pretty(report)?;
        out.push(b'\n');
        Ok(out)
    }
}
