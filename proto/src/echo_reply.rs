//! Timestamped echo reply (guest to host).
//!
//! ```text
//!  0            8         10      12       16      17    18        24
//!  +------------+---------+-------+--------+-------+-----+---------+
//!  | host send  | request | stamps| CNTFRQ |counter| mode| reserved|
//!  | time (ns)  | length  |       | (Hz)   | kind  |     |         |
//!  +------------+---------+-------+--------+-------+-----+---------+
//!  24           32        40          48          56                64
//!  +------------+---------+-----------+-----------+-----------------+---------
//!  | irq entry  | rx seen | handled   | tx notify | previous notify | padding
//!  | (ticks)    | (ticks) | (ticks)   | (ticks)   | duration (ticks)| ...
//!  +------------+---------+-----------+-----------+-----------------+---------
//! ```
//! Readings are guest generic-counter ticks (`CNTFRQ` per second). `handled` is when the probe
//! handler built the reply. `tx notify` and `previous notify` are written by the guest's device
//! layer into the finished frame just before it notifies the device: the guest cannot time the
//! notify of the frame it is still sending, so it carries the duration of the previous one (the
//! `QueueNotify` write, i.e. the exit to QEMU or vhost).

use crate::bytes::{accessors, body_packet};
use crate::guest::{CounterKind, GuestMode};
use crate::{Error, Result};

mod field {
    use crate::bytes::Field;
    pub const HOST_SEND: Field = 0..8;
    pub const REQUEST_LEN: Field = 8..10;
    pub const STAMPS: Field = 10..12;
    pub const CNTFRQ: Field = 12..16;
    pub const COUNTER: Field = 16..17;
    pub const MODE: Field = 17..18;
    pub const IRQ_ENTRY: Field = 24..32;
    pub const RX_SEEN: Field = 32..40;
    pub const HANDLED: Field = 40..48;
    pub const TX_NOTIFY: Field = 48..56;
    pub const PREV_NOTIFY: Field = 56..64;
    pub const PADDING: usize = 64;
}

/// Length of the fixed part of the body.
pub const FIXED_LEN: usize = field::PADDING;
/// `stamps` bit: `irq entry` holds a reading.
pub const STAMP_IRQ_ENTRY: u16 = 1 << 0;
/// `stamps` bit: `rx seen` holds a reading.
pub const STAMP_RX_SEEN: u16 = 1 << 1;
/// `stamps` bit: `tx notify` holds a reading.
pub const STAMP_TX_NOTIFY: u16 = 1 << 2;
/// `stamps` bit: `previous notify` holds a duration.
pub const STAMP_PREV_NOTIFY: u16 = 1 << 3;

body_packet!("an echo reply");

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
    /// Host send time of the request, echoed.
    host_send_ns / set_host_send_ns: u64 = HOST_SEND;
    /// Length of the request datagram as the guest received it.
    request_len / set_request_len: u16 = REQUEST_LEN;
    /// Which readings are present (`STAMP_*` bits).
    stamps / set_stamps: u16 = STAMPS;
    /// Counter frequency, `CNTFRQ_EL0`, in Hz.
    cntfrq_hz / set_cntfrq_hz: u32 = CNTFRQ;
    /// Raw counter kind byte (see [`CounterKind::from_u8`]).
    counter / set_counter: u8 = COUNTER;
    /// Raw guest mode byte (see [`GuestMode::from_u8`]).
    mode / set_mode: u8 = MODE;
    /// Counter at the device interrupt's entry.
    irq_entry / set_irq_entry: u64 = IRQ_ENTRY;
    /// Counter when the driver saw the request's buffer.
    rx_seen / set_rx_seen: u64 = RX_SEEN;
    /// Counter when the probe handler built this reply.
    handled / set_handled: u64 = HANDLED;
    /// Counter just before the TX notify of this reply.
    tx_notify / set_tx_notify: u64 = TX_NOTIFY;
    /// Duration of the previous TX notify, in ticks.
    prev_notify_ticks / set_prev_notify_ticks: u64 = PREV_NOTIFY;
}

/// Readings the device layer writes into the finished reply frame just before notifying.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TxStamps {
    /// Counter just before the TX notify of this reply.
    pub tx_notify: Option<u64>,
    /// Duration of the previous TX notify (ticks); `None` before the first one.
    pub prev_notify_ticks: Option<u64>,
}

/// Byte range of the body that [`TxStamps::write`] may change.
pub const TX_STAMPED_RANGE: core::ops::Range<usize> = field::STAMPS.start..field::PREV_NOTIFY.end;

impl TxStamps {
    /// Write the readings and set (or clear) their `stamps` bits, keeping the others.
    pub fn write<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        let mut bits = packet.stamps() & !(STAMP_TX_NOTIFY | STAMP_PREV_NOTIFY);
        if self.tx_notify.is_some() {
            bits |= STAMP_TX_NOTIFY;
        }
        if self.prev_notify_ticks.is_some() {
            bits |= STAMP_PREV_NOTIFY;
        }
        packet.set_tx_notify(self.tx_notify.unwrap_or(0));
        packet.set_prev_notify_ticks(self.prev_notify_ticks.unwrap_or(0));
        packet.set_stamps(bits);
    }
}

/// A validated echo reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Host send time of the request, echoed.
    pub host_send_ns: u64,
    /// Length of the request datagram as received.
    pub request_len: u16,
    /// Counter frequency in Hz.
    pub cntfrq_hz: u32,
    /// Which counter the readings come from.
    pub counter: CounterKind,
    /// The guest's wait mode.
    pub mode: GuestMode,
    /// Counter at interrupt entry (`None` when the request was found by polling).
    pub irq_entry: Option<u64>,
    /// Counter when the driver saw the request's buffer.
    pub rx_seen: Option<u64>,
    /// Counter when the handler built the reply.
    pub handled: u64,
    /// Device-layer readings; `TxStamps::default()` as the handler emits it.
    pub tx: TxStamps,
    /// Padding bytes after the fixed part.
    pub padding: usize,
}

