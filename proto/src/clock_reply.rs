//! Clock reply (guest to host): readings of KVM's PTP service.
//!
//! ```text
//!  0         1       2          4
//!  +---------+-------+----------+------------------------------------------------------
//!  | counter | count | reserved | count x (u64 realtime ns, u64 counter ticks)
//!  +---------+-------+----------+------------------------------------------------------
//! ```
//! Each reading is the host's CLOCK_REALTIME (nanoseconds since the epoch) and the guest's
//! `counter`, taken at one instant by the hypervisor. Where the service is absent the guest
//! answers an `Error` with code `ClockAbsent` and an [`Absence`] code as its detail.

use crate::bytes::{accessors, body_packet, get_u64, put_u64};
use crate::guest::CounterKind;
use crate::{Error, Result};

mod field {
    use crate::bytes::Field;
    pub const COUNTER: Field = 0..1;
    pub const COUNT: Field = 1..2;
    pub const RESERVED: Field = 2..4;
    pub const READINGS: usize = 4;
}

/// Length of the fixed part of the body.
pub const FIXED_LEN: usize = field::READINGS;
/// Bytes per reading.
pub const READING_LEN: usize = 16;
/// Most readings in one reply.
pub const MAX_READINGS: usize = 8;

/// One reading: host realtime and guest counter at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Reading {
    /// Host CLOCK_REALTIME, nanoseconds since the epoch.
    pub realtime_ns: u64,
    /// The guest counter, in its ticks.
    pub counter: u64,
}

/// Why the guest cannot take readings (the `detail` of its `ClockAbsent` error).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Absence {
    /// No PSCI conduit in the device tree, so no SMCCC calls.
    NoConduit = 1,
    /// The guest owns EL2: there is no hypervisor below it.
    OwnsEl2 = 2,
    /// PSCI does not list `SMCCC_VERSION` (SMCCC 1.0; QEMU under TCG).
    NoSmcccVersion = 3,
    /// SMCCC older than 1.1.
    OldSmccc = 4,
    /// The vendor hypervisor service is not KVM's.
    NotKvm = 5,
    /// KVM without the PTP service.
    NoPtp = 6,
    /// The service was found but refused a reading.
    Refused = 7,
}

impl Absence {
    /// The absence with wire value `v`, if there is one.
    pub fn from_u32(v: u32) -> Option<Absence> {
        use Absence::*;
        [
            NoConduit,
            OwnsEl2,
            NoSmcccVersion,
            OldSmccc,
            NotKvm,
            NoPtp,
            Refused,
        ]
        .into_iter()
        .find(|a| *a as u32 == v)
    }
}

impl core::fmt::Display for Absence {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Absence::NoConduit => "no PSCI conduit",
            Absence::OwnsEl2 => "the probe owns EL2: no hypervisor",
            Absence::NoSmcccVersion => "PSCI has no SMCCC_VERSION (SMCCC 1.0)",
            Absence::OldSmccc => "SMCCC older than 1.1",
            Absence::NotKvm => "the hypervisor is not KVM",
            Absence::NoPtp => "KVM offers no PTP service",
            Absence::Refused => "KVM refused a PTP reading",
        })
    }
}

body_packet!("a clock reply");

impl<T: AsRef<[u8]>> Packet<T> {
    /// Ensure the fixed part and the `count` readings it announces are present.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < FIXED_LEN || len < FIXED_LEN + self.count() as usize * READING_LEN {
            return Err(Error::Truncated);
        }
        Ok(())
    }
}

accessors! {
    /// Raw counter kind (see [`CounterKind::from_u8`]).
    counter / set_counter: u8 = COUNTER;
    /// Readings in this reply.
    count / set_count: u8 = COUNT;
}

/// A validated clock reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// The guest counter the readings pair with the host's realtime.
    pub counter: CounterKind,
    /// How many of `readings` are valid.
    pub count: u8,
    /// The readings, in the order taken (the first `count`).
    pub readings: [Reading; MAX_READINGS],
}

impl Repr {
    /// The valid readings.
    pub fn readings(&self) -> &[Reading] {
        &self.readings[..usize::from(self.count).min(MAX_READINGS)]
    }

    /// Parse a reply body.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr> {
        packet.check_len()?;
        let count = packet.count();
        if usize::from(count) > MAX_READINGS {
            return Err(Error::BadValue);
        }
        let mut readings = [Reading::default(); MAX_READINGS];
        let bytes = &packet.buffer.as_ref()[FIXED_LEN..];
        for (r, b) in readings
            .iter_mut()
            .zip(bytes.chunks_exact(READING_LEN))
            .take(count.into())
        {
            *r = Reading {
                realtime_ns: get_u64(&b[..8]),
                counter: get_u64(&b[8..]),
            };
        }
        Ok(Repr {
            counter: CounterKind::from_u8(packet.counter()).ok_or(Error::BadValue)?,
            count,
            readings,
        })
    }

    /// Length of the body.
    pub fn buffer_len(&self) -> usize {
        FIXED_LEN + self.readings().len() * READING_LEN
    }

    /// Emit into a body buffer of at least [`buffer_len`](Self::buffer_len) bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        let readings = self.readings();
        packet.buffer.as_mut()[field::RESERVED].fill(0);
        packet.set_counter(self.counter as u8);
        packet.set_count(readings.len() as u8);
        let out = &mut packet.buffer.as_mut()[FIXED_LEN..];
        for (slot, r) in out.chunks_exact_mut(READING_LEN).zip(readings) {
            put_u64(&mut slot[..8], r.realtime_ns);
            put_u64(&mut slot[8..], r.counter);
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    static BYTES: [u8; 36] = [
        0, 2, 0, 0, // virtual counter, two readings
        0, 0, 0, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0, 0, 0, 20, //
        0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, //
    ];

    fn repr() -> Repr {
        let mut readings = [Reading::default(); MAX_READINGS];
        readings[0] = Reading {
            realtime_ns: 10,
            counter: 20,
        };
        readings[1] = Reading {
            realtime_ns: 256,
            counter: 512,
        };
        Repr {
            counter: CounterKind::Virtual,
            count: 2,
            readings,
        }
    }

    #[test]
    fn test_parse_and_construct() {
        let r = Repr::parse(&Packet::new_checked(&BYTES[..]).unwrap()).unwrap();
        assert_eq!(r, repr());
        assert_eq!(r.readings().len(), 2);
        assert_eq!(repr().buffer_len(), 36);
        let mut buf = [0xffu8; 36];
        repr().emit(&mut Packet::new_unchecked(&mut buf[..]));
        assert_eq!(buf, BYTES);
    }

    #[test]
    fn test_bad_values_and_truncation() {
        assert_eq!(
            Packet::new_checked(&BYTES[..35]).unwrap_err(),
            Error::Truncated
        );
        let mut too_many = [0u8; FIXED_LEN + 9 * READING_LEN];
        too_many[1] = 9;
        assert_eq!(
            Repr::parse(&Packet::new_unchecked(&too_many[..])),
            Err(Error::BadValue)
        );
        let mut bad_counter = BYTES;
        bad_counter[0] = 7;
        assert_eq!(
            Repr::parse(&Packet::new_unchecked(&bad_counter[..])),
            Err(Error::BadValue)
        );
    }

    #[test]
    fn absence_codes_round_trip() {
        for v in 1..=7 {
            assert_eq!(Absence::from_u32(v).map(|a| a as u32), Some(v));
        }
        assert_eq!(Absence::from_u32(0), None);
        assert_eq!(Absence::from_u32(8), None);
    }
}
