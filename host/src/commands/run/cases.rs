//! A run's figures as test cases, checked against its limits: `<configuration>-run` (did it
//! measure), `-boot`, per protocol the round trip's min, mean, p50, p99, p99.9, max and lost
//! (`-udp-p99`), the guest residence with `--probe` (`-udp-residence-p99`) and the host floor
//! (`-udp-floor-p99`). `--format lava` prints them; the limit checks go into every format.
use super::results::{FloorOutcome, ProbeOutcome, RunResults};
use crate::export::lava::{Outcome, Sheet, Unit};
use crate::limits::{Figure, Limit, LimitError, Value};
use crate::rr::Proto;

/// The series a run's limits may name.
const SCOPES: [&str; 7] = [
    "udp",
    "tcp",
    "floor",
    "udp-floor",
    "tcp-floor",
    "residence",
    "udp-residence",
];

/// Checks limits before anything boots: known series, and a residence only with `--probe`.
pub fn check(limits: &[Limit], probe: bool) -> Result<(), LimitError> {
    for l in limits {
        l.check_scope(&SCOPES)?;
        if !probe && l.scope.as_deref().is_some_and(|s| s.ends_with("residence")) {
            return Err(LimitError {
                text: l.text.clone(),
                reason: "the guest residence is measured with --probe".into(),
            });
        }
    }
    Ok(())
}

/// The cases of `r`, named after `config`, checked against `limits`.
pub fn sheet(config: &str, r: &RunResults, limits: &[Limit]) -> Sheet {
    let mut s = Sheet::new(config, limits);
    let ok = r.error.is_none() && !r.interrupted && r.reports().next().is_some();
    s.status(None, "run", if ok { Outcome::Pass } else { Outcome::Fail });
    let boot = r.boot_ms.map(|ms| Value::Time(ms * 1e6));
    s.figure(None, false, Figure::Boot, boot, Unit::Ms);
    for report in r.reports() {
        s.rr(report.proto.as_str(), true, report);
    }
    if let Some(ProbeOutcome::Breakdown(b)) = &r.probe {
        s.summary("udp-residence", false, &b.guest_residence_us);
    }
    if let Some(FloorOutcome::Floor(f)) = &r.host_floor {
        for p in [Proto::Udp, Proto::Tcp] {
            if let Some(report) = f.report(p) {
                s.rr(&format!("{p}-floor"), false, report);
            }
        }
    }
    s.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_are_checked_before_boot() {
        let l = |s: &str| vec![s.parse::<Limit>().unwrap()];
        assert!(check(&l("udp-p99=1ms"), false).is_ok());
        assert!(check(&l("floor-p50=1ms"), false).is_ok());
        assert!(check(&l("residence-p99=1ms"), true).is_ok());
        let e = check(&l("residence-p99=1ms"), false).unwrap_err();
        assert!(e.to_string().contains("with --probe"), "{e}");
        let e = check(&l("hypercall-p99=1us"), true).unwrap_err();
        assert!(e.to_string().contains("no series 'hypercall'"), "{e}");
    }
}
