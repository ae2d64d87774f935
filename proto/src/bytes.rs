//! Big-endian (network order) field access shared by every message module.
//!
//! Callers pass a slice of exactly the field's width (a `field` range applied to a buffer whose
//! length `check_len` has verified), so the copies below cannot fail.

pub(crate) type Field = core::ops::Range<usize>;

pub(crate) fn get_u16(s: &[u8]) -> u16 {
    let mut b = [0; 2];
    b.copy_from_slice(s);
    u16::from_be_bytes(b)
}

pub(crate) fn get_u32(s: &[u8]) -> u32 {
    let mut b = [0; 4];
    b.copy_from_slice(s);
    u32::from_be_bytes(b)
}

pub(crate) fn get_u64(s: &[u8]) -> u64 {
    let mut b = [0; 8];
    b.copy_from_slice(s);
    u64::from_be_bytes(b)
}

pub(crate) fn put_u16(s: &mut [u8], v: u16) {
    s.copy_from_slice(&v.to_be_bytes());
}

pub(crate) fn put_u32(s: &mut [u8], v: u32) {
    s.copy_from_slice(&v.to_be_bytes());
}

pub(crate) fn put_u64(s: &mut [u8], v: u64) {
    s.copy_from_slice(&v.to_be_bytes());
}

/// An integer stored big-endian in a field of exactly its width.
pub(crate) trait Be: Copy {
    fn read(s: &[u8]) -> Self;
    fn write(self, s: &mut [u8]);
}

impl Be for u8 {
    fn read(s: &[u8]) -> u8 {
        s[0]
    }
    fn write(self, s: &mut [u8]) {
        s[0] = self;
    }
}

impl Be for u16 {
    fn read(s: &[u8]) -> u16 {
        get_u16(s)
    }
    fn write(self, s: &mut [u8]) {
        put_u16(s, self)
    }
}

impl Be for u32 {
    fn read(s: &[u8]) -> u32 {
        get_u32(s)
    }
    fn write(self, s: &mut [u8]) {
        put_u32(s, self)
    }
}

impl Be for u64 {
    fn read(s: &[u8]) -> u64 {
        get_u64(s)
    }
    fn write(self, s: &mut [u8]) {
        put_u64(s, self)
    }
}

/// Declares a message body's `Packet<T>` wrapper: constructors here, `check_len` in the module.
macro_rules! body_packet {
    // A body of exactly the module's `BODY_LEN` bytes (or more: trailing bytes are ignored).
    ($what:literal, fixed_len) => {
        $crate::bytes::body_packet!($what);

        impl<T: AsRef<[u8]>> Packet<T> {
            /// Ensure the body is complete.
            pub fn check_len(&self) -> $crate::Result<()> {
                if self.buffer.as_ref().len() < BODY_LEN {
                    return Err($crate::Error::Truncated);
                }
                Ok(())
            }
        }
    };
    ($what:literal) => {
        #[doc = concat!("A read/write wrapper around the body of ", $what, ".")]
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct Packet<T: AsRef<[u8]>> {
            buffer: T,
        }

        impl<T: AsRef<[u8]>> Packet<T> {
            /// Wrap a buffer without checking its length.
            pub const fn new_unchecked(buffer: T) -> Packet<T> {
                Packet { buffer }
            }

            /// Wrap a buffer and [`check_len`](Self::check_len) it.
            pub fn new_checked(buffer: T) -> $crate::Result<Packet<T>> {
                let packet = Self::new_unchecked(buffer);
                packet.check_len()?;
                Ok(packet)
            }

            /// Consume the packet, returning the buffer.
            pub fn into_inner(self) -> T {
                self.buffer
            }
        }
    };
}

/// Declares big-endian getters and setters over the module's `field` ranges.
macro_rules! accessors {
    ($($(#[$doc:meta])* $get:ident / $set:ident : $ty:ty = $field:ident;)*) => {
        impl<T: AsRef<[u8]>> Packet<T> {
            $(
                $(#[$doc])*
                pub fn $get(&self) -> $ty {
                    <$ty as $crate::bytes::Be>::read(&self.buffer.as_ref()[field::$field])
                }
            )*
        }

        impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
            $(
                #[doc = concat!("Set the field read by [`", stringify!($get), "`](Self::",
                    stringify!($get), ").")]
                pub fn $set(&mut self, value: $ty) {
                    $crate::bytes::Be::write(value, &mut self.buffer.as_mut()[field::$field])
                }
            )*
        }
    };
}

pub(crate) use {accessors, body_packet};
