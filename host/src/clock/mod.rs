//! Mapping guest generic-counter ticks onto host time, and one-way delays from it.
//!
//! The guest stamps each timestamped echo with its counter when the driver saw the request
//! (`g_rx`) and just before the reply's TX notify (`g_tx`); the host knows when it sent (`t1`)
//! and received (`t4`). Two ways to turn ticks into host nanoseconds:
//!
//! - [`min_rtt`]: PTP-style estimate from the exchanges themselves. In each time window the
//!   exchange with the smallest network round trip `δ = (t4 - t1) - (g_tx - g_rx)` is kept (the
//!   lower envelope, least disturbed by queueing), and a robust line (Theil-Sen) through their
//!   midpoints gives offset and drift. **What it cannot remove:** a midpoint is right only if
//!   both directions took equally long; asymmetry shifts it by `(d_h2g - d_g2h) / 2`, at most
//!   `δ / 2`. So the one-way split is only as good as `asymmetry_bound_ns` (half the smallest
//!   residence-free RTT) and the stated `uncertainty_ns` bounds it; no amount of data fixes it.
//! - [`shared`]: exact, when host and guest read the same hardware counter (arm64 KVM, guest
//!   `CNTPCT_EL0` against host `CNTVCT_EL0` with QEMU's `kvm-no-adjvtime=on`): host readings
//!   that pair the counter with the host clock give the map, good to the readings' brackets.
//! - [`kvm_ptp`]: exact, when KVM's PTP service hands the guest the host's CLOCK_REALTIME and
//!   the guest counter at one instant; the host steps realtime to monotonic in a tight bracket.
//!
//! [`select`] prefers an exact path when it is offered and consistent with the exchanges, and
//! otherwise falls back to the estimate, saying why.
//!
//! Both assume the guest counter is linear in host time over the run (constant drift). The
//! bounds are rigorous under that assumption; a host clock that is stepped or slewed during the
//! run breaks it, and shows up as residuals, i.e. a larger `uncertainty_ns`.

mod fit;
pub mod kvm_ptp;
pub mod min_rtt;
pub mod shared;

use serde::Serialize;
use vmprobe_proto::{echo_reply, CounterKind};

use fit::Fit;
pub use kvm_ptp::{KvmPtp, PtpCall, RealtimeBracket};
pub use min_rtt::MinRttConfig;
pub use shared::{HostCounterReading, SharedCounter};

/// One timestamped echo: host times in ns on one host clock, guest times in counter ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exchange {
    /// Host time the request was sent.
    pub t1_ns: i64,
    /// Guest counter when its driver saw the request.
    pub g_rx: u64,
    /// Guest counter just before the reply's TX notify.
    pub g_tx: u64,
    /// Host time the reply was received.
    pub t4_ns: i64,
}

impl Exchange {
    /// The exchange an echo reply describes (its echoed `host_send_ns` is `t1`), received at
    /// `t4_ns`. `None` when the guest did not stamp both readings or `t1` does not fit an `i64`.
    pub fn from_echo(reply: &echo_reply::Repr, t4_ns: i64) -> Option<Exchange> {
        Some(Exchange {
            t1_ns: i64::try_from(reply.host_send_ns).ok()?,
            g_rx: reply.rx_seen?,
            g_tx: reply.tx.tx_notify?,
            t4_ns,
        })
    }

    /// Measured round trip in ns.
    pub fn rtt_ns(&self) -> i64 {
        self.t4_ns - self.t1_ns
    }
}

/// How guest ticks were mapped to host time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// Estimated from the minimum-RTT exchanges (see [`min_rtt`]).
    MinRttFit,
    /// Exact: host and guest read the same counter (see [`shared`]).
    SharedCounter,
    /// Exact: KVM's PTP service paired the guest counter with host realtime (see [`kvm_ptp`]).
    KvmPtp,
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Method::MinRttFit => "min-rtt-fit",
            Method::SharedCounter => "shared-counter",
            Method::KvmPtp => "kvm-ptp",
        })
    }
}

/// An exact source of the mapping, asked for with `--clock`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exact {
    /// The host's readings of the counter it shares with the guest.
    SharedCounter(SharedCounter),
    /// The guest's KVM PTP readings.
    KvmPtp(KvmPtp),
    /// The source was asked for but is not there, and why (e.g. the guest's PTP absence).
    Unavailable(String),
}

