//! The interrupt controller (GICv2 or GICv3 as the device tree says) and the IRQ bookkeeping
//! shared between the IRQ handler and the main loop.
//!
//! The handler only acknowledges: it reads the INTID, stamps the entry time and leaves the
//! interrupt active, which keeps the GIC from signalling it again. The main loop then quiets the
//! source (acknowledges the virtio ISR or stops the timer) and ends the interrupt.

use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{Readable, MPIDR_EL1};
use arm_gic::gicv2::GicV2;
use arm_gic::gicv3::{GicCpuInterface, GicV3};
use arm_gic::{IntId, InterruptGroup, Trigger, UniqueMmioPointer};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use spin::mutex::SpinMutex;
use vmprobe_guest::dtb::{GicInfo, IrqTrigger};

/// GICv2 keeps the distributor's address too: arm-gic writes `GICD_IPRIORITYR` a word at a time
/// (zeroing the three neighbours' priorities) and has no `GICD_ITARGETSR` access, so those are
/// written here a byte at a time, as the architecture allows for both.
enum Gic {
    V2 { gic: GicV2<'static>, dist: usize },
    V3(GicV3<'static>),
}

/// GICv2 byte-wide distributor registers used here.
const GICD_IPRIORITYR: usize = 0x400;
const GICD_ITARGETSR: usize = 0x800;
/// The priority every interrupt the probe takes gets: the middle of the range.
const PRIORITY: u8 = 0x80;

static GIC: SpinMutex<Option<Gic>> = SpinMutex::new(None);
const NONE: u32 = u32::MAX;
static PENDING: AtomicU32 = AtomicU32::new(NONE);
static ENTRY: AtomicU64 = AtomicU64::new(0);
/// GICv2 `GICC_EOIR`: ended with the raw acknowledged value, which for an SGI carries the
/// source CPU in bits 10..13 (arm-gic's `IntId` cannot hold those bits).
static V2_EOIR: AtomicUsize = AtomicUsize::new(0);
/// Offset of `GICC_EOIR` in the GICv2 CPU interface.
const GICC_EOIR: usize = 0x10;

/// First LPI INTID (GICv3).
const LPI_START: u32 = 8192;

/// The interrupt number of a raw acknowledged value (without GICv2's SGI source CPU bits; LPIs,
/// GICv3 only, are their whole value).
pub fn number(raw: u32) -> u32 {
    if raw >= LPI_START {
        raw
    } else {
        raw & 0x3ff
    }
}

/// Why the GIC could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum GicError {
    /// A frame address is zero or unusable.
    #[error("bad GIC frame address")]
    BadAddress,
    /// arm-gic rejected the GICv3 redistributors.
    #[error("GICv3 redistributor setup failed")]
    Redistributor,
    /// The interrupt could not be enabled.
    #[error("cannot enable INTID {0}")]
    Enable(u32),
}

fn int_id(intid: u32) -> IntId {
    if intid < 16 {
        IntId::sgi(intid)
    } else if intid < 32 {
        IntId::ppi(intid - 16)
    } else if intid < LPI_START {
        IntId::spi(intid - 32)
    } else {
        IntId::lpi(intid - LPI_START)
    }
}

/// Initialises the GIC for CPU 0, everything disabled until `enable`.
///
/// # Safety
///
/// The frames in `info` must be mapped as device memory and used by nothing else.
pub unsafe fn init(info: &GicInfo, cpu_count: usize) -> Result<(), GicError> {
    let gic = match *info {
        GicInfo::V2 { dist, cpu } => {
            // SAFETY: the caller promises mapped, unaliased frames.
            let mut gic =
                unsafe { GicV2::new(dist.base as usize as *mut _, cpu.base as usize as *mut _) };
            gic.setup();
            V2_EOIR.store(cpu.base as usize + GICC_EOIR, Ordering::Relaxed);
            Gic::V2 {
                gic,
                dist: dist.base as usize,
            }
        }
        GicInfo::V3 { dist, redist } => {
            let gicd = NonNull::new(dist.base as usize as *mut _).ok_or(GicError::BadAddress)?;
            let gicr = NonNull::new(redist.base as usize as *mut _).ok_or(GicError::BadAddress)?;
            // SAFETY: the caller promises mapped, unaliased frames.
            let mut gic =
                unsafe { GicV3::new(UniqueMmioPointer::new(gicd), gicr, cpu_count.max(1)) }
                    .map_err(|_| GicError::Redistributor)?;
            gic.setup(0);
            GicCpuInterface::set_priority_mask(0xff);
            Gic::V3(gic)
        }
    };
    *GIC.lock() = Some(gic);
    Ok(())
}

/// GICv2: sets `intid`'s priority byte, leaving its neighbours' alone.
fn v2_set_priority(dist: usize, intid: u32, priority: u8) {
    // SAFETY: `GICD_IPRIORITYR` of the distributor `init` mapped, byte-accessible by the
    // architecture; one `strb` to this interrupt's own byte.
    unsafe { ((dist + GICD_IPRIORITYR + intid as usize) as *mut u8).write_volatile(priority) };
}

/// GICv2: routes SPI `intid` to the calling CPU. `GICD_ITARGETSR0..7` are banked and read as the
/// reading CPU's own target mask.
fn v2_target_self(dist: usize, intid: u32) {
    let byte = |n: usize| (dist + GICD_ITARGETSR + n) as *mut u8;
    // SAFETY: byte-accessible `GICD_ITARGETSR` of the distributor `init` mapped: a read of this
    // CPU's banked mask, and one `strb` to the SPI's own target byte.
    unsafe {
        let mask = byte(0).read_volatile();
        byte(intid as usize).write_volatile(mask);
    }
}

/// Enables interrupt `intid` with the given trigger type at a middle priority, an SPI routed to
/// the calling (boot) CPU.
pub fn enable(intid: u32, trigger: IrqTrigger) -> Result<(), GicError> {
    let id = int_id(intid);
    let trigger = match trigger {
        IrqTrigger::Edge => Trigger::Edge,
        IrqTrigger::Level => Trigger::Level,
    };
    let mut guard = GIC.lock();
    let ok = match guard.as_mut() {
        Some(Gic::V2 { gic, dist }) => {
            v2_set_priority(*dist, intid, PRIORITY);
            if id.is_spi() {
                v2_target_self(*dist, intid);
            }
            gic.set_trigger(id, trigger);
            gic.enable_interrupt(id, true).is_ok()
        }
        Some(Gic::V3(gic)) => {
            let routed = !id.is_spi()
                || gic
                    .distributor()
                    .set_routing(id, Some(MPIDR_EL1.get()))
                    .is_ok();
            routed
                && gic.set_interrupt_priority(id, Some(0), PRIORITY).is_ok()
                && gic.set_trigger(id, Some(0), trigger).is_ok()
                && gic.enable_interrupt(id, Some(0), true).is_ok()
        }
        None => false,
    };
    if ok {
        Ok(())
    } else {
        Err(GicError::Enable(intid))
    }
}

/// Acknowledges the highest-priority pending interrupt, then waits for the acknowledge to
/// complete (`dsb sy`) so that nothing the caller does next (reading the device's state) can
/// be ordered before it.
fn acknowledge_raw() -> Option<IntId> {
    let intid = match GIC.lock().as_mut() {
        Some(Gic::V2 { gic, .. }) => gic.get_and_acknowledge_interrupt(InterruptGroup::Group0),
        Some(Gic::V3(_)) => GicCpuInterface::get_and_acknowledge_interrupt(InterruptGroup::Group1),
        None => None,
    };
    barrier::dsb(barrier::SY);
    intid
}

/// Called by the IRQ vector: acknowledge and remember the interrupt.
pub fn on_irq(now: u64) {
    if let Some(intid) = acknowledge_raw() {
        ENTRY.store(now, Ordering::Relaxed);
        PENDING.store(intid.raw_value(), Ordering::Release);
    }
}

/// The interrupt the handler acknowledged since the last call (its raw acknowledged value, see
/// [`number`]), with its entry time.
pub fn take_pending() -> Option<(u32, u64)> {
    let intid = PENDING.swap(NONE, Ordering::Acquire);
    (intid != NONE).then(|| (intid, ENTRY.load(Ordering::Relaxed)))
}

/// Ends (drops priority and deactivates) an interrupt, given the raw value it was
/// acknowledged with.
pub fn end(raw: u32) {
    let eoir = V2_EOIR.load(Ordering::Relaxed);
    if eoir != 0 {
        // SAFETY: `GICC_EOIR` of the CPU interface `init` mapped; one 32-bit `str` of a value
        // this CPU acknowledged. The register is banked per CPU and write-only.
        unsafe { (eoir as *mut u32).write_volatile(raw) };
    } else {
        GicCpuInterface::end_interrupt(int_id(number(raw)), InterruptGroup::Group1);
    }
}

/// Sleeps until an interrupt is pending, then lets it in.
///
/// IRQs stay masked except in a window right after WFI: WFI wakes on a pending interrupt even
/// while it is masked, so one that arrives between the caller's last poll and the WFI is not
/// lost. The asm declares every C caller-saved register clobbered, because the handler runs
/// inside it; that is what lets the vector save only the integer registers.
pub fn wait_for_interrupt() {
    // SAFETY: the vector table is installed and the handler preserves the callee-saved state.
    unsafe {
        core::arch::asm!(
            "wfi",
            "msr daifclr, #2",
            "isb",
            "msr daifset, #2",
            clobber_abi("C"),
            options(nostack)
        )
    };
}

/// Enables or disables interrupt `intid` at the GIC without touching its configuration
/// (benchmarks keep the NIC and the timer quiet while they run).
pub fn set_enabled(intid: u32, enable: bool) {
    if intid >= LPI_START {
        return super::its::set_enabled(intid, enable);
    }
    let id = int_id(intid);
    match GIC.lock().as_mut() {
        Some(Gic::V2 { gic, .. }) => {
            let _ = gic.enable_interrupt(id, enable);
        }
        Some(Gic::V3(gic)) => {
            let _ = gic.enable_interrupt(id, Some(0), enable);
        }
        None => {}
    }
}

/// Enables software-generated interrupt `sgi` (0..16) on CPU 0 at a middle priority. SGIs are
/// always edge-triggered, so the trigger is left alone.
pub fn enable_sgi(sgi: u32) -> Result<(), GicError> {
    let id = IntId::sgi(sgi);
    let ok = match GIC.lock().as_mut() {
        Some(Gic::V2 { gic, dist }) => {
            v2_set_priority(*dist, sgi, PRIORITY);
            gic.enable_interrupt(id, true).is_ok()
        }
        Some(Gic::V3(gic)) => {
            gic.set_interrupt_priority(id, Some(0), PRIORITY).is_ok()
                && gic.enable_interrupt(id, Some(0), true).is_ok()
        }
        None => false,
    };
    if ok {
        Ok(())
    } else {
        Err(GicError::Enable(sgi))
    }
}

/// Sends software-generated interrupt `sgi` to the calling CPU.
pub fn send_self_sgi(sgi: u32) {
    send_sgi(sgi, MPIDR_EL1.get() & 0xff);
}

/// Sends software-generated interrupt `sgi` to the CPU whose MPIDR affinity 0 is `aff0` (the
/// others 0; on GICv2 this is the CPU interface number, which QEMU and KVM make the same).
pub fn send_sgi(sgi: u32, aff0: u64) {
    let id = IntId::sgi(sgi);
    match GIC.lock().as_mut() {
        Some(Gic::V2 { gic, .. }) => gic.send_sgi(
            id,
            arm_gic::gicv2::SgiTarget::List {
                target_list_filter: arm_gic::gicv2::SgiTargetListFilter::CPUTargetList,
                target_list: 1 << (aff0 & 7),
            },
        ),
        Some(Gic::V3(_)) => {
            let _ = GicCpuInterface::send_sgi(
                id,
                arm_gic::gicv3::SgiTarget::List {
                    affinity3: 0,
                    affinity2: 0,
                    affinity1: 0,
                    target_list: 1 << (aff0 & 0xf),
                },
                arm_gic::gicv3::SgiTargetGroup::CurrentGroup1,
            );
        }
        None => {}
    }
}

/// On a secondary CPU: brings up its CPU interface (and GICv3 redistributor `cpu`) and enables
/// `sgi` for it.
pub fn init_secondary(cpu: usize, sgi: u32) -> Result<(), GicError> {
    let id = IntId::sgi(sgi);
    let ok = match GIC.lock().as_mut() {
        Some(Gic::V2 { gic, dist }) => {
            // The CPU interface and the SGI/PPI registers are banked: this sets up ours.
            gic.setup();
            v2_set_priority(*dist, sgi, PRIORITY);
            gic.enable_interrupt(id, true).is_ok()
        }
        Some(Gic::V3(gic)) => {
            gic.init_cpu(cpu);
            GicCpuInterface::enable_group1(true);
            GicCpuInterface::set_priority_mask(0xff);
            gic.set_interrupt_priority(id, Some(cpu), PRIORITY).is_ok()
                && gic.enable_interrupt(id, Some(cpu), true).is_ok()
        }
        None => false,
    };
    if ok {
        Ok(())
    } else {
        Err(GicError::Enable(sgi))
    }
}

/// Acknowledges the highest-priority pending interrupt of the calling CPU, even with IRQs
/// masked (the secondary polls this way).
pub fn acknowledge() -> Option<u32> {
    acknowledge_raw().map(|i| i.raw_value())
}

/// Times `samples.len()` reads of the distributor's type register (`GICD_TYPER`, a pure read
/// with no side effect: under KVM the in-kernel vGIC answers it), with `now` around each.
pub fn time_distributor_reads(samples: &mut [u64], now: fn() -> u64) {
    let mut guard = GIC.lock();
    for s in samples.iter_mut() {
        let start = now();
        match guard.as_mut() {
            Some(Gic::V2 { gic, .. }) => {
                core::hint::black_box(gic.typer());
            }
            Some(Gic::V3(gic)) => {
                core::hint::black_box(gic.typer());
            }
            None => {}
        }
        *s = now().wrapping_sub(start);
    }
}

/// Ends `raw` like [`end`] and returns how long the EOI write alone took, in ticks of `now`.
pub fn timed_end(raw: u32, now: fn() -> u64) -> u64 {
    let start = now();
    end(raw);
    now().wrapping_sub(start)
}

/// Unmasks IRQs and spins (no WFI: under KVM that would add a trap) until the handler has
/// taken one, at most `spins` loop turns; then masks them again. Returns what
/// [`take_pending`] returns.
pub fn spin_for_interrupt(spins: u64) -> Option<(u32, u64)> {
    // SAFETY: the vector table is installed; the IRQ vector saves and restores every integer
    // register it may clobber, and the C-ABI clobber covers the FP/SIMD registers the handler
    // may use. `PENDING` is a live static, read with plain 32-bit loads.
    unsafe {
        core::arch::asm!(
            "msr daifclr, #2",
            "2:",
            "ldr w10, [x9]",
            "cmn w10, #1",
            "b.ne 3f",
            "subs x11, x11, #1",
            "b.ne 2b",
            "3:",
            "msr daifset, #2",
            in("x9") PENDING.as_ptr(),
            inout("x11") spins.max(1) => _,
            clobber_abi("C"),
            options(nostack)
        )
    };
    take_pending()
}
