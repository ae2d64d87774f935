//! What the probe needs to know about its machine, read from the flattened device tree.
//!
//! Pure code: it only reads the blob it is given, so it is tested on the host against DTBs dumped
//! from `qemu-system-aarch64 -M virt,dumpdtb=...` (see `src/testdata`).

use alloc::string::String;
use alloc::vec::Vec;
use flat_device_tree::node::FdtNode;
use flat_device_tree::Fdt;

/// A physical address range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// First byte.
    pub base: u64,
    /// Length in bytes.
    pub size: u64,
}

impl Region {
    /// One past the last byte.
    pub fn end(&self) -> u64 {
        self.base.saturating_add(self.size)
    }
}

/// The interrupt controller and where its register frames are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GicInfo {
    /// GICv2: distributor and CPU interface.
    V2 {
        /// GICD frame.
        dist: Region,
        /// GICC frame.
        cpu: Region,
    },
    /// GICv3: distributor and redistributors (the CPU interface is system registers).
    V3 {
        /// GICD frame.
        dist: Region,
        /// First redistributor region.
        redist: Region,
    },
}

impl GicInfo {
    /// `v2` or `v3`, as the ready line shows it.
    pub fn version(&self) -> &'static str {
        match self {
            GicInfo::V2 { .. } => "v2",
            GicInfo::V3 { .. } => "v3",
        }
    }
}

/// A serial port the console can drive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Uart {
    /// Register frame.
    pub region: Region,
    /// Register layout.
    pub kind: UartKind,
}

/// The register layout of a [`Uart`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UartKind {
    /// Arm PL011 (QEMU virt).
    Pl011,
    /// 8250/16550-compatible (kvmtool, crosvm, Firecracker, many boards): register `n` is at
    /// `n << reg_shift`, accessed `reg_io_width` bytes wide (1 or 4).
    Ns16550 {
        /// `reg-shift`, default 0.
        reg_shift: u32,
        /// `reg-io-width`, default 1.
        reg_io_width: u32,
    },
}

/// Compatibles of 8250/16550-style UARTs, as Linux's 8250 driver takes them.
const NS16550_COMPATIBLE: [&[u8]; 7] = [
    b"ns16550a",
    b"ns16550",
    b"ns16450",
    b"ns8250",
    b"ns16750",
    b"ns16850",
    b"snps,dw-apb-uart",
];

/// How PSCI calls reach the firmware or hypervisor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PsciConduit {
    /// Hypervisor call.
    Hvc,
    /// Secure monitor call.
    Smc,
}

/// How an interrupt line signals, from the flags cell of its GIC specifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IrqTrigger {
    /// Edge-triggered (rising or falling).
    Edge,
    /// Level-sensitive (high or low).
    Level,
}

/// A wired interrupt: its GIC INTID and trigger type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Irq {
    /// GIC INTID.
    pub intid: u32,
    /// Edge or level, as the device tree says.
    pub trigger: IrqTrigger,
}

/// One virtio-mmio slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VirtioMmioSlot {
    /// Its register window.
    pub region: Region,
    /// Its interrupt.
    pub irq: Irq,
}

/// A window of CPU addresses through which the PCI host bridge forwards memory accesses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PciWindow {
    /// Address on the PCI bus.
    pub pci_base: u64,
    /// Address the CPU uses.
    pub cpu_base: u64,
    /// Length in bytes.
    pub size: u64,
    /// The window is 64-bit memory space (BARs placed there must be 64-bit).
    pub is_64bit: bool,
    /// Prefetchable memory.
    pub prefetchable: bool,
}

/// One `interrupt-map` entry of the PCI host: (device, pin) to GIC INTID.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PciIrqRoute {
    /// The high cell of the child unit address (bus/device/function bits), already masked.
    pub devfn_cell: u32,
    /// INTx pin, 1 = INTA ... 4 = INTD, already masked.
    pub pin: u32,
    /// The GIC interrupt it raises.
    pub irq: Irq,
}

/// An MSI controller: where a device writes its message signalled interrupts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsiController {
    /// A GICv2m frame (`arm,gic-v2m-frame`): each write to `MSI_SETSPI_NS` raises the SPI
    /// written.
    V2m(Region),
    /// A GICv3 ITS (`arm,gic-v3-its`): translates (device ID, event ID) to an LPI.
    Its(Region),
}

