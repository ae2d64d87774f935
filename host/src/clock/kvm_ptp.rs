//! Exact mapping from KVM's PTP service (the one Linux's `ptp_kvm` uses).
//!
//! On arm64 KVM the guest can ask the hypervisor for the host's CLOCK_REALTIME and its own
//! counter taken at one instant, so a reading has no path in it at all. The host then only has
//! to step from CLOCK_REALTIME to CLOCK_MONOTONIC, the clock the exchanges are stamped with: it
//! reads monotonic, realtime, monotonic (a [`RealtimeBracket`]) right after each call and keeps
//! the tightest of several tries. The two clocks are slewed together, so their difference only
//! moves when realtime is stepped; each call's readings use its own bracket, and every reading
//! must map inside its own request's round trip, which catches a step in between.
//!
//! A line through the mapped readings (the guest counter may drift against the host clock)
//! maps any tick to host ns, good to half the widest bracket plus the fit's residuals. The
//! guest's counter is read by the hypervisor, so this holds for the virtual counter too,
//! whatever offset KVM gives it, and needs nothing from the host's own counter.

use vmprobe_proto::clock_reply::Reading;
use vmprobe_proto::CounterKind;

use super::fit::{self, Point};
use super::{check_causality, ClockError, ClockMapping, Exchange, GuestCounter, Method};

/// Host CLOCK_REALTIME read between two CLOCK_MONOTONIC reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RealtimeBracket {
    /// CLOCK_MONOTONIC (ns) just before the realtime read.
    pub mono_before_ns: i64,
    /// CLOCK_REALTIME (ns since the epoch).
    pub realtime_ns: i64,
    /// CLOCK_MONOTONIC (ns) just after it.
    pub mono_after_ns: i64,
}

impl RealtimeBracket {
    /// How far apart the two monotonic reads were (ns): twice the step's uncertainty.
    pub fn width_ns(&self) -> i64 {
        self.mono_after_ns - self.mono_before_ns
    }

    /// Twice (realtime - monotonic), so the midpoint stays exact.
    fn step2(&self) -> i128 {
        2 * i128::from(self.realtime_ns)
            - i128::from(self.mono_before_ns)
            - i128::from(self.mono_after_ns)
    }
}

/// One answered clock request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PtpCall {
    /// The guest counter the readings pair with realtime.
    pub counter: CounterKind,
    /// The readings, in the order the guest took them.
    pub readings: Vec<Reading>,
    /// CLOCK_MONOTONIC (ns) just before the request was sent.
    pub sent_ns: i64,
    /// CLOCK_MONOTONIC (ns) just after the reply was received.
    pub received_ns: i64,
    /// The tightest realtime-to-monotonic bracket taken right after the call.
    pub bracket: RealtimeBracket,
}

/// What the guest's PTP service gave over a run.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KvmPtp {
    /// Calls before and after the run (both ends, so the drift is measured over the run).
    pub calls: Vec<PtpCall>,
    /// Counter kinds the guest could not read through the service, and why.
    pub refused: Vec<(CounterKind, String)>,
}

/// Map the guest counter through the PTP readings of the counter the guest stamps with.
pub fn estimate(
    exchanges: &[Exchange],
    guest: GuestCounter,
    ptp: &KvmPtp,
) -> Result<ClockMapping, ClockError> {
    if guest.cntfrq_hz == 0 {
        return Err(ClockError::ZeroFrequency);
    }
    // (counter, twice the monotonic ns, bracket half-width, call index)
    let mut mapped = Vec::new();
    for (index, call) in ptp.calls.iter().enumerate() {
        if call.counter != guest.kind {
            continue;
        }
        let half_width = call.bracket.width_ns().unsigned_abs() as f64 / 2.0;
        for r in &call.readings {
            let mono2 = 2 * i128::from(r.realtime_ns) - call.bracket.step2();
            let mono = mono2 as f64 / 2.0;
            let early = call.sent_ns as f64 - half_width - mono;
            let late = mono - call.received_ns as f64 - half_width;
            let outside = early.max(late);
            if outside > 0.0 {
                return Err(ClockError::PtpOutsideCall {
                    call: index,
                    by_ns: outside.ceil() as i64,
                });
            }
            mapped.push((r.counter, mono2, half_width));
        }
    }
    let Some(&(ref_ticks, ref_mono2, _)) = mapped.first() else {
        return Err(match ptp.refused.iter().find(|(k, _)| *k == guest.kind) {
            Some((_, why)) => ClockError::PtpAbsent(why.clone()),
            None => ClockError::NoPtpReadings {
                counter: guest.kind.name(),
            },
        });
    };
    let ref_host_ns = (ref_mono2.div_euclid(2)) as i64;
    let points: Vec<Point> = mapped
        .iter()
        .map(|&(ticks, mono2, half_width)| Point {
            x: (i128::from(ticks) - i128::from(ref_ticks)) as f64,
            y: (mono2 - 2 * i128::from(ref_host_ns)) as f64 / 2.0,
            half_width,
        })
        .collect();
    // The hypervisor converts one counter read to realtime: the pair is exact to the ns.
    let tick_ns = 1e9 / f64::from(guest.cntfrq_hz);
    let fit = fit::fit(&points, tick_ns, 1.0);
    let mut m =
        ClockMapping::from_fit(Method::KvmPtp, fit, ref_ticks, ref_host_ns, guest.cntfrq_hz);
    m.exchanges = exchanges.len();
    m.points_used = points.len();
    check_causality(&m, exchanges)?;
    Ok(m)
}
