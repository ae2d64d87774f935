//! OS set-up of the measuring thread: CPU affinity, timer slack, signal delivery.
//!
//! SIGINT/SIGTERM stop a run through a flag. The binary blocks both signals in its other
//! threads and the measuring thread unblocks them, so the kernel delivers them there and a
//! blocking `recv` or paced sleep returns EINTR at once instead of at its next timeout.
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::cpus;

/// Raised by SIGINT/SIGTERM once [`install_stop_signals`] ran.
pub static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(_signal: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn stop_signals() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise and fill the set we own.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        set
    }
}

/// Makes SIGINT and SIGTERM raise [`STOP`] instead of killing the process. No SA_RESTART,
/// so blocking calls in the thread that takes the signal return EINTR.
pub fn install_stop_signals() -> io::Result<&'static AtomicBool> {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction is valid; the handler only stores to an atomic, which
        // is async-signal-safe.
        let rc = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_stop_signal as *const () as libc::sighandler_t;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(&STOP)
}

fn set_stop_signal_mask(how: libc::c_int) {
    let set = stop_signals();
    // SAFETY: `set` is initialised; pthread_sigmask only changes this thread's mask.
    unsafe { libc::pthread_sigmask(how, &set, std::ptr::null_mut()) };
}

/// Blocks SIGINT/SIGTERM in the calling thread (and threads it spawns later).
pub fn block_stop_signals() {
    set_stop_signal_mask(libc::SIG_BLOCK);
}

/// Unblocks SIGINT/SIGTERM in the calling thread.
pub fn unblock_stop_signals() {
    set_stop_signal_mask(libc::SIG_UNBLOCK);
}

/// Pins the calling thread to `cpu`, or, without one, keeps it off cpu0 when other CPUs are
/// allowed. Returns the CPUs it may now run on.
pub fn place_thread(cpu: Option<usize>) -> io::Result<Vec<usize>> {
    match cpu {
        Some(c) => {
            cpus::set(0, &[c])?;
            Ok(vec![c])
        }
        None => {
            let allowed = cpus::allowed()?;
            let chosen = cpus::off_cpu0(&allowed);
            if chosen != allowed {
                cpus::set(0, &chosen)?;
            }
            Ok(chosen)
        }
    }
}

/// Asks for 1 ns timer slack so paced sleeps wake on time (the default slack is 50 us).
pub fn tight_timer_slack() {
    // SAFETY: PR_SET_TIMERSLACK takes an integer argument and affects only this thread.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0) };
}
