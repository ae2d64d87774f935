//! Latency statistics from every sample, in bounded memory.
//!
//! [`Recorder`] takes samples in integer nanoseconds and never stores them individually.
//! What it delivers, precisely:
//!
//! - `min`, `max`, `mean` and `stddev` are exact: integer sums of values and of squares are
//!   kept in 128 bits, so nothing is rounded before the final division. `stddev` is the
//!   population standard deviation (divide by n), as netperf reports it.
//! - Percentiles use the nearest-rank definition (the smallest sample such that at least
//!   q·n samples are less than or equal to it). They are read from an HDR histogram with
//!   5 significant digits and 1 ns units: every value below 2^18 ns (262.144 us) has its own
//!   1 ns bucket, so percentiles there are the exact sample value. Above that a bucket spans at
//!   most 2^-17 of its value; the reported value is the bucket's midpoint, clamped to
//!   [min, max], so it is within 0.0004 % of the true sample (4 ns at 1 ms, 4 us at 1 s).
//! - Memory is that histogram (32-bit counts, which saturate rather than wrap: about 4 MB up
//!   to 16 ms, plus 0.5 MB per doubling of the largest value seen; it grows on demand) and
//!   the `N` largest samples ([`Outliers`]).
use std::cmp::Reverse;
use std::collections::BinaryHeap;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Significant digits of the histogram: the maximum the HDR format supports.
pub const SIGNIFICANT_DIGITS: u8 = 5;
/// Initial highest trackable value (ns); the histogram grows beyond it when needed.
const INITIAL_HIGHEST_NS: u64 = 1 << 24;

/// The percentiles every summary reports, as quantiles.
pub const QUANTILES: [f64; 5] = [0.5, 0.9, 0.99, 0.999, 0.9999];

/// Where and when a sample was taken, kept with the largest samples so that a user can find
/// the same moment in an ftrace/trace-cmd recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SampleId {
    /// Sequence number of the transaction.
    pub seq: u64,
    /// Wall-clock (CLOCK_REALTIME) send time, nanoseconds since the Unix epoch.
    pub send_unix_ns: u64,
    /// CLOCK_MONOTONIC send time in nanoseconds (what `trace-cmd record -C mono` shows).
    pub send_mono_ns: u64,
}

/// One of the largest samples of a run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Outlier {
    /// Which transaction, and when.
    #[serde(flatten)]
    pub id: SampleId,
    /// Its value in microseconds.
    pub rtt_us: f64,
}

/// The `N` largest samples seen, with their identity. Ties keep the earliest sample.
#[derive(Debug, Clone)]
pub struct Outliers {
    keep: usize,
    // Min-heap on (value, Reverse(seq)): the smallest kept sample is on top, ready to be evicted.
    heap: BinaryHeap<Reverse<OutlierKey>>,
}

/// (value, Reverse(seq), send_unix_ns, send_mono_ns): orders by value, then earlier first.
type OutlierKey = (u64, Reverse<u64>, u64, u64);

impl Outliers {
    /// Keeps the `keep` largest samples (0 keeps none).
    pub fn new(keep: usize) -> Self {
        Self {
            keep,
            heap: BinaryHeap::with_capacity(keep + 1),
        }
    }

    /// Offers a sample.
    pub fn offer(&mut self, value_ns: u64, id: SampleId) {
        if self.keep == 0 {
            return;
        }
        let entry = Reverse((value_ns, Reverse(id.seq), id.send_unix_ns, id.send_mono_ns));
        if self.heap.len() < self.keep {
            self.heap.push(entry);
        } else if let Some(smallest) = self.heap.peek() {
            if entry < *smallest {
                self.heap.pop();
                self.heap.push(entry);
            }
        }
    }

    /// The kept samples, largest first.
    pub fn largest_first(&self) -> Vec<Outlier> {
        let mut all: Vec<_> = self.heap.iter().map(|Reverse(e)| *e).collect();
        all.sort_by(|a, b| b.cmp(a));
        all.into_iter()
            .map(
                |(value, Reverse(seq), send_unix_ns, send_mono_ns)| Outlier {
                    id: SampleId {
                        seq,
                        send_unix_ns,
                        send_mono_ns,
                    },
                    rtt_us: ns_to_us(value),
                },
            )
            .collect()
    }
}

/// Summary statistics of a series, in microseconds. Every field but `samples` is `None`
/// when there were no samples.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    /// Number of samples.
    pub samples: u64,
    /// Smallest sample.
    pub min_us: Option<f64>,
    /// Arithmetic mean.
    pub mean_us: Option<f64>,
    /// Largest sample.
    pub max_us: Option<f64>,
    /// Population standard deviation.
    pub stddev_us: Option<f64>,
    /// Median.
    pub p50_us: Option<f64>,
    /// 90th percentile.
    pub p90_us: Option<f64>,
    /// 99th percentile.
    pub p99_us: Option<f64>,
    /// 99.9th percentile.
    pub p999_us: Option<f64>,
    /// 99.99th percentile.
    pub p9999_us: Option<f64>,
}

