//! The arm64 generic counter and the EL1 virtual timer.

use core::arch::asm;
use vmprobe_guest::net::Counter;

/// The virtual count, ordered after all earlier instructions (`isb`).
#[inline(always)]
pub fn now() -> u64 {
    let ticks: u64;
    // SAFETY: reading CNTVCT_EL0 has no side effects; EL1 may always read it.
    unsafe {
        asm!("isb", "mrs {}, cntvct_el0", out(reg) ticks, options(nomem, nostack, preserves_flags))
    };
    ticks
}

/// Counter frequency in Hz.
pub fn frequency() -> u64 {
    let hz: u64;
    // SAFETY: reading CNTFRQ_EL0 has no side effects.
    unsafe { asm!("mrs {}, cntfrq_el0", out(reg) hz, options(nomem, nostack, preserves_flags)) };
    hz
}

/// The generic counter as the device layer's clock.
pub struct GenericCounter;

impl Counter for GenericCounter {
    #[inline(always)]
    fn now() -> u64 {
        now()
    }
}

/// Arms the virtual timer to fire at counter value `deadline`.
pub fn arm_timer(deadline: u64) {
    // SAFETY: the EL1 virtual timer belongs to this program; CTL = ENABLE, unmasked.
    unsafe {
        asm!("msr cntv_cval_el0, {}", "msr cntv_ctl_el0, {}", "isb", in(reg) deadline, in(reg) 1u64, options(nomem, nostack, preserves_flags))
    };
}

/// Stops the virtual timer and lowers its interrupt line.
pub fn disarm_timer() {
    // SAFETY: as in `arm_timer`; CTL = 0 disables the timer.
    unsafe {
        asm!(
            "msr cntv_ctl_el0, xzr",
            "isb",
            options(nomem, nostack, preserves_flags)
        )
    };
}
