//! Raw samples (guest to host): one chunk of a run's per-iteration samples, in run order.
//!
//! ```text
//!  0        4        8       12      14         16
//!  +--------+--------+-------+-------+----------+------------------------
//!  | run id | offset | total | count | reserved | count x u64 sample (ticks)
//!  +--------+--------+-------+-------+----------+------------------------
//! ```
//! `total` is the number of samples the run has, so the host knows when it has them all. A chunk
//! for an offset at or past `total` carries no samples.

use crate::bytes::{accessors, body_packet, get_u64, put_u64};
use crate::{Error, Result};

mod field {
    use crate::bytes::Field;
    pub const RUN_ID: Field = 0..4;
    pub const OFFSET: Field = 4..8;
    pub const TOTAL: Field = 8..12;
    pub const COUNT: Field = 12..14;
    pub const RESERVED: Field = 14..16;
    pub const SAMPLES: usize = 16;
}

/// Length of the fixed part of the body.
pub const FIXED_LEN: usize = field::SAMPLES;
/// Bytes per sample.
pub const SAMPLE_LEN: usize = 8;

/// How many samples fit in a body of `body_len` bytes (at most `u16::MAX`).
pub const fn capacity(body_len: usize) -> usize {
    let n = body_len.saturating_sub(FIXED_LEN) / SAMPLE_LEN;
    if n > u16::MAX as usize {
        u16::MAX as usize
    } else {
        n
    }
}

body_packet!("a raw samples chunk");

impl<T: AsRef<[u8]>> Packet<T> {
    /// Ensure the fixed part and the `count` samples it announces are present.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < FIXED_LEN || len < FIXED_LEN + self.count() as usize * SAMPLE_LEN {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// The encoded samples (`count` of them).
    pub fn sample_bytes(&self) -> &[u8] {
        &self.buffer.as_ref()[FIXED_LEN..FIXED_LEN + self.count() as usize * SAMPLE_LEN]
    }
}

accessors! {
    /// The run the samples belong to.
    run_id / set_run_id: u32 = RUN_ID;
    /// Index of the first sample in this chunk.
    offset / set_offset: u32 = OFFSET;
    /// Number of samples the run has.
    total / set_total: u32 = TOTAL;
    /// Number of samples in this chunk.
    count / set_count: u16 = COUNT;
}

/// A chunk's samples: borrowed from the wire when parsed, from the guest's buffer when emitted.
#[derive(Debug, Clone, Copy)]
pub enum SampleSlice<'a> {
    /// Big-endian encoded samples as they travel.
    Wire(&'a [u8]),
    /// Samples in memory.
    Values(&'a [u64]),
}

impl<'a> SampleSlice<'a> {
    /// Number of samples.
    pub fn len(&self) -> usize {
        match self {
            SampleSlice::Wire(b) => b.len() / SAMPLE_LEN,
            SampleSlice::Values(v) => v.len(),
        }
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The samples in order.
    pub fn iter(&self) -> impl Iterator<Item = u64> + 'a {
        let (wire, values): (&'a [u8], &'a [u64]) = match *self {
            SampleSlice::Wire(b) => (b, &[]),
            SampleSlice::Values(v) => (&[], v),
        };
        wire.chunks_exact(SAMPLE_LEN)
            .map(get_u64)
            .chain(values.iter().copied())
    }
}

impl PartialEq for SampleSlice<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for SampleSlice<'_> {}

/// A validated samples chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr<'a> {
    /// The run the samples belong to.
    pub run_id: u32,
    /// Index of the first sample in this chunk.
    pub offset: u32,
    /// Number of samples the run has.
    pub total: u32,
    /// This chunk's samples (at most `u16::MAX`).
    pub samples: SampleSlice<'a>,
}

impl<'a> Repr<'a> {
    /// Parse a chunk, borrowing its samples from the packet.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&'a T>) -> Result<Repr<'a>> {
        packet.check_len()?;
        let bytes: &'a [u8] = T::as_ref(packet.buffer);
        let end = FIXED_LEN + packet.count() as usize * SAMPLE_LEN;
        Ok(Repr {
            run_id: packet.run_id(),
            offset: packet.offset(),
            total: packet.total(),
            samples: SampleSlice::Wire(&bytes[FIXED_LEN..end]),
        })
    }

    /// Length of the body.
    pub fn buffer_len(&self) -> usize {
        FIXED_LEN + self.samples.len() * SAMPLE_LEN
    }

    /// Emit into a body buffer of at least [`buffer_len`](Self::buffer_len) bytes.
    ///
    /// # Panics
    /// If there are more than `u16::MAX` samples (keep chunks within [`capacity`]).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        let count = u16::try_from(self.samples.len()).expect("samples chunk over u16::MAX");
        packet.buffer.as_mut()[field::RESERVED].fill(0);
        packet.set_run_id(self.run_id);
        packet.set_offset(self.offset);
        packet.set_total(self.total);
        packet.set_count(count);
        let out = &mut packet.buffer.as_mut()[FIXED_LEN..];
        for (slot, s) in out.chunks_exact_mut(SAMPLE_LEN).zip(self.samples.iter()) {
            put_u64(slot, s);
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    static BYTES: [u8; 32] = [
        0, 0, 0, 3, // run
        0, 0, 0, 2, // offset
        0, 0, 0, 4, // total
        0, 2, 0, 0, // count, reserved
        0, 0, 0, 0, 0, 0, 0, 30, //
        0, 0, 0, 0, 0, 0, 1, 0, //
    ];

    const VALUES: [u64; 2] = [30, 256];

    #[test]
    fn test_parse() {
        let p = Packet::new_checked(&BYTES[..]).unwrap();
        let r = Repr::parse(&p).unwrap();
        assert_eq!((r.run_id, r.offset, r.total), (3, 2, 4));
        assert_eq!(r.samples, SampleSlice::Values(&VALUES));
        assert_eq!(r.samples.iter().collect::<Vec<_>>(), VALUES);
    }

    #[test]
    fn test_construct() {
        let r = Repr {
            run_id: 3,
            offset: 2,
            total: 4,
            samples: SampleSlice::Values(&VALUES),
        };
        assert_eq!(r.buffer_len(), 32);
        let mut buf = [0xffu8; 32];
        r.emit(&mut Packet::new_unchecked(&mut buf[..]));
        assert_eq!(buf, BYTES);
    }

    #[test]
    fn test_impossible_len() {
        // count says 2 samples, only one present
        assert_eq!(
            Packet::new_checked(&BYTES[..31]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            Packet::new_checked(&BYTES[..15]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(capacity(15), 0);
        assert_eq!(capacity(16 + 8 * 3 + 7), 3);
    }
}
