//! The image's own relocations: it is linked at address 0 as a position-independent executable
//! and may be loaded at any 2 MiB-aligned base (plus text_offset), so before anything uses an
//! absolute address (a vtable, a string's pointer, a GOT entry) the entry code adds the load
//! address to every word the linker listed in `.rela.dyn`.
//!
//! The image has no dynamic symbols, so every entry must be `R_AARCH64_RELATIVE` (the build
//! checks that too). This runs before relocation is complete: it must use no absolute address
//! itself, so it takes everything as arguments, never panics and reports errors as plain values.

/// `R_AARCH64_RELATIVE`: the word at `offset` becomes load address + `addend`.
pub const R_AARCH64_RELATIVE: u32 = 1027;

/// Bytes of one `Elf64_Rela` entry: offset, info, addend.
pub const RELA_BYTES: usize = 24;

/// Why the relocations cannot be applied; nothing has been written when this is returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelocError {
    /// The table's length is not a whole number of entries.
    Truncated,
    /// Entry `index` is of a type other than `R_AARCH64_RELATIVE`.
    Unsupported { index: usize, kind: u32 },
    /// Entry `index` points outside the loaded image or at a word that is not 8-byte aligned.
    BadOffset { index: usize, offset: u64 },
}

/// (offset, addend) of every entry of `rela`, checked against an image of `image_len` bytes.
fn entries(
    rela: &[u8],
    image_len: u64,
) -> impl Iterator<Item = Result<(u64, u64), RelocError>> + '_ {
    rela.chunks_exact(RELA_BYTES)
        .enumerate()
        .map(move |(index, entry)| {
            let offset = word(entry, 0);
            let info = word(entry, 8);
            let addend = word(entry, 16);
            let kind = info as u32;
            if kind != R_AARCH64_RELATIVE {
                return Err(RelocError::Unsupported { index, kind });
            }
            if !offset.is_multiple_of(8) || offset.checked_add(8).is_none_or(|end| end > image_len)
            {
                return Err(RelocError::BadOffset { index, offset });
            }
            Ok((offset, addend))
        })
}

/// The little-endian word at `at` of an entry (zero if short: `chunks_exact` never is).
fn word(entry: &[u8], at: usize) -> u64 {
    entry
        .get(at..at + 8)
        .and_then(|bytes| bytes.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

/// Checks every entry of `rela` against an image of `image_len` bytes loaded at `base`, then
/// hands `write` each image offset and the value to store there. Returns how many words were
/// written.
pub fn apply(
    rela: &[u8],
    image_len: u64,
    base: u64,
    mut write: impl FnMut(u64, u64),
) -> Result<usize, RelocError> {
    if !rela.len().is_multiple_of(RELA_BYTES) {
        return Err(RelocError::Truncated);
    }
    if let Some(Err(e)) = entries(rela, image_len).find(Result::is_err) {
        return Err(e);
    }
    let mut written = 0;
    for (offset, addend) in entries(rela, image_len).flatten() {
        write(offset, base.wrapping_add(addend));
        written += 1;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn rela(entries: &[(u64, u32, u64)]) -> Vec<u8> {
        let mut table = Vec::new();
        for &(offset, kind, addend) in entries {
            table.extend(offset.to_le_bytes());
            // The symbol index (high half of info) is 0 for relative relocations.
            table.extend(u64::from(kind).to_le_bytes());
            table.extend(addend.to_le_bytes());
        }
        table
    }

    /// Apply `table` to a zeroed image of `len` bytes loaded at `base`.
    fn relocate(table: &[u8], len: usize, base: u64) -> (Result<usize, RelocError>, Vec<u8>) {
        let mut image = std::vec![0u8; len];
        let result = apply(table, len as u64, base, |offset, value| {
            let at = offset as usize;
            image[at..at + 8].copy_from_slice(&value.to_le_bytes());
        });
        (result, image)
    }

    fn word_at(image: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(image[at..at + 8].try_into().unwrap())
    }

    #[test]
    fn relative_entries_add_the_load_address() {
        let table = rela(&[
            (0x10, R_AARCH64_RELATIVE, 0x1234),
            (0x18, R_AARCH64_RELATIVE, 0),
            (0x38, R_AARCH64_RELATIVE, 0x3f8),
        ]);
        let (result, image) = relocate(&table, 0x40, 0x4808_0000);
        assert_eq!(result, Ok(3));
        assert_eq!(word_at(&image, 0x10), 0x4808_1234);
        assert_eq!(word_at(&image, 0x18), 0x4808_0000);
        assert_eq!(word_at(&image, 0x38), 0x4808_03f8);
        assert_eq!(word_at(&image, 0x20), 0, "untouched words stay");
        // The same table at another base gives the same layout shifted.
        let (_, at_8g) = relocate(&table, 0x40, 0x8_0008_0000);
        assert_eq!(word_at(&at_8g, 0x10), 0x8_0008_1234);
    }

    #[test]
    fn an_empty_table_writes_nothing() {
        assert_eq!(relocate(&[], 0x40, 0x4000_0000).0, Ok(0));
    }

    #[test]
    fn a_bad_entry_anywhere_stops_everything_before_a_write() {
        let cases = [
            (
                rela(&[
                    (0x10, R_AARCH64_RELATIVE, 1),
                    (0x18, 257, 0), // R_AARCH64_ABS64: needs a symbol
                ]),
                RelocError::Unsupported {
                    index: 1,
                    kind: 257,
                },
            ),
            (
                rela(&[(0x10, R_AARCH64_RELATIVE, 1), (0x3c, R_AARCH64_RELATIVE, 1)]),
                RelocError::BadOffset {
                    index: 1,
                    offset: 0x3c,
                },
            ),
            (
                rela(&[(0x40, R_AARCH64_RELATIVE, 1)]),
                RelocError::BadOffset {
                    index: 0,
                    offset: 0x40,
                },
            ),
            (
                rela(&[(u64::MAX - 7, R_AARCH64_RELATIVE, 1)]),
                RelocError::BadOffset {
                    index: 0,
                    offset: u64::MAX - 7,
                },
            ),
        ];
        for (table, error) in cases {
            let (result, image) = relocate(&table, 0x40, 0x4000_0000);
            assert_eq!(result, Err(error));
            assert!(image.iter().all(|&b| b == 0), "{error:?}: written anyway");
        }
        let mut table = rela(&[(0x10, R_AARCH64_RELATIVE, 1)]);
        table.pop();
        assert_eq!(
            relocate(&table, 0x40, 0x4000_0000).0,
            Err(RelocError::Truncated)
        );
    }
}
