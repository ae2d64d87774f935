//! MSI-X for virtio-pci: the capability and table of the PCI function, and the virtio common
//! configuration's vector registers, which say which table entry each queue and the
//! configuration-change interrupt use.

/// A message signalled interrupt: the device writes `data` to `address`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsiMessage {
    /// Doorbell address of the MSI controller.
    pub address: u64,
    /// What is written there (an SPI number on GICv2m, an event ID on the ITS).
    pub data: u32,
}

/// A function's MSI-X capability and table, found in configuration space with its BARs placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsixTable {
    /// Address of the capability's 16-bit Message Control register (in ECAM).
    control: usize,
    /// Address of the table (in the BAR its BIR names).
    table: usize,
    /// Table entries.
    entries: u16,
}

/// Message Control: MSI-X Enable and Function Mask.
const CONTROL_ENABLE: u16 = 1 << 15;
const CONTROL_FUNCTION_MASK: u16 = 1 << 14;
/// Bytes per table entry: address low, address high, data, vector control (bit 0: masked).
const ENTRY_BYTES: usize = 16;

impl MsixTable {
    /// The table at `table` with `entries` entries, enabled through the Message Control
    /// register at `control`.
    ///
    /// # Safety
    ///
    /// Both addresses must be the function's, mapped as device memory, for as long as the value
    /// is used.
    pub unsafe fn new(control: usize, table: usize, entries: u16) -> Self {
        MsixTable {
            control,
            table,
            entries,
        }
    }

    /// How many vectors the function has.
    pub fn entries(&self) -> u16 {
        self.entries
    }

    /// Writes `message` into entry `vector` and unmasks it; false if there is no such entry.
    pub fn set(&self, vector: u16, message: MsiMessage) -> bool {
        if vector >= self.entries {
            return false;
        }
        let entry = self.table + usize::from(vector) * ENTRY_BYTES;
        let words = [
            message.address as u32,
            (message.address >> 32) as u32,
            message.data,
            0,
        ];
        for (i, word) in words.into_iter().enumerate() {
            // SAFETY: `new`'s caller promised the mapped table; the entry is in it and every
            // field is a 32-bit register written with one 32-bit store.
            unsafe { ((entry + 4 * i) as *mut u32).write_volatile(word) };
        }
        true
    }

    /// Turns MSI-X on for the function (which turns its INTx off).
    pub fn enable(&self) {
        let control = self.control as *mut u16;
        // SAFETY: `new`'s caller promised the mapped Message Control register; the read-modify-
        // write keeps its read-only table size bits.
        unsafe {
            let value = control.read_volatile();
            control.write_volatile((value | CONTROL_ENABLE) & !CONTROL_FUNCTION_MASK);
        }
    }
}

/// virtio-pci common configuration registers for MSI-X vectors.
const COMMON_MSIX_CONFIG: usize = 0x10;
const COMMON_QUEUE_SELECT: usize = 0x16;
const COMMON_QUEUE_MSIX_VECTOR: usize = 0x1a;
/// `VIRTIO_MSI_NO_VECTOR`: what the device reads back when it refused a vector.
pub const NO_VECTOR: u16 = 0xffff;

/// Which MSI-X table entry the device uses for configuration changes and for each queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VirtioVectors {
    common: usize,
    /// Vector of configuration-change interrupts.
    pub config: u16,
    /// Vectors of queue 0 (receive) and queue 1 (transmit).
    pub queues: [u16; 2],
}

impl VirtioVectors {
    /// Vectors to assign through the common configuration at `common`.
    ///
    /// # Safety
    ///
    /// `common` must be the device's virtio-pci common configuration, mapped as device memory.
    pub unsafe fn new(common: usize, config: u16, queues: [u16; 2]) -> Self {
        VirtioVectors {
            common,
            config,
            queues,
        }
    }

    /// Writes the vectors to the device (after a reset, before DRIVER_OK: under KVM, QEMU
    /// wires vhost's interrupts to the vectors set when the driver says DRIVER_OK). False if
    /// the device refused one.
    pub fn assign(&self) -> bool {
        let reg = |offset: usize| (self.common + offset) as *mut u16;
        // SAFETY: `new`'s caller promised the mapped common configuration; these are its 16-bit
        // registers, each written and read back with one access of that width. The driver
        // selects the queue it wants before every other queue access.
        unsafe {
            reg(COMMON_MSIX_CONFIG).write_volatile(self.config);
            let mut ok = reg(COMMON_MSIX_CONFIG).read_volatile() == self.config;
            for (queue, vector) in (0u16..).zip(self.queues) {
                reg(COMMON_QUEUE_SELECT).write_volatile(queue);
                reg(COMMON_QUEUE_MSIX_VECTOR).write_volatile(vector);
                ok &= reg(COMMON_QUEUE_MSIX_VECTOR).read_volatile() == vector;
            }
            ok
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_entries_are_written_unmasked_and_bounded() {
        let mut table = vec![0xffff_ffffu32; 4 * 3];
        let mut control = 0x0002u16 | CONTROL_FUNCTION_MASK;
        // SAFETY: both point into live test memory.
        let msix = unsafe {
            MsixTable::new(
                &mut control as *mut u16 as usize,
                table.as_mut_ptr() as usize,
                3,
            )
        };
        let message = MsiMessage {
            address: 0x1_0808_0040,
            data: 0x91,
        };
        assert!(msix.set(1, message));
        assert!(!msix.set(3, message));
        assert_eq!(table[4..8], [0x0808_0040, 0x1, 0x91, 0]);
        assert_eq!(table[0..4], [0xffff_ffff; 4]);
        msix.enable();
        assert_eq!(control, 0x0002 | CONTROL_ENABLE);
    }

    #[test]
    fn vectors_read_back_as_written() {
        // Plain memory keeps what is written, as a device that accepts every vector does.
        let mut common = [0u16; 0x20];
        // SAFETY: live test memory.
        let vectors = unsafe { VirtioVectors::new(common.as_mut_ptr() as usize, 2, [0, 1]) };
        assert!(vectors.assign());
        assert_eq!(common[COMMON_MSIX_CONFIG / 2], 2);
        // The last queue selected, with its vector.
        assert_eq!(common[COMMON_QUEUE_SELECT / 2], 1);
        assert_eq!(common[COMMON_QUEUE_MSIX_VECTOR / 2], 1);
    }
}
