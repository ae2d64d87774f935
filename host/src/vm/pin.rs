//! CPU pinning: the `--pin VCPU=CPU,...` syntax and `sched_setaffinity` on QEMU's threads.
use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use super::VmError;
use crate::cpus;

/// `--pin` as given: the host CPU for each listed vCPU index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PinSpec {
    /// (vCPU index, host CPU) pairs, vCPU indices unique.
    pub pairs: Vec<(u32, usize)>,
}

/// Why a `--pin` value does not parse.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("bad --pin `{0}`: expected VCPU=CPU pairs separated by commas, e.g. 0=2,1=3")]
pub struct PinParseError(String);

impl FromStr for PinSpec {
    type Err = PinParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || PinParseError(s.to_string());
        let mut pairs: Vec<(u32, usize)> = Vec::new();
        for item in s.split(',') {
            let (v, c) = item.trim().split_once('=').ok_or_else(err)?;
            let v: u32 = v.trim().parse().map_err(|_| err())?;
            let c: usize = c.trim().parse().map_err(|_| err())?;
            if pairs.iter().any(|&(pv, _)| pv == v) {
                return Err(err());
            }
            pairs.push((v, c));
        }
        Ok(PinSpec { pairs })
    }
}

impl fmt::Display for PinSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (v, c)) in self.pairs.iter().enumerate() {
            write!(f, "{}{v}={c}", if i == 0 { "" } else { "," })?;
        }
        Ok(())
    }
}

impl PinSpec {
    /// The host CPU asked for vCPU `vcpu`.
    pub fn cpu_for(&self, vcpu: u32) -> Option<usize> {
        self.pairs
            .iter()
            .find(|&&(v, _)| v == vcpu)
            .map(|&(_, c)| c)
    }

    /// Checks every vCPU index exists and every CPU is one of the host's.
    pub fn check(&self, smp: u32, host_cpus: usize) -> Result<(), VmError> {
        for &(v, c) in &self.pairs {
            if v >= smp {
                return Err(VmError::BadPin(format!(
                    "vCPU {v} does not exist with --smp {smp}"
                )));
            }
            if c >= host_cpus {
                return Err(VmError::BadPin(format!(
                    "CPU {c} does not exist (the host has {host_cpus})"
                )));
            }
        }
        Ok(())
    }
}

/// The default CPU set for QEMU and its vCPUs: every allowed CPU except cpu0 when there are
/// others (cpu0 takes the housekeeping noise), else all.
pub fn default_cpus() -> Vec<usize> {
    let allowed = cpus::allowed().unwrap_or_else(|_| (0..cpus::count()).collect());
    cpus::off_cpu0(&allowed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_spec_parses_and_prints() {
        let p: PinSpec = "0=2, 1=3".parse().unwrap();
        assert_eq!(p.pairs, [(0, 2), (1, 3)]);
        assert_eq!(p.to_string(), "0=2,1=3");
        assert_eq!(p.cpu_for(1), Some(3));
        assert_eq!(p.cpu_for(2), None);
    }

    #[test]
    fn pin_spec_rejects_garbage() {
        for bad in ["", "0", "0=", "=1", "a=1", "0=b", "0=1,0=2", "-1=0"] {
            assert!(bad.parse::<PinSpec>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn pin_check_against_host() {
        let p: PinSpec = "0=1,1=0".parse().unwrap();
        assert!(p.check(2, 2).is_ok());
        assert!(p.check(1, 2).is_err());
        assert!(p.check(2, 1).is_err());
    }

    #[test]
    fn default_cpus_avoid_cpu0_when_possible() {
        let d = default_cpus();
        assert!(!d.is_empty());
        if cpus::allowed().unwrap().len() > 1 {
            assert!(!d.contains(&0));
        }
    }

    #[test]
    fn affinity_round_trip_on_a_thread() {
        let allowed = cpus::allowed().unwrap();
        let one = *allowed.last().unwrap();
        std::thread::spawn(move || {
            // SAFETY: gettid has no preconditions.
            let tid = unsafe { libc::gettid() };
            cpus::set(tid, &[one]).unwrap();
            assert_eq!(cpus::of(tid).unwrap(), vec![one]);
        })
        .join()
        .unwrap();
    }
}