impl Repr {
    /// Parse an echo reply body.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr> {
        packet.check_len()?;
        let bits = packet.stamps();
        let opt = |bit: u16, v: u64| (bits & bit != 0).then_some(v);
        Ok(Repr {
            host_send_ns: packet.host_send_ns(),
            request_len: packet.request_len(),
            cntfrq_hz: packet.cntfrq_hz(),
            counter: CounterKind::from_u8(packet.counter()).ok_or(Error::BadValue)?,
            mode: GuestMode::from_u8(packet.mode()).ok_or(Error::BadValue)?,
            irq_entry: opt(STAMP_IRQ_ENTRY, packet.irq_entry()),
            rx_seen: opt(STAMP_RX_SEEN, packet.rx_seen()),
            handled: packet.handled(),
            tx: TxStamps {
                tx_notify: opt(STAMP_TX_NOTIFY, packet.tx_notify()),
                prev_notify_ticks: opt(STAMP_PREV_NOTIFY, packet.prev_notify_ticks()),
            },
            padding: packet.padding_len(),
        })
    }

    /// Length of the body this reply emits.
    pub const fn buffer_len(&self) -> usize {
        FIXED_LEN + self.padding
    }

    /// Emit into a body buffer of exactly [`buffer_len`](Self::buffer_len) bytes; reserved
    /// bytes and padding are zeroed.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        let b = packet.buffer.as_mut();
        b[field::MODE.end..field::IRQ_ENTRY.start].fill(0);
        b[FIXED_LEN..].fill(0);
        packet.set_host_send_ns(self.host_send_ns);
        packet.set_request_len(self.request_len);
        packet.set_cntfrq_hz(self.cntfrq_hz);
        packet.set_counter(self.counter as u8);
        packet.set_mode(self.mode as u8);
        let mut bits = 0;
        if self.irq_entry.is_some() {
            bits |= STAMP_IRQ_ENTRY;
        }
        if self.rx_seen.is_some() {
            bits |= STAMP_RX_SEEN;
        }
        packet.set_stamps(bits);
        packet.set_irq_entry(self.irq_entry.unwrap_or(0));
        packet.set_rx_seen(self.rx_seen.unwrap_or(0));
        packet.set_handled(self.handled);
        self.tx.write(packet);
    }
}

#[cfg(test)]
mod test {
    use super::*;

    static BYTES: [u8; 66] = [
        0, 0, 0, 0, 0, 0, 0x12, 0x34, // host send
        0x00, 0x30, // request len 48
        0x00, 0x0e, // stamps: rx seen, tx notify, prev notify
        0x03, 0xb9, 0xac, 0xa0, // CNTFRQ 62.5 MHz
        0x00, 0x01, // virtual counter, poll mode
        0, 0, 0, 0, 0, 0, // reserved
        0, 0, 0, 0, 0, 0, 0, 0, // irq entry (absent)
        0, 0, 0, 0, 0, 0, 0x10, 0x00, // rx seen
        0, 0, 0, 0, 0, 0, 0x10, 0x05, // handled
        0, 0, 0, 0, 0, 0, 0x10, 0x09, // tx notify
        0, 0, 0, 0, 0, 0, 0x00, 0x40, // previous notify
        0, 0, // padding
    ];

    fn repr() -> Repr {
        Repr {
            host_send_ns: 0x1234,
            request_len: 48,
            cntfrq_hz: 62_500_000,
            counter: CounterKind::Virtual,
            mode: GuestMode::Poll,
            irq_entry: None,
            rx_seen: Some(0x1000),
            handled: 0x1005,
            tx: TxStamps {
                tx_notify: Some(0x1009),
                prev_notify_ticks: Some(0x40),
            },
            padding: 2,
        }
    }

    #[test]
    fn test_parse() {
        let p = Packet::new_checked(&BYTES[..]).unwrap();
        assert_eq!(p.cntfrq_hz(), 62_500_000);
        assert_eq!(Repr::parse(&p).unwrap(), repr());
    }

    #[test]
    fn test_construct() {
        let mut buf = [0xffu8; 66];
        repr().emit(&mut Packet::new_unchecked(&mut buf[..]));
        assert_eq!(buf, BYTES);
    }

    #[test]
    fn test_tx_stamp_keeps_rx_bits() {
        let mut buf = BYTES;
        let mut p = Packet::new_unchecked(&mut buf[..]);
        TxStamps {
            tx_notify: Some(5),
            prev_notify_ticks: None,
        }
        .write(&mut p);
        let r = Repr::parse(&p).unwrap();
        assert_eq!(r.rx_seen, Some(0x1000));
        assert_eq!(
            r.tx,
            TxStamps {
                tx_notify: Some(5),
                prev_notify_ticks: None
            }
        );
    }

    #[test]
    fn test_bad_values() {
        let mut buf = BYTES;
        buf[16] = 2;
        assert_eq!(
            Repr::parse(&Packet::new_unchecked(&buf[..])),
            Err(Error::BadValue)
        );
        let mut buf = BYTES;
        buf[17] = 9;
        assert_eq!(
            Repr::parse(&Packet::new_unchecked(&buf[..])),
            Err(Error::BadValue)
        );
    }

    #[test]
    fn test_impossible_len() {
        assert_eq!(
            Packet::new_checked(&BYTES[..63]).unwrap_err(),
            Error::Truncated
        );
    }
}
