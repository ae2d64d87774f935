//! The image's first instructions: the arm64 Image header, the drop from EL2 to EL1, FP/SIMD,
//! bss, a boot page table and the MMU, all before any Rust code runs; then the image's own
//! relocations (it is position independent: linked at 0, it runs wherever the loader put it).
//!
//! The boot page table maps, as normal cacheable memory, the 1 GiB blocks that hold the image and
//! the DTB, which is all that Rust touches until `mmu::init` installs the full map from the DTB.
//! Caches and the MMU must be on before Rust runs: with the MMU off every access is Device
//! memory, where unaligned accesses and exclusives (spin locks, the allocator) are not allowed.

use core::arch::global_asm;

global_asm!(
    r#"
    .section .text.head, "ax"
    .global _start
_start:
    /* arm64 Image header (Documentation/arch/arm64/booting.rst). */
    b       primary_entry           /* code0 */
    .long   0                       /* code1 */
    .quad   0x80000                 /* text_offset */
    .quad   __image_size            /* image_size, bss, stack and heap included */
    .quad   0xa                     /* flags: little endian, 4 KiB pages, 2 MiB base anywhere */
    .quad   0, 0, 0                 /* res2, res3, res4 */
    .ascii  "ARM\x64"               /* magic */
    .long   0                       /* res5 */

    .section .text.boot, "ax"
primary_entry:
    mov     x19, x0                 /* DTB */

    /* Everything below addresses the image PC-relatively (adrp): that needs the 4 KiB alignment
     * the boot protocol promises (2 MiB base + text_offset). Without it, park rather than run
     * amok. */
    adr     x21, _start
    tst     x21, #0xfff
    b.ne    misaligned

    mrs     x20, CurrentEL
    ubfx    x20, x20, #2, #2        /* entry exception level, handed to Rust */
    cmp     x20, #2
    b.ne    in_el1

    bl      drop_to_el1

in_el1:
    /* A known SCTLR_EL1, whatever the loader or the hypervisor's reset left: MMU, caches and
     * alignment checks off, little endian. */
    ldr     x1, =0x30d00800         /* RES1 bits of ARMv8.0 */
    msr     sctlr_el1, x1
    isb

    /* FP/SIMD: Rust on aarch64-unknown-none uses it anywhere. */
    mov     x1, #(3 << 20)
    msr     cpacr_el1, x1
    isb

    /* Zero bss (MMU off: these stores reach memory), then drop any stale cache lines over it. */
    adrp    x1, __bss_start
    add     x1, x1, :lo12:__bss_start
    adrp    x2, __bss_end
    add     x2, x2, :lo12:__bss_end
    mov     x3, x1
2:  cmp     x3, x2
    b.hs    3f
    stp     xzr, xzr, [x3], #16
    b       2b
3:  bl      invalidate_range

    /* Boot page table: L0[0] -> L1; L1 blocks for the 1 GiB that hold the image's first and last
     * byte and the DTB. */
    adrp    x1, boot_l0
    adrp    x2, boot_l1
    orr     x3, x2, #3              /* table descriptor */
    str     x3, [x1]
    ldr     x4, =0x705              /* block, AttrIndx 1 (normal WB), inner shareable, AF */
    lsr     x6, x21, #30
    and     x6, x6, #511
    lsl     x7, x6, #30
    orr     x7, x7, x4
    str     x7, [x2, x6, lsl #3]
    adrp    x5, __image_end
    sub     x5, x5, #1
    lsr     x6, x5, #30
    and     x6, x6, #511
    lsl     x7, x6, #30
    orr     x7, x7, x4
    str     x7, [x2, x6, lsl #3]
    cbz     x19, 6f
    lsr     x6, x19, #39
    cbnz    x6, 6f                  /* beyond the first 512 GiB: leave it to fail cleanly */
    lsr     x6, x19, #30
    and     x6, x6, #511
    lsl     x7, x6, #30
    orr     x7, x7, x4
    str     x7, [x2, x6, lsl #3]
6:  dsb     sy
    /* The tables were written with the MMU off, straight to memory: drop any line over them
     * that a cache still holds (or fetched speculatively since the bss pass), or the walker,
     * whose walks are cacheable, could see it instead of the entries. */
    adrp    x1, boot_l0
    add     x2, x1, #(2 * 4096)     /* boot_l0 and boot_l1 */
    bl      invalidate_range

    /* MAIR: 0 = Device-nGnRE, 1 = Normal WB RA WA. TCR: 48-bit VA, 4 KiB, WB walks, no TTBR1. */
    ldr     x1, =0xff04
    msr     mair_el1, x1
    mrs     x2, id_aa64mmfr0_el1
    and     x2, x2, #7
    cmp     x2, #5
    mov     x3, #5
    csel    x2, x2, x3, ls          /* IPS = min(PARange, 48 bits) */
    ldr     x1, =0x803510           /* T0SZ 16, IRGN0/ORGN0 WBWA, SH0 inner, EPD1 */
    orr     x1, x1, x2, lsl #32
    msr     tcr_el1, x1
    adrp    x1, boot_l0
    msr     ttbr0_el1, x1
    isb
    tlbi    vmalle1
    dsb     nsh
    isb
    ldr     x1, =0x30d01805         /* the RES1 bits, M, C, I: nothing else */
    msr     sctlr_el1, x1
    isb

    adrp    x1, __stack_top
    add     x1, x1, :lo12:__stack_top
    mov     sp, x1

    /* Relocate (caches on: the words written are ordinary cacheable data). */
    mov     x0, x21
    adrp    x1, __rela_start
    add     x1, x1, :lo12:__rela_start
    adrp    x2, __rela_end
    add     x2, x2, :lo12:__rela_end
    adrp    x3, __bss_start
    add     x3, x3, :lo12:__bss_start
    sub     x3, x3, x21             /* bytes loaded from the file */
    bl      relocate_image
    cbnz    x0, 7f

    adrp    x1, exception_vectors
    add     x1, x1, :lo12:exception_vectors
    msr     vbar_el1, x1
    isb

    mov     x0, x19
    mov     x1, x20
    mov     x2, x21
    bl      rust_start
7:  wfe
    b       7b

/* Invalidate the data cache lines over [x1, x2) to the point of coherency. Clobbers x3-x6. */
invalidate_range:
    mrs     x4, ctr_el0
    ubfx    x4, x4, #16, #4         /* DminLine: log2 of words */
    mov     x5, #4
    lsl     x5, x5, x4              /* line size in bytes */
    sub     x6, x5, #1
    bic     x3, x1, x6
1:  cmp     x3, x2
    b.hs    2f
    dc      ivac, x3
    add     x3, x3, x5
    b       1b
2:  dsb     sy
    ret

/* EL2 to EL1 (boot CPU and the secondary alike): run EL1 as AArch64 with nothing trapped, then
 * drop to it, returning to the caller at EL1 with IRQs masked. Clobbers x1 only. */
    .global drop_to_el1
drop_to_el1:
    mov     x1, #(1 << 31)          /* HCR_EL2.RW */
    msr     hcr_el2, x1
    isb
    /* Anything taken to EL2 from now on (an HVC from EL1 with nobody to answer it) parks. */
    adrp    x1, el2_vectors
    add     x1, x1, :lo12:el2_vectors
    msr     vbar_el2, x1
    /* MDCR_EL2: no debug or PMU traps; EL1 owns every PMU counter there is (HPMN = PMCR_EL0.N;
     * PMCR_EL0 exists only with a PMU). */
    mrs     x1, id_aa64dfr0_el1
    ubfx    x1, x1, #8, #4          /* PMUVer */
    cbz     x1, 2f
    cmp     x1, #0xf                /* IMPLEMENTATION DEFINED PMU: leave it alone */
    b.eq    2f
    mrs     x1, pmcr_el0
    ubfx    x1, x1, #11, #5         /* N */
    msr     mdcr_el2, x1
    b       3f
2:  msr     mdcr_el2, xzr
3:    mrs     x1, cnthctl_el2
    orr     x1, x1, #3              /* EL1PCTEN, EL1PCEN */
    msr     cnthctl_el2, x1
    msr     cntvoff_el2, xzr
    mov     x1, #0x33ff             /* CPTR_EL2: RES1 bits, no FP/SIMD trap */
    msr     cptr_el2, x1
    msr     hstr_el2, xzr
    mrs     x1, midr_el1
    msr     vpidr_el2, x1
    mrs     x1, mpidr_el1
    msr     vmpidr_el2, x1
    /* GICv3 CPU interface in system registers: let EL1 use it. */
    mrs     x1, id_aa64pfr0_el1
    ubfx    x1, x1, #24, #4
    cbz     x1, 1f
    mrs     x1, S3_4_C12_C9_5       /* ICC_SRE_EL2 */
    orr     x1, x1, #0x1            /* SRE */
    orr     x1, x1, #0x8            /* Enable: lower ELs may use the registers */
    msr     S3_4_C12_C9_5, x1
    isb
1:
    ldr     x1, =0x30d00800         /* SCTLR_EL1 RES1 bits, MMU and caches off */
    msr     sctlr_el1, x1
    mov     x1, #0x3c5              /* EL1h, DAIF masked */
    msr     spsr_el2, x1
    msr     elr_el2, x30            /* "return" to the caller, at EL1 */
    isb
    eret


misaligned:
    wfe
    b       misaligned

/* EL2's vectors while the image drops to EL1: every entry parks. */
    .balign 0x800
el2_vectors:
    .rept   16
    .balign 0x80
    wfe
    b       . - 4
    .endr

    .section .bss.pagetables, "aw", %nobits
    .balign 4096
boot_l0:
    .space  4096
boot_l1:
    .space  4096
    "#
);

/// Applies the image's relocations for the load address `base`: called by the entry code with
/// the MMU on, before anything uses an absolute address. `rela..rela_end` is `.rela.dyn`;
/// `loaded` is how many bytes of the image came from the file (relocations never point past
/// them). Returns 0, or 1 if the table is unusable (nothing was written).
#[unsafe(no_mangle)]
extern "C" fn relocate_image(base: usize, rela: usize, rela_end: usize, loaded: usize) -> u64 {
    // SAFETY: the entry code passes the bounds of `.rela.dyn` inside the loaded image, which
    // nothing writes while this runs (relocations point into data, never into the table).
    let table =
        unsafe { core::slice::from_raw_parts(rela as *const u8, rela_end.saturating_sub(rela)) };
    let write = |offset: u64, value: u64| {
        // SAFETY: `apply` checked that the 8-byte aligned word at `offset` lies inside the
        // loaded image, which is mapped normal memory that only this code touches now.
        unsafe { ((base + offset as usize) as *mut u64).write(value) }
    };
    match vmprobe_guest::reloc::apply(table, loaded as u64, base as u64, write) {
        Ok(_) => 0,
        Err(_) => 1,
    }
}
