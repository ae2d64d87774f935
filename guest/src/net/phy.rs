//! smoltcp `phy::Device` over `VirtIONetRaw`, with several receive buffers posted and several
//! transmit buffers in flight, so that neither direction ever waits for the device.

use super::doorbell::{Doorbells, QueueDoorbells};
use super::msix::VirtioVectors;
use super::notify::{NotifyControl, QueueRings};
use super::stamps::{Counter, Timestamps};
use crate::config::Mode;
use crate::probe::{stamp_rx, stamp_tx};
use alloc::boxed::Box;
use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;
use core::marker::PhantomData;
use core::sync::atomic::{fence, Ordering};
use smoltcp::phy::{self, Checksum, ChecksumCapabilities, DeviceCapabilities, Medium};
use smoltcp::time::Instant;
use smoltcp::wire::EthernetAddress;
use virtio_drivers::device::net::VirtIONetRaw;
use virtio_drivers::transport::{InterruptStatus, Transport};
use virtio_drivers::Hal;
use vmprobe_proto::echo_reply::TxStamps;
use vmprobe_proto::echo_request::RxStamps;

/// Descriptors per virtqueue.
pub const QUEUE_SIZE: usize = 16;
/// Receive buffers kept posted.
pub const RX_BUFFERS: usize = 8;
/// Transmit buffers that may be in flight at once.
pub const TX_BUFFERS: usize = 8;
/// Bytes per buffer: virtio-net header plus a 1514-byte frame, rounded up.
const BUFFER_LEN: usize = 2048;
/// Largest Ethernet frame (without FCS) the probe sends or accepts.
pub const MAX_FRAME: usize = 1514;

/// virtio-net's receive queue.
pub const QUEUE_RECEIVE: u16 = 0;
/// virtio-net's transmit queue.
pub const QUEUE_TRANSMIT: u16 = 1;

/// A buffer and, while the device owns it, the token virtio-drivers gave for it.
struct Slot {
    buf: Box<[u8]>,
    token: Option<u16>,
    /// Bytes handed to the device (transmit slots).
    len: usize,
}

impl Slot {
    fn new() -> Self {
        Slot {
            buf: vec![0; BUFFER_LEN].into_boxed_slice(),
            token: None,
            len: 0,
        }
    }
}

/// A virtio-net device as a smoltcp `Device`.
pub struct VirtioPhy<H: Hal, T: Transport, C: Counter, D: Doorbells = QueueDoorbells> {
    raw: VirtIONetRaw<H, NotifyControl<T, D>, QUEUE_SIZE>,
    rings: Rc<QueueRings>,
    rx: Vec<Slot>,
    tx: Vec<Slot>,
    stamps: Timestamps,
    /// Frames taken from the receive ring so far (wrapping, like the used ring's index).
    rx_taken: u16,
    /// The receive ring's used index when the last interrupt was taken: the frames before it
    /// were there when the interrupt came and carry its entry time; later ones do not.
    irq_mark: Option<u16>,
    _counter: PhantomData<C>,
}

/// Why the device could not be brought up.
#[derive(Debug, thiserror::Error)]
pub enum PhyError {
    /// virtio-drivers refused the device.
    #[error("virtio-net initialisation failed: {0}")]
    Virtio(#[from] virtio_drivers::Error),
    /// The queue rings were not set up as expected.
    #[error("virtio-net queues missing after initialisation")]
    Queues,
    /// The device did not take the MSI-X vectors it was given.
    #[error("virtio-net refused its MSI-X vectors")]
    Vectors,
}

impl<H: Hal, T: Transport, C: Counter, D: Doorbells> VirtioPhy<H, T, C, D> {
    /// Initialises the device behind `transport`, whose queues are notified through
    /// `doorbells` and (virtio-pci with MSI-X) interrupt through `vectors`, posts all receive
    /// buffers and sets up device interrupts for `mode`: none at all in poll mode, receive only
    /// in IRQ mode.
    ///
    /// # Safety
    ///
    /// `H` must map DMA memory at the same virtual as physical address (see [`NotifyControl`]).
    pub unsafe fn new(
        transport: T,
        doorbells: D,
        vectors: Option<VirtioVectors>,
        mode: Mode,
    ) -> Result<Self, PhyError> {
        let rings = Rc::new(QueueRings::default());
        // SAFETY: the caller promises an identity-mapping `H`.
        let transport =
            unsafe { NotifyControl::new(transport, doorbells, vectors, rings.clone(), C::now) };
        let raw = VirtIONetRaw::new(transport)?;
        if rings.vectors_refused() {
            return Err(PhyError::Vectors);
        }
        let mut phy = VirtioPhy {
            raw,
            rings,
            rx: (0..RX_BUFFERS).map(|_| Slot::new()).collect(),
            tx: (0..TX_BUFFERS).map(|_| Slot::new()).collect(),
            stamps: Timestamps::default(),
            rx_taken: 0,
            irq_mark: None,
            _counter: PhantomData,
        };
        phy.set_interrupts(mode)?;
        phy.refill_rx();
        Ok(phy)
    }

