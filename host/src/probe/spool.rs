//! Per-sample records on disk between the measured run and the clock fit.
//!
//! A sample's one-way split needs the clock mapping, and the mapping needs the whole run. So
//! each measured transaction is written as a fixed 80-byte record to an unlinked file (in the
//! `--log` file's directory, else `$TMPDIR`) and read back once after the fit: memory stays
//! flat however long the run (10 million samples are 800 MB of disk, not of RAM), and the file
//! disappears with the process.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use crate::rr::engine::{Outcome, Sample};

/// Guest readings of one echo reply (counter ticks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Readings {
    /// Interrupt entry (irq mode).
    pub irq_entry: Option<u64>,
    /// Driver saw the request.
    pub rx_seen: Option<u64>,
    /// Handler built the reply.
    pub handled: u64,
    /// Just before the reply's TX notify.
    pub tx_notify: Option<u64>,
    /// Duration of the previous TX notify.
    pub prev_notify_ticks: Option<u64>,
}

/// One measured transaction with what the guest reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// The sample as the rr engine saw it.
    pub sample: Sample,
    /// The guest's readings (`None`: lost, wrong, or a reply without readings).
    pub guest: Option<Readings>,
}

const RECORD_LEN: usize = 80;

const HAS_GUEST: u8 = 1;
const HAS_IRQ: u8 = 2;
const HAS_RX: u8 = 4;
const HAS_TX: u8 = 8;
const HAS_PREV: u8 = 16;
const HAS_RX_SW: u8 = 32;

fn encode(r: &Record) -> [u8; RECORD_LEN] {
    let mut b = [0u8; RECORD_LEN];
    let id = r.sample.id;
    let (status, rtt, rx_sw) = match r.sample.outcome {
        Outcome::Reply {
            rtt_ns,
            rx_sw_rtt_ns,
        } => (0u8, rtt_ns, rx_sw_rtt_ns),
        Outcome::Lost => (1, 0, None),
        Outcome::Error => (2, 0, None),
    };
    let g = r.guest.unwrap_or_default();
    let mut flags = 0;
    for (bit, present) in [
        (HAS_GUEST, r.guest.is_some()),
        (HAS_IRQ, g.irq_entry.is_some()),
        (HAS_RX, g.rx_seen.is_some()),
        (HAS_TX, g.tx_notify.is_some()),
        (HAS_PREV, g.prev_notify_ticks.is_some()),
        (HAS_RX_SW, rx_sw.is_some()),
    ] {
        if present {
            flags |= bit;
        }
    }
    let words = [
        id.seq,
        id.send_unix_ns,
        id.send_mono_ns,
        rtt,
        rx_sw.unwrap_or(0),
        g.irq_entry.unwrap_or(0),
        g.rx_seen.unwrap_or(0),
        g.handled,
        g.tx_notify.unwrap_or(0),
    ];
    for (chunk, w) in b.chunks_exact_mut(8).zip(words) {
        chunk.copy_from_slice(&w.to_le_bytes());
    }
    // The last word: a 48-bit previous-notify duration, the status and the flags.
    b[72..78].copy_from_slice(&g.prev_notify_ticks.unwrap_or(0).to_le_bytes()[..6]);
    b[78] = status;
    b[79] = flags;
    b
}

fn decode(b: &[u8; RECORD_LEN]) -> Record {
    let w = |i: usize| {
        let mut x = [0u8; 8];
        x.copy_from_slice(&b[i * 8..i * 8 + 8]);
        u64::from_le_bytes(x)
    };
    let mut prev = [0u8; 8];
    prev[..6].copy_from_slice(&b[72..78]);
    let (status, flags) = (b[78], b[79]);
    let opt = |bit: u8, v: u64| (flags & bit != 0).then_some(v);
    let outcome = match status {
        0 => Outcome::Reply {
            rtt_ns: w(3),
            rx_sw_rtt_ns: opt(HAS_RX_SW, w(4)),
        },
        1 => Outcome::Lost,
        _ => Outcome::Error,
    };
    let guest = (flags & HAS_GUEST != 0).then(|| Readings {
        irq_entry: opt(HAS_IRQ, w(5)),
        rx_seen: opt(HAS_RX, w(6)),
        handled: w(7),
        tx_notify: opt(HAS_TX, w(8)),
        prev_notify_ticks: opt(HAS_PREV, u64::from_le_bytes(prev)),
    });
    Record {
        sample: Sample {
            id: crate::stats::SampleId {
                seq: w(0),
                send_unix_ns: w(1),
                send_mono_ns: w(2),
            },
            outcome,
        },
        guest,
    }
}