impl MsiController {
    /// The controller's register frame.
    pub fn region(&self) -> Region {
        match *self {
            MsiController::V2m(r) | MsiController::Its(r) => r,
        }
    }
}

/// The MSI controller behind a PCI host and how requester IDs map to its device IDs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PciMsi {
    /// The controller.
    pub controller: MsiController,
    /// `msi-map` entries: (first requester ID, its device ID, count); empty for `msi-parent`,
    /// which maps each requester ID to itself.
    pub map: Vec<(u32, u32, u32)>,
}

impl PciMsi {
    /// The device ID the controller sees for requester ID `rid` (bus << 8 | device << 3 |
    /// function), or None if `msi-map` leaves it out.
    pub fn device_id(&self, rid: u16) -> Option<u32> {
        let rid = u32::from(rid);
        if self.map.is_empty() {
            return Some(rid);
        }
        self.map
            .iter()
            .find(|(base, _, len)| rid >= *base && rid - base < *len)
            .map(|(base, id, _)| id + (rid - base))
    }
}

/// A PCIe host bridge with ECAM configuration space (`pci-host-ecam-generic`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PciHost {
    /// ECAM region.
    pub ecam: Region,
    /// First bus number behind the bridge.
    pub bus_start: u8,
    /// Memory windows (I/O space is left out).
    pub windows: Vec<PciWindow>,
    /// Legacy INTx routing.
    pub irq_routes: Vec<PciIrqRoute>,
    /// `interrupt-map-mask` for (devfn cell, pin).
    pub irq_mask: (u32, u32),
    /// The MSI controller its devices signal, if the device tree names one.
    pub msi: Option<PciMsi>,
}

impl PciHost {
    /// The GIC interrupt that INTx `pin` (1..=4) of device `device` on bus `bus` raises.
    pub fn irq_for(&self, bus: u8, device: u8, function: u8, pin: u8) -> Option<Irq> {
        let devfn_cell =
            (u32::from(bus) << 16 | u32::from(device) << 11 | u32::from(function) << 8)
                & self.irq_mask.0;
        let pin = u32::from(pin) & self.irq_mask.1;
        self.irq_routes
            .iter()
            .find(|r| r.devfn_cell == devfn_cell && r.pin == pin)
            .map(|r| r.irq)
    }

    /// The largest non-prefetchable 32-bit memory window, where BARs are placed.
    pub fn mmio32(&self) -> Option<PciWindow> {
        self.windows
            .iter()
            .filter(|w| !w.is_64bit && w.pci_base < (1 << 32))
            .max_by_key(|w| w.size)
            .copied()
    }
}

/// Everything the probe reads from the device tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Platform {
    /// RAM banks.
    pub memory: Vec<Region>,
    /// The console: the UART `/chosen/stdout-path` names, else the first PL011 or 16550.
    pub uart: Option<Uart>,
    /// Interrupt controller.
    pub gic: GicInfo,
    /// INTID of the EL1 virtual timer.
    pub virtual_timer_intid: u32,
    /// Its trigger type.
    pub virtual_timer_trigger: IrqTrigger,
    /// PSCI conduit, if the machine has PSCI.
    pub psci: Option<PsciConduit>,
    /// All virtio-mmio slots, in address order.
    pub virtio_mmio: Vec<VirtioMmioSlot>,
    /// PCIe host bridge with ECAM, if any.
    pub pci: Option<PciHost>,
    /// `/chosen/bootargs`.
    pub bootargs: Option<String>,
    /// Number of CPUs (GICv3 redistributors to expect).
    pub cpu_count: usize,
    /// Each CPU node's `reg`, its MPIDR affinity (what PSCI `CPU_ON` takes), in tree order;
    /// empty if the nodes have none.
    pub cpu_mpidrs: Vec<u64>,
}

