//! The PL011 serial console and `println!`.

use arm_pl011_uart::{PL011Registers, Uart, UniqueMmioPointer};
use core::fmt::{self, Write};
use core::ptr::NonNull;
use spin::mutex::SpinMutex;
use vmprobe_guest::dtb::Region;

static CONSOLE: SpinMutex<Option<Uart<'static>>> = SpinMutex::new(None);

/// Takes the PL011 at `region` as the console.
///
/// # Safety
///
/// `region` must be a PL011 mapped as device memory and used by nothing else.
pub unsafe fn init(region: Region) {
    let Some(regs) = NonNull::new(region.base as usize as *mut PL011Registers) else {
        return;
    };
    // SAFETY: the caller promises a mapped, unaliased PL011.
    let uart = Uart::new(unsafe { UniqueMmioPointer::new(regs) });
    *CONSOLE.lock() = Some(uart);
}

/// Writes to the console (dropped if there is none yet).
pub fn print(args: fmt::Arguments) {
    if let Some(uart) = CONSOLE.lock().as_mut() {
        let _ = uart.write_fmt(args);
    }
}

/// Writes a line even if the console lock is held (panics, fatal exceptions).
pub fn emergency_println(args: fmt::Arguments) {
    if CONSOLE.is_locked() {
        // SAFETY: only used on the way to power-off, when whoever holds the lock (the code that
        // panicked or faulted) will never run again.
        unsafe { CONSOLE.force_unlock() };
    }
    print(format_args!("{args}\r\n"));
}

/// `println!` to the serial console (CR LF line ends).
macro_rules! println {
    ($($arg:tt)*) => ($crate::arch::console::print(format_args!("{}\r\n", format_args!($($arg)*))));
}

pub(crate) use println;
