//! virtio-drivers' `Hal` for the probe: identity-mapped, cache-coherent DMA from the heap.

use alloc::alloc::{alloc_zeroed, dealloc, Layout};
use core::ptr::NonNull;
use virtio_drivers::{BufferDirection, Hal, PhysAddr, PAGE_SIZE};

/// DMA and MMIO for virtio: everything is identity mapped and virtio devices are coherent with
/// the CPU's caches (they are emulated by the host), so sharing is a no-op.
pub struct ProbeHal;

fn layout(pages: usize) -> Layout {
    Layout::from_size_align(pages * PAGE_SIZE, PAGE_SIZE).expect("DMA layout")
}

// SAFETY: allocations are zeroed, page aligned, identity mapped normal memory owned exclusively by
// the caller until `dma_dealloc`; MMIO and shared buffers are identity mapped, so the physical
// addresses returned are the ones the device must use.
unsafe impl Hal for ProbeHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        // SAFETY: the layout has a non-zero size (virtio never asks for zero pages).
        let ptr = unsafe { alloc_zeroed(layout(pages.max(1))) };
        let ptr = NonNull::new(ptr).expect("out of memory for virtio DMA");
        (ptr.as_ptr() as PhysAddr, ptr)
    }

    unsafe fn dma_dealloc(_paddr: PhysAddr, vaddr: NonNull<u8>, pages: usize) -> i32 {
        // SAFETY: the caller passes back an allocation from `dma_alloc` with its page count.
        unsafe { dealloc(vaddr.as_ptr(), layout(pages.max(1))) };
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, _size: usize) -> NonNull<u8> {
        NonNull::new(paddr as usize as *mut u8).expect("MMIO at address 0")
    }

    unsafe fn share(buffer: NonNull<[u8]>, _direction: BufferDirection) -> PhysAddr {
        buffer.cast::<u8>().as_ptr() as PhysAddr
    }

    unsafe fn unshare(_paddr: PhysAddr, _buffer: NonNull<[u8]>, _direction: BufferDirection) {}
}