/// Why a device tree could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DtbError {
    /// Not a valid flattened device tree.
    #[error("invalid device tree blob: {0}")]
    Invalid(&'static str),
    /// No `/memory` node with a `reg`.
    #[error("device tree has no memory")]
    NoMemory,
    /// No GICv2 or GICv3 node.
    #[error("device tree has no GICv2 or GICv3 interrupt controller")]
    NoGic,
    /// No ARMv8 timer node, or its interrupts are unusable.
    #[error("device tree has no usable arm,armv8-timer node")]
    NoTimer,
    /// A node's `reg` or `interrupts` property is malformed.
    #[error("malformed {property} in device tree node {node}")]
    Malformed {
        /// Node name.
        node: String,
        /// Property name.
        property: &'static str,
    },
}

const GIC_SPI: u32 = 0;
const GIC_PPI: u32 = 1;

/// The nodes the probe cares about, found in one walk of the tree: every property lookup scans
/// a node's properties and resolves names in the strings block, which is slow under TCG, so the
/// tree is walked once and each node's properties once.
#[derive(Default)]
struct Nodes<'b, 'a> {
    memory: Vec<FdtNode<'b, 'a>>,
    gic_v3: Option<FdtNode<'b, 'a>>,
    gic_v2: Option<FdtNode<'b, 'a>>,
    timer: Option<FdtNode<'b, 'a>>,
    psci: Option<FdtNode<'b, 'a>>,
    uarts: Vec<(FdtNode<'b, 'a>, UartKind)>,
    virtio_mmio: Vec<FdtNode<'b, 'a>>,
    pci: Option<FdtNode<'b, 'a>>,
    /// (phandle, `#address-cells`, `#interrupt-cells`) of interrupt controllers.
    interrupt_parents: Vec<(u32, usize, usize)>,
    /// (phandle, node, is an ITS) of MSI controllers.
    msi_controllers: Vec<(u32, FdtNode<'b, 'a>, bool)>,
    cpus: usize,
    /// `reg` of the CPU nodes that have one.
    cpu_mpidrs: Vec<u64>,
}

const GIC_V2_COMPATIBLE: [&[u8]; 4] = [
    b"arm,cortex-a15-gic",
    b"arm,gic-400",
    b"arm,cortex-a9-gic",
    b"arm,cortex-a7-gic",
];

impl<'b, 'a> Nodes<'b, 'a> {
    fn walk(fdt: &'b Fdt<'a>) -> Self {
        let mut found = Nodes::default();
        for node in fdt.all_nodes() {
            let (mut compatible, mut enabled, mut memory, mut cpu) = (&[][..], true, false, false);
            let (mut phandle, mut address_cells, mut interrupt_cells) = (None, 0, None);
            let mut msi_controller = false;
            for p in node.properties() {
                match p.name {
                    "compatible" => compatible = p.value,
                    "status" => enabled = matches!(p.value, b"okay\0" | b"ok\0"),
                    "device_type" => {
                        memory = p.value == b"memory\0";
                        cpu = p.value == b"cpu\0";
                    }
                    "phandle" => phandle = cells(p.value).next(),
                    "#address-cells" => address_cells = cells(p.value).next().unwrap_or(0) as usize,
                    "#interrupt-cells" => {
                        interrupt_cells = cells(p.value).next().map(|c| c as usize)
                    }
                    "msi-controller" => msi_controller = true,
                    _ => {}
                }
            }
            if let (Some(phandle), Some(interrupt_cells)) = (phandle, interrupt_cells) {
                found
                    .interrupt_parents
                    .push((phandle, address_cells, interrupt_cells));
            }
            if !enabled {
                continue;
            }
            let is = |c: &[u8]| compatible.split(|b| *b == 0).any(|s| s == c);
            if let (true, Some(phandle)) = (msi_controller, phandle) {
                if is(b"arm,gic-v3-its") || is(b"arm,gic-v2m-frame") {
                    found
                        .msi_controllers
                        .push((phandle, node, is(b"arm,gic-v3-its")));
                }
            }
            if memory {
                found.memory.push(node);
            } else if cpu {
                found.cpus += 1;
                if let Some(reg) = node.reg().next() {
                    found.cpu_mpidrs.push(reg.starting_address as u64);
                }
            } else if is(b"virtio,mmio") {
                found.virtio_mmio.push(node);
            } else if is(b"arm,gic-v3") {
                found.gic_v3.get_or_insert(node);
            } else if GIC_V2_COMPATIBLE.iter().any(|c| is(c)) {
                found.gic_v2.get_or_insert(node);
            } else if is(b"arm,armv8-timer") || is(b"arm,armv7-timer") {
                found.timer.get_or_insert(node);
            } else if is(b"arm,psci-1.0") || is(b"arm,psci-0.2") || is(b"arm,psci") {
                found.psci.get_or_insert(node);
            } else if is(b"arm,pl011") {
                found.uarts.push((node, UartKind::Pl011));
            } else if NS16550_COMPATIBLE.iter().any(|c| is(c)) {
                let cell = |name| node.property(name).and_then(|p| cells(p.value).next());
                let kind = UartKind::Ns16550 {
                    reg_shift: cell("reg-shift").unwrap_or(0),
                    reg_io_width: cell("reg-io-width").unwrap_or(1),
                };
                found.uarts.push((node, kind));
            } else if is(b"pci-host-ecam-generic") {
                found.pci.get_or_insert(node);
            }
        }
        found
    }
}

