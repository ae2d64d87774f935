//! A fake virtio-net device for host tests: a `Transport` plus just enough of the device side
//! of split virtqueues to take transmitted frames and deliver received ones.

use crate::net::{Counter, Doorbells};
use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::cell::RefCell;
use std::ptr::NonNull;
use std::rc::Rc;
use std::sync::atomic::{fence, Ordering};
use virtio_drivers::transport::{DeviceStatus, DeviceType, InterruptStatus, Transport};
use virtio_drivers::{BufferDirection, Hal, PhysAddr, Result, PAGE_SIZE};
use zerocopy::{FromBytes, Immutable, IntoBytes};

/// Identity-mapping DMA from the host allocator.
pub struct TestHal;

// SAFETY: zeroed, page-aligned host allocations whose address is their "physical" address.
unsafe impl Hal for TestHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        let layout = Layout::from_size_align(pages * PAGE_SIZE, PAGE_SIZE).unwrap();
        // SAFETY: non-zero size.
        let ptr = NonNull::new(unsafe { alloc_zeroed(layout) }).unwrap();
        (ptr.as_ptr() as PhysAddr, ptr)
    }
    unsafe fn dma_dealloc(_paddr: PhysAddr, vaddr: NonNull<u8>, pages: usize) -> i32 {
        let layout = Layout::from_size_align(pages * PAGE_SIZE, PAGE_SIZE).unwrap();
        // SAFETY: allocated by `dma_alloc` with this layout.
        unsafe { dealloc(vaddr.as_ptr(), layout) };
        0
    }
    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, _size: usize) -> NonNull<u8> {
        NonNull::new(paddr as *mut u8).unwrap()
    }
    unsafe fn share(buffer: NonNull<[u8]>, _direction: BufferDirection) -> PhysAddr {
        buffer.cast::<u8>().as_ptr() as PhysAddr
    }
    unsafe fn unshare(_paddr: PhysAddr, _buffer: NonNull<[u8]>, _direction: BufferDirection) {}
}

/// A counter that counts its reads, and logs them with the device accesses (see [`events`]).
pub struct TestCounter;

thread_local! {
    static TICKS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    static EVENTS: RefCell<Vec<Event>> = const { RefCell::new(Vec::new()) };
}

/// What happened, in order: counter reads and notifications of the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A counter reading.
    Clock,
    /// One store to a queue's doorbell.
    Doorbell(u16),
    /// The transport's own `notify` (several device accesses on virtio-pci).
    TransportNotify(u16),
}

fn log(event: Event) {
    EVENTS.with(|e| e.borrow_mut().push(event));
}

/// Takes this thread's event log.
pub fn events() -> Vec<Event> {
    EVENTS.with(|e| std::mem::take(&mut *e.borrow_mut()))
}

impl Counter for TestCounter {
    fn now() -> u64 {
        log(Event::Clock);
        TICKS.with(|t| {
            t.set(t.get() + 10);
            t.get()
        })
    }
}

/// The fake device's doorbells: each ring is logged as one store and counted as a notify.
pub struct FakeDoorbells(pub Rc<RefCell<FakeNet>>);

impl Doorbells for FakeDoorbells {
    fn ring(&self, queue: u16) -> bool {
        log(Event::Doorbell(queue));
        self.0.borrow_mut().queues[usize::from(queue)].notifies += 1;
        true
    }
}

/// A device whose queues have no doorbell: notifies fall back to the transport.
pub struct NoDoorbells;

impl Doorbells for NoDoorbells {
    fn ring(&self, _queue: u16) -> bool {
        false
    }
}

/// The device side of one split virtqueue.
#[derive(Default, Debug)]
pub struct FakeQueue {
    size: u16,
    desc: u64,
    avail: u64,
    used: u64,
    next_avail: u16,
    /// QueueNotify writes for this queue.
    pub notifies: usize,
}

impl FakeQueue {
    /// `VRING_AVAIL_F_NO_INTERRUPT` as the driver left it.
    pub fn avail_flags(&self) -> u16 {
        // SAFETY: the driver area of a live queue (test memory).
        unsafe { (self.avail as *const u16).read_volatile() }
    }

    /// Takes the next available chain: (head, [(address, length)]).
    fn pop(&mut self) -> Option<(u16, Vec<(u64, u32)>)> {
        fence(Ordering::SeqCst);
        // SAFETY: rings of a live queue; layout per the virtio split-queue format.
        unsafe {
            let idx = ((self.avail + 2) as *const u16).read_volatile();
            if idx == self.next_avail {
                return None;
            }
            let slot = u64::from(self.next_avail % self.size);
            let head = ((self.avail + 4 + 2 * slot) as *const u16).read_volatile();
            self.next_avail = self.next_avail.wrapping_add(1);
            let mut chain = Vec::new();
            let mut i = head;
            loop {
                let d = self.desc + 16 * u64::from(i);
                let addr = (d as *const u64).read_volatile();
                let len = ((d + 8) as *const u32).read_volatile();
                let flags = ((d + 12) as *const u16).read_volatile();
                chain.push((addr, len));
                if flags & 1 == 0 {
                    break;
                }
                i = ((d + 14) as *const u16).read_volatile();
            }
            Some((head, chain))
        }
    }