/// Longest previous-notify duration a record holds (48 bits of ticks: days at any CNTFRQ).
const PREV_MAX: u64 = (1 << 48) - 1;

/// Records written during the run.
#[derive(Debug)]
pub struct Spool {
    out: BufWriter<File>,
    len: u64,
}

impl Spool {
    /// An unlinked spool file in `dir` (or the system's temporary directory).
    pub fn create(dir: Option<&Path>) -> io::Result<Self> {
        let dir = match dir {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => std::env::temp_dir(),
        };
        let path = dir.join(format!(
            ".vmprobe-probe-spool-{}-{}",
            std::process::id(),
            crate::rr::stamp::mono_ns()
        ));
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        std::fs::remove_file(&path)?;
        Ok(Spool {
            out: BufWriter::with_capacity(64 * 1024, file),
            len: 0,
        })
    }

    /// Appends one record.
    pub fn push(&mut self, r: &Record) -> io::Result<()> {
        let mut r = *r;
        if let Some(g) = r.guest.as_mut() {
            g.prev_notify_ticks = g.prev_notify_ticks.map(|p| p.min(PREV_MAX));
        }
        self.out.write_all(&encode(&r))?;
        self.len += 1;
        Ok(())
    }

    /// Records written.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether no record was written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Ends writing and reads every record back, in order.
    pub fn replay(self) -> io::Result<Replay> {
        let mut file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.seek(SeekFrom::Start(0))?;
        Ok(Replay {
            input: BufReader::with_capacity(64 * 1024, file),
            left: self.len,
        })
    }
}

/// Reads a spool back.
#[derive(Debug)]
pub struct Replay {
    input: BufReader<File>,
    left: u64,
}

impl Iterator for Replay {
    type Item = io::Result<Record>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let mut b = [0u8; RECORD_LEN];
        Some(self.input.read_exact(&mut b).map(|()| decode(&b)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::SampleId;

    #[test]
    fn records_round_trip() {
        let id = |seq| SampleId {
            seq,
            send_unix_ns: 1_700_000_000_000_000_000 + seq,
            send_mono_ns: 99 + seq,
        };
        let records = [
            Record {
                sample: Sample {
                    id: id(1),
                    outcome: Outcome::Reply {
                        rtt_ns: 50_000,
                        rx_sw_rtt_ns: Some(40_000),
                    },
                },
                guest: Some(Readings {
                    irq_entry: Some(7),
                    rx_seen: Some(8),
                    handled: 9,
                    tx_notify: Some(10),
                    prev_notify_ticks: Some(123),
                }),
            },
            Record {
                sample: Sample {
                    id: id(2),
                    outcome: Outcome::Lost,
                },
                guest: None,
            },
            Record {
                sample: Sample {
                    id: id(3),
                    outcome: Outcome::Reply {
                        rtt_ns: 1,
                        rx_sw_rtt_ns: None,
                    },
                },
                guest: Some(Readings {
                    handled: u64::MAX,
                    ..Readings::default()
                }),
            },
            Record {
                sample: Sample {
                    id: id(4),
                    outcome: Outcome::Error,
                },
                guest: None,
            },
        ];
        let mut spool = Spool::create(None).unwrap();
        for r in &records {
            spool.push(r).unwrap();
        }
        assert_eq!(spool.len(), 4);
        let back: Vec<Record> = spool.replay().unwrap().map(Result::unwrap).collect();
        assert_eq!(back, records);
    }
}