    fn set_interrupts(&mut self, mode: Mode) -> Result<(), PhyError> {
        let rx = self.rings.set_interrupts(QUEUE_RECEIVE, mode == Mode::Irq);
        let tx = self.rings.set_interrupts(QUEUE_TRANSMIT, false);
        if rx && tx {
            Ok(())
        } else {
            Err(PhyError::Queues)
        }
    }

    /// Whether the device was asked not to interrupt for (receive, transmit) completions.
    pub fn interrupts_suppressed(&self) -> (Option<bool>, Option<bool>) {
        (
            self.rings.interrupts_suppressed(QUEUE_RECEIVE),
            self.rings.interrupts_suppressed(QUEUE_TRANSMIT),
        )
    }

    /// The device's MAC address.
    pub fn mac(&self) -> EthernetAddress {
        EthernetAddress(self.raw.mac_address())
    }

    /// Acknowledges the device's interrupt (lowers its line).
    pub fn ack_interrupt(&mut self) -> InterruptStatus {
        self.raw.ack_interrupt()
    }

    /// The packet path's latest timestamps and counters.
    pub fn stamps(&mut self) -> &mut Timestamps {
        self.stamps.notify_ticks = self.rings.last_notify_ticks(QUEUE_TRANSMIT).unwrap_or(0);
        &mut self.stamps
    }

    /// Records that the device interrupt entered the guest at counter `entry`: the frames
    /// waiting in the receive ring now carry it (see [`Timestamps::irq_entry`]), frames that
    /// arrive later do not, even when they are taken in the same round.
    pub fn interrupted_at(&mut self, entry: u64) {
        self.stamps.irq_entry = Some(entry);
        self.irq_mark = self.rings.used_index(QUEUE_RECEIVE);
    }

    /// The queue bookkeeping shared with the transport (notify counts and timings).
    pub fn rings(&self) -> Rc<QueueRings> {
        self.rings.clone()
    }

    /// Transmit queue notifies written so far (each one an exit on a real hypervisor).
    pub fn tx_notifies(&self) -> u64 {
        self.rings.notifies(QUEUE_TRANSMIT)
    }

    /// Reclaims finished transmit buffers; true when the device holds none any more, i.e.
    /// everything handed to it has left.
    pub fn transmit_idle(&mut self) -> bool {
        self.reclaim_tx();
        self.tx.iter().all(|s| s.token.is_none())
    }

    /// Call before sleeping in IRQ mode. Transmit completions normally raise no interrupt (they
    /// are reaped while polling), but when every transmit buffer is in flight a sender is
    /// waiting for one, so the device is asked to interrupt when it returns one. Returns false
    /// if a buffer already came back: poll again instead of sleeping.
    pub fn prepare_to_sleep(&mut self) -> bool {
        let starved = self.free_tx().is_none();
        self.rings.set_interrupts(QUEUE_TRANSMIT, starved);
        if starved {
            // The flag store must be visible before the used ring is checked (virtio 2.7.10).
            fence(Ordering::SeqCst);
            if self.raw.poll_transmit().is_some() {
                return false;
            }
        }
        true
    }

    /// Call after waking: transmit completions go back to being reaped silently.
    pub fn woke(&mut self) {
        self.rings.set_interrupts(QUEUE_TRANSMIT, false);
    }

    /// Posts every receive buffer the device does not hold.
    fn refill_rx(&mut self) {
        for slot in self.rx.iter_mut().filter(|s| s.token.is_none()) {
            // SAFETY: the buffer is owned by this slot, lives in a `Box` that does not move, and is
            // not touched again until `receive_complete` returns it for this token.
            match unsafe { self.raw.receive_begin(&mut slot.buf) } {
                Ok(token) => slot.token = Some(token),
                Err(_) => break,
            }
        }
    }

    /// Takes back the transmit buffers the device has finished with.
    fn reclaim_tx(&mut self) {
        while let Some(token) = self.raw.poll_transmit() {
            let Some(slot) = self.tx.iter_mut().find(|s| s.token == Some(token)) else {
                break;
            };
            // SAFETY: this slot's buffer, with this length, was given to `transmit_begin` for
            // this token and has not been touched since.
            let _ = unsafe { self.raw.transmit_complete(token, &slot.buf[..slot.len]) };
            slot.token = None;
        }
    }

