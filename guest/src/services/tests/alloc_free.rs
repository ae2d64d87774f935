//! The request-to-reply path allocates nothing: a counting global allocator watches
//! `Services::poll` while it answers UDP echo, sockperf and TCP echo.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::vec::Vec;

use smoltcp::wire::IpAddress;

use smoltcp::time::Instant;

use super::{World, GUEST_IP};
use crate::services::sockperf;
use crate::services::Services;

/// Counts allocations made by the current thread, so parallel tests do not disturb each other.
struct Counting;

std::thread_local! {
    // Const-initialised, no destructor: usable from inside the allocator.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    static BYTES: Cell<u64> = const { Cell::new(0) };
}

fn count(bytes: usize) {
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
    let _ = BYTES.try_with(|c| c.set(c.get() + bytes as u64));
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which `System` shares.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` through this allocator with this `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        // SAFETY: as for `dealloc`, and the caller guarantees a valid `new_size`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

fn bytes() -> u64 {
    BYTES.with(Cell::get)
}

#[test]
fn heap_estimate_covers_what_new_allocates() {
    let mut nic = super::Nic::default();
    let before = bytes();
    let services = Services::new(
        &super::static_config(),
        super::GUEST_MAC,
        &mut nic,
        Instant::from_secs(0),
    );
    // Counted generously: a growing socket table counts each reallocation in full.
    let used = bytes() - before;
    drop(services);
    std::eprintln!(
        "Services::new allocated {used} bytes; HEAP_BYTES = {}",
        crate::services::HEAP_BYTES
    );
    assert!(used <= crate::services::HEAP_BYTES as u64);
    assert!(used >= crate::services::HEAP_BYTES as u64 * 9 / 10);
}

/// Deliver what the client queued to the guest, then count the allocations of one guest poll.
fn guest_poll_allocations(w: &mut World) -> u64 {
    w.poll_client();
    assert!(!w.guest_nic.rx.is_empty(), "nothing for the guest");
    // Room for the replies, so the harness's own queues do not allocate inside the poll.
    w.guest_nic
        .spare
        .extend((0..8).map(|_| Vec::with_capacity(1514)));
    w.guest_nic.tx.reserve(8);
    let before = allocations();
    w.guest.poll(w.now, &mut w.guest_nic, &mut w.platform);
    let made = allocations() - before;
    assert!(!w.guest_nic.tx.is_empty(), "the guest did not answer");
    while w.poll_guest() {}
    w.step();
    made
}

#[test]
fn answering_allocates_nothing() {
    let before = allocations();
    drop(std::hint::black_box(Vec::<u8>::with_capacity(10)));
    assert!(
        allocations() > before,
        "the counting allocator is not in use"
    );

    let mut w = World::new();
    let udp = w.udp_socket(44000);
    let guest = |port| (IpAddress::Ipv4(GUEST_IP), port);
    // Warm up: ARP both ways, and an established TCP echo connection.
    w.udp(udp).send_slice(b"warm", guest(7)).unwrap();
    let tcp = w.connect(7, 44001);
    for _ in 0..10 {
        w.step();
    }
    while w.udp(udp).recv().is_ok() {}

    w.udp(udp).send_slice(&[0x77; 1472], guest(7)).unwrap();
    assert_eq!(guest_poll_allocations(&mut w), 0, "UDP echo allocated");

    let mut ping = [0u8; 64];
    ping[9] = (sockperf::FLAG_CLIENT | sockperf::FLAG_PONG_REQUEST) as u8;
    ping[13] = 64;
    w.udp(udp).send_slice(&ping, guest(sockperf::PORT)).unwrap();
    assert_eq!(
        guest_poll_allocations(&mut w),
        0,
        "sockperf reflection allocated"
    );

    w.tcp(tcp).send_slice(&[0x42; 1000]).unwrap();
    assert_eq!(guest_poll_allocations(&mut w), 0, "TCP echo allocated");
    w.run_until(100, |w| w.tcp(tcp).recv_queue() == 1000);
}
