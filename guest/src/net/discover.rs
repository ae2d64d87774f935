//! Finding the virtio-net device: the virtio-mmio slots and the PCIe host bridge the device tree
//! lists, in that order.

use super::doorbell::{QueueDoorbells, Register, DOORBELL_QUEUES};
use super::msix::{MsixTable, VirtioVectors};
use crate::dtb::{Irq, PciHost, VirtioMmioSlot};
use core::ptr::NonNull;
use virtio_drivers::transport::mmio::{MmioTransport, MmioVersion, VirtIOHeader};
use virtio_drivers::transport::pci::bus::{
    BarInfo, Cam, Command, ConfigurationAccess, DeviceFunction, MemoryBarType, MmioCam, PciRoot,
};
use virtio_drivers::transport::pci::{virtio_device_type, PciTransport};
use virtio_drivers::transport::{DeviceType, SomeTransport, Transport};
use virtio_drivers::Hal;

/// Which virtio transport carries the NIC (as the ready line shows it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportKind {
    /// virtio-mmio version 1 (QEMU's default).
    MmioLegacy,
    /// virtio-mmio version 2.
    Mmio,
    /// virtio-pci (modern).
    Pci,
}

impl TransportKind {
    /// `mmio-legacy`, `mmio` or `pci`.
    pub fn as_str(self) -> &'static str {
        match self {
            TransportKind::MmioLegacy => "mmio-legacy",
            TransportKind::Mmio => "mmio",
            TransportKind::Pci => "pci",
        }
    }
}

/// How the NIC's interrupts reach the CPU (as the ready line shows it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InterruptPath {
    /// A wired SPI (virtio-mmio).
    Spi,
    /// PCI legacy INTx, swizzled onto a wired SPI.
    Intx,
    /// MSI-X through a GICv2m frame (an SPI per vector).
    MsixV2m,
    /// MSI-X through a GICv3 ITS (an LPI per vector).
    MsixIts,
    /// None: poll mode.
    None,
}

impl InterruptPath {
    /// `spi`, `intx`, `msix-v2m`, `msix-its` or `none`.
    pub fn as_str(self) -> &'static str {
        match self {
            InterruptPath::Spi => "spi",
            InterruptPath::Intx => "intx",
            InterruptPath::MsixV2m => "msix-v2m",
            InterruptPath::MsixIts => "msix-its",
            InterruptPath::None => "none",
        }
    }
}

/// A virtio-net device ready for the driver.
#[derive(Debug)]
pub struct VirtioNic {
    /// The transport, not yet initialised.
    pub transport: SomeTransport<'static>,
    /// How it is attached.
    pub kind: TransportKind,
    /// Its wired interrupt (virtio-mmio SPI, or the SPI PCI INTx is routed to), if the device
    /// tree gives one.
    pub irq: Option<Irq>,
    /// Registers the micro-benchmarks read and write directly, if found.
    pub registers: Option<BenchRegisters>,
    /// The queues' doorbells.
    pub doorbells: QueueDoorbells,
    /// virtio-pci: the function's MSI-X table, if it has one.
    pub msix: Option<PciMsix>,
}

/// What MSI-X setup needs to know about a virtio-pci function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PciMsix {
    /// Its MSI-X table.
    pub table: MsixTable,
    /// Its requester ID (bus << 8 | device << 3 | function), which an ITS sees as the device.
    pub requester_id: u16,
    /// Its virtio common configuration.
    common: usize,
}

impl PciMsix {
    /// The device's configuration-change and queue (receive, transmit) vectors, to be assigned
    /// during its initialisation.
    pub fn vectors(&self, config: u16, queues: [u16; 2]) -> VirtioVectors {
        // SAFETY: `common` is the function's common configuration, found in a BAR that stays
        // mapped as device memory.
        unsafe { VirtioVectors::new(self.common, config, queues) }
    }
}

/// The NIC registers the micro-benchmarks touch directly (each access one exit to the device
/// model on a real hypervisor).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BenchRegisters {
    /// A register whose read has no side effect: virtio-mmio `DeviceID`, or virtio-pci common
    /// configuration `num_queues`.
    pub read: Register,
    /// Writing the transmit queue's index here notifies it: virtio-mmio `QueueNotify`, or the
    /// transmit queue's address in the virtio-pci notification area.
    pub notify_tx: Register,
}

/// virtio-net's transmit queue.
const TX_QUEUE: u16 = 1;
/// virtio-mmio `DeviceID` and `QueueNotify` (the same in both versions).
const MMIO_DEVICE_ID: usize = 0x008;
const MMIO_QUEUE_NOTIFY: usize = 0x050;

/// Why no usable NIC was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiscoverError {
    /// Neither transport has a network device.
    #[error("no virtio-net device on virtio-mmio or PCI")]
    NotFound,
    /// A PCI BAR did not fit the host bridge's memory window.
    #[error("cannot place BAR {bar} of PCI device {device}: no room in the 32-bit memory window")]
    NoBarSpace {
        /// Device number.
        device: u8,
        /// BAR index.
        bar: u8,
    },
    /// The PCI device was found but the virtio-pci transport rejected it.
    #[error("virtio-pci transport: {0}")]
    Pci(&'static str),
}

