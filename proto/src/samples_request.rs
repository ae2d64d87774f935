//! Raw samples request (host to guest): a chunk of a finished run's samples.
//!
//! ```text
//!  0        4        8       10         12
//!  +--------+--------+-------+----------+
//!  | run id | offset | count | reserved |
//!  +--------+--------+-------+----------+
//! ```
//! The host pulls chunks one request at a time, so a lost datagram costs one retry and never a
//! gap: the guest keeps the samples until the next run starts.

use crate::bytes::{accessors, body_packet};
use crate::Result;

mod field {
    use crate::bytes::Field;
    pub const RUN_ID: Field = 0..4;
    pub const OFFSET: Field = 4..8;
    pub const COUNT: Field = 8..10;
    pub const RESERVED: Field = 10..12;
}

/// Length of the body.
pub const BODY_LEN: usize = field::RESERVED.end;

body_packet!("a raw samples request", fixed_len);

accessors! {
    /// The run whose samples are wanted.
    run_id / set_run_id: u32 = RUN_ID;
    /// Index of the first sample wanted.
    offset / set_offset: u32 = OFFSET;
    /// Most samples wanted (the guest may send fewer to fit its reply).
    count / set_count: u16 = COUNT;
}

/// A validated samples request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// The run whose samples are wanted.
    pub run_id: u32,
    /// Index of the first sample wanted.
    pub offset: u32,
    /// Most samples wanted.
    pub count: u16,
}

impl Repr {
    /// Parse a request body.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr> {
        packet.check_len()?;
        Ok(Repr {
            run_id: packet.run_id(),
            offset: packet.offset(),
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
        packet.set_run_id(self.run_id);
        packet.set_offset(self.offset);
        packet.set_count(self.count);
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::Error;

    static BYTES: [u8; 12] = [0, 0, 0, 3, 0, 0, 1, 0, 0, 100, 0, 0];

    #[test]
    fn test_parse_and_construct() {
        let r = Repr {
            run_id: 3,
            offset: 256,
            count: 100,
        };
        assert_eq!(
            Repr::parse(&Packet::new_checked(&BYTES[..]).unwrap()).unwrap(),
            r
        );
        let mut buf = [0xffu8; 12];
        r.emit(&mut Packet::new_unchecked(&mut buf[..]));
        assert_eq!(buf, BYTES);
    }

    #[test]
    fn test_impossible_len() {
        assert_eq!(
            Packet::new_checked(&BYTES[..11]).unwrap_err(),
            Error::Truncated
        );
    }
}
