//! `--log FILE`: every measured transaction as one CSV row, streamed.
//!
//! Columns: `seq,send_unix_ns,rtt_ns,lost,status,rx_sw_rtt_ns,send_mono_ns`. The first four
//! are the contract (sequence, wall-clock send time, RTT in ns, lost flag 0/1); `rtt_ns` is
//! empty unless `status` is `ok`. Rows are buffered and flushed whenever the loop is idle
//! before a paced slot and at least every 100 ms, so a killed run loses at most that.
//!
//! Written by hand rather than through the `csv` crate: every cell is an integer or a fixed
//! word (nothing to quote), and a row costs a few `write!`s into the buffer on the measuring
//! thread, with no per-row serializer state.
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use super::engine::{Outcome, Sample};

/// The header row.
pub const HEADER: &str = "seq,send_unix_ns,rtt_ns,lost,status,rx_sw_rtt_ns,send_mono_ns";
const FLUSH_EVERY_NS: u64 = 100_000_000;

/// A streaming per-sample CSV log.
#[derive(Debug)]
pub struct SampleLog<W: Write = File> {
    out: BufWriter<W>,
    last_flush_ns: u64,
}

impl SampleLog<File> {
    /// Creates (truncates) `path` and writes the header.
    pub fn create(path: &Path) -> io::Result<Self> {
        Self::new(File::create(path)?)
    }

    /// Creates (truncates) `path` with `extra` columns (see [`SampleLog::with_columns`]).
    pub fn create_with_columns(path: &Path, extra: &str) -> io::Result<Self> {
        Self::with_columns(File::create(path)?, extra)
    }
}

impl<W: Write> SampleLog<W> {
    /// A log on any writer; writes the header.
    pub fn new(writer: W) -> io::Result<Self> {
        Self::with_columns(writer, "")
    }

    /// A log whose rows carry `extra` columns (comma-separated names) after the standard ones;
    /// write its rows with [`write_extra`](Self::write_extra).
    pub fn with_columns(writer: W, extra: &str) -> io::Result<Self> {
        let mut out = BufWriter::with_capacity(64 * 1024, writer);
        if extra.is_empty() {
            writeln!(out, "{HEADER}")?;
        } else {
            writeln!(out, "{HEADER},{extra}")?;
        }
        out.flush()?;
        Ok(Self {
            out,
            last_flush_ns: 0,
        })
    }

    /// Appends one row; flushes if the last flush is more than 100 ms old.
    pub fn write(&mut self, s: &Sample) -> io::Result<()> {
        self.row(s)?;
        writeln!(self.out)?;
        self.flush_if_due(s.id.send_mono_ns)
    }

    /// Appends one row with `extra` (the values of the extra columns, comma-separated).
    pub fn write_extra(&mut self, s: &Sample, extra: &str) -> io::Result<()> {
        self.row(s)?;
        writeln!(self.out, ",{extra}")?;
        self.flush_if_due(s.id.send_mono_ns)
    }

    fn flush_if_due(&mut self, now_mono_ns: u64) -> io::Result<()> {
        if now_mono_ns.saturating_sub(self.last_flush_ns) >= FLUSH_EVERY_NS {
            self.flush(now_mono_ns)?;
        }
        Ok(())
    }

    /// The standard columns of a row, without the line end.
    fn row(&mut self, s: &Sample) -> io::Result<()> {
        let id = &s.id;
        match s.outcome {
            Outcome::Reply {
                rtt_ns,
                rx_sw_rtt_ns,
            } => {
                write!(self.out, "{},{},{},0,ok,", id.seq, id.send_unix_ns, rtt_ns)?;
                if let Some(rx) = rx_sw_rtt_ns {
                    write!(self.out, "{rx}")?;
                }
                write!(self.out, ",{}", id.send_mono_ns)
            }
            Outcome::Lost => write!(
                self.out,
                "{},{},,1,lost,,{}",
                id.seq, id.send_unix_ns, id.send_mono_ns
            ),
            Outcome::Error => write!(
                self.out,
                "{},{},,0,error,,{}",
                id.seq, id.send_unix_ns, id.send_mono_ns
            ),
        }
    }

    /// Writes buffered rows out.
    pub fn flush(&mut self, now_mono_ns: u64) -> io::Result<()> {
        self.last_flush_ns = now_mono_ns;
        self.out.flush()
    }

    /// Flushes and returns the writer.
    pub fn into_inner(self) -> io::Result<W> {
        self.out.into_inner().map_err(|e| e.into_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::SampleId;

    #[test]
    fn rows() {
        let mut log = SampleLog::new(Vec::new()).unwrap();
        let id = |seq| SampleId {
            seq,
            send_unix_ns: 1_700_000_000_000_000_000 + seq,
            send_mono_ns: 5 + seq,
        };
        let ok = Outcome::Reply {
            rtt_ns: 25_000,
            rx_sw_rtt_ns: Some(21_000),
        };
        log.write(&Sample {
            id: id(0),
            outcome: ok,
        })
        .unwrap();
        log.write(&Sample {
            id: id(1),
            outcome: Outcome::Lost,
        })
        .unwrap();
        log.write(&Sample {
            id: id(2),
            outcome: Outcome::Error,
        })
        .unwrap();
        let text = String::from_utf8(log.into_inner().unwrap()).unwrap();
        assert_eq!(
            text,
            "seq,send_unix_ns,rtt_ns,lost,status,rx_sw_rtt_ns,send_mono_ns\n\
             0,1700000000000000000,25000,0,ok,21000,5\n\
             1,1700000000000000001,,1,lost,,6\n\
             2,1700000000000000002,,0,error,,7\n"
        );
    }
}