/// Accumulates samples (nanoseconds) into exact moments, a histogram and the largest samples.
#[derive(Debug, Clone)]
pub struct Recorder {
    histogram: Histogram<u32>,
    samples: u64,
    sum: u128,
    sum_squares: u128,
    min: u64,
    max: u64,
    outliers: Outliers,
}

impl Recorder {
    /// A recorder that keeps the `outliers` largest samples.
    pub fn new(outliers: usize) -> Self {
        let mut histogram = Histogram::new_with_bounds(1, INITIAL_HIGHEST_NS, SIGNIFICANT_DIGITS)
            .expect("constant histogram bounds are valid");
        histogram.auto(true);
        Self {
            histogram,
            samples: 0,
            sum: 0,
            sum_squares: 0,
            min: u64::MAX,
            max: 0,
            outliers: Outliers::new(outliers),
        }
    }

    /// Records one sample of `value_ns` nanoseconds, taken by transaction `id`.
    pub fn record(&mut self, value_ns: u64, id: SampleId) {
        self.record_value(value_ns);
        self.outliers.offer(value_ns, id);
    }

    /// Records one sample that has no identity (it never shows among the outliers).
    pub fn record_value(&mut self, value_ns: u64) {
        // The histogram cannot hold 0; a 0 ns sample only comes from a coarse clock (or two
        // events with one timestamp). Auto-resize makes recording infallible up to
        // u64::MAX / 2.
        let _ = self.histogram.record(value_ns.max(1));
        self.samples += 1;
        self.sum += u128::from(value_ns);
        self.sum_squares += u128::from(value_ns) * u128::from(value_ns);
        self.min = self.min.min(value_ns);
        self.max = self.max.max(value_ns);
    }

    /// Number of samples recorded.
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// The histogram of all samples (1 ns units), e.g. to write an HdrHistogram log.
    pub fn histogram(&self) -> &Histogram<u32> {
        &self.histogram
    }

    /// Gives up the recorder for its histogram.
    pub fn into_histogram(self) -> Histogram<u32> {
        self.histogram
    }

    /// The largest samples, largest first.
    pub fn outliers(&self) -> Vec<Outlier> {
        self.outliers.largest_first()
    }

    /// The summary of everything recorded so far.
    pub fn summary(&self) -> Summary {
        if self.samples == 0 {
            return Summary {
                samples: 0,
                min_us: None,
                mean_us: None,
                max_us: None,
                stddev_us: None,
                p50_us: None,
                p90_us: None,
                p99_us: None,
                p999_us: None,
                p9999_us: None,
            };
        }
        let n = u128::from(self.samples);
        // n²·variance = n·Σx² − (Σx)², exact in integers (Cauchy-Schwarz keeps it >= 0).
        let n2_var = n * self.sum_squares - self.sum * self.sum;
        let stddev_ns = (n2_var as f64).sqrt() / n as f64;
        let p = self.percentiles_us(&QUANTILES);
        Summary {
            samples: self.samples,
            min_us: Some(ns_to_us(self.min)),
            mean_us: Some(round_ps(self.sum as f64 / n as f64 / 1e3)),
            max_us: Some(ns_to_us(self.max)),
            stddev_us: Some(round_ps(stddev_ns / 1e3)),
            p50_us: Some(p[0]),
            p90_us: Some(p[1]),
            p99_us: Some(p[2]),
            p999_us: Some(p[3]),
            p9999_us: Some(p[4]),
        }
    }

    /// Nearest-rank percentiles in microseconds for ascending `quantiles` in [0, 1] (0 gives
    /// the smallest sample); empty when nothing was recorded.
    pub fn percentiles_us(&self, quantiles: &[f64]) -> Vec<f64> {
        if self.samples == 0 {
            return Vec::new();
        }
        let ranks: Vec<u64> = quantiles
            .iter()
            .map(|&q| nearest_rank(q, self.samples))
            .collect();
        let mut out = Vec::with_capacity(ranks.len());
        let mut seen = 0u64;
        let mut next = 0;
        for bucket in self.histogram.iter_recorded() {
            seen += u64::from(bucket.count_at_value());
            while next < ranks.len() && seen >= ranks[next] {
                let mid = self.histogram.median_equivalent(bucket.value_iterated_to());
                out.push(ns_to_us(mid.clamp(self.min, self.max)));
                next += 1;
            }
            if next == ranks.len() {
                break;
            }
        }
        // Only reachable if the histogram lost counts, which auto-resize prevents.
        while out.len() < ranks.len() {
            out.push(ns_to_us(self.max));
        }
        out
    }
}

/// The nearest rank (1-based) of quantile `q` among `n >= 1` samples: the smallest k with
/// k >= q·n, so that at least q·n samples are less than or equal to the k-th smallest.
pub fn nearest_rank(q: f64, n: u64) -> u64 {
    ((q * n as f64).ceil() as u64).clamp(1, n)
}

