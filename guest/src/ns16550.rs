//! An 8250/16550-compatible UART as a write-only console, over any [`RegisterWindow`] (device
//! memory on the probe, a fake in host tests).
//!
//! The loader (firmware, U-Boot, the VMM) has set up the line: the driver only masks the
//! UART's interrupts and writes bytes once the transmit holding register is empty.

use crate::dtb::{Uart, UartKind};

/// Receive buffer / transmit holding register.
const THR: usize = 0;
/// Interrupt enable register.
const IER: usize = 1;
/// Line status register.
const LSR: usize = 5;
/// LSR: the transmit holding register is empty.
const LSR_THRE: u32 = 1 << 5;
/// Polls of LSR before a byte is dropped: a stuck or absent UART must not hang the probe.
const MAX_POLLS: usize = 1 << 20;

/// Width of one register access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoWidth {
    /// 8-bit accesses.
    Byte,
    /// 32-bit accesses.
    Word,
}

/// A device's register frame, addressed by byte offset from its base.
pub trait RegisterWindow {
    /// Reads the register at `offset`.
    fn read(&mut self, offset: usize, width: IoWidth) -> u32;
    /// Writes the register at `offset`.
    fn write(&mut self, offset: usize, width: IoWidth, value: u32);
}

/// Why a UART is not a 16550 this driver can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Ns16550Error {
    /// The device tree describes another kind of UART.
    #[error("not an 8250/16550 UART")]
    NotNs16550,
    /// `reg-io-width` is neither 1 nor 4.
    #[error("unsupported reg-io-width {0}")]
    Width(u32),
    /// `reg-shift` puts the registers beyond any frame.
    #[error("unsupported reg-shift {0}")]
    Shift(u32),
}

/// An 8250/16550 UART used for output only.
pub struct Ns16550<W> {
    window: W,
    shift: u32,
    width: IoWidth,
}

impl<W: RegisterWindow> Ns16550<W> {
    /// The UART `uart` describes, reached through `window`, with its interrupts masked.
    pub fn new(uart: &Uart, window: W) -> Result<Self, Ns16550Error> {
        let UartKind::Ns16550 {
            reg_shift,
            reg_io_width,
        } = uart.kind
        else {
            return Err(Ns16550Error::NotNs16550);
        };
        let width = match reg_io_width {
            1 => IoWidth::Byte,
            4 => IoWidth::Word,
            other => return Err(Ns16550Error::Width(other)),
        };
        if reg_shift > 4 {
            return Err(Ns16550Error::Shift(reg_shift));
        }
        let mut uart = Ns16550 {
            window,
            shift: reg_shift,
            width,
        };
        uart.write_register(IER, 0);
        Ok(uart)
    }

    /// The register window (for tests).
    pub fn window(&self) -> &W {
        &self.window
    }

    /// Sends one byte once the transmitter can take it (dropped if it never can).
    pub fn write_byte(&mut self, byte: u8) {
        for _ in 0..MAX_POLLS {
            if self.read_register(LSR) & LSR_THRE != 0 {
                self.write_register(THR, u32::from(byte));
                return;
            }
            core::hint::spin_loop();
        }
    }

    fn read_register(&mut self, register: usize) -> u32 {
        self.window.read(register << self.shift, self.width)
    }

    fn write_register(&mut self, register: usize, value: u32) {
        self.window.write(register << self.shift, self.width, value)
    }
}

