//! The header every probe datagram starts with.
//!
//! ```text
//!  0      4        5     6       8          12         16
//!  +------+--------+-----+-------+----------+----------+---------
//!  |magic |version |kind | flags | sequence |  length  | body ...
//!  +------+--------+-----+-------+----------+----------+---------
//! ```
//! All integers are big-endian. `length` counts the whole message, header included; bytes of the
//! datagram beyond it are ignored (as IP ignores Ethernet padding). `flags` belong to the host:
//! the guest does not interpret them and copies them into its reply, so the host can tag
//! requests (warm-up, phase of a run) without keeping state.

use crate::bytes::{get_u16, get_u32, put_u16, put_u32, Field};
use crate::{Error, Result};

/// The four bytes every probe datagram starts with.
pub const MAGIC: [u8; 4] = *b"VMPB";
/// Protocol version this crate speaks. A change of any message layout bumps it.
pub const VERSION: u8 = 1;
/// Length of the header in bytes.
pub const HEADER_LEN: usize = field::BODY;

mod field {
    use crate::bytes::Field;
    pub const MAGIC: Field = 0..4;
    pub const VERSION: usize = 4;
    pub const KIND: usize = 5;
    pub const FLAGS: Field = 6..8;
    pub const SEQUENCE: Field = 8..12;
    pub const LENGTH: Field = 12..16;
    pub const BODY: usize = 16;
}

/// Message type, the header's `kind` byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    /// Host to guest: timestamped echo request.
    EchoRequest = 1,
    /// Guest to host: the echo with the guest's counter readings.
    EchoReply = 2,
    /// Host to guest: ask for the guest's counters.
    StatsRequest = 3,
    /// Guest to host: the counters.
    StatsReply = 4,
    /// Host to guest: run a micro-benchmark.
    BenchRequest = 5,
    /// Guest to host: summary of a finished micro-benchmark run.
    BenchResult = 6,
    /// Host to guest: ask for a chunk of a run's raw samples.
    SamplesRequest = 7,
    /// Guest to host: a chunk of raw samples.
    Samples = 8,
    /// Host to guest: power the VM off.
    PowerOff = 9,
    /// Guest to host: power-off accepted, sent just before the guest powers off.
    PowerOffAck = 10,
    /// Guest to host: a well-formed request the guest cannot serve.
    Error = 11,
    /// Host to guest: ask for KVM PTP readings (host realtime and guest counter).
    ClockRequest = 12,
    /// Guest to host: the readings.
    ClockReply = 13,
}

impl Kind {
    /// The kind with wire value `v`, if there is one.
    pub fn from_u8(v: u8) -> Option<Kind> {
        use Kind::*;
        Some(match v {
            1 => EchoRequest,
            2 => EchoReply,
            3 => StatsRequest,
            4 => StatsReply,
            5 => BenchRequest,
            6 => BenchResult,
            7 => SamplesRequest,
            8 => Samples,
            9 => PowerOff,
            10 => PowerOffAck,
            11 => Error,
            12 => ClockRequest,
            13 => ClockReply,
            _ => return None,
        })
    }
}