/// Why no mapping could be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClockError {
    /// CNTFRQ of 0: the guest's readings cannot be converted to time.
    #[error("guest counter frequency is 0 Hz")]
    ZeroFrequency,
    /// No exchange survived the sanity checks.
    #[error("no usable exchange ({rejected} of {total} inconsistent: reply before request, or residence longer than the round trip)")]
    NoExchanges {
        /// Exchanges offered.
        total: usize,
        /// Exchanges rejected.
        rejected: usize,
    },
    /// The shared-counter path was given no host readings.
    #[error("no host counter readings for the shared-counter mapping")]
    NoReadings,
    /// Guest and host counters tick at different rates: not the same counter.
    #[error(
        "guest counter runs at {guest_hz} Hz, the host's at {host_hz} Hz: not the same counter"
    )]
    FrequencyMismatch {
        /// Guest CNTFRQ.
        guest_hz: u32,
        /// Host counter frequency.
        host_hz: u32,
    },
    /// The guest reads `CNTVCT_EL0`, offset from the host's counter by an unknown `CNTVOFF_EL2`.
    #[error("guest reads the virtual counter, whose offset from the host's is unknown; boot it with the physical counter or give the offset")]
    VirtualCounter,
    /// The guest said why it cannot read its counter through KVM's PTP service.
    #[error("{0}")]
    PtpAbsent(String),
    /// The guest gave no KVM PTP readings of the counter it stamps with.
    #[error("the guest gave no KVM PTP readings of its {counter} counter")]
    NoPtpReadings {
        /// The counter the guest stamps with.
        counter: &'static str,
    },
    /// A PTP reading maps outside the round trip of the request that fetched it.
    #[error("KVM PTP call {call} maps a reading {by_ns} ns outside its own round trip: host realtime was stepped, or the readings are not this host's")]
    PtpOutsideCall {
        /// Index of the call.
        call: usize,
        /// How far outside (ns).
        by_ns: i64,
    },
    /// The exact mapping makes a one-way delay negative beyond its bound.
    #[error("{method} mapping contradicts exchange {index}: one-way delay {delay_ns} ns, below -{bound_ns:.0} ns; the guest counter is not what the mapping takes it for")]
    Inconsistent {
        /// The mapping refused.
        method: Method,
        /// Index of the worst exchange.
        index: usize,
        /// Its most negative one-way delay (ns).
        delay_ns: i64,
        /// The bound it broke (ns).
        bound_ns: f64,
    },
}

/// The guest counter as the guest reports it (echo replies carry both).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestCounter {
    /// `CNTFRQ_EL0` in Hz.
    pub cntfrq_hz: u32,
    /// Which counter the guest reads.
    pub kind: CounterKind,
}

/// A map from guest ticks to host ns, with what it is worth.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClockMapping {
    /// How it was made.
    pub method: Method,
    /// Guest counter frequency (Hz).
    pub cntfrq_hz: u32,
    /// Host time minus guest time (ticks at the nominal CNTFRQ) at the reference point, in ns.
    pub offset_ns: i64,
    /// Guest counter rate relative to the host clock, in ppm (positive: guest counter fast).
    pub drift_ppm: f64,
    /// Bound on the drift error (ppm); `None` when drift was not measurable (one point).
    pub drift_uncertainty_ppm: Option<f64>,
    /// Bound on |mapped - true host time| over the span the mapping was fitted on (ns).
    pub uncertainty_ns: f64,
    /// The part of the uncertainty path asymmetry alone could cause and nothing here can remove:
    /// half the smallest residence-free round trip (ns). `None` for the exact method.
    pub asymmetry_bound_ns: Option<f64>,
    /// Exchanges offered.
    pub exchanges: usize,
    /// Points the line was fitted through (envelope exchanges, or host readings).
    pub points_used: usize,
    /// Exchanges rejected as inconsistent.
    pub rejected: usize,
    /// Why a requested exact mapping was not used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
    #[serde(skip)]
    fit: Fit,
    #[serde(skip)]
    ref_ticks: u64,
    #[serde(skip)]
    ref_host_ns: i64,
}

/// One exchange split into its parts, in ns.
///
/// By construction `h2g_ns + residence_ns + g2h_ns == rtt_ns` exactly: all three come from the
/// same two mapped instants, `map(g_rx)` and `map(g_tx)`, rounded to whole ns once. The split
/// point's error (the mapping's uncertainty) moves time between `h2g_ns` and `g2h_ns`; the
/// residence is the guest counter difference at the fitted rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct OneWay {
    /// Measured round trip, `t4 - t1`.
    pub rtt_ns: i64,
    /// Host send to guest driver seeing the request, `map(g_rx) - t1`.
    pub h2g_ns: i64,
    /// Guest driver seeing the request to its reply's TX notify, `map(g_tx) - map(g_rx)`.
    pub residence_ns: i64,
    /// Guest TX notify to host receive, `t4 - map(g_tx)`.
    pub g2h_ns: i64,
}

