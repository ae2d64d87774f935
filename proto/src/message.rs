//! Whole datagrams: the header plus the body of whichever message its `kind` names.

use crate::header::{self, Kind, HEADER_LEN};
use crate::stats_reply::GuestStats;
use crate::{
    bench_request, bench_result, clock_reply, clock_request, echo_reply, echo_request, error_reply,
    samples, samples_request, stats_reply,
};
use crate::{Error, Result};

/// Any probe message, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    /// Timestamped echo request.
    EchoRequest(echo_request::Repr),
    /// Timestamped echo reply.
    EchoReply(echo_reply::Repr),
    /// Guest stats request (empty body).
    StatsRequest,
    /// Guest stats reply.
    StatsReply(GuestStats),
    /// Micro-benchmark request.
    BenchRequest(bench_request::Repr),
    /// Micro-benchmark result.
    BenchResult(bench_result::Repr),
    /// Raw samples request.
    SamplesRequest(samples_request::Repr),
    /// Raw samples chunk.
    Samples(samples::Repr<'a>),
    /// Power-off request (empty body).
    PowerOff,
    /// Power-off acknowledgement (empty body).
    PowerOffAck,
    /// Refusal of a well-formed request.
    Error(error_reply::Repr),
    /// KVM PTP readings request.
    ClockRequest(clock_request::Repr),
    /// KVM PTP readings.
    ClockReply(clock_reply::Repr),
}

impl<'a> Message<'a> {
    /// The header kind of this message.
    pub fn kind(&self) -> Kind {
        match self {
            Message::EchoRequest(_) => Kind::EchoRequest,
            Message::EchoReply(_) => Kind::EchoReply,
            Message::StatsRequest => Kind::StatsRequest,
            Message::StatsReply(_) => Kind::StatsReply,
            Message::BenchRequest(_) => Kind::BenchRequest,
            Message::BenchResult(_) => Kind::BenchResult,
            Message::SamplesRequest(_) => Kind::SamplesRequest,
            Message::Samples(_) => Kind::Samples,
            Message::PowerOff => Kind::PowerOff,
            Message::PowerOffAck => Kind::PowerOffAck,
            Message::Error(_) => Kind::Error,
            Message::ClockRequest(_) => Kind::ClockRequest,
            Message::ClockReply(_) => Kind::ClockReply,
        }
    }

    /// Parse the body of a message of kind `kind`. Bodies longer than the message needs are
    /// accepted (padding, or fields of a later revision); the empty-bodied kinds ignore theirs.
    pub fn parse_body(kind: Kind, body: &'a [u8]) -> Result<Message<'a>> {
        Ok(match kind {
            Kind::EchoRequest => Message::EchoRequest(echo_request::Repr::parse(
                &echo_request::Packet::new_checked(body)?,
            )?),
            Kind::EchoReply => Message::EchoReply(echo_reply::Repr::parse(
                &echo_reply::Packet::new_checked(body)?,
            )?),
            Kind::StatsRequest => Message::StatsRequest,
            Kind::StatsReply => {
                Message::StatsReply(GuestStats::parse(&stats_reply::Packet::new_checked(body)?)?)
            }
            Kind::BenchRequest => Message::BenchRequest(bench_request::Repr::parse(
                &bench_request::Packet::new_checked(body)?,
            )?),
            Kind::BenchResult => Message::BenchResult(bench_result::Repr::parse(
                &bench_result::Packet::new_checked(body)?,
            )?),
            Kind::SamplesRequest => Message::SamplesRequest(samples_request::Repr::parse(
                &samples_request::Packet::new_checked(body)?,
            )?),
            Kind::Samples => {
                Message::Samples(samples::Repr::parse(&samples::Packet::new_checked(body)?)?)
            }
            Kind::PowerOff => Message::PowerOff,
            Kind::PowerOffAck => Message::PowerOffAck,
            Kind::Error => Message::Error(error_reply::Repr::parse(
                &error_reply::Packet::new_checked(body)?,
            )?),
            Kind::ClockRequest => Message::ClockRequest(clock_request::Repr::parse(
                &clock_request::Packet::new_checked(body)?,
            )?),
            Kind::ClockReply => Message::ClockReply(clock_reply::Repr::parse(
                &clock_reply::Packet::new_checked(body)?,
            )?),
        })
    }

    /// Length of the body this message emits.
    pub fn body_len(&self) -> usize {
        match self {
            Message::EchoRequest(r) => r.buffer_len(),
            Message::EchoReply(r) => r.buffer_len(),
            Message::StatsReply(r) => r.buffer_len(),
            Message::BenchRequest(r) => r.buffer_len(),
            Message::BenchResult(r) => r.buffer_len(),
            Message::SamplesRequest(r) => r.buffer_len(),
            Message::Samples(r) => r.buffer_len(),
            Message::Error(r) => r.buffer_len(),
            Message::ClockRequest(r) => r.buffer_len(),
            Message::ClockReply(r) => r.buffer_len(),
            Message::StatsRequest | Message::PowerOff | Message::PowerOffAck => 0,
        }
    }

    /// Emit the body into a buffer of exactly [`body_len`](Self::body_len) bytes.
    ///
    /// # Panics
    /// If the buffer is shorter than [`body_len`](Self::body_len).
    pub fn emit_body(&self, body: &mut [u8]) {
        match self {
            Message::EchoRequest(r) => r.emit(&mut echo_request::Packet::new_unchecked(body)),
            Message::EchoReply(r) => r.emit(&mut echo_reply::Packet::new_unchecked(body)),
            Message::StatsReply(r) => r.emit(&mut stats_reply::Packet::new_unchecked(body)),
            Message::BenchRequest(r) => r.emit(&mut bench_request::Packet::new_unchecked(body)),
            Message::BenchResult(r) => r.emit(&mut bench_result::Packet::new_unchecked(body)),
            Message::SamplesRequest(r) => r.emit(&mut samples_request::Packet::new_unchecked(body)),
            Message::Samples(r) => r.emit(&mut samples::Packet::new_unchecked(body)),
            Message::Error(r) => r.emit(&mut error_reply::Packet::new_unchecked(body)),
            Message::ClockRequest(r) => r.emit(&mut clock_request::Packet::new_unchecked(body)),
            Message::ClockReply(r) => r.emit(&mut clock_reply::Packet::new_unchecked(body)),
            Message::StatsRequest | Message::PowerOff | Message::PowerOffAck => {}
        }
    }
}

/// A whole probe datagram: header fields plus the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Datagram<'a> {
    /// Sequence number (the guest copies the request's into its reply).
    pub sequence: u32,
    /// Host-owned flags (the guest copies the request's into its reply).
    pub flags: u16,
    /// The message.
    pub message: Message<'a>,
}

