//! Micro-benchmark result (guest to host): the summary of a finished run.
//!
//! ```text
//!  0       2        3        4        8         12       16
//!  +-------+--------+--------+--------+---------+--------+
//!  | test  |counter | reserv.| run id | samples | CNTFRQ |
//!  +-------+--------+--------+--------+---------+--------+
//!  16     24     32     40     48     56
//!  +------+------+------+------+------+
//!  | min  | p50  | p99  | max  | sum  |   (ticks)
//!  +------+------+------+------+------+
//! ```
//! `run id` names the run whose raw samples the guest holds until the next run; the host asks
//! for them with [`samples_request`](crate::samples_request).

use crate::bench::{BenchTest, Summary};
use crate::bytes::{accessors, body_packet};
use crate::guest::CounterKind;
use crate::{Error, Result};

mod field {
    use crate::bytes::Field;
    pub const TEST: Field = 0..2;
    pub const COUNTER: Field = 2..3;
    pub const RESERVED: Field = 3..4;
    pub const RUN_ID: Field = 4..8;
    pub const SAMPLES: Field = 8..12;
    pub const CNTFRQ: Field = 12..16;
    pub const MIN: Field = 16..24;
    pub const P50: Field = 24..32;
    pub const P99: Field = 32..40;
    pub const MAX: Field = 40..48;
    pub const SUM: Field = 48..56;
}

/// Length of the body.
pub const BODY_LEN: usize = field::SUM.end;

body_packet!("a micro-benchmark result", fixed_len);

accessors! {
    /// Raw test id.
    test / set_test: u16 = TEST;
    /// Raw counter kind byte.
    counter / set_counter: u8 = COUNTER;
    /// Id of the run whose samples the guest holds.
    run_id / set_run_id: u32 = RUN_ID;
    /// Number of samples taken (iterations actually run).
    samples / set_samples: u32 = SAMPLES;
    /// Counter frequency in Hz.
    cntfrq_hz / set_cntfrq_hz: u32 = CNTFRQ;
    /// Smallest sample (ticks).
    min / set_min: u64 = MIN;
    /// Median sample (ticks).
    p50 / set_p50: u64 = P50;
    /// 99th percentile sample (ticks).
    p99 / set_p99: u64 = P99;
    /// Largest sample (ticks).
    max / set_max: u64 = MAX;
    /// Sum of all samples (ticks, saturating).
    sum / set_sum: u64 = SUM;
}

/// A validated micro-benchmark result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// The test that ran.
    pub test: BenchTest,
    /// Which counter timed it.
    pub counter: CounterKind,
    /// Id of the run whose samples the guest holds.
    pub run_id: u32,
    /// Counter frequency in Hz.
    pub cntfrq_hz: u32,
    /// The samples' summary (`summary.count` is the number of samples).
    pub summary: Summary,
}

impl Repr {
    /// Parse a result body.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr> {
        packet.check_len()?;
        Ok(Repr {
            test: BenchTest::from_id(packet.test()).ok_or(Error::BadValue)?,
            counter: CounterKind::from_u8(packet.counter()).ok_or(Error::BadValue)?,
            run_id: packet.run_id(),
            cntfrq_hz: packet.cntfrq_hz(),
            summary: Summary {
                count: packet.samples(),
                min: packet.min(),
                p50: packet.p50(),
                p99: packet.p99(),
                max: packet.max(),
                sum: packet.sum(),
            },
        })
    }

    /// Length of the body.
    pub const fn buffer_len(&self) -> usize {
        BODY_LEN
    }

    /// Emit into a body buffer of at least [`BODY_LEN`] bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.buffer.as_mut()[field::RESERVED].fill(0);
        packet.set_test(self.test.id());
        packet.set_counter(self.counter as u8);
        packet.set_run_id(self.run_id);
        packet.set_samples(self.summary.count);
        packet.set_cntfrq_hz(self.cntfrq_hz);
        packet.set_min(self.summary.min);
        packet.set_p50(self.summary.p50);
        packet.set_p99(self.summary.p99);
        packet.set_max(self.summary.max);
        packet.set_sum(self.summary.sum);
    }
}

#[cfg(test)]
mod test {
    use super::*;

    static BYTES: [u8; 56] = [
        0, 1, 1, 0, // psci, physical counter
        0, 0, 0, 3, // run 3
        0, 0, 0, 4, // 4 samples
        0x03, 0xb9, 0xac, 0xa0, // 62.5 MHz
        0, 0, 0, 0, 0, 0, 0, 10, // min
        0, 0, 0, 0, 0, 0, 0, 20, // p50
        0, 0, 0, 0, 0, 0, 0, 40, // p99
        0, 0, 0, 0, 0, 0, 0, 40, // max
        0, 0, 0, 0, 0, 0, 0, 90, // sum
    ];

    fn repr() -> Repr {
        Repr {
            test: BenchTest::PsciVersion,
            counter: CounterKind::Physical,
            run_id: 3,
            cntfrq_hz: 62_500_000,
            summary: Summary {
                count: 4,
                min: 10,
                p50: 20,
                p99: 40,
                max: 40,
                sum: 90,
            },
        }
    }

    #[test]
    fn test_parse() {
        assert_eq!(
            Repr::parse(&Packet::new_checked(&BYTES[..]).unwrap()).unwrap(),
            repr()
        );
    }

    #[test]
    fn test_construct() {
        let mut buf = [0xffu8; 56];
        repr().emit(&mut Packet::new_unchecked(&mut buf[..]));
        assert_eq!(buf, BYTES);
    }

    #[test]
    fn test_bad_values() {
        let mut buf = BYTES;
        buf[2] = 7;
        assert_eq!(
            Repr::parse(&Packet::new_unchecked(&buf[..])),
            Err(Error::BadValue)
        );
    }

    #[test]
    fn test_impossible_len() {
        assert_eq!(
            Packet::new_checked(&BYTES[..55]).unwrap_err(),
            Error::Truncated
        );
    }
}
