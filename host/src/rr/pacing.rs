//! Pacing of transaction starts, like netperf's `-w interval -b burst`: every `interval`,
//! `burst` transactions back to back. The schedule is absolute (slot k starts at
//! anchor + k·interval), so it does not drift; a transaction is never started early. When
//! the loop falls more than a whole interval behind (a stall, a lost reply waiting for its
//! timeout), the missed slots are skipped and the schedule re-anchors at the present instead
//! of firing a catch-up storm.
use std::time::Duration;

/// Pacing parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pacing {
    /// Time between the starts of two bursts.
    pub interval: Duration,
    /// Transactions per burst (at least 1).
    pub burst: u32,
}

/// The schedule state of a paced run.
#[derive(Debug, Clone)]
pub struct Pacer {
    interval_ns: u64,
    burst: u32,
    anchor_ns: Option<u64>,
    slot: u64,
    in_burst: u32,
}

impl Pacer {
    /// A schedule whose first slot is the first call to [`Pacer::next_start`].
    pub fn new(pacing: Pacing) -> Self {
        Self {
            interval_ns: u64::try_from(pacing.interval.as_nanos()).unwrap_or(u64::MAX),
            burst: pacing.burst.max(1),
            anchor_ns: None,
            slot: 0,
            in_burst: 0,
        }
    }

    /// The earliest CLOCK_MONOTONIC time at which the next transaction may start, given the
    /// time `now_ns`; the caller waits until then and starts it (a time in the past means now).
    pub fn next_start(&mut self, now_ns: u64) -> u64 {
        let anchor = *self.anchor_ns.get_or_insert(now_ns);
        if self.in_burst == self.burst {
            self.in_burst = 0;
            self.slot += 1;
        }
        let mut start = anchor.saturating_add(self.slot.saturating_mul(self.interval_ns));
        if self.in_burst == 0 && now_ns > start.saturating_add(self.interval_ns) {
            // More than an interval late for a new burst: skip the missed slots.
            self.anchor_ns = Some(now_ns);
            self.slot = 0;
            start = now_ns;
        }
        self.in_burst += 1;
        start
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pacer(interval_us: u64, burst: u32) -> Pacer {
        Pacer::new(Pacing {
            interval: Duration::from_micros(interval_us),
            burst,
        })
    }

    #[test]
    fn absolute_schedule_with_bursts() {
        let mut p = pacer(10, 2);
        // Transactions take 1 us; starts come out at 0,1 then 10,11 then 20,21 us.
        let mut now = 1_000;
        let mut starts = Vec::new();
        for _ in 0..6 {
            let s = p.next_start(now);
            now = now.max(s) + 1_000;
            starts.push(s - 1_000);
        }
        assert_eq!(starts, [0, 0, 10_000, 10_000, 20_000, 20_000]);
    }

    #[test]
    fn slow_transactions_start_immediately_without_drift() {
        let mut p = pacer(10, 1);
        assert_eq!(p.next_start(0), 0);
        // The first transaction took 15 us: the next starts late (now), the third on schedule.
        assert_eq!(p.next_start(15_000), 10_000);
        assert_eq!(p.next_start(16_000), 20_000);
    }

    #[test]
    fn long_stall_reanchors() {
        let mut p = pacer(10, 1);
        assert_eq!(p.next_start(0), 0);
        // Stalled 100 us: start now, and the following slot is one interval later.
        assert_eq!(p.next_start(100_000), 100_000);
        assert_eq!(p.next_start(100_500), 110_000);
    }
}