impl Platform {
    /// Interprets a device tree blob.
    pub fn parse(blob: &[u8]) -> Result<Self, DtbError> {
        let fdt = Fdt::new(blob).map_err(|_| DtbError::Invalid("bad header or structure"))?;
        let nodes = Nodes::walk(&fdt);

        let memory: Vec<Region> = nodes
            .memory
            .iter()
            .flat_map(|n| n.reg())
            .filter_map(|r| {
                Some(Region {
                    base: r.starting_address as u64,
                    size: r.size? as u64,
                })
                .filter(|r| r.size > 0)
            })
            .collect();
        if memory.is_empty() {
            return Err(DtbError::NoMemory);
        }

        let gic = parse_gic(&nodes)?;
        let virtual_timer = parse_timer(&nodes)?;
        let psci = nodes
            .psci
            .and_then(|n| n.property("method"))
            .and_then(|p| match p.value {
                b"hvc\0" => Some(PsciConduit::Hvc),
                b"smc\0" => Some(PsciConduit::Smc),
                _ => None,
            });

        let mut virtio_mmio = Vec::new();
        for node in &nodes.virtio_mmio {
            let Some(region) = first_reg(node) else {
                continue;
            };
            let irq = interrupts(node)?
                .into_iter()
                .next()
                .ok_or_else(|| malformed(node, "interrupts"))?;
            virtio_mmio.push(VirtioMmioSlot { region, irq });
        }
        virtio_mmio.sort_by_key(|s| s.region.base);

        let pci = nodes
            .pci
            .as_ref()
            .map(|n| parse_pci(&nodes, n))
            .transpose()?;
        let bootargs = fdt
            .chosen()
            .ok()
            .and_then(|c| c.bootargs())
            .map(String::from);

        Ok(Platform {
            memory,
            uart: parse_uart(&fdt, &nodes),
            gic,
            virtual_timer_intid: virtual_timer.intid,
            virtual_timer_trigger: virtual_timer.trigger,
            psci,
            virtio_mmio,
            pci,
            bootargs,
            cpu_count: nodes.cpus.max(1),
            cpu_mpidrs: nodes.cpu_mpidrs,
        })
    }
}

fn malformed(node: &FdtNode, property: &'static str) -> DtbError {
    DtbError::Malformed {
        node: String::from(node.name),
        property,
    }
}

fn first_reg(node: &FdtNode) -> Option<Region> {
    let r = node.reg().next()?;
    Some(Region {
        base: r.starting_address as u64,
        size: r.size? as u64,
    })
}

/// Big-endian cells of a property.
fn cells(value: &[u8]) -> impl Iterator<Item = u32> + '_ {
    value
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
}

/// A GIC interrupt specifier (type, number, flags) as an INTID.
fn gic_intid(kind: u32, number: u32) -> Option<u32> {
    match kind {
        GIC_SPI if number < 988 => Some(number + 32),
        GIC_PPI if number < 16 => Some(number + 16),
        _ => None,
    }
}

