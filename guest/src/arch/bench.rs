//! The micro-benchmarks of the probe protocol ([`BenchTest`]), each iteration timed on the
//! generic counter with `isb`-ordered reads (the recipe of kvm-unit-tests' arm/micro-bench.c).
//!
//! They run inside the handling of a probe request, so the network loop is paused while one
//! runs. Device interrupts (NIC, timer) are disabled at the GIC for the duration, so that only
//! the interrupt under test is ever taken. Under TCG every number is the cost of QEMU's
//! emulation, not of hardware virtualization.

use super::nic_irq::NicInterrupts;
use super::{counter, gic, its, power, smp};
use vmprobe_guest::dtb::Irq;
use vmprobe_guest::net::{BenchRegisters, Register};
use vmprobe_guest::probe::BenchError;
use vmprobe_proto::BenchTest;

/// The SGI the self-SGI and EOI tests send.
const BENCH_SGI: u32 = 1;
/// Spins to wait for an interrupt before declaring the run failed (seconds under TCG).
const SPIN_LIMIT: u64 = 50_000_000;
/// The transmit queue of virtio-net.
const TX_QUEUE: u16 = 1;

/// What the benchmarks need to know about the machine.
#[derive(Clone, Copy, Debug)]
pub struct BenchTargets {
    /// The NIC registers to read and to notify through (virtio-mmio or virtio-pci).
    pub nic: Option<BenchRegisters>,
    /// The NIC's interrupts, disabled while a benchmark runs.
    pub nic_irqs: NicInterrupts,
    /// The EL1 virtual timer's PPI.
    pub timer: Irq,
    /// Whether the NIC and timer interrupts are enabled in normal operation (IRQ mode).
    pub irq_mode: bool,
    /// vCPUs in the device tree.
    pub cpu_count: usize,
}

/// Run `test` once per element of `samples`, writing each iteration's cost in ticks.
pub fn run(
    targets: &BenchTargets,
    test: BenchTest,
    param: u64,
    samples: &mut [u64],
) -> Result<(), BenchError> {
    match test {
        BenchTest::CounterRead => {
            time_each(samples, || {});
            Ok(())
        }
        BenchTest::PsciVersion => psci_version(samples),
        BenchTest::MmioVirtio => {
            let nic = targets.nic.ok_or(BenchError::Unsupported)?;
            // SAFETY: the NIC's registers are mapped as device memory; `read` names a register
            // whose read has no side effect. One plain load of its width.
            time_each(samples, || unsafe {
                match nic.read {
                    Register::U32(at) => {
                        core::hint::black_box((at as *const u32).read_volatile());
                    }
                    Register::U16(at) => {
                        core::hint::black_box((at as *const u16).read_volatile());
                    }
                }
            });
            Ok(())
        }
        BenchTest::VirtqueueNotify => {
            let nic = targets.nic.ok_or(BenchError::Unsupported)?;
            // SAFETY: as above; notifying the transmit queue with nothing new in it only makes
            // the device look at the ring and find nothing. One plain store of its width.
            time_each(samples, || unsafe { nic.notify_tx.write(TX_QUEUE) });
            Ok(())
        }
        BenchTest::MmioGicd => {
            gic::time_distributor_reads(samples, counter::now);
            Ok(())
        }
        BenchTest::SelfSgi | BenchTest::Eoi => {
            with_quiet_devices(targets, || sgi(test == BenchTest::Eoi, samples))
        }
        BenchTest::VtimerLatency => {
            let delay = if param == 0 {
                // 100 us: far enough ahead that the timer is armed before it expires.
                counter::frequency() / 10_000
            } else {
                param
            };
            with_quiet_devices(targets, || vtimer(targets.timer, delay, samples))
        }
        BenchTest::Lpi => {
            let lpi = its::bench_lpi().ok_or(BenchError::Unsupported)?;
            with_quiet_devices(targets, || lpi_delivery(lpi, samples))
        }
        BenchTest::IpiRoundTrip => {
            // `param`: the target's index (0: the first secondary).
            let cpu = param.max(1);
            if cpu >= targets.cpu_count as u64 {
                return Err(BenchError::Unsupported);
            }
            if !smp::ensure_started(cpu) {
                return Err(BenchError::Failed);
            }
            with_quiet_devices(targets, || ipi(cpu, samples))
        }
    }
}

/// `f` between two counter reads, once per sample.
#[inline(always)]
fn time_each(samples: &mut [u64], mut f: impl FnMut()) {
    for s in samples.iter_mut() {
        let start = counter::now();
        f();
        *s = counter::now().wrapping_sub(start);
    }
}