impl<'a> Datagram<'a> {
    /// Parse a received datagram. Never panics; every way a datagram can be wrong is an
    /// [`Error`].
    pub fn parse(bytes: &'a [u8]) -> Result<Datagram<'a>> {
        let packet = header::Packet::new_checked(bytes)?;
        let hdr = header::Repr::parse(&packet)?;
        let body = &bytes[HEADER_LEN..hdr.buffer_len()];
        Ok(Datagram {
            sequence: hdr.sequence,
            flags: hdr.flags,
            message: Message::parse_body(hdr.kind, body)?,
        })
    }

    /// Length of the whole datagram.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.message.body_len()
    }

    /// Emit the datagram at the start of `buf`, returning its length; [`Error::Truncated`] if
    /// `buf` is shorter than [`buffer_len`](Self::buffer_len). Never panics.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let len = self.buffer_len();
        let buf = buf.get_mut(..len).ok_or(Error::Truncated)?;
        if u32::try_from(len).is_err() {
            return Err(Error::Truncated);
        }
        let hdr = header::Repr {
            kind: self.message.kind(),
            flags: self.flags,
            sequence: self.sequence,
            body_len: self.message.body_len(),
        };
        hdr.emit(&mut header::Packet::new_unchecked(&mut *buf));
        self.message.emit_body(&mut buf[HEADER_LEN..]);
        Ok(len)
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::bench::BenchTest;

    #[test]
    fn emit_then_parse_every_empty_kind() {
        for message in [
            Message::StatsRequest,
            Message::PowerOff,
            Message::PowerOffAck,
        ] {
            let d = Datagram {
                sequence: 9,
                flags: 1,
                message,
            };
            let mut buf = [0u8; 32];
            let n = d.emit(&mut buf).unwrap();
            assert_eq!(n, HEADER_LEN);
            assert_eq!(Datagram::parse(&buf[..n]).unwrap(), d);
        }
    }

    #[test]
    fn body_too_short_for_its_kind() {
        let d = Datagram {
            sequence: 1,
            flags: 0,
            message: Message::BenchRequest(bench_request::Repr {
                test: BenchTest::Eoi,
                iterations: 10,
                param: 0,
            }),
        };
        let mut buf = [0u8; 64];
        let n = d.emit(&mut buf).unwrap();
        // Claim one byte less in the header: the body no longer holds the request.
        buf[15] -= 1;
        assert_eq!(Datagram::parse(&buf[..n]), Err(Error::Truncated));
    }

    #[test]
    fn emit_into_short_buffer_is_an_error() {
        let d = Datagram {
            sequence: 1,
            flags: 0,
            message: Message::PowerOff,
        };
        assert_eq!(d.emit(&mut [0u8; HEADER_LEN - 1]), Err(Error::Truncated));
    }
}
