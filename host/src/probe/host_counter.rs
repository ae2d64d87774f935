//! The host's own arm64 generic counter, for the exact `shared-counter` clock mapping: under
//! KVM the guest's physical counter is the host's counter, so host readings that bracket a
//! counter read with CLOCK_MONOTONIC map guest ticks to host time without any path asymmetry.
//! Only an aarch64 host has that counter; elsewhere [`available`] says why not.

use crate::clock::{HostCounterReading, SharedCounter};

/// Why the host counter cannot be read here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--clock shared-counter needs an arm64 host (the guest and host must read the same generic counter under KVM); this host is {0}")]
pub struct NotArm64(pub &'static str);

/// Whether this host has an arm64 generic counter.
pub fn available() -> Result<(), NotArm64> {
    if cfg!(target_arch = "aarch64") {
        Ok(())
    } else {
        Err(NotArm64(std::env::consts::ARCH))
    }
}

#[cfg(target_arch = "aarch64")]
fn counter() -> (u64, u32) {
    let (cnt, frq): (u64, u64);
    // SAFETY: CNTVCT_EL0 and CNTFRQ_EL0 are readable from EL0 on Linux (the kernel enables
    // user access to the virtual counter); the `isb`s keep the read from being reordered
    // around the clock reads that bracket it. No memory is touched.
    unsafe {
        core::arch::asm!(
            "isb",
            "mrs {cnt}, cntvct_el0",
            "isb",
            "mrs {frq}, cntfrq_el0",
            cnt = out(reg) cnt,
            frq = out(reg) frq,
            options(nostack),
        );
    }
    (cnt, frq as u32)
}

#[cfg(not(target_arch = "aarch64"))]
fn counter() -> (u64, u32) {
    (0, 0)
}

/// Collects host counter readings over a run.
#[derive(Debug, Clone, Default)]
pub struct HostCounter {
    readings: Vec<HostCounterReading>,
    hz: u32,
}

impl HostCounter {
    /// Takes one reading (only call where [`available`] is `Ok`).
    pub fn read(&mut self) {
        let before = crate::rr::stamp::mono_ns();
        let (counter, hz) = counter();
        let after = crate::rr::stamp::mono_ns();
        self.hz = hz;
        self.readings.push(HostCounterReading {
            host_before_ns: before as i64,
            counter,
            host_after_ns: after as i64,
        });
    }

    /// Readings taken so far.
    pub fn len(&self) -> usize {
        self.readings.len()
    }

    /// Whether none were taken.
    pub fn is_empty(&self) -> bool {
        self.readings.is_empty()
    }

    /// What the exact mapping needs (the guest is taken to read this very counter).
    pub fn into_shared(self) -> SharedCounter {
        SharedCounter {
            readings: self.readings,
            counter_hz: self.hz,
            guest_minus_host_ticks: None,
        }
    }
}