    fn push_used(&mut self, head: u16, len: u32) {
        // SAFETY: the device area of a live queue.
        unsafe {
            let idx_ptr = (self.used + 2) as *mut u16;
            let idx = idx_ptr.read_volatile();
            let elem = self.used + 4 + 8 * u64::from(idx % self.size);
            (elem as *mut u32).write_volatile(u32::from(head));
            ((elem + 4) as *mut u32).write_volatile(len);
            fence(Ordering::SeqCst);
            idx_ptr.write_volatile(idx.wrapping_add(1));
        }
    }
}

/// Device state shared between the transport (owned by the driver) and the test.
#[derive(Default, Debug)]
pub struct FakeNet {
    /// Features the driver accepted.
    pub driver_features: u64,
    /// Receive (0) and transmit (1) queues.
    pub queues: [FakeQueue; 2],
    status: u32,
    /// A virtio-pci common configuration in plain memory, for the MSI-X vectors.
    pub common: [u16; 0x20],
    /// `msix_config` and the last `queue_msix_vector` when the driver set DRIVER_OK.
    pub vectors_at_driver_ok: Option<(u16, u16)>,
}

/// VIRTIO_F_VERSION_1 | VIRTIO_NET_F_MAC | VIRTIO_F_RING_EVENT_IDX, as QEMU offers them.
pub const OFFERED: u64 = (1 << 32) | (1 << 5) | (1 << 29);
/// The fake device's MAC.
pub const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc];
const NET_HDR: usize = 12;

impl FakeNet {
    /// Completes every frame the driver queued for transmission; returns them without header.
    pub fn take_transmitted(&mut self) -> Vec<Vec<u8>> {
        let mut frames = Vec::new();
        while let Some((head, chain)) = self.queues[1].pop() {
            let mut bytes = Vec::new();
            for (addr, len) in chain {
                // SAFETY: a driver buffer of `len` bytes.
                bytes.extend_from_slice(unsafe {
                    std::slice::from_raw_parts(addr as *const u8, len as usize)
                });
            }
            frames.push(bytes[NET_HDR..].to_vec());
            self.queues[1].push_used(head, 0);
        }
        frames
    }

    /// Delivers a frame into the next posted receive buffer; false if none is posted.
    pub fn deliver(&mut self, frame: &[u8]) -> bool {
        let Some((head, chain)) = self.queues[0].pop() else {
            return false;
        };
        let (addr, len) = chain[0];
        assert!(len as usize >= NET_HDR + frame.len());
        // SAFETY: a posted receive buffer of `len` bytes.
        unsafe {
            std::ptr::write_bytes(addr as *mut u8, 0, NET_HDR);
            std::ptr::copy_nonoverlapping(
                frame.as_ptr(),
                (addr as *mut u8).add(NET_HDR),
                frame.len(),
            );
        }
        self.queues[0].push_used(head, (NET_HDR + frame.len()) as u32);
        true
    }
}

/// The transport half of the fake device.
pub struct FakeTransport(pub Rc<RefCell<FakeNet>>);

impl Transport for FakeTransport {
    fn device_type(&self) -> DeviceType {
        DeviceType::Network
    }
    fn read_device_features(&mut self) -> u64 {
        OFFERED
    }
    fn write_driver_features(&mut self, driver_features: u64) {
        self.0.borrow_mut().driver_features = driver_features;
    }
    fn max_queue_size(&mut self, _queue: u16) -> u32 {
        32
    }
    fn notify(&mut self, queue: u16) {
        log(Event::TransportNotify(queue));
        self.0.borrow_mut().queues[usize::from(queue)].notifies += 1;
    }
    fn get_status(&self) -> DeviceStatus {
        DeviceStatus::from_bits_truncate(self.0.borrow().status)
    }
    fn set_status(&mut self, status: DeviceStatus) {
        let mut net = self.0.borrow_mut();
        if status.contains(DeviceStatus::DRIVER_OK) {
            net.vectors_at_driver_ok = Some((net.common[0x10 / 2], net.common[0x1a / 2]));
        }
        net.status = status.bits();
    }
    fn set_guest_page_size(&mut self, _guest_page_size: u32) {}
    fn requires_legacy_layout(&self) -> bool {
        false
    }
    fn queue_set(
        &mut self,
        queue: u16,
        size: u32,
        descriptors: PhysAddr,
        driver_area: PhysAddr,
        device_area: PhysAddr,
    ) {
        let q = &mut self.0.borrow_mut().queues[usize::from(queue)];
        (q.size, q.desc, q.avail, q.used) = (size as u16, descriptors, driver_area, device_area);
    }
    fn queue_unset(&mut self, queue: u16) {
        self.0.borrow_mut().queues[usize::from(queue)] = FakeQueue::default();
    }
    fn queue_used(&mut self, queue: u16) -> bool {
        self.0.borrow().queues[usize::from(queue)].desc != 0
    }
    fn ack_interrupt(&mut self) -> InterruptStatus {
        InterruptStatus::empty()
    }
    fn read_config_generation(&self) -> u32 {
        0
    }
    fn read_config_space<T: FromBytes + IntoBytes>(&self, offset: usize) -> Result<T> {
        let mut config = [0u8; 16];
        config[..6].copy_from_slice(&MAC);
        config[6] = 1; // link up
        T::read_from_prefix(&config[offset..])
            .map(|(v, _)| v)
            .map_err(|_| virtio_drivers::Error::ConfigSpaceTooSmall)
    }
    fn write_config_space<T: IntoBytes + Immutable>(
        &mut self,
        _offset: usize,
        _value: T,
    ) -> Result<()> {
        Ok(())
    }
}
