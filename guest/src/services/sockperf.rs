//! The sockperf ping-pong reflector's message transform (UDP port 11111).
//!
//! sockperf (Mellanox/NVIDIA, `src/message.h`) starts every message with a 14-byte header in
//! network byte order:
//!
//! ```text
//! bytes 0..8    sequence number  u64
//! bytes 8..10   flags            u16  CLIENT = 1, PONG_REQUEST = 2, WARMUP = 4
//! bytes 10..14  length           u32  whole message length, header included
//! ```
//!
//! so the CLIENT flag is bit 0 of byte 9. Its server (`server.cpp`) ignores messages that are not
//! from a client, are warm-up messages or do not request a pong, and answers the rest with
//! `length` bytes of the message, the CLIENT flag cleared. [`reflect`] does the same in place.

/// Length of the sockperf message header.
pub const HEADER_LEN: usize = 14;

/// The UDP port sockperf uses by default.
pub const PORT: u16 = 11111;

/// Message comes from a client (cleared in the reply).
pub const FLAG_CLIENT: u16 = 1;
/// Client wants an answer to this message.
pub const FLAG_PONG_REQUEST: u16 = 2;
/// Warm-up message, never answered.
pub const FLAG_WARMUP: u16 = 4;

mod field {
    use core::ops::Range;
    pub const FLAGS: Range<usize> = 8..10;
    pub const LENGTH: Range<usize> = 10..14;
}

/// Why a message gets no reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoReply {
    /// Shorter than the header, or a length field outside `HEADER_LEN..=datagram length`.
    Malformed,
    /// A legitimate message that sockperf's own server would not answer either (not from a
    /// client, a warm-up message, or no pong requested).
    Silent,
}

/// Turn a received sockperf message into its reply, in place.
///
/// On success returns the reply length (the header's length field, which never exceeds
/// `msg.len()`); the reply is `msg[..len]`. Never panics.
pub fn reflect(msg: &mut [u8]) -> Result<usize, NoReply> {
    if msg.len() < HEADER_LEN {
        return Err(NoReply::Malformed);
    }
    let flags = u16::from_be_bytes([msg[field::FLAGS.start], msg[field::FLAGS.start + 1]]);
    let mut length = [0u8; 4];
    length.copy_from_slice(&msg[field::LENGTH]);
    let length = u32::from_be_bytes(length) as usize;
    if !(HEADER_LEN..=msg.len()).contains(&length) {
        return Err(NoReply::Malformed);
    }
    if flags & FLAG_CLIENT == 0 || flags & FLAG_WARMUP != 0 || flags & FLAG_PONG_REQUEST == 0 {
        return Err(NoReply::Silent);
    }
    let reply = flags & !FLAG_CLIENT;
    msg[field::FLAGS].copy_from_slice(&reply.to_be_bytes());
    Ok(length)
}

#[cfg(test)]
mod test {
    use super::*;

    fn message(flags: u16, length: u32, total: usize) -> std::vec::Vec<u8> {
        let mut m = std::vec![0xa5u8; total];
        m[0..8].copy_from_slice(&0x0102_0304_0506_0708u64.to_be_bytes());
        m[8..10].copy_from_slice(&flags.to_be_bytes());
        m[10..14].copy_from_slice(&length.to_be_bytes());
        m
    }

    #[test]
    fn clears_bit_zero_of_byte_nine_only() {
        let mut m = message(FLAG_CLIENT | FLAG_PONG_REQUEST, 64, 64);
        let before = m.clone();
        assert_eq!(reflect(&mut m), Ok(64));
        assert_eq!(m[9], before[9] & !1);
        assert_eq!(m[9], 0x02);
        let changed: std::vec::Vec<usize> = (0..64).filter(|&i| m[i] != before[i]).collect();
        assert_eq!(changed, [9]);
    }

    #[test]
    fn replies_with_the_stated_length() {
        let mut m = message(FLAG_CLIENT | FLAG_PONG_REQUEST, 20, 30);
        assert_eq!(reflect(&mut m), Ok(20));
        let mut m = message(FLAG_CLIENT | FLAG_PONG_REQUEST, 14, 14);
        assert_eq!(reflect(&mut m), Ok(14));
    }

    #[test]
    fn stays_silent_like_sockperf_server() {
        for flags in [
            FLAG_PONG_REQUEST,
            FLAG_CLIENT,
            FLAG_CLIENT | FLAG_PONG_REQUEST | FLAG_WARMUP,
        ] {
            let mut m = message(flags, 64, 64);
            let before = m.clone();
            assert_eq!(reflect(&mut m), Err(NoReply::Silent));
            assert_eq!(m, before);
        }
    }

    #[test]
    fn rejects_malformed() {
        for total in 0..HEADER_LEN {
            assert_eq!(
                reflect(&mut std::vec![0xff; total]),
                Err(NoReply::Malformed)
            );
        }
        let flags = FLAG_CLIENT | FLAG_PONG_REQUEST;
        assert_eq!(
            reflect(&mut message(flags, 65, 64)),
            Err(NoReply::Malformed)
        );
        assert_eq!(
            reflect(&mut message(flags, 13, 64)),
            Err(NoReply::Malformed)
        );
        assert_eq!(
            reflect(&mut message(flags, u32::MAX, 64)),
            Err(NoReply::Malformed)
        );
    }
}
