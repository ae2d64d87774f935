//! Per-queue control of device interrupts that really works.
//!
//! virtio-drivers 0.13 negotiates `VIRTIO_F_RING_EVENT_IDX` when the device offers it (QEMU does),
//! and then `set_dev_notify` (behind `disable_interrupts`) silently does nothing, so the device
//! keeps interrupting. [`NotifyControl`] wraps the transport, hides EVENT_IDX from the feature
//! negotiation and remembers where each queue's available ring lives; [`QueueRings`] then writes
//! `VRING_AVAIL_F_NO_INTERRUPT` per queue. Poll mode turns off both queues; IRQ mode keeps only
//! the receive queue's interrupt (transmit completions are reaped while polling).
//!
//! Notifies go straight to the queue's doorbell ([`Doorbells`]), timed on their own.

use super::doorbell::Doorbells;
use super::msix::VirtioVectors;
use alloc::rc::Rc;
use core::cell::Cell;
use core::sync::atomic::{AtomicU16, Ordering};
use virtio_drivers::transport::{DeviceStatus, DeviceType, InterruptStatus, Transport};
use virtio_drivers::{PhysAddr, Result};
use zerocopy::{FromBytes, Immutable, IntoBytes};

/// `VIRTIO_F_RING_EVENT_IDX`.
pub const RING_EVENT_IDX: u64 = 1 << 29;
/// `VRING_AVAIL_F_NO_INTERRUPT`.
const AVAIL_F_NO_INTERRUPT: u16 = 1;
/// Queues whose rings are tracked (net: 0 = receive, 1 = transmit).
const TRACKED_QUEUES: usize = 2;

/// Where the available and used rings of the device's queues are, shared between the transport
/// wrapper (which learns them at queue setup) and the driver's owner (which flips the available
/// rings' flags and reads how far the device has filled the used rings).
#[derive(Debug, Default)]
pub struct QueueRings {
    avail: [Cell<Option<PhysAddr>>; TRACKED_QUEUES],
    used: [Cell<Option<PhysAddr>>; TRACKED_QUEUES],
    notify: [NotifyTiming; TRACKED_QUEUES],
    vectors_refused: Cell<bool>,
}

/// Timing of one queue's `QueueNotify` writes, as the transport wrapper measured them.
#[derive(Debug, Default)]
struct NotifyTiming {
    count: Cell<u64>,
    last_ticks: Cell<Option<u64>>,
}

impl QueueRings {
    /// Asks the device to interrupt (or not) when it uses buffers of `queue`. Returns false if
    /// the queue has not been set up.
    ///
    /// Only meaningful because [`NotifyControl`] keeps EVENT_IDX from being negotiated.
    pub fn set_interrupts(&self, queue: u16, enable: bool) -> bool {
        let Some(avail) = self.avail.get(usize::from(queue)).and_then(Cell::get) else {
            return false;
        };
        // SAFETY: `avail` is the driver area of a live queue, recorded by `queue_set` and cleared
        // by `queue_unset`. DMA memory is identity mapped (the `Hal`s in use return the virtual
        // address as the physical one, which `NotifyControl::new` requires), and the ring starts
        // with its 16-bit, 2-aligned `flags` field, which only the driver writes.
        let flags = unsafe { &*(avail as usize as *const AtomicU16) };
        flags.store(
            if enable { 0 } else { AVAIL_F_NO_INTERRUPT },
            Ordering::Release,
        );
        true
    }

    /// The used ring's `idx` of `queue`: how many buffers the device has returned so far
    /// (wrapping). None if the queue has not been set up.
    pub fn used_index(&self, queue: u16) -> Option<u16> {
        let used = self.used.get(usize::from(queue))?.get()?;
        // SAFETY: `used` is the device area of a live queue, recorded by `queue_set` and cleared
        // by `queue_unset`, identity mapped like every DMA buffer (see `set_interrupts`); its
        // 16-bit `idx` field sits 2-aligned at offset 2, and the device only ever writes it whole.
        let idx = unsafe { &*((used as usize + 2) as *const AtomicU16) };
        Some(idx.load(Ordering::Acquire))
    }

    /// How many notifies of `queue` the driver has written so far.
    pub fn notifies(&self, queue: u16) -> u64 {
        self.notify
            .get(usize::from(queue))
            .map_or(0, |n| n.count.get())
    }

    /// Duration, in counter ticks, of the last notify of `queue`: the doorbell store alone
    /// (under KVM the exit to QEMU or vhost and back). `None` before the first one, or when the
    /// queue has no doorbell and the transport's own multi-access notify was used.
    pub fn last_notify_ticks(&self, queue: u16) -> Option<u64> {
        self.notify.get(usize::from(queue))?.last_ticks.get()
    }

    /// Whether the device refused an MSI-X vector it was given.
    pub fn vectors_refused(&self) -> bool {
        self.vectors_refused.get()
    }

