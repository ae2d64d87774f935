//! Duration statistics in constant memory: exact count/min/max/mean and HDR-histogram
//! percentiles (3 significant digits).

use hdrhistogram::Histogram;
use serde::Serialize;

/// Accumulates durations in nanoseconds.
#[derive(Debug, Clone)]
pub struct Durations {
    hist: Histogram<u64>,
    count: u64,
    min: u64,
    max: u64,
    sum: u128,
}

/// The summary the reports print; microseconds. Empty when `count` is 0.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Summary {
    /// Number of durations.
    pub count: u64,
    /// Smallest.
    pub min_us: Option<f64>,
    /// Median (HDR, 0.1 % resolution).
    pub p50_us: Option<f64>,
    /// 99th percentile (HDR, 0.1 % resolution).
    pub p99_us: Option<f64>,
    /// Largest.
    pub max_us: Option<f64>,
    /// Arithmetic mean.
    pub mean_us: Option<f64>,
}

impl Default for Durations {
    fn default() -> Self {
        Self::new()
    }
}

impl Durations {
    /// An empty accumulator.
    pub fn new() -> Self {
        // 1 ns .. ~1 hour; auto-resize covers anything longer.
        let mut hist =
            Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("valid HDR bounds");
        hist.auto(true);
        Durations {
            hist,
            count: 0,
            min: u64::MAX,
            max: 0,
            sum: 0,
        }
    }

    /// Adds one duration.
    pub fn record(&mut self, ns: u64) {
        // HDR cannot hold 0; a 0 ns stage (same timestamp) is kept as 1 ns in the histogram.
        let _ = self.hist.record(ns.max(1));
        self.count += 1;
        self.min = self.min.min(ns);
        self.max = self.max.max(ns);
        self.sum += u128::from(ns);
    }

    /// Number of durations so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The summary in microseconds.
    pub fn summary(&self) -> Summary {
        if self.count == 0 {
            return Summary {
                count: 0,
                min_us: None,
                p50_us: None,
                p99_us: None,
                max_us: None,
                mean_us: None,
            };
        }
        // Percentiles are clamped to the exact extremes (HDR reports bucket ends).
        let q = |p: f64| us(self.hist.value_at_quantile(p).clamp(self.min, self.max));
        Summary {
            count: self.count,
            min_us: Some(us(self.min)),
            p50_us: Some(q(0.5)),
            p99_us: Some(q(0.99)),
            max_us: Some(us(self.max)),
            mean_us: Some(us((self.sum / u128::from(self.count)) as u64)),
        }
    }
}

/// Nanoseconds to microseconds, rounded to the nanosecond.
pub fn us(ns: u64) -> f64 {
    ns as f64 / 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_of_known_values() {
        let mut d = Durations::new();
        assert_eq!(d.summary().p50_us, None);
        for v in 1..=100u64 {
            d.record(v * 1_000);
        }
        let s = d.summary();
        assert_eq!((s.count, s.min_us, s.max_us), (100, Some(1.0), Some(100.0)));
        assert!((s.p50_us.unwrap() - 50.0).abs() <= 0.05, "{s:?}");
        assert!((s.p99_us.unwrap() - 99.0).abs() <= 0.1, "{s:?}");
        assert_eq!(s.mean_us, Some(50.5));
    }
}
