//! Error reply (guest to host): a well-formed request the guest cannot serve.
//!
//! ```text
//!  0      2              3          4        8
//!  +------+--------------+----------+--------+
//!  | code | request kind | reserved | detail |
//!  +------+--------------+----------+--------+
//! ```
//! Malformed or unknown datagrams get no reply at all (they are counted in the guest's stats);
//! this message is for requests the guest understood and refuses, so the host can report why
//! instead of timing out.

use crate::bytes::{accessors, body_packet};
use crate::header::Kind;
use crate::{Error, Result};

mod field {
    use crate::bytes::Field;
    pub const CODE: Field = 0..2;
    pub const REQUEST_KIND: Field = 2..3;
    pub const RESERVED: Field = 3..4;
    pub const DETAIL: Field = 4..8;
}

/// Length of the body.
pub const BODY_LEN: usize = field::DETAIL.end;

/// Why the guest refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum Code {
    /// This guest cannot run the micro-benchmark (`detail`: test id), e.g. no second vCPU.
    UnsupportedTest = 1,
    /// The micro-benchmark started but failed (`detail`: test id).
    BenchFailed = 2,
    /// The samples asked for belong to a run the guest no longer holds (`detail`: run id).
    NoSuchRun = 3,
    /// KVM's PTP service cannot be used (`detail`: the
    /// [`Absence`](crate::clock_reply::Absence) code).
    ClockAbsent = 4,
}

impl Code {
    /// The code with wire value `v`, if there is one.
    pub fn from_u16(v: u16) -> Option<Code> {
        match v {
            1 => Some(Code::UnsupportedTest),
            2 => Some(Code::BenchFailed),
            3 => Some(Code::NoSuchRun),
            4 => Some(Code::ClockAbsent),
            _ => None,
        }
    }
}

impl core::fmt::Display for Code {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Code::UnsupportedTest => "micro-benchmark not supported by this guest",
            Code::BenchFailed => "micro-benchmark failed in the guest",
            Code::NoSuchRun => "the guest no longer holds that run's samples",
            Code::ClockAbsent => "the guest has no KVM PTP service",
        })
    }
}

body_packet!("an error reply", fixed_len);

accessors! {
    /// Raw error code (see [`Code::from_u16`]).
    code / set_code: u16 = CODE;
    /// Raw kind of the refused request.
    request_kind / set_request_kind: u8 = REQUEST_KIND;
    /// Code-specific detail.
    detail / set_detail: u32 = DETAIL;
}

/// A validated error reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Why.
    pub code: Code,
    /// Kind of the refused request.
    pub request_kind: Kind,
    /// Code-specific detail (see [`Code`]).
    pub detail: u32,
}

impl Repr {
    /// Parse an error reply body.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr> {
        packet.check_len()?;
        Ok(Repr {
            code: Code::from_u16(packet.code()).ok_or(Error::BadValue)?,
            request_kind: Kind::from_u8(packet.request_kind()).ok_or(Error::BadValue)?,
            detail: packet.detail(),
        })
    }

    /// Length of the body.
    pub const fn buffer_len(&self) -> usize {
        BODY_LEN
    }

    /// Emit into a body buffer of at least [`BODY_LEN`] bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.buffer.as_mut()[field::RESERVED].fill(0);
        packet.set_code(self.code as u16);
        packet.set_request_kind(self.request_kind as u8);
        packet.set_detail(self.detail);
    }
}

#[cfg(test)]
mod test {
    use super::*;

    static BYTES: [u8; 8] = [0, 1, 5, 0, 0, 0, 0, 8];

    #[test]
    fn test_parse_and_construct() {
        let r = Repr {
            code: Code::UnsupportedTest,
            request_kind: Kind::BenchRequest,
            detail: 8,
        };
        assert_eq!(
            Repr::parse(&Packet::new_checked(&BYTES[..]).unwrap()).unwrap(),
            r
        );
        let mut buf = [0xffu8; 8];
        r.emit(&mut Packet::new_unchecked(&mut buf[..]));
        assert_eq!(buf, BYTES);
    }

    #[test]
    fn test_bad_values() {
        let mut buf = BYTES;
        buf[1] = 0;
        assert_eq!(
            Repr::parse(&Packet::new_unchecked(&buf[..])),
            Err(Error::BadValue)
        );
        let mut buf = BYTES;
        buf[2] = 0;
        assert_eq!(
            Repr::parse(&Packet::new_unchecked(&buf[..])),
            Err(Error::BadValue)
        );
    }

    #[test]
    fn test_impossible_len() {
        assert_eq!(
            Packet::new_checked(&BYTES[..7]).unwrap_err(),
            Error::Truncated
        );
    }
}
