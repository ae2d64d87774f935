//! The serial console and `println!`: the PL011 or 8250/16550 UART the device tree names.

use arm_pl011_uart::{PL011Registers, UniqueMmioPointer};
use core::fmt::{self, Write};
use core::ptr::NonNull;
use spin::mutex::SpinMutex;
use vmprobe_guest::dtb::{Uart, UartKind};
use vmprobe_guest::ns16550::{IoWidth, Ns16550, Ns16550Error, RegisterWindow};

enum Console {
    Pl011(arm_pl011_uart::Uart<'static>),
    Ns16550(Ns16550<DeviceWindow>),
}

static CONSOLE: SpinMutex<Option<Console>> = SpinMutex::new(None);

/// A device's register frame in device memory, identity mapped.
struct DeviceWindow {
    base: usize,
    size: usize,
}

impl RegisterWindow for DeviceWindow {
    fn read(&mut self, offset: usize, width: IoWidth) -> u32 {
        let at = self.base + offset;
        match width {
            _ if offset >= self.size => 0,
            // SAFETY: `offset` is inside the frame, which `init`'s caller promised is mapped
            // device memory that only the console uses.
            IoWidth::Byte => u32::from(unsafe { (at as *const u8).read_volatile() }),
            // SAFETY: as above; the driver keeps 32-bit registers aligned (register << shift).
            IoWidth::Word => unsafe { (at as *const u32).read_volatile() },
        }
    }

    fn write(&mut self, offset: usize, width: IoWidth, value: u32) {
        let at = self.base + offset;
        match width {
            _ if offset >= self.size => {}
            // SAFETY: as in `read`.
            IoWidth::Byte => unsafe { (at as *mut u8).write_volatile(value as u8) },
            // SAFETY: as in `read`.
            IoWidth::Word => unsafe { (at as *mut u32).write_volatile(value) },
        }
    }
}

/// Takes `uart` as the console.
///
/// # Safety
///
/// `uart`'s frame must be mapped as device memory and used by nothing else.
pub unsafe fn init(uart: Uart) -> Result<(), Ns16550Error> {
    let console = match uart.kind {
        UartKind::Pl011 => {
            let Some(regs) = NonNull::new(uart.region.base as usize as *mut PL011Registers) else {
                return Ok(());
            };
            // SAFETY: the caller promises a mapped, unaliased PL011.
            Console::Pl011(arm_pl011_uart::Uart::new(unsafe {
                UniqueMmioPointer::new(regs)
            }))
        }
        UartKind::Ns16550 { .. } => {
            let window = DeviceWindow {
                base: uart.region.base as usize,
                size: uart.region.size as usize,
            };
            Console::Ns16550(Ns16550::new(&uart, window)?)
        }
    };
    *CONSOLE.lock() = Some(console);
    Ok(())
}

/// Writes to the console (dropped if there is none yet).
pub fn print(args: fmt::Arguments) {
    match CONSOLE.lock().as_mut() {
        Some(Console::Pl011(uart)) => {
            let _ = uart.write_fmt(args);
        }
        Some(Console::Ns16550(uart)) => {
            let _ = uart.write_fmt(args);
        }
        None => {}
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
