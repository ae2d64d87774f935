//! PTP-style estimate of the guest counter's offset and drift from the exchanges alone.
//!
//! 1. Drop exchanges that cannot be right: reply before request, or guest residence longer
//!    than the round trip (counted in `rejected`).
//! 2. Split the run into `windows` equal stretches of guest time and keep, from each, the
//!    exchange with the smallest network round trip `δ = rtt - residence` (the lower envelope:
//!    queueing only ever adds delay, so the fastest exchange is the least disturbed).
//! 3. Drop envelope points whose `δ` is far above the others' (a window where every packet was
//!    delayed): more than 3 scaled MADs above the median `δ`.
//! 4. Fit a Theil-Sen line through the midpoints: guest `(g_rx + g_tx) / 2` against host
//!    `(t1 + t4) / 2`. With equal one-way delays the midpoints coincide; otherwise the host
//!    midpoint is off by `(d_h2g - d_g2h) / 2`, at most `δ / 2`, which is each point's
//!    `half_width` in the fit's bound.

use super::fit::{self, median, Point};
use super::{ClockError, ClockMapping, Exchange, Method};

/// Tuning of the estimate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinRttConfig {
    /// Number of guest-time windows, i.e. at most this many envelope points.
    pub windows: usize,
}

impl Default for MinRttConfig {
    fn default() -> Self {
        MinRttConfig { windows: 32 }
    }
}

/// An exchange reduced to what the fit needs; doubled values keep midpoints exact integers.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    g_sum: i128,
    t_sum: i128,
    delta_ns: f64,
}

/// Estimate the mapping from `exchanges` (any order) of a guest whose counter runs at
/// `cntfrq_hz`.
pub fn estimate(
    exchanges: &[Exchange],
    cntfrq_hz: u32,
    config: &MinRttConfig,
) -> Result<ClockMapping, ClockError> {
    if cntfrq_hz == 0 {
        return Err(ClockError::ZeroFrequency);
    }
    let tick_ns = 1e9 / f64::from(cntfrq_hz);
    let valid: Vec<Candidate> = exchanges
        .iter()
        .filter(|e| e.t4_ns >= e.t1_ns && e.g_tx >= e.g_rx)
        .map(|e| Candidate {
            g_sum: i128::from(e.g_rx) + i128::from(e.g_tx),
            t_sum: i128::from(e.t1_ns) + i128::from(e.t4_ns),
            delta_ns: e.rtt_ns() as f64 - (e.g_tx - e.g_rx) as f64 * tick_ns,
        })
        .filter(|c| c.delta_ns >= -tick_ns)
        .collect();
    let rejected = exchanges.len() - valid.len();
    if valid.is_empty() {
        return Err(ClockError::NoExchanges {
            total: exchanges.len(),
            rejected,
        });
    }

    let mut envelope = lower_envelope(&valid, config.windows.max(1));
    drop_slow_windows(&mut envelope);
    envelope.sort_by_key(|c| c.g_sum);
    // Reference: the middle envelope point, floored to whole ticks and ns.
    let reference = envelope[envelope.len() / 2];
    let ref_ticks = (reference.g_sum / 2) as u64;
    let ref_host_ns = (reference.t_sum / 2) as i64;
    let points: Vec<Point> = envelope
        .iter()
        .map(|c| Point {
            x: (c.g_sum - 2 * i128::from(ref_ticks)) as f64 / 2.0,
            y: (c.t_sum - 2 * i128::from(ref_host_ns)) as f64 / 2.0,
            half_width: c.delta_ns.max(0.0) / 2.0,
        })
        .collect();
    // Quantisation: each reading is up to a tick early, and so is the residence taken off δ.
    let fit = fit::fit(&points, tick_ns, 2.0 * tick_ns);
    let mut m = ClockMapping::from_fit(Method::MinRttFit, fit, ref_ticks, ref_host_ns, cntfrq_hz);
    let min_delta = envelope
        .iter()
        .map(|c| c.delta_ns.max(0.0))
        .fold(f64::INFINITY, f64::min);
    m.asymmetry_bound_ns = Some(min_delta / 2.0);
    m.exchanges = exchanges.len();
    m.points_used = points.len();
    m.rejected = rejected;
    Ok(m)
}

/// The smallest-`δ` candidate of each of `windows` equal stretches of guest time.
fn lower_envelope(valid: &[Candidate], windows: usize) -> Vec<Candidate> {
    let lo = valid.iter().map(|c| c.g_sum).min().unwrap_or(0);
    let hi = valid.iter().map(|c| c.g_sum).max().unwrap_or(0);
    let span = hi - lo + 1;
    let windows = windows.min(valid.len());
    let mut best: Vec<Option<Candidate>> = vec![None; windows];
    for c in valid {
        let w = ((c.g_sum - lo) * windows as i128 / span) as usize;
        let slot = &mut best[w.min(windows - 1)];
        if slot.is_none_or(|b| c.delta_ns < b.delta_ns) {
            *slot = Some(*c);
        }
    }
    best.into_iter().flatten().collect()
}

/// Remove envelope points whose `δ` is an outlier above the rest (keeps at least the median).
fn drop_slow_windows(envelope: &mut Vec<Candidate>) {
    let mut deltas: Vec<f64> = envelope.iter().map(|c| c.delta_ns).collect();
    let med = median(&mut deltas);
    let mut dev: Vec<f64> = deltas.iter().map(|d| (d - med).abs()).collect();
    let mad = median(&mut dev) * 1.4826;
    let limit = med + 3.0 * mad;
    envelope.retain(|c| c.delta_ns <= limit);
}
