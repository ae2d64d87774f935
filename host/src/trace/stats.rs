//! Stage durations, summarised by the one statistics core ([`crate::stats::Recorder`]):
//! exact count, min, max and mean; nearest-rank percentiles.

use serde::Serialize;

use crate::stats::Recorder;

/// Accumulates durations in nanoseconds.
#[derive(Debug, Clone)]
pub struct Durations(Recorder);

/// A stage's summary as the reports print it; microseconds. Empty when `count` is 0.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StageSummary {
    /// Number of durations.
    pub count: u64,
    /// Smallest.
    pub min_us: Option<f64>,
    /// Median (nearest rank).
    pub p50_us: Option<f64>,
    /// 99th percentile (nearest rank).
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
        Durations(Recorder::new(0))
    }

    /// Adds one duration.
    pub fn record(&mut self, ns: u64) {
        self.0.record_value(ns);
    }

    /// Number of durations so far.
    pub fn count(&self) -> u64 {
        self.0.samples()
    }

    /// The summary in microseconds.
    pub fn summary(&self) -> StageSummary {
        let s = self.0.summary();
        StageSummary {
            count: s.samples,
            min_us: s.min_us,
            p50_us: s.p50_us,
            p99_us: s.p99_us,
            max_us: s.max_us,
            mean_us: s.mean_us,
        }
    }
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
        // Nearest rank: the 50th and 99th of 100 values, exactly.
        assert_eq!((s.p50_us, s.p99_us), (Some(50.0), Some(99.0)));
        assert_eq!(s.mean_us, Some(50.5));
    }

    #[test]
    fn the_mean_is_not_truncated() {
        let mut d = Durations::new();
        for ns in [1, 2] {
            d.record(ns);
        }
        assert_eq!(d.summary().mean_us, Some(0.0015));
    }
}
