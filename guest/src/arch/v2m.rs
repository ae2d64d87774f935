//! GICv2m: an MSI frame beside a GICv2 distributor. A write of an SPI number to its
//! `MSI_SETSPI_NS` register raises that SPI (edge-triggered); `MSI_TYPER` says which SPIs the
//! frame may raise.

use vmprobe_guest::dtb::Region;
use vmprobe_guest::net::msix::MsiMessage;

/// `MSI_TYPER`: bits 16..26 first SPI (as an INTID), bits 0..10 how many.
const MSI_TYPER: usize = 0x008;
/// `MSI_SETSPI_NS`: the doorbell.
const MSI_SETSPI_NS: usize = 0x040;

/// The frame's SPIs, handed out one per vector.
pub struct V2m {
    frame: usize,
    next: u32,
    end: u32,
}

impl V2m {
    /// The frame at `frame`.
    ///
    /// # Safety
    ///
    /// `frame` must be a GICv2m frame mapped as device memory.
    pub unsafe fn new(frame: Region) -> Self {
        let frame = frame.base as usize;
        // SAFETY: the caller promises a mapped frame; `MSI_TYPER` is a read-only 32-bit register.
        let typer = unsafe { ((frame + MSI_TYPER) as *const u32).read_volatile() };
        let base = (typer >> 16) & 0x3ff;
        V2m {
            frame,
            next: base,
            end: base + (typer & 0x3ff),
        }
    }

    /// The next free SPI (its INTID) and the message that raises it.
    pub fn allocate(&mut self) -> Option<(u32, MsiMessage)> {
        (self.next < self.end).then(|| {
            let spi = self.next;
            self.next += 1;
            let message = MsiMessage {
                address: (self.frame + MSI_SETSPI_NS) as u64,
                data: spi,
            };
            (spi, message)
        })
    }
}
