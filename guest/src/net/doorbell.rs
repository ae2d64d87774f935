//! Queue doorbells: the device register a notify of each queue writes, found once at setup, so
//! that a notify is one store to the device and nothing else (under KVM: one exit).
//!
//! virtio-drivers' `PciTransport::notify` selects the queue and reads its notify offset before
//! writing the doorbell, three device accesses where the driver needs one.

/// A device register: its address and access width.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Register {
    /// A 32-bit register.
    U32(usize),
    /// A 16-bit register.
    U16(usize),
}

impl Register {
    /// Writes `value` with one plain store of the register's width.
    ///
    /// # Safety
    ///
    /// The register must be mapped as device memory, and writing `value` to it must be sound.
    #[inline(always)]
    pub unsafe fn write(self, value: u16) {
        // SAFETY: the caller promises a mapped register that takes this write.
        unsafe {
            match self {
                Register::U32(at) => (at as *mut u32).write_volatile(u32::from(value)),
                Register::U16(at) => (at as *mut u16).write_volatile(value),
            }
        }
    }
}

/// Queues whose doorbells are kept (net: 0 = receive, 1 = transmit).
pub const DOORBELL_QUEUES: usize = 2;

/// Rings a queue's doorbell.
pub trait Doorbells {
    /// Notifies `queue` with exactly one store to the device; false if it has no doorbell.
    fn ring(&self, queue: u16) -> bool;
}

/// The NIC's doorbell registers, in device memory: virtio-mmio's `QueueNotify`, or on virtio-pci
/// the notification area plus the queue's `queue_notify_off` times the notify multiplier.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueDoorbells {
    registers: [Option<Register>; DOORBELL_QUEUES],
}

impl QueueDoorbells {
    /// Doorbells at `registers`, indexed by queue.
    ///
    /// # Safety
    ///
    /// Each register must stay mapped as device memory, and writing a queue's index to its
    /// register must do nothing but notify that queue.
    pub unsafe fn new(registers: [Option<Register>; DOORBELL_QUEUES]) -> Self {
        QueueDoorbells { registers }
    }

    /// The doorbell of `queue`, if known.
    pub fn get(&self, queue: u16) -> Option<Register> {
        self.registers.get(usize::from(queue)).copied().flatten()
    }
}

impl Doorbells for QueueDoorbells {
    #[inline(always)]
    fn ring(&self, queue: u16) -> bool {
        let Some(register) = self.get(queue) else {
            return false;
        };
        // SAFETY: `new`'s caller promised a mapped register that notifies this queue.
        unsafe { register.write(queue) };
        true
    }
}