/// A read/write wrapper around a probe datagram (header and body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wrap a buffer without checking its length.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wrap a buffer and [`check_len`](Self::check_len) it.
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Ensure no accessor panics: the buffer holds a header, and `length` is at least a header
    /// and at most the buffer.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let claimed = self.length() as usize;
        if claimed < HEADER_LEN || claimed > len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Consume the packet, returning the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The magic bytes.
    pub fn magic(&self) -> [u8; 4] {
        let mut m = [0; 4];
        m.copy_from_slice(&self.buffer.as_ref()[field::MAGIC]);
        m
    }

    /// The protocol version byte.
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION]
    }

    /// The raw message kind byte (see [`Kind::from_u8`]).
    pub fn kind(&self) -> u8 {
        self.buffer.as_ref()[field::KIND]
    }

    /// The host's flags.
    pub fn flags(&self) -> u16 {
        get_u16(&self.buffer.as_ref()[field::FLAGS])
    }

    /// The sequence number (chosen by the host, copied into the reply).
    pub fn sequence(&self) -> u32 {
        get_u32(&self.buffer.as_ref()[field::SEQUENCE])
    }

    /// Length of the whole message, header included.
    pub fn length(&self) -> u32 {
        get_u32(&self.buffer.as_ref()[field::LENGTH])
    }

    /// The message body: the bytes after the header, up to `length`.
    pub fn body(&self) -> &[u8] {
        let end = self.length() as usize;
        &self.buffer.as_ref()[HEADER_LEN..end]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn set(&mut self, f: Field) -> &mut [u8] {
        &mut self.buffer.as_mut()[f]
    }

    /// Write the magic bytes.
    pub fn set_magic(&mut self) {
        self.set(field::MAGIC).copy_from_slice(&MAGIC);
    }

    /// Set the version byte.
    pub fn set_version(&mut self, v: u8) {
        self.buffer.as_mut()[field::VERSION] = v;
    }

    /// Set the kind byte.
    pub fn set_kind(&mut self, v: u8) {
        self.buffer.as_mut()[field::KIND] = v;
    }

    /// Set the flags.
    pub fn set_flags(&mut self, v: u16) {
        put_u16(self.set(field::FLAGS), v);
    }

    /// Set the sequence number.
    pub fn set_sequence(&mut self, v: u32) {
        put_u32(self.set(field::SEQUENCE), v);
    }

    /// Set the message length (header included).
    pub fn set_length(&mut self, v: u32) {
        put_u32(self.set(field::LENGTH), v);
    }

    /// The mutable message body, up to `length`.
    pub fn body_mut(&mut self) -> &mut [u8] {
        let end = self.length() as usize;
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

/// The validated header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Message type.
    pub kind: Kind,
    /// Host-owned flags, echoed by the guest.
    pub flags: u16,
    /// Sequence number, echoed by the guest.
    pub sequence: u32,
    /// Length of the body that follows the header.
    pub body_len: usize,
}

impl Repr {
    /// Parse and validate a header: magic, version and kind.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr> {
        packet.check_len()?;
        if packet.magic() != MAGIC {
            return Err(Error::BadMagic);
        }
        if packet.version() != VERSION {
            return Err(Error::BadVersion);
        }
        let kind = Kind::from_u8(packet.kind()).ok_or(Error::UnknownKind)?;
        Ok(Repr {
            kind,
            flags: packet.flags(),
            sequence: packet.sequence(),
            body_len: packet.body().len(),
        })
    }

    /// Length of the whole message this header describes.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.body_len
    }

    /// Emit the header into the first [`HEADER_LEN`] bytes of a buffer of at least
    /// [`buffer_len`](Self::buffer_len) bytes.
    ///
    /// # Panics
    /// If the buffer is shorter than [`HEADER_LEN`], or the total length exceeds `u32::MAX`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_magic();
        packet.set_version(VERSION);
        packet.set_kind(self.kind as u8);
        packet.set_flags(self.flags);
        packet.set_sequence(self.sequence);
        let len = u32::try_from(self.buffer_len()).expect("probe message longer than 4 GiB");
        packet.set_length(len);
    }
}

#[cfg(test)]
mod test {
    use super::*;

    static BYTES: [u8; 20] = [
        b'V', b'M', b'P', b'B', 1, 5, 0x80, 0x01, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x14,
        0xaa, 0xbb, 0xcc, 0xdd,
    ];

    #[test]
    fn test_parse() {
        let p = Packet::new_checked(&BYTES[..]).unwrap();
        assert_eq!(p.kind(), 5);
        assert_eq!(p.flags(), 0x8001);
        assert_eq!(p.sequence(), 0x102);
        assert_eq!(p.body(), &[0xaa, 0xbb, 0xcc, 0xdd]);
        let r = Repr::parse(&p).unwrap();
        assert_eq!(
            r,
            Repr {
                kind: Kind::BenchRequest,
                flags: 0x8001,
                sequence: 0x102,
                body_len: 4
            }
        );
    }

    #[test]
    fn test_construct() {
        let mut buf = [0u8; 20];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        let r = Repr {
            kind: Kind::BenchRequest,
            flags: 0x8001,
            sequence: 0x102,
            body_len: 4,
        };
        r.emit(&mut p);
        p.body_mut().copy_from_slice(&[0xaa, 0xbb, 0xcc, 0xdd]);
        assert_eq!(buf, BYTES);
    }

    #[test]
    fn test_trailing_bytes_ignored() {
        let mut buf = [0u8; 24];
        buf[..20].copy_from_slice(&BYTES);
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.body().len(), 4);
    }

    #[test]
    fn test_impossible_len() {
        assert_eq!(
            Packet::new_checked(&BYTES[..15]).unwrap_err(),
            Error::Truncated
        );
        // Length claims more than the buffer holds.
        assert_eq!(
            Packet::new_checked(&BYTES[..19]).unwrap_err(),
            Error::Truncated
        );
        // Length claims less than a header.
        let mut buf = BYTES;
        buf[15] = 15;
        assert_eq!(Packet::new_checked(&buf[..]).unwrap_err(), Error::Truncated);
    }

    #[test]
    fn test_rejects() {
        let mut buf = BYTES;
        buf[0] = b'X';
        assert_eq!(
            Repr::parse(&Packet::new_unchecked(&buf[..])),
            Err(Error::BadMagic)
        );
        let mut buf = BYTES;
        buf[4] = 2;
        assert_eq!(
            Repr::parse(&Packet::new_unchecked(&buf[..])),
            Err(Error::BadVersion)
        );
        let mut buf = BYTES;
        buf[5] = 0;
        assert_eq!(
            Repr::parse(&Packet::new_unchecked(&buf[..])),
            Err(Error::UnknownKind)
        );
    }
}