    /// Whether the device has been asked not to interrupt for `queue`.
    pub fn interrupts_suppressed(&self, queue: u16) -> Option<bool> {
        let avail = self.avail.get(usize::from(queue))?.get()?;
        // SAFETY: as in `set_interrupts`.
        let flags = unsafe { &*(avail as usize as *const AtomicU16) };
        Some(flags.load(Ordering::Acquire) & AVAIL_F_NO_INTERRUPT != 0)
    }
}

/// A transport that never negotiates EVENT_IDX, reports each queue's available ring to a
/// shared [`QueueRings`], and notifies through the queue's doorbell, timing that one store there.
#[derive(Debug)]
pub struct NotifyControl<T, D> {
    inner: T,
    doorbells: D,
    vectors: Option<VirtioVectors>,
    rings: Rc<QueueRings>,
    clock: fn() -> u64,
}

impl<T: Transport, D: Doorbells> NotifyControl<T, D> {
    /// Wraps `inner`, whose queues' doorbells are `doorbells`, and which, with `vectors`, is
    /// given its MSI-X vectors just before the driver sets DRIVER_OK.
    ///
    /// # Safety
    ///
    /// The `Hal` used with this transport must map DMA memory at the same virtual as physical
    /// address, since [`QueueRings`] writes the rings through their physical addresses.
    ///
    /// `clock` reads the counter notifies are timed with (`isb`-ordered on the probe).
    pub unsafe fn new(
        inner: T,
        doorbells: D,
        vectors: Option<VirtioVectors>,
        rings: Rc<QueueRings>,
        clock: fn() -> u64,
    ) -> Self {
        NotifyControl {
            inner,
            doorbells,
            vectors,
            rings,
            clock,
        }
    }
}

impl<T: Transport, D: Doorbells> Transport for NotifyControl<T, D> {
    fn device_type(&self) -> DeviceType {
        self.inner.device_type()
    }
    fn read_device_features(&mut self) -> u64 {
        self.inner.read_device_features() & !RING_EVENT_IDX
    }
    fn write_driver_features(&mut self, driver_features: u64) {
        self.inner
            .write_driver_features(driver_features & !RING_EVENT_IDX)
    }
    fn max_queue_size(&mut self, queue: u16) -> u32 {
        self.inner.max_queue_size(queue)
    }
    fn notify(&mut self, queue: u16) {
        // The two readings bracket exactly the doorbell write (one `str` to the device).
        let start = (self.clock)();
        let rang = self.doorbells.ring(queue);
        let ticks = (self.clock)().wrapping_sub(start);
        if !rang {
            self.inner.notify(queue);
        }
        if let Some(timing) = self.rings.notify.get(usize::from(queue)) {
            timing.count.set(timing.count.get().wrapping_add(1));
            timing.last_ticks.set(rang.then_some(ticks));
        }
    }
    fn get_status(&self) -> DeviceStatus {
        self.inner.get_status()
    }
    fn set_status(&mut self, status: DeviceStatus) {
        if status.contains(DeviceStatus::DRIVER_OK) {
            if let Some(vectors) = &self.vectors {
                self.rings.vectors_refused.set(!vectors.assign());
            }
        }
        self.inner.set_status(status)
    }
    fn set_guest_page_size(&mut self, guest_page_size: u32) {
        self.inner.set_guest_page_size(guest_page_size)
    }
    fn requires_legacy_layout(&self) -> bool {
        self.inner.requires_legacy_layout()
    }
    fn queue_set(
        &mut self,
        queue: u16,
        size: u32,
        descriptors: PhysAddr,
        driver_area: PhysAddr,
        device_area: PhysAddr,
    ) {
        if let Some(slot) = self.rings.avail.get(usize::from(queue)) {
            slot.set(Some(driver_area));
        }
        if let Some(slot) = self.rings.used.get(usize::from(queue)) {
            slot.set(Some(device_area));
        }
        self.inner
            .queue_set(queue, size, descriptors, driver_area, device_area)
    }
    fn queue_unset(&mut self, queue: u16) {
        if let Some(slot) = self.rings.avail.get(usize::from(queue)) {
            slot.set(None);
        }
        if let Some(slot) = self.rings.used.get(usize::from(queue)) {
            slot.set(None);
        }
        self.inner.queue_unset(queue)
    }
    fn queue_used(&mut self, queue: u16) -> bool {
        self.inner.queue_used(queue)
    }
    fn ack_interrupt(&mut self) -> InterruptStatus {
        self.inner.ack_interrupt()
    }
    fn read_config_generation(&self) -> u32 {
        self.inner.read_config_generation()
    }
    fn read_config_space<V: FromBytes + IntoBytes>(&self, offset: usize) -> Result<V> {
        self.inner.read_config_space(offset)
    }
    fn write_config_space<V: IntoBytes + Immutable>(
        &mut self,
        offset: usize,
        value: V,
    ) -> Result<()> {
        self.inner.write_config_space(offset, value)
    }
}