/// The trigger type in a GIC specifier's flags cell: bits 0-3 are edge rising (1), edge falling
/// (2), level high (4), level low (8); the PPI CPU mask above them does not matter here.
fn gic_trigger(flags: u32) -> IrqTrigger {
    if flags & 0b0011 != 0 {
        IrqTrigger::Edge
    } else {
        IrqTrigger::Level
    }
}

/// A three-cell GIC specifier as an interrupt.
fn gic_irq(spec: &[u32]) -> Option<Irq> {
    let [kind, number, flags, ..] = *spec else {
        return None;
    };
    Some(Irq {
        intid: gic_intid(kind, number)?,
        trigger: gic_trigger(flags),
    })
}

/// The node's `interrupts` (three-cell GIC specifiers).
fn interrupts(node: &FdtNode) -> Result<Vec<Irq>, DtbError> {
    let Some(prop) = node.property("interrupts") else {
        return Ok(Vec::new());
    };
    let raw: Vec<u32> = cells(prop.value).collect();
    if !raw.len().is_multiple_of(3) || !prop.value.len().is_multiple_of(4) {
        return Err(malformed(node, "interrupts"));
    }
    raw.chunks_exact(3)
        .map(|s| gic_irq(s).ok_or_else(|| malformed(node, "interrupts")))
        .collect()
}

fn parse_gic(nodes: &Nodes) -> Result<GicInfo, DtbError> {
    let (node, v3) = match (nodes.gic_v3, nodes.gic_v2) {
        (Some(node), _) => (node, true),
        (None, Some(node)) => (node, false),
        (None, None) => return Err(DtbError::NoGic),
    };
    let mut regs = node.reg().map(|r| {
        Some(Region {
            base: r.starting_address as u64,
            size: r.size? as u64,
        })
    });
    match (regs.next().flatten(), regs.next().flatten()) {
        (Some(dist), Some(redist)) if v3 => Ok(GicInfo::V3 { dist, redist }),
        (Some(dist), Some(cpu)) => Ok(GicInfo::V2 { dist, cpu }),
        _ => Err(malformed(&node, "reg")),
    }
}

fn parse_timer(nodes: &Nodes) -> Result<Irq, DtbError> {
    let node = nodes.timer.ok_or(DtbError::NoTimer)?;
    // Order per the binding: secure physical, non-secure physical, virtual, hypervisor.
    interrupts(&node)?.get(2).copied().ok_or(DtbError::NoTimer)
}

/// The UART `/chosen/stdout-path` names, else the first one.
fn parse_uart(fdt: &Fdt, nodes: &Nodes) -> Option<Uart> {
    let stdout = fdt.chosen().ok().and_then(|c| c.stdout());
    let stdout = stdout.as_ref().map(|s| s.node().name);
    let named = stdout.and_then(|name| nodes.uarts.iter().find(|(n, _)| n.name == name));
    let (node, kind) = named.or(nodes.uarts.first())?;
    Some(Uart {
        region: first_reg(node)?,
        kind: *kind,
    })
}

/// The console UART of a blob whose platform may not parse (no GIC, no memory, ...), so that
/// the probe can still say what is wrong with it.
pub fn console(blob: &[u8]) -> Option<Uart> {
    let fdt = Fdt::new(blob).ok()?;
    parse_uart(&fdt, &Nodes::walk(&fdt))
}

fn parse_pci(nodes: &Nodes, node: &FdtNode) -> Result<PciHost, DtbError> {
    let ecam = first_reg(node).ok_or_else(|| malformed(node, "reg"))?;
    let bus_start = node
        .property("bus-range")
        .and_then(|p| cells(p.value).next())
        .map(|b| b.min(255) as u8)
        .unwrap_or(0);

    // ranges: (phys.hi phys.mid phys.lo) (parent address) (size), space code in phys.hi bits 24-25.
    let windows = node
        .ranges()
        .filter_map(|r| {
            let space = (r.child_bus_address_hi >> 24) & 0b11;
            (space == 0b10 || space == 0b11).then_some(PciWindow {
                pci_base: r.child_bus_address as u64,
                cpu_base: r.parent_bus_address as u64,
                size: r.size as u64,
                is_64bit: space == 0b11,
                prefetchable: r.child_bus_address_hi & (1 << 30) != 0,
            })
        })
        .collect();

    let (irq_mask, irq_routes) = parse_interrupt_map(nodes, node)?;
    Ok(PciHost {
        ecam,
        bus_start,
        windows,
        irq_routes,
        irq_mask,
        msi: parse_msi(nodes, node)?,
    })
}

