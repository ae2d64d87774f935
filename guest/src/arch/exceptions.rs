//! Exception vectors. IRQs are taken only inside `wait_for_interrupt`'s unmask window (whose asm
//! declares the C ABI's registers clobbered), so the IRQ entry saves just the integer
//! caller-saved registers and the exception return state. Anything else is fatal.

use super::{console, gic, power};
use core::arch::global_asm;

global_asm!(
    r#"
    .section .text.vectors, "ax"
    .balign 0x800
    .global exception_vectors
exception_vectors:
    /* Current EL with SP_EL0 */
    .balign 0x80
    mov     x0, #0
    b       fatal_entry
    .balign 0x80
    mov     x0, #1
    b       fatal_entry
    .balign 0x80
    mov     x0, #2
    b       fatal_entry
    .balign 0x80
    mov     x0, #3
    b       fatal_entry
    /* Current EL with SP_ELx */
    .balign 0x80
    mov     x0, #4
    b       fatal_entry
    .balign 0x80
    b       irq_entry
    .balign 0x80
    mov     x0, #6
    b       fatal_entry
    .balign 0x80
    mov     x0, #7
    b       fatal_entry
    /* Lower EL, AArch64 and AArch32: never used. */
    .balign 0x80
    mov     x0, #8
    b       fatal_entry
    .balign 0x80
    mov     x0, #9
    b       fatal_entry
    .balign 0x80
    mov     x0, #10
    b       fatal_entry
    .balign 0x80
    mov     x0, #11
    b       fatal_entry
    .balign 0x80
    mov     x0, #12
    b       fatal_entry
    .balign 0x80
    mov     x0, #13
    b       fatal_entry
    .balign 0x80
    mov     x0, #14
    b       fatal_entry
    .balign 0x80
    mov     x0, #15
    b       fatal_entry

irq_entry:
    sub     sp, sp, #176
    stp     x0, x1, [sp, #0]
    stp     x2, x3, [sp, #16]
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    stp     x8, x9, [sp, #64]
    stp     x10, x11, [sp, #80]
    stp     x12, x13, [sp, #96]
    stp     x14, x15, [sp, #112]
    stp     x16, x17, [sp, #128]
    stp     x18, x30, [sp, #144]
    mrs     x0, elr_el1
    mrs     x1, spsr_el1
    stp     x0, x1, [sp, #160]
    bl      irq_handler
    ldp     x0, x1, [sp, #160]
    msr     elr_el1, x0
    msr     spsr_el1, x1
    ldp     x0, x1, [sp, #0]
    ldp     x2, x3, [sp, #16]
    ldp     x4, x5, [sp, #32]
    ldp     x6, x7, [sp, #48]
    ldp     x8, x9, [sp, #64]
    ldp     x10, x11, [sp, #80]
    ldp     x12, x13, [sp, #96]
    ldp     x14, x15, [sp, #112]
    ldp     x16, x17, [sp, #128]
    ldp     x18, x30, [sp, #144]
    add     sp, sp, #176
    eret

fatal_entry:
    mrs     x1, esr_el1
    mrs     x2, elr_el1
    mrs     x3, far_el1
    b       fatal_exception
    "#
);

/// IRQ: acknowledge at the GIC, stamp, and leave the interrupt active; the main loop quiets the
/// source and ends it (see `gic::take_pending`).
#[unsafe(no_mangle)]
extern "C" fn irq_handler() {
    gic::on_irq(super::counter::now());
}

const KINDS: [&str; 4] = ["synchronous", "IRQ", "FIQ", "SError"];

/// Any exception but an IRQ at EL1h: report and power off.
#[unsafe(no_mangle)]
extern "C" fn fatal_exception(vector: u64, esr: u64, elr: u64, far: u64) -> ! {
    let kind = KINDS[(vector % 4) as usize];
    console::emergency_println(format_args!(
        "vmprobe: error: unexpected {kind} exception (vector {vector}) esr={esr:#x} elr={elr:#x} far={far:#x}"
    ));
    power::off()
}
