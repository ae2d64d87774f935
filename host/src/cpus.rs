//! CPU affinity: which CPUs a thread may run on, and the "keep off cpu0" default.
//!
//! The users pin everything involved in a measurement away from cpu0, which takes the
//! housekeeping noise (timer ticks, IRQs, kernel threads); the measuring thread and QEMU's
//! threads share this policy.
use std::io;

/// Number of CPUs this process may run on.
pub fn count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The CPUs the calling thread may run on.
pub fn allowed() -> io::Result<Vec<usize>> {
    // SAFETY: cpu_set_t is plain data; all-zero is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: the pointer and size describe `set`, which lives across the call.
    let r = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((0..libc::CPU_SETSIZE as usize)
        // SAFETY: `c` is below CPU_SETSIZE, the set's capacity.
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect())
}

/// Restricts thread (or process) `tid` to `cpus`; `tid` 0 is the calling thread.
pub fn set(tid: i32, cpus: &[usize]) -> io::Result<()> {
    // SAFETY: cpu_set_t is plain data; all-zero is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &c in cpus {
        if c >= libc::CPU_SETSIZE as usize {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        // SAFETY: `c` was checked to be below CPU_SETSIZE.
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    // SAFETY: the pointer and size describe `set`; sched_setaffinity only reads it.
    let r = unsafe { libc::sched_setaffinity(tid, std::mem::size_of_val(&set), &set) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `allowed` without cpu0 when that leaves any CPU, else `allowed` itself.
pub fn off_cpu0(allowed: &[usize]) -> Vec<usize> {
    let others: Vec<usize> = allowed.iter().copied().filter(|&c| c != 0).collect();
    if others.is_empty() {
        allowed.to_vec()
    } else {
        others
    }
}

/// Reads the affinity of thread `tid` from /proc (for reports and tests).
pub fn of(tid: i32) -> io::Result<Vec<usize>> {
    let status = std::fs::read_to_string(format!("/proc/{tid}/status"))?;
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .ok_or_else(|| io::Error::other("no Cpus_allowed_list"))?;
    parse_list(list.trim()).ok_or_else(|| io::Error::other("bad Cpus_allowed_list"))
}

/// Parses a kernel CPU list such as `0-2,5`.
pub fn parse_list(s: &str) -> Option<Vec<usize>> {
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
    fn off_cpu0_keeps_cpu0_only_when_alone() {
        assert_eq!(off_cpu0(&[0, 1, 2]), [1, 2]);
        assert_eq!(off_cpu0(&[0]), [0]);
        assert_eq!(off_cpu0(&[3]), [3]);
    }

    #[test]
    fn cpu_lists_parse() {
        assert_eq!(parse_list("0-2,5").unwrap(), [0, 1, 2, 5]);
        assert_eq!(parse_list("3").unwrap(), [3]);
        assert!(parse_list("a-b").is_none());
    }

    #[test]
    fn own_affinity_round_trips_through_proc() {
        let mine = allowed().unwrap();
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() };
        assert_eq!(of(tid).unwrap(), mine);
    }
}
