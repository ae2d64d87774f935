//! The NIC's interrupts: which path they take (wired SPI, PCI INTx, or MSI-X through a GICv2m
//! frame or a GICv3 ITS) and the INTIDs the main loop takes as the NIC's.

use super::gic::{self, GicError};
use vmprobe_guest::config::Mode;
use vmprobe_guest::dtb::Irq;
use vmprobe_guest::net::{InterruptPath, TransportKind};

/// Where the NIC's interrupts come in.
#[derive(Clone, Copy, Debug)]
pub struct NicInterrupts {
    /// The path, as the ready line names it.
    pub path: InterruptPath,
    /// Receive, transmit and configuration-change INTIDs (one wired line is all three).
    lines: [Option<u32>; 3],
}

/// Why the NIC's interrupts could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum NicIrqError {
    /// IRQ mode without any interrupt for the NIC.
    #[error("the device tree routes no interrupt for the NIC; use mode=poll")]
    NoInterrupt,
    /// The GIC refused.
    #[error("{0}")]
    Gic(#[from] GicError),
}

impl NicInterrupts {
    /// Whether `intid` (an acknowledged interrupt's number) is one of the NIC's.
    pub fn is_nic(&self, intid: u32) -> bool {
        self.lines.contains(&Some(intid))
    }

    /// Every INTID of the NIC, each once.
    pub fn intids(&self) -> impl Iterator<Item = u32> + '_ {
        self.lines
            .iter()
            .enumerate()
            .filter_map(|(i, l)| l.filter(|id| !self.lines[..i].contains(&Some(*id))))
    }
}

/// Sets up the NIC's interrupts for `mode`: none in poll mode; else the wired `irq`.
pub fn setup(
    kind: TransportKind,
    irq: Option<Irq>,
    mode: Mode,
) -> Result<NicInterrupts, NicIrqError> {
    if mode == Mode::Poll {
        return Ok(NicInterrupts {
            path: InterruptPath::None,
            lines: [None; 3],
        });
    }
    let irq = irq.ok_or(NicIrqError::NoInterrupt)?;
    gic::enable(irq.intid, irq.trigger)?;
    let path = match kind {
        TransportKind::Pci => InterruptPath::Intx,
        TransportKind::Mmio | TransportKind::MmioLegacy => InterruptPath::Spi,
    };
    Ok(NicInterrupts {
        path,
        lines: [Some(irq.intid); 3],
    })
}
