//! The heap: the linker script's `.heap` region, given to a linked-list allocator.

use linked_list_allocator::LockedHeap;

#[global_allocator]
static HEAP: LockedHeap = LockedHeap::empty();

unsafe extern "C" {
    static mut __heap_start: u8;
    static mut __heap_end: u8;
}

/// Bytes in the heap region.
pub fn size() -> usize {
    (&raw const __heap_end) as usize - (&raw const __heap_start) as usize
}

/// Hands the heap region to the allocator. Call once, before anything allocates.
pub fn init() {
    let start = &raw mut __heap_start;
    let end = &raw mut __heap_end;
    // SAFETY: the linker script reserves [__heap_start, __heap_end) for the heap and nothing else
    // uses it; the boot page table maps it (it is part of the image).
    unsafe { HEAP.lock().init(start, end as usize - start as usize) };
}
