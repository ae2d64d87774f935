//! Exact mapping when host and guest read the same hardware counter.
//!
//! Under KVM on arm64 the guest's physical counter `CNTPCT_EL0` is the host's counter, which
//! host user space reads as `CNTVCT_EL0` (the host's virtual offset is zero); QEMU's
//! `kvm-no-adjvtime=on` keeps KVM from shifting the guest's view across VM pauses. Then a guest
//! tick is a host counter tick, and all that is left is converting host counter to host clock:
//! the host reads its clock, the counter, and its clock again (a [`HostCounterReading`]), a few
//! times over the run; a line through those readings (the clock may be slewed against the
//! counter) maps any tick to host ns, good to half the widest read bracket plus the fit's
//! residuals. No path asymmetry is involved.
//!
//! Whether the counters really are shared is checked, not assumed: the guest must report the
//! physical counter at the host's frequency (or the caller must give the offset), and the
//! mapping must not make any exchange's one-way delay negative beyond its bound.

use super::fit::{self, Point};
use super::{check_causality, ClockError, ClockMapping, Exchange, GuestCounter, Method};
use vmprobe_proto::CounterKind;

/// Host clock read on both sides of one host counter read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostCounterReading {
    /// Host clock (ns) just before the counter read.
    pub host_before_ns: i64,
    /// Host counter (`CNTVCT_EL0`) value.
    pub counter: u64,
    /// Host clock (ns) just after the counter read.
    pub host_after_ns: i64,
}

/// What the host knows about the counter it shares with the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedCounter {
    /// Readings taken over the run (at least one; two or more also measure the rate). Take one
    /// before the first exchange and one after the last: outside the readings' span the bound
    /// grows with the rate uncertainty.
    pub readings: Vec<HostCounterReading>,
    /// Host counter frequency (`CNTFRQ_EL0` on the host), Hz.
    pub counter_hz: u32,
    /// Guest ticks minus host counter ticks, when known. `None`: the counters are the same
    /// (guest `CNTPCT_EL0`), which requires the guest to report the physical counter.
    pub guest_minus_host_ticks: Option<i64>,
}

/// Map the guest counter through the host's readings of the same counter.
pub fn estimate(
    exchanges: &[Exchange],
    guest: GuestCounter,
    shared: &SharedCounter,
) -> Result<ClockMapping, ClockError> {
    if guest.cntfrq_hz == 0 || shared.counter_hz == 0 {
        return Err(ClockError::ZeroFrequency);
    }
    if guest.cntfrq_hz != shared.counter_hz {
        return Err(ClockError::FrequencyMismatch {
            guest_hz: guest.cntfrq_hz,
            host_hz: shared.counter_hz,
        });
    }
    let offset = match shared.guest_minus_host_ticks {
        Some(o) => o,
        None if guest.kind == CounterKind::Physical => 0,
        None => return Err(ClockError::VirtualCounter),
    };
    let first = shared.readings.first().ok_or(ClockError::NoReadings)?;
    let ref_ticks = (i128::from(first.counter) + i128::from(offset)).max(0) as u64;
    let ref_host_ns = first.host_before_ns;
    let points: Vec<Point> = shared
        .readings
        .iter()
        .map(|r| {
            let guest_ticks = i128::from(r.counter) + i128::from(offset);
            let mid2 = i128::from(r.host_before_ns) + i128::from(r.host_after_ns);
            Point {
                x: (guest_ticks - i128::from(ref_ticks)) as f64,
                y: (mid2 - 2 * i128::from(ref_host_ns)) as f64 / 2.0,
                half_width: (r.host_after_ns - r.host_before_ns).unsigned_abs() as f64 / 2.0,
            }
        })
        .collect();
    let tick_ns = 1e9 / f64::from(guest.cntfrq_hz);
    let fit = fit::fit(&points, tick_ns, tick_ns);
    let mut m = ClockMapping::from_fit(
        Method::SharedCounter,
        fit,
        ref_ticks,
        ref_host_ns,
        guest.cntfrq_hz,
    );
    m.exchanges = exchanges.len();
    m.points_used = points.len();
    check_causality(&m, exchanges)?;
    Ok(m)
}
