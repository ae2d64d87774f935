//! The GICv3 ITS: translates a device's MSI write (device ID from the bus, event ID as the
//! data) into an LPI. Set up here for one device on the boot CPU: a device table and a
//! collection table, the command queue, one collection targeting this CPU's redistributor, and
//! the redistributor's LPI configuration and pending tables.

use alloc::alloc::{alloc_zeroed, Layout};
use core::arch::asm;
use spin::mutex::SpinMutex;
use vmprobe_guest::dtb::Region;
use vmprobe_guest::net::msix::MsiMessage;

/// ITS registers (offsets in its control frame; `GITS_TRANSLATER` in the translation frame).
const GITS_CTLR: usize = 0x0000;
const GITS_TYPER: usize = 0x0008;
const GITS_CBASER: usize = 0x0080;
const GITS_CWRITER: usize = 0x0088;
const GITS_CREADR: usize = 0x0090;
const GITS_BASER: usize = 0x0100;
const GITS_TRANSLATER: usize = 0x1_0040;
/// Redistributor (RD_base frame) registers.
const GICR_CTLR: usize = 0x0000;
const GICR_TYPER: usize = 0x0008;
const GICR_PROPBASER: usize = 0x0070;
const GICR_PENDBASER: usize = 0x0078;
/// Distributor `GICD_TYPER`: bits 19..24 are the INTID bits minus one, bit 17 LPI support.
const GICD_TYPER: usize = 0x0004;

/// LPI INTID bits used: INTIDs below 2^14, so 8192 LPIs from 8192 on.
const LPI_ID_BITS: u32 = 14;
/// First LPI.
const LPI_START: u32 = 8192;
/// Event IDs per device (MSI-X vectors): 2^2.
const EVENT_ID_BITS: u32 = 2;
/// Collection used for everything: the boot CPU's.
const ICID: u64 = 0;
/// LPI configuration byte: priority 0x80, bit 1 RES1, bit 0 enable.
const LPI_PROPERTY: u8 = 0x80 | 0b10;
const LPI_ENABLE: u8 = 1;
/// Table attributes: inner shareable, inner read/write-allocate write-back.
const SHAREABLE_INNER: u64 = 0b01 << 10;
const BASER_INNER_WB: u64 = 0b111 << 59;
const REDIST_INNER_WB: u64 = 0b111 << 7;
const VALID: u64 = 1 << 63;
const PAGE: usize = 4096;
/// Polls of `GITS_CREADR` before a command is declared stuck (seconds under TCG).
const COMMAND_SPINS: u32 = 10_000_000;
/// Command queue: one 4 KiB page of 32-byte commands.
const COMMAND_BYTES: usize = 32;

/// Why the ITS could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ItsError {
    /// The distributor or redistributor has no LPIs.
    #[error("the GICv3 has no LPI support")]
    NoLpis,
    /// The device ID does not fit the ITS.
    #[error("device ID {0:#x} is beyond the ITS's device table")]
    DeviceId(u32),
    /// The ITS did not take a command.
    #[error("the ITS did not complete command {0:#x}")]
    Stuck(u8),
    /// No memory for the tables.
    #[error("no memory for the ITS tables")]
    NoMemory,
}

/// One ITS with its command queue, mapping one device's events to LPIs on the boot CPU.
pub struct Its {
    frame: Frame,
    commands: usize,
    write: usize,
    /// RDbase as MAPC and SYNC take it (processor number, or the frame's address >> 16).
    rdbase: u64,
    lpi_config: usize,
    device: u32,
    next_event: u32,
    /// The LPI the `lpi` micro-benchmark triggers, once mapped.
    bench_lpi: Option<u32>,
}

static ITS: SpinMutex<Option<Its>> = SpinMutex::new(None);

/// A GIC register frame, accessed one plain load or store per register.
#[derive(Clone, Copy)]
struct Frame(usize);

impl Frame {
    /// # Safety
    ///
    /// `base` must be a GIC frame (ITS, distributor or redistributor) mapped as device memory,
    /// whose registers at the offsets this module uses take the accesses made here.
    unsafe fn new(base: u64) -> Self {
        Frame(base as usize)
    }

    fn read64(self, offset: usize) -> u64 {
        // SAFETY: a register of the frame `new`'s caller vouched for.
        unsafe { ((self.0 + offset) as *const u64).read_volatile() }
    }

    fn write64(self, offset: usize, value: u64) {
        // SAFETY: as in `read64`.
        unsafe { ((self.0 + offset) as *mut u64).write_volatile(value) }
    }

    fn read32(self, offset: usize) -> u32 {
        // SAFETY: as in `read64`.
        unsafe { ((self.0 + offset) as *const u32).read_volatile() }
    }

    fn write32(self, offset: usize, value: u32) {
        // SAFETY: as in `read64`.
        unsafe { ((self.0 + offset) as *mut u32).write_volatile(value) }
    }
}

