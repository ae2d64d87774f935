//! Timestamped echo request (host to guest).
//!
//! ```text
//!  0             8          10       12         16            24          32
//!  +-------------+----------+--------+----------+-------------+-----------+---------
//!  | host send   | reply    | stamps | reserved | irq entry   | rx seen   | padding
//!  | time (ns)   | length   |        |          | (guest)     | (guest)   | ...
//!  +-------------+----------+--------+----------+-------------+-----------+---------
//! ```
//! The host fills the first two fields and sends zeros in the rest. The guest's device layer
//! writes its counter readings into `irq entry` and `rx seen` (and their bits into `stamps`)
//! the moment the driver takes the frame, before the network stack sees it: so the readings
//! travel with the packet they belong to however many frames the stack queues. Padding makes
//! the request as large as the host wants; its contents are ignored.

use crate::bytes::{accessors, body_packet};
use crate::{Error, Result};

mod field {
    use crate::bytes::Field;
    pub const HOST_SEND: Field = 0..8;
    pub const REPLY_LEN: Field = 8..10;
    pub const STAMPS: Field = 10..12;
    pub const IRQ_ENTRY: Field = 16..24;
    pub const RX_SEEN: Field = 24..32;
    pub const PADDING: usize = 32;
}

/// Length of the fixed part of the body.
pub const FIXED_LEN: usize = field::PADDING;
/// `stamps` bit: `rx seen` holds a reading.
pub const STAMP_RX_SEEN: u16 = 1 << 0;
/// `stamps` bit: `irq entry` holds a reading (the frame arrived by interrupt).
pub const STAMP_IRQ_ENTRY: u16 = 1 << 1;
/// Byte range of the body the guest's device layer rewrites on arrival (stamps to rx seen).
pub const STAMPED_RANGE: core::ops::Range<usize> = field::STAMPS.start..field::RX_SEEN.end;

body_packet!("an echo request");

impl<T: AsRef<[u8]>> Packet<T> {
    /// Ensure the fixed part is present.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < FIXED_LEN {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Number of padding bytes after the fixed part.
    pub fn padding_len(&self) -> usize {
        self.buffer.as_ref().len() - FIXED_LEN
    }
}

accessors! {
    /// Host send time in ns on the host clock the host chose; opaque to the guest.
    host_send_ns / set_host_send_ns: u64 = HOST_SEND;
    /// Requested length of the whole reply datagram (0: as short as possible).
    reply_len / set_reply_len: u16 = REPLY_LEN;
    /// Which guest readings are present (`STAMP_*` bits).
    stamps / set_stamps: u16 = STAMPS;
    /// Guest counter at the device interrupt's entry.
    irq_entry / set_irq_entry: u64 = IRQ_ENTRY;
    /// Guest counter when the driver saw the received buffer.
    rx_seen / set_rx_seen: u64 = RX_SEEN;
}

/// Guest counter readings taken when the request arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RxStamps {
    /// Counter at interrupt entry; `None` when the frame was found by polling.
    pub irq_entry: Option<u64>,
    /// Counter when the driver took the frame off the receive queue.
    pub rx_seen: Option<u64>,
}

impl RxStamps {
    /// Write the readings and their `stamps` bits into a request.
    pub fn write<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        let mut bits = 0;
        if self.irq_entry.is_some() {
            bits |= STAMP_IRQ_ENTRY;
        }
        packet.set_irq_entry(self.irq_entry.unwrap_or(0));
        if self.rx_seen.is_some() {
            bits |= STAMP_RX_SEEN;
        }
        packet.set_rx_seen(self.rx_seen.unwrap_or(0));
        packet.set_stamps(bits);
    }

    fn read<T: AsRef<[u8]>>(packet: &Packet<T>) -> RxStamps {
        let bits = packet.stamps();
        RxStamps {
            irq_entry: (bits & STAMP_IRQ_ENTRY != 0).then(|| packet.irq_entry()),
            rx_seen: (bits & STAMP_RX_SEEN != 0).then(|| packet.rx_seen()),
        }
    }
}

