//! What goes into a request and how a reply is judged, kept apart from sockets and timing
//! so that another request format (e.g. one that carries guest timestamps back) is a new
//! [`Framing`] implementation, not a change to the measured loop.
//!
//! The default [`EchoFraming`] targets any RFC 862 echo server: a request of `size` bytes
//! starts with the sequence number (little endian, the first `min(size, 8)` bytes) and is
//! filled with a pattern derived from it; the reply must be the same bytes.

/// How a reply relates to the transaction that is waiting for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The reply to the current request, intact.
    Match,
    /// An intact reply to an earlier request (one that already timed out): ignore it and
    /// keep waiting.
    Late,
    /// The reply to the current request (by the framing's own identification), altered:
    /// the transaction ends as an error.
    Corrupt,
    /// Bytes that belong to no outstanding request: counted, and the wait goes on.
    Stray,
}

/// A request/reply format.
pub trait Framing: Send {
    /// Length of every request in bytes.
    fn request_len(&self) -> usize;
    /// Writes request number `seq` into `request` (`request_len()` bytes).
    fn encode(&mut self, seq: u64, request: &mut [u8]);
    /// Judges `reply` while request number `seq`, whose bytes are `request`, is outstanding.
    /// An implementation may keep what it parsed (e.g. remote timestamps) for its owner.
    fn check(&mut self, seq: u64, request: &[u8], reply: &[u8]) -> Verdict;
    /// Sees every measured transaction once it is over (after the sample sink, outside the
    /// timed window), so a framing that keeps what it parsed can pair it with the sample's
    /// send time and round trip. An error ends the run like a failing sample sink.
    fn observe(&mut self, _sample: &super::engine::Sample) -> std::io::Result<()> {
        Ok(())
    }
}

/// Byte-exact echo with a sequence number; see the module documentation.
#[derive(Debug, Clone)]
pub struct EchoFraming {
    size: usize,
    expected_late: Vec<u8>,
}

/// Number of leading bytes that carry the sequence number.
const SEQ_BYTES: usize = 8;

impl EchoFraming {
    /// Requests of exactly `size` bytes (at least 1). Below 8 bytes the sequence number is
    /// truncated, so late replies are only told apart modulo 256^size.
    pub fn new(size: usize) -> Self {
        Self {
            size: size.max(1),
            expected_late: vec![0; size.max(1)],
        }
    }

    fn seq_len(&self) -> usize {
        self.size.min(SEQ_BYTES)
    }

    /// The sequence number carried in `frame` (truncated to the bytes available).
    fn read_seq(&self, frame: &[u8]) -> u64 {
        let mut bytes = [0u8; SEQ_BYTES];
        bytes[..self.seq_len()].copy_from_slice(&frame[..self.seq_len()]);
        u64::from_le_bytes(bytes)
    }

    fn truncate(&self, seq: u64) -> u64 {
        match self.seq_len() {
            SEQ_BYTES => seq,
            n => seq & ((1u64 << (8 * n)) - 1),
        }
    }
}

/// Fills `frame` with the request for `seq`: sequence number, then a pattern that changes
/// with both the position and the sequence number, so a reply from another request or a
/// shifted copy never matches.
fn fill(frame: &mut [u8], seq: u64) {
    let seq_bytes = seq.to_le_bytes();
    let n = frame.len().min(SEQ_BYTES);
    frame[..n].copy_from_slice(&seq_bytes[..n]);
    let salt = (seq as u8).wrapping_mul(31);
    for (i, byte) in frame.iter_mut().enumerate().skip(SEQ_BYTES) {
        *byte = (i as u8).wrapping_add(salt);
    }
}

impl Framing for EchoFraming {
    fn request_len(&self) -> usize {
        self.size
    }

    fn encode(&mut self, seq: u64, request: &mut [u8]) {
        fill(request, seq);
    }

    fn check(&mut self, seq: u64, request: &[u8], reply: &[u8]) -> Verdict {
        if reply == request {
            return Verdict::Match;
        }
        // Our sequence number with other bytes after it: our reply, altered.
        let seq_len = self.seq_len();
        if reply.len() >= seq_len && reply[..seq_len] == request[..seq_len] {
            return Verdict::Corrupt;
        }
        if reply.len() != self.size {
            return Verdict::Stray;
        }
        let carried = self.read_seq(reply);
        let current = self.truncate(seq);
        // An earlier request: within the last 2^(8·n - 1) sequence numbers, wrapping.
        let distance = current.wrapping_sub(carried) & self.truncate(u64::MAX);
        if carried == current || distance > self.truncate(u64::MAX) / 2 {
            return Verdict::Stray;
        }
        let earlier = seq.wrapping_sub(distance);
        fill(&mut self.expected_late, earlier);
        if reply == self.expected_late.as_slice() {
            Verdict::Late
        } else {
            Verdict::Stray
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(f: &mut EchoFraming, seq: u64) -> Vec<u8> {
        let mut buf = vec![0; f.request_len()];
        f.encode(seq, &mut buf);
        buf
    }

    #[test]
    fn layout() {
        let mut f = EchoFraming::new(12);
        let r = request(&mut f, 0x0102);
        assert_eq!(&r[..8], &[2, 1, 0, 0, 0, 0, 0, 0]);
        let salt = 2u8.wrapping_mul(31);
        assert_eq!(&r[8..], &[8 + salt, 9 + salt, 10 + salt, 11 + salt]);
    }

    #[test]
    fn exact_echo_matches() {
        let mut f = EchoFraming::new(64);
        let r = request(&mut f, 7);
        assert_eq!(f.check(7, &r, &r), Verdict::Match);
    }

    #[test]
    fn earlier_reply_is_late() {
        let mut f = EchoFraming::new(64);
        let old = request(&mut f, 5);
        let cur = request(&mut f, 9);
        assert_eq!(f.check(9, &cur, &old), Verdict::Late);
    }

    #[test]
    fn altered_replies_are_corrupt_and_foreign_ones_stray() {
        let mut f = EchoFraming::new(64);
        let cur = request(&mut f, 9);
        let future = request(&mut f, 10);
        assert_eq!(f.check(9, &cur, &future), Verdict::Stray);
        let mut flipped = cur.clone();
        flipped[40] ^= 1;
        assert_eq!(f.check(9, &cur, &flipped), Verdict::Corrupt);
        let mut old = request(&mut f, 3);
        old[63] ^= 0x80;
        assert_eq!(f.check(9, &cur, &old), Verdict::Stray);
        assert_eq!(f.check(9, &cur, &cur[..63]), Verdict::Corrupt);
        assert_eq!(
            f.check(9, &cur, &[cur.as_slice(), &[0]].concat()),
            Verdict::Corrupt
        );
        assert_eq!(f.check(9, &cur, &cur[..7]), Verdict::Stray);
        assert_eq!(f.check(9, &cur, &[]), Verdict::Stray);
    }

    #[test]
    fn tiny_requests_wrap_the_sequence() {
        let mut f = EchoFraming::new(1);
        let cur = request(&mut f, 0x101);
        assert_eq!(cur, [1]);
        let old = request(&mut f, 0xff);
        assert_eq!(f.check(0x101, &cur, &old), Verdict::Late);
        assert_eq!(f.check(0x101, &cur, &[2]), Verdict::Stray);
    }
}