/// Rounds microseconds to the picosecond: more digits than the clocks have, fewer than the
/// binary float noise of a division.
fn round_ps(us: f64) -> f64 {
    (us * 1e6).round() / 1e6
}

/// Nanoseconds to microseconds as a float.
pub fn ns_to_us(ns: u64) -> f64 {
    ns as f64 / 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(seq: u64) -> SampleId {
        SampleId {
            seq,
            send_unix_ns: 1_000 + seq,
            send_mono_ns: 2_000 + seq,
        }
    }

    fn recorder(values: &[u64]) -> Recorder {
        let mut r = Recorder::new(3);
        for (i, v) in values.iter().enumerate() {
            r.record(*v, id(i as u64));
        }
        r
    }

    #[test]
    fn empty_summary_has_no_values() {
        let s = Recorder::new(3).summary();
        assert_eq!(s.samples, 0);
        assert_eq!(s.min_us, None);
        assert_eq!(s.p50_us, None);
    }

    #[test]
    fn moments_are_exact() {
        // 2, 4, 4, 4, 5, 5, 7, 9 us: mean 5, population stddev 2 (the textbook example).
        let s = recorder(&[2_000, 4_000, 4_000, 4_000, 5_000, 5_000, 7_000, 9_000]).summary();
        assert_eq!(s.samples, 8);
        assert_eq!(s.min_us, Some(2.0));
        assert_eq!(s.max_us, Some(9.0));
        assert_eq!(s.mean_us, Some(5.0));
        assert_eq!(s.stddev_us, Some(2.0));
    }

    #[test]
    fn mean_keeps_nanoseconds() {
        let s = recorder(&[100_001, 100_002]).summary();
        assert_eq!(s.mean_us, Some(100.0015));
        assert_eq!(s.stddev_us, Some(0.0005));
    }

    #[test]
    fn nearest_rank_percentiles_are_sample_values() {
        // 1..=10000 ns: the q-th percentile by nearest rank is exactly ceil(q*n) ns.
        let values: Vec<u64> = (1..=10_000).rev().collect();
        let s = recorder(&values).summary();
        assert_eq!(s.p50_us, Some(5.0));
        assert_eq!(s.p90_us, Some(9.0));
        assert_eq!(s.p99_us, Some(9.9));
        assert_eq!(s.p999_us, Some(9.99));
        assert_eq!(s.p9999_us, Some(9.999));
    }

    #[test]
    fn odd_nanosecond_values_below_262us_are_exact() {
        // Not bucket edges: values with nanosecond digits come back unchanged.
        let s = recorder(&[123_457, 201_399, 262_143]).summary();
        assert_eq!(s.p50_us, Some(201.399));
        assert_eq!(s.p90_us, Some(262.143));
        assert_eq!(s.min_us, Some(123.457));
    }

    #[test]
    fn large_values_are_within_relative_precision() {
        let values = [1_234_567_891u64, 5_000_001, 77_777_777];
        let s = recorder(&values).summary();
        let p50 = s.p50_us.unwrap() * 1e3;
        assert!((p50 - 77_777_777.0).abs() / 77_777_777.0 < 4e-6, "{p50}");
        // The extremes are clamped to the exact min and max.
        assert_eq!(s.p9999_us, Some(1_234_567.891));
        assert_eq!(s.max_us, Some(1_234_567.891));
    }

    #[test]
    fn percentiles_at_any_quantile_match_the_summary() {
        let values: Vec<u64> = (1..=10_000).collect();
        let r = recorder(&values);
        let p = r.percentiles_us(&[0.0, 0.25, 0.5, 0.99, 1.0]);
        assert_eq!(p, vec![0.001, 2.5, 5.0, 9.9, 10.0]);
        assert_eq!(Some(p[3]), r.summary().p99_us);
        assert!(Recorder::new(0).percentiles_us(&[0.5]).is_empty());
    }

    #[test]
    fn single_sample() {
        let s = recorder(&[42_000]).summary();
        assert_eq!(
            (s.min_us, s.p50_us, s.p9999_us, s.max_us),
            (Some(42.0), Some(42.0), Some(42.0), Some(42.0))
        );
        assert_eq!(s.stddev_us, Some(0.0));
    }

    #[test]
    fn outliers_keep_largest_with_identity() {
        let r = recorder(&[5, 50, 7, 500, 9, 50]);
        let o = r.outliers();
        assert_eq!(o.len(), 3);
        assert_eq!(o[0].id, id(3));
        assert_eq!(o[0].rtt_us, 0.5);
        // Equal values: the earlier one ranks first and both are kept.
        assert_eq!(o[1].id.seq, 1);
        assert_eq!(o[2].id.seq, 5);
    }

    #[test]
    fn no_outliers_when_zero_kept() {
        let mut r = Recorder::new(0);
        r.record(10, id(0));
        assert!(r.outliers().is_empty());
    }
}