    fn free_tx(&self) -> Option<usize> {
        if !self.raw.can_send() {
            return None;
        }
        self.tx.iter().position(|s| s.token.is_none())
    }
}

/// A received frame, borrowed from its receive buffer until smoltcp has read it.
pub struct RxToken<'a> {
    frame: &'a [u8],
}

impl phy::RxToken for RxToken<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.frame)
    }
}

/// A free transmit buffer; consuming it hands the frame to the device without waiting.
pub struct TxToken<'a, H: Hal, T: Transport, C: Counter, D: Doorbells> {
    raw: &'a mut VirtIONetRaw<H, NotifyControl<T, D>, QUEUE_SIZE>,
    slot: &'a mut Slot,
    stamps: &'a mut Timestamps,
    rings: &'a QueueRings,
    _counter: PhantomData<C>,
}

impl<H: Hal, T: Transport, C: Counter, D: Doorbells> phy::TxToken for TxToken<'_, H, T, C, D> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let header = self.raw.fill_buffer_header(&mut self.slot.buf).unwrap_or(0);
        let len = len.min(self.slot.buf.len() - header);
        let result = f(&mut self.slot.buf[header..header + len]);
        let total = header + len;
        // `tx notify`: the frame is final; what follows is stamping it (probe replies only),
        // publishing its descriptor and the doorbell store, which the transport times.
        let tx_notify = C::now();
        let stamps = TxStamps {
            tx_notify: Some(tx_notify),
            prev_notify_ticks: self.rings.last_notify_ticks(QUEUE_TRANSMIT),
        };
        if stamp_tx(&mut self.slot.buf[header..total], stamps) {
            self.stamps.probe_tx_stamped += 1;
        }
        // SAFETY: the buffer stays in this slot, untouched, until `reclaim_tx` completes it.
        match unsafe { self.raw.transmit_begin(&self.slot.buf[..total]) } {
            Ok(token) => {
                self.slot.token = Some(token);
                self.slot.len = total;
                self.stamps.tx_frames += 1;
            }
            Err(_) => self.stamps.tx_dropped += 1,
        }
        self.stamps.tx_notify = tx_notify;
        result
    }
}

impl<H: Hal, T: Transport, C: Counter, D: Doorbells> phy::Device for VirtioPhy<H, T, C, D> {
    type RxToken<'a>
        = RxToken<'a>
    where
        Self: 'a;
    type TxToken<'a>
        = TxToken<'a, H, T, C, D>
    where
        Self: 'a;

    fn receive(&mut self, _timestamp: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        self.refill_rx();
        self.reclaim_tx();
        // Without room for a reply, leave the frame in the ring until a buffer comes back.
        let tx_index = self.free_tx()?;
        let token = self.raw.poll_receive()?;
        let rx_seen = C::now();
        self.stamps.rx_seen = rx_seen;
        // Was this frame in the ring when the interrupt came? (Used-ring positions wrap at 2^16.)
        let with_irq = self
            .irq_mark
            .is_some_and(|mark| (mark.wrapping_sub(self.rx_taken) as i16) > 0);
        let Self {
            raw,
            rx,
            tx,
            stamps,
            rings,
            rx_taken,
            ..
        } = self;
        let slot = rx.iter_mut().find(|s| s.token == Some(token))?;
        slot.token = None;
        // SAFETY: this slot's buffer was posted with this token by `refill_rx`.
        let (header, len) = unsafe { raw.receive_complete(token, &mut slot.buf) }.ok()?;
        *rx_taken = rx_taken.wrapping_add(1);
        stamps.rx_frames += 1;
        let frame = slot.buf.get_mut(header..header + len.min(MAX_FRAME))?;
        let arrival = RxStamps {
            irq_entry: stamps.irq_entry.filter(|_| with_irq),
            rx_seen: Some(rx_seen),
        };
        if stamp_rx(frame, arrival) {
            stamps.probe_rx_stamped += 1;
        }
        let tx = TxToken {
            raw,
            slot: &mut tx[tx_index],
            stamps,
            rings,
            _counter: PhantomData,
        };
        Some((RxToken { frame }, tx))
    }

    fn transmit(&mut self, _timestamp: Instant) -> Option<Self::TxToken<'_>> {
        self.reclaim_tx();
        let tx_index = self.free_tx()?;
        let Self {
            raw,
            tx,
            stamps,
            rings,
            ..
        } = self;
        Some(TxToken {
            raw,
            slot: &mut tx[tx_index],
            stamps,
            rings,
            _counter: PhantomData,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = MAX_FRAME;
        caps.max_burst_size = Some(TX_BUFFERS);
        let mut checksum = ChecksumCapabilities::default();
        checksum.ipv4 = Checksum::Both;
        checksum.udp = Checksum::Both;
        checksum.tcp = Checksum::Both;
        checksum.icmpv4 = Checksum::Both;
        caps.checksum = checksum;
        caps
    }
}
