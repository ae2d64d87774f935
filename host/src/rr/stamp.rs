//! The clocks of the measured path: CLOCK_MONOTONIC for intervals, CLOCK_REALTIME for the
//! wall-clock time users match against traces. Both are vDSO reads, a few tens of ns.
use std::sync::atomic::{AtomicBool, Ordering};

fn read(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec and both clock ids used here always exist.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    timespec_ns(&ts)
}

/// A timespec as nanoseconds (negative times, which these clocks never return, read as 0).
pub(crate) fn timespec_ns(ts: &libc::timespec) -> u64 {
    (ts.tv_sec.max(0) as u64) * 1_000_000_000 + ts.tv_nsec.max(0) as u64
}

/// CLOCK_MONOTONIC in nanoseconds.
pub fn mono_ns() -> u64 {
    read(libc::CLOCK_MONOTONIC)
}

/// CLOCK_REALTIME in nanoseconds since the Unix epoch.
pub fn realtime_ns() -> u64 {
    read(libc::CLOCK_REALTIME)
}

/// Waits until CLOCK_MONOTONIC reaches `target_ns`, sleeping (absolute `clock_nanosleep`,
/// no drift) or spinning. Returns `false` if `stop` was raised first.
pub fn wait_until(target_ns: u64, spin: bool, stop: &AtomicBool) -> bool {
    loop {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        if mono_ns() >= target_ns {
            return true;
        }
        if spin {
            std::hint::spin_loop();
            continue;
        }
        let ts = libc::timespec {
            tv_sec: (target_ns / 1_000_000_000) as libc::time_t,
            tv_nsec: (target_ns % 1_000_000_000) as libc::c_long,
        };
        // SAFETY: `ts` is a valid timespec; a null remainder is allowed with TIMER_ABSTIME.
        // EINTR (a signal) just loops back to the stop check.
        unsafe {
            libc::clock_nanosleep(
                libc::CLOCK_MONOTONIC,
                libc::TIMER_ABSTIME,
                &ts,
                std::ptr::null_mut(),
            )
        };
    }
}