fn psci_version(samples: &mut [u64]) -> Result<(), BenchError> {
    use vmprobe_guest::dtb::PsciConduit;
    match power::conduit().ok_or(BenchError::Unsupported)? {
        PsciConduit::Hvc => time_each(samples, || {
            let _ = core::hint::black_box(smccc::psci::version::<smccc::Hvc>());
        }),
        PsciConduit::Smc => time_each(samples, || {
            let _ = core::hint::black_box(smccc::psci::version::<smccc::Smc>());
        }),
    }
    Ok(())
}

/// Runs `f` with the NIC and timer interrupts disabled at the GIC, restoring them afterwards.
fn with_quiet_devices(
    targets: &BenchTargets,
    f: impl FnOnce() -> Result<(), BenchError>,
) -> Result<(), BenchError> {
    let lines = || targets.nic_irqs.intids().chain([targets.timer.intid]);
    lines().for_each(|i| gic::set_enabled(i, false));
    counter::disarm_timer();
    let result = f();
    counter::disarm_timer();
    // As they were: enabled in IRQ mode, never in poll mode.
    lines().for_each(|i| gic::set_enabled(i, targets.irq_mode));
    result
}

/// Self-SGI delivery (send to the handler's entry) or, with `eoi`, the EOI write that ends it.
fn sgi(eoi: bool, samples: &mut [u64]) -> Result<(), BenchError> {
    gic::enable_sgi(BENCH_SGI).map_err(|_| BenchError::Unsupported)?;
    let result = (|| {
        for s in samples.iter_mut() {
            let start = counter::now();
            gic::send_self_sgi(BENCH_SGI);
            let (intid, entry) = gic::spin_for_interrupt(SPIN_LIMIT).ok_or(BenchError::Failed)?;
            let eoi_ticks = gic::timed_end(intid, counter::now);
            if gic::number(intid) != BENCH_SGI {
                return Err(BenchError::Failed);
            }
            *s = if eoi {
                eoi_ticks
            } else {
                entry.wrapping_sub(start)
            };
        }
        Ok(())
    })();
    gic::set_enabled(BENCH_SGI, false);
    result
}

/// Virtual timer latency: from the programmed expiry (`CNTV_CVAL`) to the handler's entry.
fn vtimer(timer: Irq, delay: u64, samples: &mut [u64]) -> Result<(), BenchError> {
    let intid = timer.intid;
    gic::enable(intid, timer.trigger).map_err(|_| BenchError::Unsupported)?;
    for s in samples.iter_mut() {
        let deadline = counter::now() + delay;
        counter::arm_timer(deadline);
        let taken = gic::spin_for_interrupt(SPIN_LIMIT);
        counter::disarm_timer();
        let (got, entry) = taken.ok_or(BenchError::Failed)?;
        gic::end(got);
        if gic::number(got) != intid {
            return Err(BenchError::Failed);
        }
        *s = entry.wrapping_sub(deadline);
    }
    Ok(())
}

/// LPI delivery: from handing the ITS an `INT` command for the benchmark's event until the LPI's
/// handler runs (the ITS's translation, the redistributor and the CPU interface on the way).
fn lpi_delivery(lpi: u32, samples: &mut [u64]) -> Result<(), BenchError> {
    its::set_enabled(lpi, true);
    let result = (|| {
        for s in samples.iter_mut() {
            let start = counter::now();
            if !its::trigger(lpi) {
                return Err(BenchError::Failed);
            }
            let (intid, entry) = gic::spin_for_interrupt(SPIN_LIMIT).ok_or(BenchError::Failed)?;
            gic::end(intid);
            if gic::number(intid) != lpi {
                return Err(BenchError::Failed);
            }
            *s = entry.wrapping_sub(start);
        }
        Ok(())
    })();
    its::set_enabled(lpi, false);
    result
}

/// IPI round trip: SGI to vCPU `cpu`, which wakes from WFI, acknowledges it and sends it back;
/// from sending until this CPU's handler runs.
fn ipi(cpu: u64, samples: &mut [u64]) -> Result<(), BenchError> {
    gic::enable_sgi(smp::IPI_SGI).map_err(|_| BenchError::Unsupported)?;
    let result = (|| {
        for s in samples.iter_mut() {
            let start = counter::now();
            gic::send_sgi(smp::IPI_SGI, cpu);
            let (intid, entry) = gic::spin_for_interrupt(SPIN_LIMIT).ok_or(BenchError::Failed)?;
            gic::end(intid);
            if gic::number(intid) != smp::IPI_SGI {
                return Err(BenchError::Failed);
            }
            *s = entry.wrapping_sub(start);
        }
        Ok(())
    })();
    gic::set_enabled(smp::IPI_SGI, false);
    result
}
