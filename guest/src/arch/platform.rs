//! The probe protocol's platform hooks on the real machine: the generic counter, the main
//! loop's and the device's counters, the micro-benchmarks and the power-off request.

use super::bench::{self, BenchTargets};
use super::counter;
use super::power::SmcccConduit;
use alloc::rc::Rc;
use vmprobe_guest::kvm_ptp::KvmPtp;
use vmprobe_guest::net::phy::QUEUE_TRANSMIT;
use vmprobe_guest::net::QueueRings;
use vmprobe_guest::probe::{BenchError, ProbePlatform};
use vmprobe_proto::clock_reply::{Absence, Reading};
use vmprobe_proto::{BenchTest, CounterKind, GuestMode, GuestStats};

/// What the main loop counts.
#[derive(Clone, Copy, Debug, Default)]
pub struct LoopCounters {
    /// NIC interrupts taken.
    pub irqs: u64,
    /// Wake-ups from WFI with no interrupt acknowledged.
    pub spurious_irqs: u64,
    /// Passes of the main loop over the services and the device.
    pub polls: u64,
    /// Times the loop slept in WFI.
    pub idle_waits: u64,
}

/// The machine as the probe handler sees it.
pub struct Machine {
    mode: GuestMode,
    targets: BenchTargets,
    rings: Rc<QueueRings>,
    /// KVM's PTP service, or why it cannot be used.
    clock: Result<KvmPtp<SmcccConduit>, Absence>,
    /// The main loop's counters, reported in the stats reply.
    pub counters: LoopCounters,
    power_off: bool,
}

impl Machine {
    /// The machine in `mode`, with the NIC's queue bookkeeping, the benchmarks' targets and
    /// KVM's PTP service as found at boot.
    pub fn new(
        mode: GuestMode,
        rings: Rc<QueueRings>,
        targets: BenchTargets,
        clock: Result<KvmPtp<SmcccConduit>, Absence>,
    ) -> Self {
        Machine {
            mode,
            targets,
            rings,
            clock,
            counters: LoopCounters::default(),
            power_off: false,
        }
    }

    /// Whether the host asked for a power-off (acknowledged, not yet done).
    pub fn power_off_requested(&self) -> bool {
        self.power_off
    }
}

impl ProbePlatform for Machine {
    #[inline(always)]
    fn now(&mut self) -> u64 {
        counter::now()
    }

    fn cntfrq_hz(&self) -> u32 {
        u32::try_from(counter::frequency()).unwrap_or(u32::MAX)
    }

    fn counter_kind(&self) -> CounterKind {
        CounterKind::Virtual
    }

    fn mode(&self) -> GuestMode {
        self.mode
    }

    fn stats(&mut self) -> GuestStats {
        let c = self.counters;
        GuestStats {
            // The virtual counter starts at zero with the VM (QEMU and KVM both offset it).
            uptime_ticks: counter::now(),
            irqs: c.irqs,
            spurious_irqs: c.spurious_irqs,
            polls: c.polls,
            idle_waits: c.idle_waits,
            tx_notifies: self.rings.notifies(QUEUE_TRANSMIT),
            ..GuestStats::default()
        }
    }

    fn run_bench(
        &mut self,
        test: BenchTest,
        param: u64,
        samples: &mut [u64],
    ) -> Result<(), BenchError> {
        bench::run(&self.targets, test, param, samples)
    }

    fn clock_readings(
        &mut self,
        counter: CounterKind,
        readings: &mut [Reading],
    ) -> Result<(), Absence> {
        match &mut self.clock {
            Ok(ptp) => ptp.fill(counter, readings),
            Err(absence) => Err(*absence),
        }
    }

    fn request_power_off(&mut self) {
        self.power_off = true;
    }
}
