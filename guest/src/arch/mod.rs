//! Everything specific to AArch64 bare metal: boot, exceptions, MMU, GIC, console, counter and
//! timer, PSCI, heap and the virtio `Hal`. Only the image (target_os = "none") builds this.

pub mod bench;
mod boot;
pub mod console;
pub mod counter;
mod exceptions;
pub mod gic;
pub mod hal;
pub mod heap;
pub mod its;
pub mod mmu;
pub mod nic_irq;
pub mod platform;
pub mod power;
pub mod smp;
pub mod v2m;