/// Zeroed memory for the GIC to read, aligned as it requires; lives for the rest of the run.
fn table(bytes: usize, align: usize) -> Result<usize, ItsError> {
    let layout = Layout::from_size_align(bytes, align).map_err(|_| ItsError::NoMemory)?;
    // SAFETY: a non-zero size.
    let at = unsafe { alloc_zeroed(layout) } as usize;
    if at == 0 {
        return Err(ItsError::NoMemory);
    }
    clean(at, bytes);
    Ok(at)
}

/// Cleans `[at, at + bytes)` to the point of coherency, for a GIC that may not snoop caches.
fn clean(at: usize, bytes: usize) {
    let ctr: u64;
    // SAFETY: reading CTR_EL0 has no side effects.
    unsafe { asm!("mrs {}, ctr_el0", out(reg) ctr, options(nomem, nostack, preserves_flags)) };
    let line = 4usize << ((ctr >> 16) & 0xf);
    let mut addr = at & !(line - 1);
    while addr < at + bytes {
        // SAFETY: cleaning a line of mapped RAM only writes it back.
        unsafe { asm!("dc cvac, {}", in(reg) addr, options(nostack, preserves_flags)) };
        addr += line;
    }
    // SAFETY: a barrier.
    unsafe { asm!("dsb sy", options(nostack, preserves_flags)) };
}

impl Its {
    /// Sets up the ITS at `its` for device `device`, and LPIs on the redistributor at `redist`
    /// (the boot CPU's, the first frame) of the distributor at `dist`.
    ///
    /// # Safety
    ///
    /// The three frames must be mapped as device memory, the ITS and the redistributor's LPI
    /// registers used by nothing else, and LPIs not yet enabled.
    pub unsafe fn init(
        its: Region,
        dist: Region,
        redist: Region,
        device: u32,
    ) -> Result<(), ItsError> {
        // SAFETY: the caller promises the three frames mapped and the ITS and LPI registers ours.
        let (frame, rd, gicd) = unsafe {
            (
                Frame::new(its.base),
                Frame::new(redist.base),
                Frame::new(dist.base),
            )
        };
        let gicd_typer = gicd.read32(GICD_TYPER);
        let id_bits = ((gicd_typer >> 19) & 0x1f) + 1;
        let gicr_typer = rd.read64(GICR_TYPER);
        if gicd_typer & (1 << 17) == 0 || gicr_typer & 1 == 0 || id_bits < LPI_ID_BITS {
            return Err(ItsError::NoLpis);
        }
        let typer = frame.read64(GITS_TYPER);
        let itt_entry = (((typer >> 4) & 0xf) + 1) as usize;
        let dev_bits = ((typer >> 13) & 0x1f) + 1;
        if u64::from(device) >> dev_bits != 0 {
            return Err(ItsError::DeviceId(device));
        }
        let rdbase = if typer & (1 << 19) != 0 {
            redist.base >> 16
        } else {
            (gicr_typer >> 8) & 0xffff
        };

        // Redistributor: LPI configuration and pending tables, then LPIs on.
        let config_bytes = (1usize << LPI_ID_BITS) - LPI_START as usize;
        let lpi_config = table(config_bytes, PAGE)?;
        let pending = table((1usize << LPI_ID_BITS) / 8, 0x1_0000)?;
        rd.write64(
            GICR_PROPBASER,
            lpi_config as u64 | SHAREABLE_INNER | REDIST_INNER_WB | u64::from(LPI_ID_BITS - 1),
        );
        rd.write64(
            GICR_PENDBASER,
            pending as u64 | SHAREABLE_INNER | REDIST_INNER_WB | 1 << 62,
        );
        rd.write32(GICR_CTLR, rd.read32(GICR_CTLR) | 1);

        // ITS: disabled while its tables are given, then the device and collection tables.
        frame.write32(GITS_CTLR, frame.read32(GITS_CTLR) & !1);
        for n in 0..8 {
            let at = GITS_BASER + 8 * n;
            let baser = frame.read64(at);
            let entry = (((baser >> 48) & 0x1f) + 1) as usize;
            let entries = match (baser >> 56) & 0b111 {
                1 => device as usize + 1,
                4 => ICID as usize + 1,
                _ => continue,
            };
            let pages = (entries * entry).div_ceil(PAGE);
            let memory = table(pages * PAGE, PAGE)?;
            // Keep the read-only type and entry size; 4 KiB pages, flat.
            let keep = baser & (0b111 << 56 | 0x1f << 48);
            frame.write64(
                at,
                VALID
                    | BASER_INNER_WB
                    | keep
                    | memory as u64
                    | SHAREABLE_INNER
                    | (pages as u64 - 1),
            );
        }
        let commands = table(PAGE, 0x1_0000)?;
        frame.write64(
            GITS_CBASER,
            VALID | BASER_INNER_WB | commands as u64 | SHAREABLE_INNER,
        );
        frame.write64(GITS_CWRITER, 0);
        frame.write32(GITS_CTLR, frame.read32(GITS_CTLR) | 1);

        let mut its = Its {
            frame,
            commands,
            write: 0,
            rdbase,
            lpi_config,
            device,
            next_event: 0,
            bench_lpi: None,
        };
        let itt = table((1usize << EVENT_ID_BITS) * itt_entry, 256)?;
        // MAPD: the device's interrupt translation table; MAPC: the collection to this CPU.
        its.command([
            0x08 | u64::from(device) << 32,
            u64::from(EVENT_ID_BITS - 1),
            VALID | itt as u64,
            0,
        ])?;
        its.command([0x09, 0, VALID | rdbase << 16 | ICID, 0])?;
        its.sync()?;
        *ITS.lock() = Some(its);
        Ok(())
    }

