//! Clock request (host to guest): readings of KVM's PTP service, each the host's
//! CLOCK_REALTIME and the guest's `counter` taken at one instant by the hypervisor.
//!
//! ```text
//!  0         1       2          4
//!  +---------+-------+----------+
//!  | counter | count | reserved |
//!  +---------+-------+----------+
//! ```
//! The guest answers with a [`clock_reply`](crate::clock_reply) of at most `count` readings
//! (and at most [`MAX_READINGS`](crate::clock_reply::MAX_READINGS)), or an `Error` with code
//! `ClockAbsent` whose detail is the [`Absence`](crate::clock_reply::Absence) code.

use crate::bytes::{accessors, body_packet};
use crate::guest::CounterKind;
use crate::{Error, Result};

mod field {
    use crate::bytes::Field;
    pub const COUNTER: Field = 0..1;
    pub const COUNT: Field = 1..2;
    pub const RESERVED: Field = 2..4;
}

/// Length of the body.
pub const BODY_LEN: usize = field::RESERVED.end;

body_packet!("a clock request", fixed_len);

accessors! {
    /// Raw counter kind (see [`CounterKind::from_u8`]).
    counter / set_counter: u8 = COUNTER;
    /// Readings wanted.
    count / set_count: u8 = COUNT;
}

/// A validated clock request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// The guest counter to pair with the host's realtime.
    pub counter: CounterKind,
    /// Readings wanted.
    pub count: u8,
}

impl Repr {
    /// Parse a request body.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr> {
        packet.check_len()?;
        Ok(Repr {
            counter: CounterKind::from_u8(packet.counter()).ok_or(Error::BadValue)?,
            count: packet.count(),
        })
    }

    /// Length of the body.
    pub const fn buffer_len(&self) -> usize {
        BODY_LEN
    }

    /// Emit into a body buffer of at least [`BODY_LEN`] bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.buffer.as_mut()[field::RESERVED].fill(0);
        packet.set_counter(self.counter as u8);
        packet.set_count(self.count);
    }
}

#[cfg(test)]
mod test {
    use super::*;

    static BYTES: [u8; 4] = [1, 8, 0, 0];

    #[test]
    fn test_parse_and_construct() {
        let r = Repr {
            counter: CounterKind::Physical,
            count: 8,
        };
        assert_eq!(
            Repr::parse(&Packet::new_checked(&BYTES[..]).unwrap()).unwrap(),
            r
        );
        let mut buf = [0xffu8; 4];
        r.emit(&mut Packet::new_unchecked(&mut buf[..]));
        assert_eq!(buf, BYTES);
    }

    #[test]
    fn test_bad_counter_and_truncation() {
        assert_eq!(
            Repr::parse(&Packet::new_unchecked(&[2u8, 8, 0, 0][..])),
            Err(Error::BadValue)
        );
        assert_eq!(
            Packet::new_checked(&BYTES[..3]).unwrap_err(),
            Error::Truncated
        );
    }
}
