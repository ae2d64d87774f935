//! `--hist FILE`: the RTT histogram in the HdrHistogram interval-log format (V2, compressed),
//! readable by HistogramLogProcessor, HdrHistogram's plotters and hdrhistogram libraries.
//! Values are recorded in nanoseconds; the `MaxValueDivisor` of 1000 makes the max column
//! read in microseconds.
use std::io::Write;
use std::time::{Duration, UNIX_EPOCH};

use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::Histogram;

/// Writes one interval covering the run. `start_unix_ns` is the run's start.
pub fn write<W: Write>(
    out: &mut W,
    histogram: &Histogram<u32>,
    start_unix_ns: u64,
    elapsed: Duration,
) -> Result<(), String> {
    let start = UNIX_EPOCH + Duration::from_nanos(start_unix_ns);
    let mut serializer = V2DeflateSerializer::new();
    let mut builder = IntervalLogWriterBuilder::new();
    builder
        .add_comment("vmprobe rr round-trip times, values in nanoseconds")
        .with_start_time(start)
        .with_base_time(start)
        .with_max_value_divisor(1000.0);
    let mut log = builder
        .begin_log_with(out, &mut serializer)
        .map_err(|e| e.to_string())?;
    log.write_histogram(histogram, Duration::ZERO, elapsed, Tag::new("rtt"))
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
    use hdrhistogram::serialization::Deserializer;

    #[test]
    fn round_trip() {
        let mut h = Histogram::<u32>::new_with_bounds(1, 1 << 24, 5).unwrap();
        for v in [25_123u64, 30_000, 1_000_001] {
            h.record(v).unwrap();
        }
        let mut out = Vec::new();
        write(
            &mut out,
            &h,
            1_700_000_000_000_000_000,
            Duration::from_secs(2),
        )
        .unwrap();
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.contains("#[StartTime: 1700000000.000"), "{text}");
        let mut found = 0;
        for entry in IntervalLogIterator::new(&out) {
            if let Ok(LogEntry::Interval(i)) = entry {
                assert_eq!(i.tag().map(|t| t.as_str()), Some("rtt"));
                let bytes = base64_decode(i.encoded_histogram());
                let back: Histogram<u32> =
                    Deserializer::new().deserialize(&mut &bytes[..]).unwrap();
                assert_eq!(back.len(), 3);
                assert_eq!(back.min(), 25_123);
                found += 1;
            }
        }
        assert_eq!(found, 1);
    }

    fn base64_decode(s: &str) -> Vec<u8> {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = Vec::new();
        let (mut acc, mut bits) = (0u32, 0);
        for c in s.bytes().filter(|&c| c != b'=') {
            acc = (acc << 6) | ALPHABET.iter().position(|&a| a == c).unwrap() as u32;
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
            }
        }
        out
    }
}