/// Looks for a network device in the virtio-mmio slots.
///
/// # Safety
///
/// Every slot's region must be mapped as device memory, identity mapped, and not otherwise in use.
pub unsafe fn find_mmio(slots: &[VirtioMmioSlot]) -> Option<VirtioNic> {
    slots.iter().find_map(|slot| {
        let header = NonNull::new(slot.region.base as usize as *mut VirtIOHeader)?;
        // SAFETY: the caller promises the slot is a mapped, unaliased virtio-mmio window.
        let mmio = unsafe { MmioTransport::new(header, slot.region.size as usize) }.ok()?;
        if mmio.device_type() != DeviceType::Network {
            return None;
        }
        let kind = match mmio.version() {
            MmioVersion::Legacy => TransportKind::MmioLegacy,
            MmioVersion::Modern => TransportKind::Mmio,
        };
        // Both versions: every queue is notified by writing its index to `QueueNotify`.
        let queue_notify = Register::U32(slot.region.base as usize + MMIO_QUEUE_NOTIFY);
        // SAFETY: `QueueNotify` of the slot the caller promised mapped; writing a queue index
        // there only notifies that queue.
        let doorbells = unsafe { QueueDoorbells::new([Some(queue_notify); DOORBELL_QUEUES]) };
        Some(VirtioNic {
            transport: SomeTransport::Mmio(mmio),
            kind,
            irq: Some(slot.irq),
            registers: Some(BenchRegisters {
                read: Register::U32(slot.region.base as usize + MMIO_DEVICE_ID),
                notify_tx: queue_notify,
            }),
            doorbells,
            msix: None,
        })
    })
}

/// Enumerates the PCIe host bridge for a virtio-net device, places its memory BARs in the 32-bit
/// window, enables it and returns its transport.
///
/// # Safety
///
/// The ECAM region and the 32-bit memory window must be identity mapped as device memory and not
/// otherwise in use; `H` must map MMIO identically.
pub unsafe fn find_pci<H: Hal>(host: &PciHost) -> Result<Option<VirtioNic>, DiscoverError> {
    // SAFETY: the caller promises the ECAM region is mapped and unaliased.
    let cam = unsafe { MmioCam::new(host.ecam.base as usize as *mut u8, Cam::Ecam) };
    // SAFETY: the clone only reads the read-only interrupt pin register.
    let reader = unsafe { cam.unsafe_clone() };
    let mut root = PciRoot::new(cam);
    let window = host.mmio32().filter(|w| w.pci_base == w.cpu_base);
    let mut next = window.map(|w| w.pci_base).unwrap_or(0);
    let limit = window.map(|w| w.pci_base + w.size).unwrap_or(0);

    let found = root
        .enumerate_bus(host.bus_start)
        .find(|(_, info)| virtio_device_type(info) == Some(DeviceType::Network))
        .map(|(df, _)| df);
    let Some(df) = found else { return Ok(None) };

    let mut bar = 0u8;
    while bar < 6 {
        let info = root
            .bar_info(df, bar)
            .map_err(|_| DiscoverError::Pci("cannot size BAR"))?;
        let Some(info) = info else {
            bar += 1;
            continue;
        };
        let step = if info.takes_two_entries() { 2 } else { 1 };
        if let BarInfo::Memory {
            address_type, size, ..
        } = info
        {
            if size > 0 {
                let base = next.next_multiple_of(size);
                if base + size > limit
                    || (address_type != MemoryBarType::Width64 && base + size > 1 << 32)
                {
                    return Err(DiscoverError::NoBarSpace {
                        device: df.device,
                        bar,
                    });
                }
                match address_type {
                    MemoryBarType::Width64 => root.set_bar_64(df, bar, base),
                    _ => root.set_bar_32(df, bar, base as u32),
                }
                next = base + size;
            }
        }
        bar += step;
    }
    root.set_command(df, Command::MEMORY_SPACE | Command::BUS_MASTER);

    let layout = VirtioPciLayout::find(&mut root, &reader, df)
        .ok_or(DiscoverError::Pci("missing capabilities"))?;
    let doorbells = layout.doorbells();
    let registers = doorbells.get(TX_QUEUE).map(|notify_tx| BenchRegisters {
        read: Register::U16(layout.common + COMMON_NUM_QUEUES),
        notify_tx,
    });
    let pin = interrupt_pin(&reader, df).unwrap_or(1);
    let irq = host.irq_for(df.bus, df.device, df.function, pin);
    let msix = msix_table(&mut root, &reader, host, df).map(|table| PciMsix {
        table,
        requester_id: u16::from(df.bus) << 8 | u16::from(df.device) << 3 | u16::from(df.function),
        common: layout.common,
    });
    let transport = PciTransport::new::<H, _>(&mut root, df)
        .map_err(|_| DiscoverError::Pci("missing capabilities"))?;
    Ok(Some(VirtioNic {
        transport: SomeTransport::Pci(transport),
        kind: TransportKind::Pci,
        irq,
        registers,
        doorbells,
        msix,
    }))
}