/// The PCI host's MSI controller: `msi-map` (requester ID base, controller phandle, device ID
/// base, length; one-cell `#msi-cells` assumed, as both GIC bindings have) or `msi-parent`.
fn parse_msi(nodes: &Nodes, node: &FdtNode) -> Result<Option<PciMsi>, DtbError> {
    let (phandle, map) = if let Some(p) = node.property("msi-map") {
        let raw: Vec<u32> = cells(p.value).collect();
        if raw.is_empty() || !raw.len().is_multiple_of(4) || !p.value.len().is_multiple_of(4) {
            return Err(malformed(node, "msi-map"));
        }
        // One controller for the whole bus is all the probe handles; the first entry's.
        let phandle = raw[1];
        let map = raw
            .chunks_exact(4)
            .filter(|e| e[1] == phandle)
            .map(|e| (e[0], e[2], e[3]))
            .collect();
        (phandle, map)
    } else if let Some(p) = node.property("msi-parent") {
        let phandle = cells(p.value)
            .next()
            .ok_or_else(|| malformed(node, "msi-parent"))?;
        (phandle, Vec::new())
    } else {
        return Ok(None);
    };
    let Some((_, controller, its)) = nodes.msi_controllers.iter().find(|c| c.0 == phandle) else {
        // A controller the probe does not drive (or a disabled one): no MSIs.
        return Ok(None);
    };
    let region = first_reg(controller).ok_or_else(|| malformed(controller, "reg"))?;
    let controller = if *its {
        MsiController::Its(region)
    } else {
        MsiController::V2m(region)
    };
    Ok(Some(PciMsi { controller, map }))
}

