//! Live figures for a progress display: p50/p99/max of the most recent window of round
//! trips, and the run's maximum so far, published through atomics so a display thread can
//! read them while the measuring thread runs.
//!
//! The window histogram has 2 significant digits (a few thousand counters whatever the
//! values), so publishing it once per window costs microseconds on the measuring thread,
//! outside any timed window, and memory stays constant however long the run.
use std::sync::atomic::{AtomicU64, Ordering};

use hdrhistogram::Histogram;

/// How long a window lasts, ns.
pub const WINDOW_NS: u64 = 1_000_000_000;

/// The published figures (ns; 0 until the first window closes).
#[derive(Debug, Default)]
pub struct LiveStats {
    /// Median of the last window.
    pub p50_ns: AtomicU64,
    /// 99th percentile of the last window.
    pub p99_ns: AtomicU64,
    /// Largest sample of the last window.
    pub max_ns: AtomicU64,
    /// Round trips in the last window.
    pub window_samples: AtomicU64,
    /// Largest sample of the whole run so far.
    pub run_max_ns: AtomicU64,
}

/// A snapshot of [`LiveStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LiveSnapshot {
    /// Median of the last window, ns.
    pub p50_ns: u64,
    /// 99th percentile of the last window, ns.
    pub p99_ns: u64,
    /// Largest sample of the last window, ns.
    pub max_ns: u64,
    /// Round trips in the last window.
    pub window_samples: u64,
    /// Largest sample so far, ns.
    pub run_max_ns: u64,
}

impl LiveStats {
    /// Reads the current figures.
    pub fn snapshot(&self) -> LiveSnapshot {
        LiveSnapshot {
            p50_ns: self.p50_ns.load(Ordering::Relaxed),
            p99_ns: self.p99_ns.load(Ordering::Relaxed),
            max_ns: self.max_ns.load(Ordering::Relaxed),
            window_samples: self.window_samples.load(Ordering::Relaxed),
            run_max_ns: self.run_max_ns.load(Ordering::Relaxed),
        }
    }
}

impl LiveSnapshot {
    /// `last 1s p50 157us p99 304us max 310us, run max 19.2ms` (short enough to sit beside a
    /// progress bar on an 80-column terminal), or `None` before the first window closed.
    pub fn line(&self) -> Option<String> {
        (self.window_samples > 0).then(|| {
            format!(
                "last 1s p50 {} p99 {} max {}, run max {}",
                human_ns(self.p50_ns),
                human_ns(self.p99_ns),
                human_ns(self.max_ns),
                human_ns(self.run_max_ns)
            )
        })
    }
}

/// `850ns`, `15.3us`, `157us`, `19.2ms`, `1.25s`.
pub fn human_ns(ns: u64) -> String {
    match ns {
        0..1_000 => format!("{ns}ns"),
        1_000..100_000 => format!("{:.1}us", ns as f64 / 1e3),
        100_000..1_000_000 => format!("{:.0}us", ns as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1}ms", ns as f64 / 1e6),
        _ => format!("{:.2}s", ns as f64 / 1e9),
    }
}

/// The measuring thread's side: records round trips, publishes at each window's end.
#[derive(Debug)]
pub struct LiveWindow {
    histogram: Histogram<u32>,
    window_start_ns: Option<u64>,
    run_max_ns: u64,
}

impl Default for LiveWindow {
    fn default() -> Self {
        let mut histogram =
            Histogram::new_with_bounds(1, 1 << 30, 2).expect("constant histogram bounds are valid");
        histogram.auto(true);
        Self {
            histogram,
            window_start_ns: None,
            run_max_ns: 0,
        }
    }
}

impl LiveWindow {
    /// Records a round trip sent at `mono_ns`; publishes to `out` when a window has passed.
    pub fn record(&mut self, rtt_ns: u64, mono_ns: u64, out: &LiveStats) {
        let _ = self.histogram.record(rtt_ns.max(1));
        self.run_max_ns = self.run_max_ns.max(rtt_ns);
        let start = *self.window_start_ns.get_or_insert(mono_ns);
        if mono_ns.saturating_sub(start) >= WINDOW_NS {
            self.publish(out);
            self.window_start_ns = Some(mono_ns);
        }
    }

    fn publish(&mut self, out: &LiveStats) {
        let h = &self.histogram;
        out.p50_ns
            .store(h.value_at_quantile(0.5), Ordering::Relaxed);
        out.p99_ns
            .store(h.value_at_quantile(0.99), Ordering::Relaxed);
        out.max_ns.store(h.max(), Ordering::Relaxed);
        out.run_max_ns.store(self.run_max_ns, Ordering::Relaxed);
        out.window_samples.store(h.len(), Ordering::Relaxed);
        self.histogram.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publishes_each_window_and_keeps_the_run_max() {
        let out = LiveStats::default();
        let mut w = LiveWindow::default();
        assert_eq!(out.snapshot().line(), None);
        // Window 1: 0.1 ms x 99, one 50 ms spike.
        for i in 0..99 {
            w.record(100_000, i * 1_000_000, &out);
        }
        w.record(50_000_000, 99_000_000, &out);
        assert_eq!(out.snapshot().window_samples, 0, "window not over yet");
        w.record(100_000, WINDOW_NS, &out); // closes window 1 (and counts in it)
        let s = out.snapshot();
        assert_eq!(s.window_samples, 101);
        assert!((99_000..=101_000).contains(&s.p50_ns), "{s:?}");
        assert!((99_000..=101_000).contains(&s.p99_ns), "{s:?}");
        assert!(s.max_ns >= 49_000_000, "{s:?}");
        // Window 2 without the spike: its max drops, the run max stays.
        for i in 1..=20 {
            w.record(200_000, WINDOW_NS + i * 60_000_000, &out);
        }
        let s = out.snapshot();
        assert!(s.max_ns < 1_000_000, "{s:?}");
        assert_eq!(s.run_max_ns, 50_000_000);
        assert_eq!(
            s.line().unwrap(),
            format!(
                "last 1s p50 {} p99 {} max {}, run max 50.0ms",
                human_ns(s.p50_ns),
                human_ns(s.p99_ns),
                human_ns(s.max_ns)
            )
        );
    }

    #[test]
    fn human_units() {
        assert_eq!(human_ns(850), "850ns");
        assert_eq!(human_ns(15_300), "15.3us");
        assert_eq!(human_ns(157_000), "157us");
        assert_eq!(human_ns(19_200_000), "19.2ms");
        assert_eq!(human_ns(1_250_000_000), "1.25s");
    }
}
