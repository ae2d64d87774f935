//! The NIC's interrupts: which path they take (wired SPI, PCI INTx, or MSI-X through a GICv2m
//! frame or a GICv3 ITS) and the INTIDs the main loop takes as the NIC's.

use super::gic::{self, GicError};
use super::its::{self, Its, ItsError};
use super::v2m::V2m;
use vmprobe_guest::config::Mode;
use vmprobe_guest::dtb::{GicInfo, Irq, IrqTrigger, MsiController, PciMsi};
use vmprobe_guest::net::msix::{MsiMessage, VirtioVectors};
use vmprobe_guest::net::{InterruptPath, PciMsix, TransportKind};

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
    /// The ITS could not be set up.
    #[error("{0}")]
    Its(#[from] ItsError),
}

/// MSI-X vector (table entry) numbers the probe uses.
const VECTOR_RX: u16 = 0;
const VECTOR_TX: u16 = 1;
const VECTOR_CONFIG: u16 = 2;

impl NicInterrupts {
    /// No interrupts: poll mode, or no NIC at all.
    pub fn none() -> Self {
        NicInterrupts {
            path: InterruptPath::None,
            lines: [None; 3],
        }
    }

    /// Whether `intid` (an acknowledged interrupt's number) is one of the NIC's.
    pub fn is_nic(&self, intid: u32) -> bool {
        self.lines.contains(&Some(intid))
    }

    /// Whether the device's interrupt must be acknowledged at the device (reading its ISR) to
    /// lower a wired line; MSIs are edges and need none.
    pub fn wired(&self) -> bool {
        matches!(self.path, InterruptPath::Spi | InterruptPath::Intx)
    }

    /// Whether `intid` is the NIC's receive interrupt.
    pub fn is_receive(&self, intid: u32) -> bool {
        self.lines[0] == Some(intid)
    }

    /// Every INTID of the NIC, each once.
    pub fn intids(&self) -> impl Iterator<Item = u32> + '_ {
        self.lines
            .iter()
            .enumerate()
            .filter_map(|(i, l)| l.filter(|id| !self.lines[..i].contains(&Some(*id))))
    }
}

/// What the device tree and discovery say about the NIC's interrupts.
pub struct NicIrqSources<'a> {
    /// virtio-mmio or virtio-pci.
    pub kind: TransportKind,
    /// Its wired interrupt.
    pub wired: Option<Irq>,
    /// virtio-pci: its MSI-X table.
    pub msix: Option<PciMsix>,
    /// The PCI host's MSI controller.
    pub msi: Option<&'a PciMsi>,
    /// The GIC (for the ITS: the distributor and redistributor).
    pub gic: GicInfo,
}

/// Sets up the NIC's interrupts for `mode`: none in poll mode; else MSI-X where the function
/// has it and the PCI host has an MSI controller, else the wired line. Returns them with the
/// MSI-X vectors the device must be given while it is initialised.
pub fn setup(
    sources: &NicIrqSources,
    mode: Mode,
) -> Result<(NicInterrupts, Option<VirtioVectors>), NicIrqError> {
    if mode == Mode::Poll {
        return Ok((NicInterrupts::none(), None));
    }
    if let (Some(msix), Some(msi)) = (sources.msix, sources.msi) {
        if let Some(msi) = setup_msix(&msix, msi, sources.gic)? {
            return Ok(msi);
        }
    }
    let irq = sources.wired.ok_or(NicIrqError::NoInterrupt)?;
    gic::enable(irq.intid, irq.trigger)?;
    let path = match sources.kind {
        TransportKind::Pci => InterruptPath::Intx,
        TransportKind::Mmio | TransportKind::MmioLegacy => InterruptPath::Spi,
    };
    let wired = NicInterrupts {
        path,
        lines: [Some(irq.intid); 3],
    };
    Ok((wired, None))
}

/// One MSI per vector (receive, transmit, configuration) through the controller, written into
/// the function's MSI-X table. None if the controller or table has too few.
fn setup_msix(
    msix: &PciMsix,
    msi: &PciMsi,
    gic: GicInfo,
) -> Result<Option<(NicInterrupts, Option<VirtioVectors>)>, NicIrqError> {
    if msix.table.entries() <= VECTOR_CONFIG {
        return Ok(None);
    }
    let mut messages: [Option<(u32, MsiMessage)>; 3] = [None; 3];
    let path = match (msi.controller, gic) {
        (MsiController::V2m(frame), GicInfo::V2 { .. }) => {
            // SAFETY: the frame is mapped as device memory (the PCI host's MSI controller).
            let mut v2m = unsafe { V2m::new(frame) };
            for m in &mut messages {
                *m = v2m.allocate();
                if let Some((spi, _)) = m {
                    // Each write to the frame is one edge.
                    gic::enable(*spi, IrqTrigger::Edge)?;
                }
            }
            InterruptPath::MsixV2m
        }
        (MsiController::Its(frame), GicInfo::V3 { dist, redist }) => {
            let Some(device) = msi.device_id(msix.requester_id) else {
                return Ok(None);
            };
            // SAFETY: the ITS and GIC frames are mapped as device memory; only this module
            // touches the ITS and the redistributor's LPI registers, once.
            unsafe { Its::init(frame, dist, redist, device)? };
            for m in &mut messages {
                *m = its::allocate()?;
            }
            InterruptPath::MsixIts
        }
        _ => return Ok(None),
    };
    let [Some(rx), Some(tx), Some(config)] = messages else {
        return Ok(None);
    };
    for (vector, (_, message)) in [(VECTOR_RX, rx), (VECTOR_TX, tx), (VECTOR_CONFIG, config)] {
        msix.table.set(vector, message);
    }
    msix.table.enable();
    let vectors = msix.vectors(VECTOR_CONFIG, [VECTOR_RX, VECTOR_TX]);
    let lines = [Some(rx.0), Some(tx.0), Some(config.0)];
    Ok(Some((NicInterrupts { path, lines }, Some(vectors))))
}