impl<W: RegisterWindow> core::fmt::Write for Ns16550<W> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        s.bytes().for_each(|b| self.write_byte(b));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtb::{self, Region};
    use core::fmt::Write;
    use std::string::String;
    use std::vec::Vec;

    /// A 16550 as seen through its registers: records every access; the transmitter is busy
    /// for `busy_polls` LSR reads after each byte.
    #[derive(Default)]
    struct FakeUart {
        accesses: Vec<(char, usize, IoWidth, u32)>,
        sent: Vec<u8>,
        busy_polls: usize,
        busy_left: usize,
        lsr_offset: usize,
        thr_offset: usize,
    }

    impl RegisterWindow for FakeUart {
        fn read(&mut self, offset: usize, width: IoWidth) -> u32 {
            let value = if offset == self.lsr_offset && self.busy_left == 0 {
                LSR_THRE
            } else {
                self.busy_left = self.busy_left.saturating_sub(1);
                0
            };
            self.accesses.push(('r', offset, width, value));
            value
        }
        fn write(&mut self, offset: usize, width: IoWidth, value: u32) {
            self.accesses.push(('w', offset, width, value));
            if offset == self.thr_offset {
                self.sent.push(value as u8);
                self.busy_left = self.busy_polls;
            }
        }
    }

    /// Zero bytes up to the structure block's 4-byte alignment.
    fn pad(structure: &mut Vec<u8>) {
        while !structure.len().is_multiple_of(4) {
            structure.push(0);
        }
    }

    /// A flattened device tree built by hand: the root with one node `name` carrying the
    /// given properties, and `/chosen/stdout-path` pointing at it.
    fn blob_with(name: &str, props: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut strings = Vec::new();
        let mut structure = Vec::new();
        let be = |v: u32| v.to_be_bytes();
        let mut prop = |structure: &mut Vec<u8>, key: &str, value: &[u8]| {
            let at = strings.len() as u32;
            strings.extend(key.as_bytes());
            strings.push(0);
            structure.extend(be(3));
            structure.extend(be(value.len() as u32));
            structure.extend(be(at));
            structure.extend(value);
            pad(structure);
        };
        let begin = |structure: &mut Vec<u8>, name: &str| {
            structure.extend(be(1));
            structure.extend(name.as_bytes());
            structure.push(0);
            pad(structure);
        };
        begin(&mut structure, "");
        prop(&mut structure, "#address-cells", &be(2));
        prop(&mut structure, "#size-cells", &be(2));
        begin(&mut structure, "chosen");
        let path = std::format!("/{name}\0");
        prop(&mut structure, "stdout-path", path.as_bytes());
        structure.extend(be(2));
        begin(&mut structure, name);
        for (key, value) in props {
            prop(&mut structure, key, value);
        }
        structure.extend(be(2));
        structure.extend(be(2));
        structure.extend(be(9));

        let header_len = 40;
        let reserve_len = 16;
        let off_struct = header_len + reserve_len;
        let off_strings = off_struct + structure.len();
        let total = off_strings + strings.len();
        let mut blob = Vec::new();
        for field in [
            0xd00d_feed,
            total as u32,
            off_struct as u32,
            off_strings as u32,
            header_len as u32,
            17,
            16,
            0,
            strings.len() as u32,
            structure.len() as u32,
        ] {
            blob.extend(be(field));
        }
        blob.extend([0u8; 16]);
        blob.extend(structure);
        blob.extend(strings);
        blob
    }

    fn reg(base: u64, size: u64) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend(base.to_be_bytes());
        v.extend(size.to_be_bytes());
        v
    }

    #[test]
    fn dtb_stdout_path_names_a_16550_with_its_shift_and_width() {
        let blob = blob_with(
            "serial@1000000",
            &[
                ("compatible", b"snps,dw-apb-uart\0ns16550a\0".to_vec()),
                ("reg", reg(0x100_0000, 0x100)),
                ("reg-shift", 2u32.to_be_bytes().to_vec()),
                ("reg-io-width", 4u32.to_be_bytes().to_vec()),
            ],
        );
        let uart = dtb::console(&blob).expect("console from stdout-path");
        assert_eq!(
            uart,
            Uart {
                region: Region {
                    base: 0x100_0000,
                    size: 0x100
                },
                kind: UartKind::Ns16550 {
                    reg_shift: 2,
                    reg_io_width: 4
                }
            }
        );

        let fake = FakeUart {
            busy_polls: 2,
            lsr_offset: 5 << 2,
            thr_offset: 0,
            ..FakeUart::default()
        };
        let mut console = Ns16550::new(&uart, fake).unwrap();
        write!(console, "ok\r\n").unwrap();
        let fake = console.window();
        assert_eq!(fake.sent, b"ok\r\n");
        // Interrupts masked first; every access 32 bits wide at register << 2; each byte
        // written only after LSR said the transmitter was empty.
        assert_eq!(fake.accesses[0], ('w', 1 << 2, IoWidth::Word, 0));
        assert!(fake.accesses.iter().all(|a| a.2 == IoWidth::Word));
        let mut empty = false;
        for &(op, offset, _, value) in &fake.accesses[1..] {
            match op {
                'r' => {
                    assert_eq!(offset, 5 << 2);
                    empty = value & LSR_THRE != 0;
                }
                _ => {
                    assert_eq!(offset, 0);
                    assert!(empty, "wrote to a busy transmitter");
                    empty = false;
                }
            }
        }
        // The first byte at once, each later one after two busy polls.
        assert_eq!(
            fake.accesses.iter().filter(|a| a.0 == 'r').count(),
            1 + 3 * 3
        );
    }

    #[test]
    fn byte_registers_without_reg_properties() {
        let blob = blob_with(
            "uart@3f8",
            &[
                ("compatible", b"ns16550a\0".to_vec()),
                ("reg", reg(0x3f8, 8)),
            ],
        );
        let uart = dtb::console(&blob).unwrap();
        let fake = FakeUart {
            lsr_offset: 5,
            ..FakeUart::default()
        };
        let mut console = Ns16550::new(&uart, fake).unwrap();
        console.write_byte(b'x');
        let fake = console.window();
        assert_eq!(
            fake.accesses,
            [
                ('w', 1, IoWidth::Byte, 0),
                ('r', 5, IoWidth::Byte, LSR_THRE),
                ('w', 0, IoWidth::Byte, u32::from(b'x')),
            ]
        );
    }

    #[test]
    fn a_stuck_transmitter_drops_bytes_instead_of_hanging() {
        let uart = Uart {
            region: Region { base: 0, size: 8 },
            kind: UartKind::Ns16550 {
                reg_shift: 0,
                reg_io_width: 1,
            },
        };
        // LSR never reads as empty.
        let fake = FakeUart {
            lsr_offset: usize::MAX,
            ..FakeUart::default()
        };
        let mut console = Ns16550::new(&uart, fake).unwrap();
        console.write_byte(b'x');
        assert!(console.window().sent.is_empty());
    }

    #[test]
    fn unusable_descriptions_are_refused() {
        let with = |reg_shift, reg_io_width| Uart {
            region: Region { base: 0, size: 8 },
            kind: UartKind::Ns16550 {
                reg_shift,
                reg_io_width,
            },
        };
        let new = |uart: Uart| Ns16550::new(&uart, FakeUart::default()).err();
        assert_eq!(new(with(0, 2)), Some(Ns16550Error::Width(2)));
        assert_eq!(new(with(9, 1)), Some(Ns16550Error::Shift(9)));
        let pl011 = Uart {
            kind: UartKind::Pl011,
            ..with(0, 1)
        };
        assert_eq!(new(pl011), Some(Ns16550Error::NotNs16550));
        assert_eq!(
            String::from("unsupported reg-io-width 2"),
            Ns16550Error::Width(2).to_string()
        );
    }
}