/// A validated echo request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Host send time (ns), echoed back untouched.
    pub host_send_ns: u64,
    /// Requested length of the whole reply datagram, header included (0: minimal).
    pub reply_len: u16,
    /// Guest readings stamped on arrival (none when the host emits it).
    pub rx: RxStamps,
    /// Padding bytes after the fixed part.
    pub padding: usize,
}

impl Repr {
    /// A request whose whole datagram is `datagram_len` bytes long (or as short as possible,
    /// [`HEADER_LEN`](crate::HEADER_LEN) + [`FIXED_LEN`], if that is less), asking for a reply
    /// of `reply_len` bytes.
    pub const fn sized(host_send_ns: u64, datagram_len: usize, reply_len: u16) -> Repr {
        Repr {
            host_send_ns,
            reply_len,
            rx: RxStamps {
                irq_entry: None,
                rx_seen: None,
            },
            padding: datagram_len.saturating_sub(crate::HEADER_LEN + FIXED_LEN),
        }
    }

    /// Parse an echo request body.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr> {
        packet.check_len()?;
        Ok(Repr {
            host_send_ns: packet.host_send_ns(),
            reply_len: packet.reply_len(),
            rx: RxStamps::read(packet),
            padding: packet.padding_len(),
        })
    }

    /// Length of the body this request emits.
    pub const fn buffer_len(&self) -> usize {
        FIXED_LEN + self.padding
    }

    /// Emit into a body buffer of exactly [`buffer_len`](Self::buffer_len) bytes; padding is
    /// zeroed.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        let b = packet.buffer.as_mut();
        b[field::STAMPS.end..FIXED_LEN].fill(0);
        b[FIXED_LEN..].fill(0);
        packet.set_host_send_ns(self.host_send_ns);
        packet.set_reply_len(self.reply_len);
        self.rx.write(packet);
    }
}

#[cfg(test)]
mod test {
    use super::*;

    static BYTES: [u8; 36] = [
        0, 0, 0, 0, 0, 0, 0x12, 0x34, // host send
        0x01, 0x00, // reply len 256
        0x00, 0x01, // stamps: rx seen
        0, 0, 0, 0, // reserved
        0, 0, 0, 0, 0, 0, 0, 0, // irq entry (absent)
        0, 0, 0, 0, 0, 0, 0x56, 0x78, // rx seen
        0, 0, 0, 0, // padding
    ];

    fn repr() -> Repr {
        Repr {
            host_send_ns: 0x1234,
            reply_len: 256,
            rx: RxStamps {
                irq_entry: None,
                rx_seen: Some(0x5678),
            },
            padding: 4,
        }
    }

    #[test]
    fn test_parse() {
        let p = Packet::new_checked(&BYTES[..]).unwrap();
        assert_eq!(p.host_send_ns(), 0x1234);
        assert_eq!(Repr::parse(&p).unwrap(), repr());
    }

    #[test]
    fn test_construct() {
        let mut buf = [0xffu8; 36];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        repr().emit(&mut p);
        assert_eq!(buf, BYTES);
    }

    #[test]
    fn test_stamp_in_place() {
        let mut buf = BYTES;
        let mut p = Packet::new_unchecked(&mut buf[..]);
        RxStamps {
            irq_entry: Some(7),
            rx_seen: Some(9),
        }
        .write(&mut p);
        let r = Repr::parse(&p).unwrap();
        assert_eq!(
            r.rx,
            RxStamps {
                irq_entry: Some(7),
                rx_seen: Some(9)
            }
        );
        assert_eq!(r.host_send_ns, 0x1234);
    }

    #[test]
    fn test_sized() {
        assert_eq!(
            Repr::sized(1, 100, 200).buffer_len() + crate::HEADER_LEN,
            100
        );
        assert_eq!(Repr::sized(1, 3, 0).padding, 0);
    }

    #[test]
    fn test_impossible_len() {
        assert_eq!(
            Packet::new_checked(&BYTES[..31]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(Packet::new_checked(&BYTES[..32]).unwrap().padding_len(), 0);
    }
}
