//! The full identity map, built from the device tree: RAM as normal write-back memory, the
//! devices the probe uses as Device-nGnRE, nothing else mapped.

use aarch64_paging::descriptor::El1Attributes;
use aarch64_paging::idmap::IdMap;
use aarch64_paging::paging::{El1And0, MemoryRegion, PAGE_SIZE};
use alloc::boxed::Box;
use vmprobe_guest::dtb::{Platform, Region};

/// MAIR index 0 (set up by the boot code): Device-nGnRE.
const DEVICE: El1Attributes = El1Attributes::ATTRIBUTE_INDEX_0
    .union(El1Attributes::VALID)
    .union(El1Attributes::ACCESSED)
    .union(El1Attributes::UXN)
    .union(El1Attributes::PXN);
/// MAIR index 1: Normal, inner/outer write-back.
const NORMAL: El1Attributes = El1Attributes::ATTRIBUTE_INDEX_1
    .union(El1Attributes::VALID)
    .union(El1Attributes::ACCESSED)
    .union(El1Attributes::INNER_SHAREABLE);

/// Why the map could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot map {base:#x}..{end:#x}: {reason}")]
pub struct MapError {
    base: u64,
    end: u64,
    reason: &'static str,
}

fn page_range(region: Region) -> MemoryRegion {
    let mask = PAGE_SIZE as u64 - 1;
    MemoryRegion::new(
        (region.base & !mask) as usize,
        ((region.end() + mask) & !mask) as usize,
    )
}

unsafe extern "C" {
    static __image_start: u8;
    static __image_end: u8;
}

/// Builds the identity map for `platform` and switches to it.
pub fn init(platform: &Platform) -> Result<(), MapError> {
    let mut devices = alloc::vec::Vec::new();
    devices.extend(platform.uart.map(|u| u.region));
    match platform.gic {
        vmprobe_guest::dtb::GicInfo::V2 { dist, cpu } => devices.extend([dist, cpu]),
        vmprobe_guest::dtb::GicInfo::V3 { dist, redist } => devices.extend([dist, redist]),
    }
    devices.extend(platform.virtio_mmio.iter().map(|s| s.region));
    if let Some(pci) = &platform.pci {
        devices.push(pci.ecam);
        devices.extend(pci.msi.as_ref().map(|m| m.controller.region()));
        devices.extend(pci.mmio32().map(|w| Region {
            base: w.cpu_base,
            size: w.size,
        }));
    }
    install(&platform.memory, &devices)
}

/// Maps just enough to report what is wrong with a device tree the probe cannot run on: the
/// image, the DTB and the console.
pub fn init_for_console(dtb: Region, console: Region) -> Result<(), MapError> {
    let start = &raw const __image_start as u64;
    let end = &raw const __image_end as u64;
    let image = Region {
        base: start,
        size: end - start,
    };
    install(&[image, dtb], &[console])
}

/// Builds an identity map of `normal` memory and `devices` and switches to it.
///
/// The boot map translates the same addresses with the same attributes, but in 1 GiB blocks
/// where the new map may use pages: entries of both sizes for one address in the TLB at once
/// could be a TLB conflict. So the switch is made with the MMU off (identity mapped code runs
/// on unchanged), the TLB invalidated in between: break before make.
fn install(normal: &[Region], devices: &[Region]) -> Result<(), MapError> {
    let mut idmap = IdMap::with_asid(0, 0, El1And0);
    let mut map = |region: Region, attributes: El1Attributes| {
        idmap
            .map_range(&page_range(region), attributes)
            .map_err(|_| MapError {
                base: region.base,
                end: region.end(),
                reason: "outside the 48-bit address space or overlapping",
            })
    };
    for bank in normal {
        map(*bank, NORMAL)?;
    }
    for device in devices {
        map(*device, DEVICE)?;
    }
    // The page tables live for the rest of the program.
    let idmap = Box::leak(Box::new(idmap));
    let root = idmap.root_address().0 as u64;
    // SAFETY: the new map covers everything the program touches (the image with its stack and
    // heap, and the DTB: all of RAM on the normal path) with the same attributes as the boot
    // map, plus the devices. The sequence touches no memory while the MMU is off, and the TLB
    // holds nothing of the old map when it is back on. ASID 0, as the boot map.
    unsafe {
        core::arch::asm!(
            "dsb ish",
            "mrs {sctlr}, sctlr_el1",
            "bic {off}, {sctlr}, #1",
            "msr sctlr_el1, {off}",
            "isb",
            "msr ttbr0_el1, {root}",
            "isb",
            "tlbi vmalle1",
            "dsb nsh",
            "isb",
            "msr sctlr_el1, {sctlr}",
            "isb",
            sctlr = out(reg) _,
            off = out(reg) _,
            root = in(reg) root,
            options(nostack, preserves_flags)
        );
    }
    idmap.mark_active();
    Ok(())
}