impl ClockMapping {
    fn from_fit(
        method: Method,
        fit: Fit,
        ref_ticks: u64,
        ref_host_ns: i64,
        cntfrq_hz: u32,
    ) -> Self {
        let nominal = 1e9 / f64::from(cntfrq_hz);
        let guest_ns_at_ref = i128::from(ref_ticks) * 1_000_000_000 / i128::from(cntfrq_hz);
        let offset = i128::from(ref_host_ns) + fit.intercept.round() as i128 - guest_ns_at_ref;
        ClockMapping {
            method,
            cntfrq_hz,
            offset_ns: offset.clamp(i64::MIN.into(), i64::MAX.into()) as i64,
            drift_ppm: (nominal / fit.slope - 1.0) * 1e6,
            drift_uncertainty_ppm: fit.slope_error().map(|e| e / fit.slope * 1e6),
            uncertainty_ns: fit.bound,
            asymmetry_bound_ns: None,
            exchanges: 0,
            points_used: 0,
            rejected: 0,
            fallback: None,
            fit,
            ref_ticks,
            ref_host_ns,
        }
    }

    /// The reference point: guest ticks and the host time (ns) they map to. `offset_ns` is
    /// exact there; elsewhere the drift adds `(ticks - reference) * drift`.
    pub fn reference(&self) -> (u64, i64) {
        (self.ref_ticks, self.to_host_ns(self.ref_ticks))
    }

    fn x(&self, ticks: u64) -> f64 {
        (i128::from(ticks) - i128::from(self.ref_ticks)) as f64
    }

    /// Host time (ns) at which the guest counter read `ticks`.
    pub fn to_host_ns(&self, ticks: u64) -> i64 {
        let rel = self.fit.intercept + self.fit.slope * self.x(ticks);
        self.ref_host_ns.saturating_add(rel.round() as i64)
    }

    /// Bound on the error of [`to_host_ns`](Self::to_host_ns) at `ticks`: `uncertainty_ns`
    /// inside the fitted span, growing with the drift bound outside it.
    pub fn uncertainty_at_ns(&self, ticks: u64) -> f64 {
        self.fit.bound_at(self.x(ticks))
    }

    /// A guest counter interval (e.g. interrupt entry to RX seen, a notify's duration) in host
    /// ns, at the fitted rate.
    pub fn duration_ns(&self, ticks: u64) -> f64 {
        ticks as f64 * self.fit.slope
    }

    /// Split an exchange into host-to-guest, guest residence and guest-to-host.
    pub fn one_way(&self, e: &Exchange) -> OneWay {
        let rx = self.to_host_ns(e.g_rx);
        let tx = self.to_host_ns(e.g_tx);
        OneWay {
            rtt_ns: e.rtt_ns(),
            h2g_ns: rx - e.t1_ns,
            residence_ns: tx - rx,
            g2h_ns: e.t4_ns - tx,
        }
    }
}

/// Map the guest counter: exactly through `exact` when it is given and consistent with the
/// exchanges, otherwise by the minimum-RTT estimate (recording in `fallback` why the exact path
/// was refused or is unavailable).
pub fn select(
    exchanges: &[Exchange],
    guest: GuestCounter,
    exact: Option<&Exact>,
    config: &MinRttConfig,
) -> Result<ClockMapping, ClockError> {
    let exact = match exact {
        None => return min_rtt::estimate(exchanges, guest.cntfrq_hz, config),
        Some(Exact::SharedCounter(s)) => {
            shared::estimate(exchanges, guest, s).map_err(|e| e.to_string())
        }
        Some(Exact::KvmPtp(p)) => kvm_ptp::estimate(exchanges, guest, p).map_err(|e| e.to_string()),
        Some(Exact::Unavailable(why)) => Err(why.clone()),
    };
    match exact {
        Ok(m) => Ok(m),
        Err(why) => {
            let mut m = min_rtt::estimate(exchanges, guest.cntfrq_hz, config)?;
            m.fallback = Some(why);
            Ok(m)
        }
    }
}

/// Refuse an exact mapping under which some packet arrived before it was sent, beyond the
/// bound.
fn check_causality(m: &ClockMapping, exchanges: &[Exchange]) -> Result<(), ClockError> {
    let mut worst: Option<(usize, i64, f64, f64)> = None;
    for (index, e) in exchanges.iter().enumerate() {
        let w = m.one_way(e);
        for (delay, ticks) in [(w.h2g_ns, e.g_rx), (w.g2h_ns, e.g_tx)] {
            let bound = m.uncertainty_at_ns(ticks);
            let excess = -(delay as f64) - bound;
            if excess > 0.0 && worst.is_none_or(|(_, _, _, x)| excess > x) {
                worst = Some((index, delay, bound, excess));
            }
        }
    }
    match worst {
        Some((index, delay_ns, bound_ns, _)) => Err(ClockError::Inconsistent {
            method: m.method,
            index,
            delay_ns,
            bound_ns,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests;
