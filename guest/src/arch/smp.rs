//! A second vCPU for the IPI round-trip benchmark, started with PSCI `CPU_ON` the first time
//! the benchmark runs (never at boot: the probe normally runs on one vCPU).
//!
//! The secondary enters at EL1 (or EL2, which it leaves as the boot CPU did) with the MMU off, takes over the boot CPU's translation regime
//! (same page table, TCR, MAIR, SCTLR), its own stack and the vector table, brings up its GIC
//! CPU interface (and, on GICv3, its redistributor) and then serves forever: sleep in WFI with
//! IRQs masked (WFI still wakes on a pending interrupt), acknowledge, end, and send the same SGI
//! back to the boot CPU. So one round trip includes the target vCPU's wake-up from WFI.

use super::{counter, gic, power};
use alloc::boxed::Box;
use alloc::vec;
use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicBool, Ordering};
use spin::Once;
use vmprobe_guest::dtb::PsciConduit;

/// The SGI the round trip bounces.
pub const IPI_SGI: u32 = 2;
/// Stack of the secondary vCPU.
const STACK_BYTES: usize = 64 * 1024;

/// What the secondary needs before it can run Rust: read by the entry code with the MMU off.
#[repr(C)]
struct SecondaryContext {
    stack_top: u64,
    ttbr0: u64,
    tcr: u64,
    mair: u64,
    sctlr: u64,
    vbar: u64,
    cpu: u64,
}

global_asm!(
    r#"
    .section .text, "ax"
    .balign 4
    .global secondary_entry
secondary_entry:
    /* x0: SecondaryContext. PSCI enters at the caller's EL1, or at EL2 when the machine has one
     * that nobody else owns (QEMU virtualization=on): drop to EL1 as the boot CPU did. */
    mrs     x1, CurrentEL
    ubfx    x1, x1, #2, #2
    cmp     x1, #2
    b.ne    1f
    bl      drop_to_el1
    mrs     x1, CurrentEL
    ubfx    x1, x1, #2, #2
1:  cmp     x1, #1
    b.ne    9f
    mov     x1, #(3 << 20)          /* FP/SIMD on */
    msr     cpacr_el1, x1
    ldr     x1, [x0, #24]
    msr     mair_el1, x1
    ldr     x1, [x0, #16]
    msr     tcr_el1, x1
    ldr     x1, [x0, #8]
    msr     ttbr0_el1, x1
    isb
    tlbi    vmalle1
    dsb     nsh
    isb
    ldr     x1, [x0, #32]
    msr     sctlr_el1, x1
    isb
    ldr     x1, [x0, #0]
    mov     sp, x1
    ldr     x1, [x0, #40]
    msr     vbar_el1, x1
    isb
    ldr     x0, [x0, #48]
    bl      secondary_main
9:  wfe
    b       9b
"#
);

unsafe extern "C" {
    fn secondary_entry();
}

static STARTED: Once<Result<(), ()>> = Once::new();
/// The MPIDR of each CPU, from the device tree's CPU nodes.
static MPIDRS: Once<alloc::vec::Vec<u64>> = Once::new();
static ONLINE: AtomicBool = AtomicBool::new(false);

macro_rules! read_sysreg {
    ($name:literal) => {{
        let value: u64;
        // SAFETY: reading an EL1 system register has no side effect.
        unsafe { asm!(concat!("mrs {}, ", $name), out(reg) value, options(nomem, nostack, preserves_flags)) };
        value
    }};
}

/// Records the CPUs' MPIDRs (`reg` of the device tree's CPU nodes, in order).
pub fn init(mpidrs: alloc::vec::Vec<u64>) {
    MPIDRS.call_once(|| mpidrs);
}

/// Starts vCPU `cpu` (the index of its device tree node) once; true when it is serving.
pub fn ensure_started(cpu: u64) -> bool {
    STARTED.call_once(|| start(cpu)).is_ok()
}

fn start(cpu: u64) -> Result<(), ()> {
    let stack: &'static mut [u8] = Box::leak(vec![0u8; STACK_BYTES].into_boxed_slice());
    let stack_top = (stack.as_ptr() as u64 + STACK_BYTES as u64) & !15;
    let context = Box::leak(Box::new(SecondaryContext {
        stack_top,
        ttbr0: read_sysreg!("ttbr0_el1"),
        tcr: read_sysreg!("tcr_el1"),
        mair: read_sysreg!("mair_el1"),
        sctlr: read_sysreg!("sctlr_el1"),
        vbar: read_sysreg!("vbar_el1"),
        cpu,
    }));
    let at = context as *const SecondaryContext as u64;
    // The secondary reads the context with its MMU (and so its caches) off: push it to memory.
    // It may straddle two cache lines: clean the lines of its first and last byte.
    let last = at + core::mem::size_of::<SecondaryContext>() as u64 - 1;
    // SAFETY: cleaning cache lines of memory this program owns has no other effect.
    unsafe {
        asm!(
            "dc civac, {}",
            "dc civac, {}",
            "dsb sy",
            in(reg) at,
            in(reg) last,
            options(nostack, preserves_flags)
        );
    }
    let entry = secondary_entry as unsafe extern "C" fn() as usize as u64;
    // PSCI names the CPU by its MPIDR, which equals the index only on small machines.
    let mpidr = *MPIDRS.get().and_then(|m| m.get(cpu as usize)).ok_or(())?;
    let result = match power::conduit().ok_or(())? {
        PsciConduit::Hvc => smccc::psci::cpu_on::<smccc::Hvc>(mpidr, entry, at),
        PsciConduit::Smc => smccc::psci::cpu_on::<smccc::Smc>(mpidr, entry, at),
    };
    result.map_err(|_| ())?;
    // Up to a second for it to come up.
    let deadline = counter::now() + counter::frequency();
    while !ONLINE.load(Ordering::Acquire) {
        if counter::now() > deadline {
            return Err(());
        }
        core::hint::spin_loop();
    }
    Ok(())
}

/// The secondary's Rust entry, on its own stack with the MMU on and IRQs masked.
#[unsafe(no_mangle)]
extern "C" fn secondary_main(cpu: u64) -> ! {
    if gic::init_secondary(cpu as usize, IPI_SGI).is_err() {
        loop {
            aarch64_cpu::asm::wfe();
        }
    }
    ONLINE.store(true, Ordering::Release);
    loop {
        // IRQs stay masked: WFI returns on a pending interrupt, which is then acknowledged here.
        aarch64_cpu::asm::wfi();
        while let Some(intid) = gic::acknowledge() {
            gic::end(intid);
            if gic::number(intid) == IPI_SGI {
                gic::send_sgi(IPI_SGI, 0);
            }
        }
    }
}
