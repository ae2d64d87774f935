//! CPU pinning: the `--pin VCPU=CPU,...` syntax and `sched_setaffinity` on QEMU's threads.
use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use super::VmError;

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

/// Number of CPUs this process may run on.
pub fn host_cpu_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The default CPU set for QEMU and its vCPUs: every allowed CPU except cpu0 when there are
/// others (cpu0 takes the housekeeping noise), else all.
pub fn default_cpus() -> Vec<usize> {
    let allowed = current_affinity().unwrap_or_else(|_| (0..host_cpu_count()).collect());
    let off0: Vec<usize> = allowed.iter().copied().filter(|&c| c != 0).collect();
    if off0.is_empty() {
        allowed
    } else {
        off0
    }
}

/// The CPUs the calling thread may run on.
pub fn current_affinity() -> std::io::Result<Vec<usize>> {
    // SAFETY: cpu_set_t is plain data; all-zero is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: the pointer and size describe `set`, which lives across the call.
    let r = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((0..libc::CPU_SETSIZE as usize)
        // SAFETY: `c` is below CPU_SETSIZE, the set's capacity.
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect())
}

/// Sets the CPU affinity of thread (or process) `tid` to `cpus`.
pub fn set_affinity(tid: i32, cpus: &[usize]) -> std::io::Result<()> {
    // SAFETY: cpu_set_t is plain data; all-zero is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &c in cpus {
        if c >= libc::CPU_SETSIZE as usize {
            return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
        }
        // SAFETY: `c` was checked to be below CPU_SETSIZE.
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    // SAFETY: the pointer and size describe `set`; sched_setaffinity only reads it.
    let r = unsafe { libc::sched_setaffinity(tid, std::mem::size_of_val(&set), &set) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Reads the affinity of thread `tid` from /proc (for reports and tests).
pub fn affinity_of(tid: i32) -> std::io::Result<Vec<usize>> {
    let status = std::fs::read_to_string(format!("/proc/{tid}/status"))?;
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .ok_or_else(|| std::io::Error::other("no Cpus_allowed_list"))?;
    parse_cpu_list(list.trim()).ok_or_else(|| std::io::Error::other("bad Cpus_allowed_list"))
}

/// Parses a kernel CPU list such as `0-2,5`.
pub fn parse_cpu_list(s: &str) -> Option<Vec<usize>> {
    let mut out = Vec::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => out.extend(a.parse::<usize>().ok()?..=b.parse::<usize>().ok()?),
            None => out.push(part.parse().ok()?),
        }
    }
    Some(out)
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
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-2,5"), Some(vec![0, 1, 2, 5]));
        assert_eq!(parse_cpu_list("1"), Some(vec![1]));
        assert_eq!(parse_cpu_list("x"), None);
    }

    #[test]
    fn default_cpus_avoid_cpu0_when_possible() {
        let d = default_cpus();
        assert!(!d.is_empty());
        if current_affinity().unwrap().len() > 1 {
            assert!(!d.contains(&0));
        }
    }

    #[test]
    fn affinity_round_trip_on_a_thread() {
        let allowed = current_affinity().unwrap();
        let one = *allowed.last().unwrap();
        std::thread::spawn(move || {
            // SAFETY: gettid has no preconditions.
            let tid = unsafe { libc::gettid() };
            set_affinity(tid, &[one]).unwrap();
            assert_eq!(affinity_of(tid).unwrap(), vec![one]);
        })
        .join()
        .unwrap();
    }
}
