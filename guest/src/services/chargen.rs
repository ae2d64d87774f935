//! The RFC 864 character generator pattern.
//!
//! Lines of 72 printable ASCII characters (0x20..=0x7e, 95 of them) followed by CR LF; line `n`
//! starts with character `n mod 95`, counting from the space as BSD inetd does (the RFC's sample
//! lost its leading blank and starts at `!`). The stream repeats every 95 lines, so it is one static table
//! built at compile time and the generator is a `memcpy` from it.

/// Printable characters per line.
const LINE_CHARS: usize = 72;
/// Bytes per line, CR LF included.
const LINE_LEN: usize = LINE_CHARS + 2;
/// Number of printable ASCII characters, and so the number of lines before the pattern repeats.
const PRINTABLE: usize = 95;
/// Length of one period of the stream.
pub const PERIOD: usize = LINE_LEN * PRINTABLE;

static PATTERN: [u8; PERIOD] = build();

const fn build() -> [u8; PERIOD] {
    let mut out = [0u8; PERIOD];
    let mut line = 0;
    while line < PRINTABLE {
        let mut col = 0;
        while col < LINE_CHARS {
            out[line * LINE_LEN + col] = b' ' + ((line + col) % PRINTABLE) as u8;
            col += 1;
        }
        out[line * LINE_LEN + LINE_CHARS] = b'\r';
        out[line * LINE_LEN + LINE_CHARS + 1] = b'\n';
        line += 1;
    }
    out
}

/// The byte at position `pos` of the stream (for checking a received stream).
pub fn byte_at(pos: u64) -> u8 {
    PATTERN[(pos % PERIOD as u64) as usize]
}

/// Fill `buf` with the stream starting at `offset` (an index into one period) and return the
/// offset that follows it.
pub fn fill(buf: &mut [u8], mut offset: usize) -> usize {
    let mut done = 0;
    while done < buf.len() {
        let n = (buf.len() - done).min(PERIOD - offset);
        buf[done..done + n].copy_from_slice(&PATTERN[offset..offset + n]);
        done += n;
        offset = (offset + n) % PERIOD;
    }
    offset
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn rfc_864_first_lines() {
        let mut buf = [0u8; 2 * LINE_LEN];
        fill(&mut buf, 0);
        let first = b"!\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefgh";
        assert_eq!(&buf[1..LINE_CHARS], &first[..LINE_CHARS - 1]);
        assert_eq!(buf[0], b' ');
        assert_eq!(&buf[LINE_CHARS..LINE_LEN], b"\r\n");
        assert_eq!(&buf[LINE_LEN..LINE_LEN + LINE_CHARS], first);
    }

    #[test]
    fn wraps_around_the_printable_set() {
        // Line 30 runs past '~' (0x7e) and wraps to ' '.
        let line = &PATTERN[30 * LINE_LEN..30 * LINE_LEN + LINE_CHARS];
        assert_eq!(line[0], b' ' + 30);
        assert_eq!(line[64], b'~');
        assert_eq!(line[65], b' ');
    }

    #[test]
    fn fill_is_continuous_across_calls() {
        let mut whole = std::vec![0u8; 3 * PERIOD + 17];
        fill(&mut whole, 0);
        for (i, &b) in whole.iter().enumerate() {
            assert_eq!(b, byte_at(i as u64));
        }
        let mut pieces = std::vec![0u8; whole.len()];
        let mut offset = 0;
        let mut start = 0;
        for size in [1usize, 73, 7029, 7031, 5000].iter().cycle() {
            let end = (start + size).min(pieces.len());
            offset = fill(&mut pieces[start..end], offset);
            start = end;
            if start == pieces.len() {
                break;
            }
        }
        assert_eq!(pieces, whole);
    }
}
