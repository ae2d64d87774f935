//! Guest statistics reply (guest to host). The request has an empty body.
//!
//! The body is [`COUNTERS`] big-endian `u64` counters in the order of [`GuestStats`]'s fields
//! (the order is the wire format). A longer body is accepted and its extra counters ignored, so a
//! guest may append counters without breaking older hosts.

use crate::bytes::{body_packet, get_u64, put_u64};
use crate::Result;

macro_rules! guest_stats {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// The guest's counters since boot.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
        pub struct GuestStats {
            $($(#[$doc])* pub $name: u64,)*
        }

        /// Field names of [`GuestStats`] in wire order.
        pub const NAMES: &[&str] = &[$(stringify!($name)),*];

        impl GuestStats {
            /// The counters in wire order.
            pub fn to_array(&self) -> [u64; COUNTERS] {
                [$(self.$name),*]
            }

            /// Counters from an array in wire order.
            pub fn from_array(values: [u64; COUNTERS]) -> GuestStats {
                let [$($name),*] = values;
                GuestStats { $($name),* }
            }
        }
    };
}

guest_stats! {
    /// Counter ticks since the guest started.
    uptime_ticks,
    /// Frames received from the device.
    rx_frames,
    /// Frames handed to the device.
    tx_frames,
    /// Bytes received (Ethernet frames).
    rx_bytes,
    /// Bytes sent (Ethernet frames).
    tx_bytes,
    /// Received frames dropped (no buffer, stack refused them).
    rx_dropped,
    /// Frames not sent (no transmit buffer).
    tx_dropped,
    /// Device interrupts taken.
    irqs,
    /// Interrupts with nothing to do (spurious or already handled).
    spurious_irqs,
    /// Passes of the main loop over the device.
    polls,
    /// Times the guest idled in WFI.
    idle_waits,
    /// Transmit-queue notifies (`QueueNotify` writes, exits).
    tx_notifies,
    /// Probe datagrams received.
    probe_rx,
    /// Probe datagrams dropped as malformed (truncated, bad magic, version or value).
    probe_malformed,
    /// Probe datagrams dropped with a kind the guest does not serve.
    probe_unknown,
    /// Probe replies produced.
    probe_replies,
}

/// Number of counters in the body.
pub const COUNTERS: usize = NAMES.len();
/// Length of the body.
pub const BODY_LEN: usize = COUNTERS * 8;

body_packet!("a stats reply", fixed_len);

impl<T: AsRef<[u8]>> Packet<T> {
    /// Counter number `index` in wire order.
    ///
    /// # Panics
    /// If `index >= COUNTERS`.
    pub fn counter(&self, index: usize) -> u64 {
        get_u64(&self.buffer.as_ref()[index * 8..index * 8 + 8])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Set counter number `index`.
    ///
    /// # Panics
    /// If `index >= COUNTERS`.
    pub fn set_counter(&mut self, index: usize, value: u64) {
        put_u64(&mut self.buffer.as_mut()[index * 8..index * 8 + 8], value);
    }
}

/// The stats reply's validated form is the counters themselves.
pub type Repr = GuestStats;

impl GuestStats {
    /// Parse a stats reply body.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<GuestStats> {
        packet.check_len()?;
        let mut values = [0; COUNTERS];
        for (i, v) in values.iter_mut().enumerate() {
            *v = packet.counter(i);
        }
        Ok(GuestStats::from_array(values))
    }

    /// Length of the body.
    pub const fn buffer_len(&self) -> usize {
        BODY_LEN
    }

    /// Emit into a body buffer of at least [`BODY_LEN`] bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        for (i, v) in self.to_array().into_iter().enumerate() {
            packet.set_counter(i, v);
        }
    }

    /// `(name, value)` pairs in wire order, for reports.
    pub fn fields(&self) -> impl Iterator<Item = (&'static str, u64)> {
        NAMES.iter().copied().zip(self.to_array())
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::Error;

    fn bytes() -> [u8; BODY_LEN + 8] {
        let mut b = [0u8; BODY_LEN + 8];
        for i in 0..COUNTERS {
            b[i * 8 + 7] = i as u8 + 1;
        }
        b[BODY_LEN + 7] = 0xee; // a counter from a newer guest
        b
    }

    #[test]
    fn test_parse() {
        let b = bytes();
        let s = GuestStats::parse(&Packet::new_checked(&b[..]).unwrap()).unwrap();
        assert_eq!(s.uptime_ticks, 1);
        assert_eq!(s.probe_replies, COUNTERS as u64);
        assert_eq!(s.fields().nth(7), Some(("irqs", 8)));
    }

    #[test]
    fn test_emit() {
        let b = bytes();
        let s = GuestStats::parse(&Packet::new_unchecked(&b[..])).unwrap();
        let mut out = [0u8; BODY_LEN];
        s.emit(&mut Packet::new_unchecked(&mut out[..]));
        assert_eq!(out[..], b[..BODY_LEN]);
    }

    #[test]
    fn test_impossible_len() {
        let b = bytes();
        assert_eq!(
            Packet::new_checked(&b[..BODY_LEN - 1]).unwrap_err(),
            Error::Truncated
        );
    }
}