/// `interrupt-map` of a PCI host: entries of (3-cell unit address, 1-cell pin, phandle,
/// parent unit address, parent specifier), the parent cell counts read from the parent node.
fn parse_interrupt_map(
    nodes: &Nodes,
    node: &FdtNode,
) -> Result<((u32, u32), Vec<PciIrqRoute>), DtbError> {
    let mask = node
        .property("interrupt-map-mask")
        .map(|p| cells(p.value).collect::<Vec<_>>())
        .filter(|m| m.len() == 4)
        .map(|m| (m[0], m[3]))
        .unwrap_or((u32::MAX, u32::MAX));
    let Some(map) = node.property("interrupt-map") else {
        return Ok((mask, Vec::new()));
    };
    let raw: Vec<u32> = cells(map.value).collect();
    let mut routes = Vec::new();
    let mut i = 0;
    while i < raw.len() {
        let entry = raw
            .get(i..i + 5)
            .ok_or_else(|| malformed(node, "interrupt-map"))?;
        let (devfn_cell, pin, phandle) = (entry[0], entry[3], entry[4]);
        let parent = nodes
            .interrupt_parents
            .iter()
            .find(|p| p.0 == phandle)
            .map(|p| (p.1, p.2))
            .ok_or_else(|| malformed(node, "interrupt-map"))?;
        i += 5 + parent.0;
        let spec = raw
            .get(i..i + parent.1)
            .ok_or_else(|| malformed(node, "interrupt-map"))?;
        i += parent.1;
        if let Some(irq) = gic_irq(spec) {
            routes.push(PciIrqRoute {
                devfn_cell: devfn_cell & mask.0,
                pin: pin & mask.1,
                irq,
            });
        }
    }
    Ok((mask, routes))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `-M virt,gic-version=2 -cpu cortex-a57 -m 128M -device virtio-net-device
    /// -append "ip=192.168.7.2/24 gw=192.168.7.1 mode=poll"`.
    const GICV2_MMIO: &[u8] = include_bytes!("testdata/virt-gicv2-mmio.dtb");
    /// `-M virt,gic-version=3,virtualization=on -cpu max -m 256M -device virtio-net-pci`.
    const GICV3_PCI_EL2: &[u8] = include_bytes!("testdata/virt-gicv3-pci-el2.dtb");
    /// `-M virt,gic-version=2 -cpu max -m 128M -device virtio-net-pci,romfile=`.
    const GICV2_PCI: &[u8] = include_bytes!("testdata/virt-gicv2-pci.dtb");
    /// `-M virt,gic-version=3,its=off -cpu max -m 128M`.
    const GICV3_NO_ITS: &[u8] = include_bytes!("testdata/virt-gicv3-noits.dtb");

    #[test]
    fn msi_controllers_behind_the_pci_host() {
        let v2m = Platform::parse(GICV2_PCI)
            .unwrap()
            .pci
            .unwrap()
            .msi
            .unwrap();
        assert_eq!(
            v2m.controller,
            MsiController::V2m(Region {
                base: 0x0802_0000,
                size: 0x1000
            })
        );
        let its = Platform::parse(GICV3_PCI_EL2)
            .unwrap()
            .pci
            .unwrap()
            .msi
            .unwrap();
        assert_eq!(
            its.controller,
            MsiController::Its(Region {
                base: 0x0808_0000,
                size: 0x2_0000
            })
        );
        // QEMU maps every requester ID to the same device ID.
        assert_eq!(its.map, [(0, 0, 0x1_0000)]);
        assert_eq!(its.device_id(0x0008), Some(0x0008));
        let none = Platform::parse(GICV3_NO_ITS).unwrap();
        assert!(matches!(none.gic, GicInfo::V3 { .. }));
        assert_eq!(none.pci.unwrap().msi, None);
    }

    #[test]
    fn msi_map_offsets_and_gaps() {
        let msi = PciMsi {
            controller: MsiController::V2m(Region { base: 0, size: 0 }),
            map: vec![(0x100, 0x2000, 0x100)],
        };
        assert_eq!(msi.device_id(0x108), Some(0x2008));
        assert_eq!(msi.device_id(0x0ff), None);
        assert_eq!(msi.device_id(0x200), None);
        let parent = PciMsi { map: vec![], ..msi };
        assert_eq!(parent.device_id(0x108), Some(0x108));
    }

    #[test]
    fn gicv2_virtio_mmio_machine() {
        let p = Platform::parse(GICV2_MMIO).unwrap();
        assert_eq!(
            p.memory,
            [Region {
                base: 0x4000_0000,
                size: 128 << 20
            }]
        );
        assert_eq!(
            p.uart,
            Some(Uart {
                region: Region {
                    base: 0x0900_0000,
                    size: 0x1000
                },
                kind: UartKind::Pl011
            })
        );
        assert_eq!(console(GICV2_MMIO), p.uart);
        assert_eq!(
            p.gic,
            GicInfo::V2 {
                dist: Region {
                    base: 0x0800_0000,
                    size: 0x1_0000
                },
                cpu: Region {
                    base: 0x0801_0000,
                    size: 0x1_0000
                },
            }
        );
        assert_eq!(p.gic.version(), "v2");
        assert_eq!(p.virtual_timer_intid, 27);
        assert_eq!(p.psci, Some(PsciConduit::Hvc));
        assert_eq!(p.virtio_mmio.len(), 32);
        assert_eq!(
            p.virtio_mmio[0],
            VirtioMmioSlot {
                region: Region {
                    base: 0x0a00_0000,
                    size: 0x200
                },
                irq: Irq {
                    intid: 48,
                    trigger: IrqTrigger::Edge
                }
            }
        );
        assert_eq!(
            p.virtio_mmio[31],
            VirtioMmioSlot {
                region: Region {
                    base: 0x0a00_3e00,
                    size: 0x200
                },
                irq: Irq {
                    intid: 79,
                    trigger: IrqTrigger::Edge
                }
            }
        );
        assert_eq!(
            p.bootargs.as_deref(),
            Some("ip=192.168.7.2/24 gw=192.168.7.1 mode=poll")
        );
        assert_eq!(p.cpu_count, 1);
        assert_eq!(p.cpu_mpidrs, [0]);
        // Every virt machine has the PCIe host too, with its 32-bit window identity mapped.
        let pci = p.pci.unwrap();
        assert_eq!(pci.ecam.size, 0x1000_0000);
        let w = pci.mmio32().unwrap();
        assert_eq!(
            (w.pci_base, w.cpu_base, w.size),
            (0x1000_0000, 0x1000_0000, 0x2eff_0000)
        );
    }

    #[test]
    fn gicv3_pci_el2_machine() {
        let p = Platform::parse(GICV3_PCI_EL2).unwrap();
        assert_eq!(
            p.memory,
            [Region {
                base: 0x4000_0000,
                size: 256 << 20
            }]
        );
        let GicInfo::V3 { dist, redist } = p.gic else {
            panic!("not v3: {:?}", p.gic)
        };
        assert_eq!(dist.base, 0x0800_0000);
        assert_eq!(redist.base, 0x080a_0000);
        assert_eq!(p.gic.version(), "v3");
        assert_eq!(p.virtual_timer_intid, 27);
        // With EL2 given to the guest, PSCI moves to the secure monitor.
        assert_eq!(p.psci, Some(PsciConduit::Smc));
        assert_eq!(p.bootargs, None);
        let pci = p.pci.unwrap();
        // High ECAM above 4 GiB on a 48-bit machine.
        assert_eq!(
            pci.ecam,
            Region {
                base: 0x40_1000_0000,
                size: 0x1000_0000
            }
        );
        assert_eq!(pci.bus_start, 0);
        assert!(pci.windows.iter().any(|w| w.is_64bit && w.size >= 1 << 32));
        // INTx swizzle: slot 1 INTA is SPI 4 (INTID 36), slot 0 INTA SPI 3.
        let intid = |device, pin| pci.irq_for(0, device, 0, pin).map(|i| i.intid);
        assert_eq!(intid(0, 1), Some(35));
        assert_eq!(intid(1, 1), Some(36));
        assert_eq!(intid(1, 2), Some(37));
        assert_eq!(intid(4, 1), Some(35));
        // INTx is level-sensitive; the timer too.
        assert!(pci
            .irq_routes
            .iter()
            .all(|r| r.irq.trigger == IrqTrigger::Level));
        assert_eq!(p.virtual_timer_trigger, IrqTrigger::Level);
        assert_eq!(pci.irq_routes.len(), 16);
    }

    #[test]
    fn rejects_garbage_and_truncation() {
        assert!(matches!(
            Platform::parse(&[0u8; 64]),
            Err(DtbError::Invalid(_))
        ));
        assert!(Platform::parse(&GICV2_MMIO[..GICV2_MMIO.len() / 2]).is_err());
        assert!(Platform::parse(&[]).is_err());
    }

    #[test]
    fn corrupted_blobs_never_panic() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for blob in [GICV2_MMIO, GICV3_PCI_EL2, GICV2_PCI, GICV3_NO_ITS] {
            for _ in 0..3000 {
                let mut bad = blob.to_vec();
                for _ in 0..1 + next() % 4 {
                    let at = (next() as usize) % bad.len();
                    bad[at] = next() as u8;
                }
                let cut = bad.len() - (next() as usize % 64).min(bad.len());
                let _ = Platform::parse(&bad[..cut]);
            }
        }
    }

    #[test]
    fn interrupt_specifiers() {
        assert_eq!(gic_intid(GIC_SPI, 16), Some(48));
        assert_eq!(gic_intid(GIC_PPI, 11), Some(27));
        assert_eq!(gic_intid(GIC_PPI, 16), None);
        assert_eq!(gic_intid(7, 1), None);
        let irq = |flags| gic_irq(&[GIC_SPI, 3, flags]).unwrap().trigger;
        assert_eq!(irq(1), IrqTrigger::Edge);
        assert_eq!(irq(2), IrqTrigger::Edge);
        assert_eq!(irq(4), IrqTrigger::Level);
        assert_eq!(irq(8), IrqTrigger::Level);
        // A PPI's CPU mask sits above the trigger bits.
        assert_eq!(
            gic_irq(&[GIC_PPI, 11, 0xf04]),
            Some(Irq {
                intid: 27,
                trigger: IrqTrigger::Level
            })
        );
        assert_eq!(gic_irq(&[GIC_SPI, 3]), None);
    }
}