    /// Queues one command and waits until the ITS has read it.
    fn command(&mut self, words: [u64; 4]) -> Result<(), ItsError> {
        let at = self.commands + self.write;
        for (i, w) in words.iter().enumerate() {
            // SAFETY: a 32-byte slot of the command queue this ITS owns.
            unsafe { ((at + 8 * i) as *mut u64).write_volatile(*w) };
        }
        clean(at, COMMAND_BYTES);
        self.write = (self.write + COMMAND_BYTES) % PAGE;
        self.frame.write64(GITS_CWRITER, self.write as u64);
        for _ in 0..COMMAND_SPINS {
            if self.frame.read64(GITS_CREADR) as usize & !0x1f == self.write {
                return Ok(());
            }
            core::hint::spin_loop();
        }
        Err(ItsError::Stuck(words[0] as u8))
    }

    /// SYNC: every earlier command has taken effect at the redistributor.
    fn sync(&mut self) -> Result<(), ItsError> {
        self.command([0x05, 0, self.rdbase << 16, 0])
    }

    fn set_lpi(&mut self, lpi: u32, enable: bool, event: u32) -> Result<(), ItsError> {
        let at = self.lpi_config + (lpi - LPI_START) as usize;
        let value = LPI_PROPERTY | if enable { LPI_ENABLE } else { 0 };
        // SAFETY: the LPI's byte in the configuration table this ITS allocated.
        unsafe { (at as *mut u8).write_volatile(value) };
        clean(at, 1);
        // INV: the redistributor rereads the LPI's configuration.
        self.command([0x0c | u64::from(self.device) << 32, u64::from(event), 0, 0])?;
        self.sync()
    }

    /// Maps the device's next event to a new LPI, enabled; returns the LPI and the message
    /// that raises it.
    fn allocate(&mut self) -> Result<Option<(u32, MsiMessage)>, ItsError> {
        if self.next_event >= 1 << EVENT_ID_BITS {
            return Ok(None);
        }
        let event = self.next_event;
        self.next_event += 1;
        let lpi = LPI_START + event;
        // MAPTI: (device, event) to this LPI in the boot CPU's collection.
        self.command([
            0x0a | u64::from(self.device) << 32,
            u64::from(event) | u64::from(lpi) << 32,
            ICID,
            0,
        ])?;
        self.set_lpi(lpi, true, event)?;
        let message = MsiMessage {
            address: (self.frame.0 + GITS_TRANSLATER) as u64,
            data: event,
        };
        Ok(Some((lpi, message)))
    }
}

/// Maps the device's next event to a new LPI, enabled; returns the LPI and the message that
/// raises it. None without an ITS or with every event used.
pub fn allocate() -> Result<Option<(u32, MsiMessage)>, ItsError> {
    match ITS.lock().as_mut() {
        Some(its) => its.allocate(),
        None => Ok(None),
    }
}

/// The LPI the `lpi` micro-benchmark raises: a spare event of the device, mapped on first use
/// (no device ever writes it). None without an ITS.
pub fn bench_lpi() -> Option<u32> {
    let mut guard = ITS.lock();
    let its = guard.as_mut()?;
    if its.bench_lpi.is_none() {
        its.bench_lpi = its.allocate().ok().flatten().map(|(lpi, _)| lpi);
    }
    its.bench_lpi
}

/// Makes the ITS raise `lpi` as its device's write would (the `INT` command), returning once the
/// ITS has read the command. False if `lpi` is not one of this ITS's or the ITS is stuck.
pub fn trigger(lpi: u32) -> bool {
    let mut guard = ITS.lock();
    let Some(its) = guard.as_mut() else {
        return false;
    };
    let event = lpi.wrapping_sub(LPI_START);
    event < its.next_event
        && its
            .command([0x03 | u64::from(its.device) << 32, u64::from(event), 0, 0])
            .is_ok()
}

/// Enables or disables LPI `lpi` (one this module allocated).
pub fn set_enabled(lpi: u32, enable: bool) {
    if let Some(its) = ITS.lock().as_mut() {
        let event = lpi.wrapping_sub(LPI_START);
        if event < its.next_event {
            let _ = its.set_lpi(lpi, enable, event);
        }
    }
}
