//! Micro-benchmark request (host to guest).
//!
//! ```text
//!  0         2          4            8                16
//!  +---------+----------+------------+----------------+
//!  | test id | reserved | iterations | param          |
//!  +---------+----------+------------+----------------+
//! ```
//! The guest runs the test `iterations` times (capped to its sample buffer), keeps every sample,
//! and answers with a [`bench_result`](crate::bench_result); the host then fetches the raw
//! samples with [`samples_request`](crate::samples_request).

use crate::bench::BenchTest;
use crate::bytes::{accessors, body_packet};
use crate::{Error, Result};

mod field {
    use crate::bytes::Field;
    pub const TEST: Field = 0..2;
    pub const ITERATIONS: Field = 4..8;
    pub const PARAM: Field = 8..16;
}

/// Length of the body.
pub const BODY_LEN: usize = field::PARAM.end;

body_packet!("a micro-benchmark request", fixed_len);

accessors! {
    /// Raw test id (see [`BenchTest::from_id`]).
    test / set_test: u16 = TEST;
    /// Iterations requested.
    iterations / set_iterations: u32 = ITERATIONS;
    /// Test-specific parameter (see [`BenchTest`]).
    param / set_param: u64 = PARAM;
}

/// A validated micro-benchmark request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// The test to run.
    pub test: BenchTest,
    /// Iterations requested.
    pub iterations: u32,
    /// Test-specific parameter.
    pub param: u64,
}

impl Repr {
    /// Parse a request body; an unknown test id is [`Error::BadValue`].
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr> {
        packet.check_len()?;
        Ok(Repr {
            test: BenchTest::from_id(packet.test()).ok_or(Error::BadValue)?,
            iterations: packet.iterations(),
            param: packet.param(),
        })
    }

    /// Length of the body.
    pub const fn buffer_len(&self) -> usize {
        BODY_LEN
    }

    /// Emit into a body buffer of at least [`BODY_LEN`] bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.buffer.as_mut()[field::TEST.end..field::ITERATIONS.start].fill(0);
        packet.set_test(self.test.id());
        packet.set_iterations(self.iterations);
        packet.set_param(self.param);
    }
}

#[cfg(test)]
mod test {
    use super::*;

    static BYTES: [u8; 16] = [0, 6, 0, 0, 0, 0, 0x03, 0xe8, 0, 0, 0, 0, 0, 0, 0x27, 0x10];

    fn repr() -> Repr {
        Repr {
            test: BenchTest::VtimerLatency,
            iterations: 1000,
            param: 10_000,
        }
    }

    #[test]
    fn test_parse() {
        let p = Packet::new_checked(&BYTES[..]).unwrap();
        assert_eq!(Repr::parse(&p).unwrap(), repr());
    }

    #[test]
    fn test_construct() {
        let mut buf = [0xffu8; 16];
        repr().emit(&mut Packet::new_unchecked(&mut buf[..]));
        assert_eq!(buf, BYTES);
    }

    #[test]
    fn test_unknown_test() {
        let mut buf = BYTES;
        buf[1] = 0;
        assert_eq!(
            Repr::parse(&Packet::new_unchecked(&buf[..])),
            Err(Error::BadValue)
        );
    }

    #[test]
    fn test_impossible_len() {
        assert_eq!(
            Packet::new_checked(&BYTES[..15]).unwrap_err(),
            Error::Truncated
        );
    }
}