/// PCI capability ID of MSI-X.
const PCI_CAP_MSIX: u8 = 0x11;

/// The function's MSI-X capability and table (in a BAR already placed), if it has one.
fn msix_table<C: ConfigurationAccess>(
    root: &mut PciRoot<C>,
    reader: &MmioCam<'_>,
    host: &PciHost,
    df: DeviceFunction,
) -> Option<MsixTable> {
    let cap = root.capabilities(df).find(|c| c.id == PCI_CAP_MSIX)?;
    let entries = (cap.private_header & 0x7ff) + 1;
    let table = reader.read_word(df, cap.offset.checked_add(4)?);
    let Ok(Some(BarInfo::Memory { address, .. })) = root.bar_info(df, (table & 0b111) as u8) else {
        return None;
    };
    let function = host.ecam.base
        + (u64::from(df.bus) << 20 | u64::from(df.device) << 15 | u64::from(df.function) << 12);
    let control = usize::try_from(function + u64::from(cap.offset) + 2).ok()?;
    let table = usize::try_from(address + u64::from(table & !0b111)).ok()?;
    // SAFETY: the Message Control register is in the function's configuration space in the
    // ECAM region, and the table in its BAR just placed in the device window; both stay mapped
    // as device memory.
    Some(unsafe { MsixTable::new(control, table, entries) })
}

/// virtio-pci capability types (virtio 1.x 4.1.4).
const PCI_CAP_COMMON_CFG: u8 = 1;
const PCI_CAP_NOTIFY_CFG: u8 = 2;
/// Common configuration registers used here.
const COMMON_NUM_QUEUES: usize = 0x12;
const COMMON_QUEUE_SELECT: usize = 0x16;
const COMMON_QUEUE_NOTIFY_OFF: usize = 0x1e;

/// Where a virtio-pci device's common configuration and notification area are, read from its
/// vendor capabilities once its BARs are placed.
struct VirtioPciLayout {
    common: usize,
    notify: usize,
    notify_multiplier: usize,
}

impl VirtioPciLayout {
    fn find<C: ConfigurationAccess>(
        root: &mut PciRoot<C>,
        reader: &MmioCam<'_>,
        df: DeviceFunction,
    ) -> Option<Self> {
        let (mut common, mut notify) = (None, None);
        let caps: alloc::vec::Vec<_> = root.capabilities(df).collect();
        for cap in caps.into_iter().filter(|c| c.id == 0x09) {
            let kind = (cap.private_header >> 8) as u8;
            let at = |delta: u8| cap.offset.checked_add(delta);
            let bar = reader.read_word(df, at(4)?) as u8;
            let offset = u64::from(reader.read_word(df, at(8)?));
            let Ok(Some(BarInfo::Memory { address, .. })) = root.bar_info(df, bar) else {
                continue;
            };
            match kind {
                PCI_CAP_COMMON_CFG if common.is_none() => common = Some(address + offset),
                PCI_CAP_NOTIFY_CFG if notify.is_none() => {
                    let multiplier = reader.read_word(df, at(16)?);
                    notify = Some((address + offset, multiplier));
                }
                _ => {}
            }
        }
        let (notify, multiplier) = notify?;
        Some(VirtioPciLayout {
            common: usize::try_from(common?).ok()?,
            notify: usize::try_from(notify).ok()?,
            notify_multiplier: multiplier as usize,
        })
    }

    /// Each queue's doorbell: the notification area plus its `queue_notify_off` times the
    /// multiplier, which virtio-drivers would otherwise look up again on every notify.
    fn doorbells(&self) -> QueueDoorbells {
        let mut registers = [None; DOORBELL_QUEUES];
        for (queue, register) in (0u16..).zip(registers.iter_mut()) {
            // SAFETY: the common configuration lies in a BAR just placed in the identity-mapped
            // device window; selecting a queue and reading its (read-only) notify offset has no
            // other effect, and the driver selects the queue it wants before every queue access.
            let notify_off = unsafe {
                ((self.common + COMMON_QUEUE_SELECT) as *mut u16).write_volatile(queue);
                ((self.common + COMMON_QUEUE_NOTIFY_OFF) as *const u16).read_volatile()
            };
            *register = Some(Register::U16(
                self.notify + usize::from(notify_off) * self.notify_multiplier,
            ));
        }
        // SAFETY: each address is in the device's notification area, where writing a queue's
        // index at its offset notifies that queue (virtio 1.x 4.1.4.4).
        unsafe { QueueDoorbells::new(registers) }
    }
}

/// The INTx pin (1..=4) from the configuration header, if the device uses one.
fn interrupt_pin(cam: &MmioCam<'_>, df: DeviceFunction) -> Option<u8> {
    // Interrupt line and pin are bytes 0x3c and 0x3d of the type 0 header.
    let pin = (cam.read_word(df, 0x3c) >> 8) as u8;
    (1..=4).contains(&pin).then_some(pin)
}
