//! The exchanges the clock fit needs, in bounded memory.
//!
//! The minimum-RTT estimate ([`crate::clock::min_rtt`]) only ever uses, per stretch of guest
//! time, the exchange with the smallest network round trip `δ = rtt - residence`. So instead of
//! every exchange this keeps the smallest-`δ` one per bucket of guest time. Buckets start
//! [`INITIAL_WIDTH_TICKS`] wide; when a run outgrows `2 * BUCKETS` of them, neighbours merge
//! pairwise (keeping the better one) and the width doubles. The kept set is therefore between
//! `BUCKETS` and `2 * BUCKETS` exchanges (32 bytes each) however long the run, and each of the
//! estimator's windows (32 by default) spans at least 8 buckets, so its minimum is the true
//! minimum of the exchanges inside it, give or take the partly covered buckets at its edges.

use crate::clock::Exchange;

/// Buckets kept after a merge; at most twice as many exist.
pub const BUCKETS: usize = 256;
/// Width of a bucket before the first merge: 2^16 ticks (about 1 ms at 62.5 MHz).
pub const INITIAL_WIDTH_TICKS: u64 = 1 << 16;

/// Keeps the smallest-`δ` exchange per guest-time bucket.
#[derive(Debug, Clone)]
pub struct Envelope {
    tick_ns: f64,
    origin: Option<u64>,
    width: u64,
    buckets: Vec<Option<(f64, Exchange)>>,
    offered: usize,
    inconsistent: usize,
}

impl Envelope {
    /// An empty envelope for a guest counter running at `cntfrq_hz` (at least 1).
    pub fn new(cntfrq_hz: u32) -> Self {
        Envelope {
            tick_ns: 1e9 / f64::from(cntfrq_hz.max(1)),
            origin: None,
            width: INITIAL_WIDTH_TICKS,
            buckets: Vec::new(),
            offered: 0,
            inconsistent: 0,
        }
    }

    /// Offers one exchange.
    pub fn offer(&mut self, e: Exchange) {
        self.offered += 1;
        if e.t4_ns < e.t1_ns || e.g_tx < e.g_rx {
            self.inconsistent += 1;
            return;
        }
        let delta = e.rtt_ns() as f64 - (e.g_tx - e.g_rx) as f64 * self.tick_ns;
        let origin = *self.origin.get_or_insert(e.g_rx);
        // An exchange before the first one (a guest counter that went back) joins bucket 0.
        let mut index = (e.g_rx.saturating_sub(origin) / self.width) as usize;
        while index >= 2 * BUCKETS {
            self.merge();
            index = (e.g_rx.saturating_sub(origin) / self.width) as usize;
        }
        if self.buckets.len() <= index {
            self.buckets.resize(index + 1, None);
        }
        let slot = &mut self.buckets[index];
        if slot.is_none_or(|(d, _)| delta < d) {
            *slot = Some((delta, e));
        }
    }

    /// Halves the number of buckets: pairs merge into one of twice the width.
    fn merge(&mut self) {
        let merged = self
            .buckets
            .chunks(2)
            .map(|pair| {
                pair.iter()
                    .flatten()
                    .copied()
                    .min_by(|a, b| a.0.total_cmp(&b.0))
            })
            .collect();
        self.buckets = merged;
        self.width *= 2;
    }

    /// The kept exchanges, in guest-time order.
    pub fn kept(&self) -> Vec<Exchange> {
        self.buckets.iter().flatten().map(|(_, e)| *e).collect()
    }

    /// Exchanges offered in total.
    pub fn offered(&self) -> usize {
        self.offered
    }

    /// Exchanges refused outright (reply before request, or residence going backwards).
    pub fn inconsistent(&self) -> usize {
        self.inconsistent
    }

    /// Current bucket width in guest ticks.
    pub fn width_ticks(&self) -> u64 {
        self.width
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(g: u64, rtt: i64) -> Exchange {
        Exchange {
            t1_ns: g as i64 * 16,
            g_rx: g,
            g_tx: g + 10,
            t4_ns: g as i64 * 16 + rtt,
        }
    }

    #[test]
    fn keeps_the_fastest_per_bucket() {
        let mut env = Envelope::new(62_500_000);
        env.offer(ex(10, 900));
        env.offer(ex(20, 500));
        env.offer(ex(30, 700));
        env.offer(ex(INITIAL_WIDTH_TICKS + 10, 800));
        let kept = env.kept();
        assert_eq!(kept, vec![ex(20, 500), ex(INITIAL_WIDTH_TICKS + 10, 800)]);
        assert_eq!(env.offered(), 4);
    }

    #[test]
    fn stays_bounded_and_keeps_the_global_minimum() {
        let mut env = Envelope::new(62_500_000);
        let n = 200_000u64;
        for i in 0..n {
            // The fastest exchange sits in the middle of the run.
            let rtt = if i == n / 2 {
                100
            } else {
                1_000 + (i % 97) as i64
            };
            env.offer(ex(i * 4_096, rtt));
        }
        let kept = env.kept();
        assert!(
            kept.len() <= 2 * BUCKETS && kept.len() >= BUCKETS,
            "{}",
            kept.len()
        );
        assert!(kept.contains(&ex(n / 2 * 4_096, 100)));
        assert!(env.width_ticks() > INITIAL_WIDTH_TICKS);
    }

    #[test]
    fn refuses_impossible_exchanges() {
        let mut env = Envelope::new(62_500_000);
        env.offer(Exchange {
            t1_ns: 100,
            g_rx: 5,
            g_tx: 6,
            t4_ns: 50,
        });
        env.offer(Exchange {
            t1_ns: 100,
            g_rx: 7,
            g_tx: 6,
            t4_ns: 500,
        });
        assert_eq!((env.offered(), env.inconsistent()), (2, 2));
        assert!(env.kept().is_empty());
    }
}
