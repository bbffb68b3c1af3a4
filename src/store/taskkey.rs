//! Task ids as a row keeps them.
//!
//! The platform's task ids are decimal numbers of up to 19 digits (`183371207782747****` in
//! the reference's example), so a row keeps such an id as the number itself, in place: 8
//! bytes in the row instead of 20 in the key slab (19 bytes and a header) and a 4-byte slab
//! offset in the row, and no second, scattered read when a query writes the id or an upsert
//! compares it. Any other id (a letter, a leading zero, more than 19 digits, a number from
//! 2^63 up) keeps its bytes in the key slab and the row keeps their offset, marked by the top
//! bit. Both spellings give the same bytes back, so answers, their order (by the id's
//! bytes) and every rule of the reference are the same whichever way an id is kept.

use std::cmp::Ordering;

use crate::table::intern::SlabRef;

/// The top bit: the key is an offset in the key slab.
const IN_SLAB: u64 = 1 << 63;

/// Longest id kept as a number (`u64` holds every 19-digit number; the top bit is the mark).
const MAX_DIGITS: usize = 19;

/// A task id as a row keeps it: the number of a canonical decimal id below 2^63, or the
/// offset of its bytes in the key slab with the top bit set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TaskKey(u64);

impl TaskKey {
    /// The key a free row holds (never read as an id).
    pub(crate) const FREE: TaskKey = TaskKey(0);

    /// A key whose bytes are in the key slab at `at`.
    pub(crate) fn slab(at: SlabRef) -> TaskKey {
        TaskKey(IN_SLAB | u64::from(at.0))
    }

    /// The key of `id` when it is kept as a number: 1 to 19 ASCII digits, no leading zero
    /// (`"0"` itself is one), below 2^63. `None` for every other id.
    pub(crate) fn numeric(id: &str) -> Option<TaskKey> {
        let bytes = id.as_bytes();
        if bytes.is_empty() || bytes.len() > MAX_DIGITS || (bytes[0] == b'0' && bytes.len() > 1) {
            return None;
        }
        // The leading digits one at a time (three of a 19-digit id), then the rest eight at a
        // time, each word read in place.
        let words = bytes.len() / 8;
        let head = bytes.len() - 8 * words;
        let mut n: u64 = 0;
        for &b in &bytes[..head] {
            let digit = b.wrapping_sub(b'0');
            if digit > 9 {
                return None;
            }
            n = n * 10 + u64::from(digit);
        }
        for word in bytes[head..].chunks_exact(8) {
            let mut w = [0u8; 8];
            w.copy_from_slice(word);
            // Below 10^19 < 2^64 with at most 19 digits in all.
            n = n * 100_000_000 + u64::from(eight_digits_value(u64::from_le_bytes(w))?);
        }
        (n < IN_SLAB).then_some(TaskKey(n))
    }

    /// The slab offset of a key kept in the slab.
    pub(crate) fn in_slab(self) -> Option<SlabRef> {
        (self.0 & IN_SLAB != 0).then_some(SlabRef(self.0 as u32))
    }

    /// The number of a key kept as one.
    pub(crate) fn number(self) -> Option<u64> {
        (self.0 & IN_SLAB == 0).then_some(self.0)
    }
}

/// A task id's text: borrowed from the key slab (with its plain flag), or the digits of a
/// numeric key.
#[derive(Clone, Copy)]
pub(crate) enum IdText<'a> {
    /// Bytes in the key slab, and whether JSON writes them as they are.
    Slab(&'a str, bool),
    /// A number's 20 digits, zero-padded; the id starts at `start`.
    Digits { buf: [u8; 20], start: u8 },
}

impl<'a> IdText<'a> {
    /// The digits of `n`, without leading zeros.
    pub(crate) fn digits(n: u64) -> IdText<'a> {
        // 20 digits as 4 + 8 + 8, each eight-digit part converted in lanes of one word.
        let high = n / 100_000_000;
        let low = (n - high * 100_000_000) as u32;
        let top = (high / 100_000_000) as u32; // at most 1844
        let middle = (high - u64::from(top) * 100_000_000) as u32;
        let mut buf = [0u8; 20];
        buf[..4].copy_from_slice(&four_digits(top));
        buf[4..12].copy_from_slice(&eight_digits(middle));
        buf[12..].copy_from_slice(&eight_digits(low));
        // Leading zeros: the '0' bytes before the first other digit (the last digit stays).
        let word = |at: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&buf[at..at + 8]);
            u64::from_le_bytes(w) ^ 0x3030_3030_3030_3030
        };
        let zeros = |w: u64| (w.trailing_zeros() / 8) as usize;
        let start = match (word(0), word(8)) {
            (w, _) if w != 0 => zeros(w),
            (_, w) if w != 0 => 8 + zeros(w),
            // The last byte marked nonzero: an id of zero is "0".
            _ => 12 + zeros(word(12) | 1 << 63),
        };
        IdText::Digits {
            buf,
            start: start as u8,
        }
    }

    /// The id's bytes.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        match self {
            IdText::Slab(text, _) => text.as_bytes(),
            IdText::Digits { buf, start } => &buf[usize::from(*start)..],
        }
    }

    /// The id.
    pub(crate) fn as_str(&self) -> &str {
        match self {
            IdText::Slab(text, _) => text,
            // ASCII digits only.
            IdText::Digits { .. } => std::str::from_utf8(self.as_bytes()).unwrap_or_default(),
        }
    }

    /// True when JSON writes the id as it is (digits always).
    pub(crate) fn plain(&self) -> bool {
        match self {
            IdText::Slab(_, plain) => *plain,
            IdText::Digits { .. } => true,
        }
    }

    /// The ids' order: by their bytes, as the answer orders answers.
    pub(crate) fn cmp_bytes(&self, other: &IdText<'_>) -> Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

/// The value of eight ASCII digits read as a little-endian word (the first digit in the low
/// byte); `None` when a byte is not a digit. In lanes of one word: digits, then pairs, then
/// halves.
fn eight_digits_value(word: u64) -> Option<u32> {
    // Every byte 0x30..=0x39: its high nibble is 3, and adding 6 leaves it 3.
    let high = word & 0xF0F0_F0F0_F0F0_F0F0;
    let carried = (word.wrapping_add(0x0606_0606_0606_0606) & 0xF0F0_F0F0_F0F0_F0F0) >> 4;
    if high | carried != 0x3333_3333_3333_3333 {
        return None;
    }
    let digits = word & 0x0F0F_0F0F_0F0F_0F0F;
    // Each step multiplies a lane by its weight and adds its neighbour (the products wrap
    // across lanes above the ones kept).
    let pairs = (digits.wrapping_mul((10 << 8) | 1) >> 8) & 0x00FF_00FF_00FF_00FF;
    let quads = (pairs.wrapping_mul((100 << 16) | 1) >> 16) & 0x0000_FFFF_0000_FFFF;
    Some((quads.wrapping_mul((10_000 << 32) | 1) >> 32) as u32)
}

/// The four decimal digits of `n` (below 10^4), most significant first.
fn four_digits(n: u32) -> [u8; 4] {
    let hundreds = (n * 5_243) >> 19; // n / 100, exact below 43,699
    let pairs = hundreds | (n - hundreds * 100) << 16;
    let tens = ((pairs * 103) >> 10) & 0x000F_000F;
    (tens | (pairs - tens * 10) << 8 | 0x3030_3030).to_le_bytes()
}

/// The eight decimal digits of `n` (below 10^8), most significant first, computed in lanes of
/// one word: halves of four digits, then pairs, then digits.
fn eight_digits(n: u32) -> [u8; 8] {
    let x = u64::from(n / 10_000) | u64::from(n % 10_000) << 32;
    // x / 100 in each 32-bit lane (exact below 10^4), then the remainders beside them.
    let hundreds = ((x * 10_486) >> 20) & 0x0000_007F_0000_007F;
    let pairs = hundreds | (x - hundreds * 100) << 16;
    // pair / 10 in each 16-bit lane (exact below 100), then the units beside them.
    let tens = ((pairs * 103) >> 10) & 0x000F_000F_000F_000F;
    let digits = tens | (pairs - tens * 10) << 8;
    (digits | 0x3030_3030_3030_3030).to_le_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn numeric_ids_are_canonical_decimals_below_two_to_the_63() {
        let number = |id: &str| TaskKey::numeric(id).and_then(TaskKey::number);
        assert_eq!(number("0"), Some(0));
        assert_eq!(number("7"), Some(7));
        assert_eq!(
            number("1833712077827470001"),
            Some(1_833_712_077_827_470_001)
        );
        assert_eq!(number("9223372036854775807"), Some(i64::MAX as u64));
        for kept_in_slab in [
            "",
            "00",
            "01",
            "9223372036854775808",  // 2^63
            "9999999999999999999",  // 19 digits, over 2^63
            "10000000000000000000", // 20 digits
            "12a",
            "-1",
            "+1",
            " 1",
            "1 ",
            "１",
            "183371207782747****",
        ] {
            assert_eq!(TaskKey::numeric(kept_in_slab), None, "{kept_in_slab:?}");
        }
    }

    #[test]
    fn the_mark_separates_slab_offsets_from_numbers() {
        let slab = TaskKey::slab(SlabRef(u32::MAX));
        assert_eq!(slab.in_slab(), Some(SlabRef(u32::MAX)));
        assert_eq!(slab.number(), None);
        let slab = TaskKey::slab(SlabRef(0));
        assert_eq!(slab.in_slab(), Some(SlabRef(0)));
        let n = TaskKey::numeric("9223372036854775807").unwrap();
        assert_eq!(n.in_slab(), None);
        assert_ne!(n, TaskKey::slab(SlabRef(u32::MAX)));
    }

    #[test]
    fn digits_are_written_without_leading_zeros() {
        for (n, text) in [
            (0, "0"),
            (9, "9"),
            (10, "10"),
            (99_999_999, "99999999"),
            (100_000_000, "100000000"),
            (10_000_000_000_000_000, "10000000000000000"),
            (1_833_712_077_827_470_001, "1833712077827470001"),
            (u64::MAX, "18446744073709551615"),
        ] {
            let id = IdText::digits(n);
            assert_eq!(id.as_str(), text);
            assert_eq!(id.as_bytes(), text.as_bytes());
            assert!(id.plain());
        }
    }

    /// What [`TaskKey::numeric`] must accept, the slow way.
    fn numeric_reference(id: &str) -> Option<u64> {
        let canonical = !id.is_empty()
            && id.len() <= MAX_DIGITS
            && id.bytes().all(|b| b.is_ascii_digit())
            && (id == "0" || !id.starts_with('0'));
        canonical
            .then(|| id.parse::<u64>().ok())
            .flatten()
            .filter(|&n| n < IN_SLAB)
    }

    proptest! {
        #[test]
        fn numeric_accepts_exactly_canonical_decimals(
            id in prop_oneof!["[0-9]{0,21}", "[0-9/:]{1,20}", "[1-9][0-9]{6,18}[/:a\\u{e9}0-9]"]
        ) {
            prop_assert_eq!(
                TaskKey::numeric(&id).and_then(TaskKey::number),
                numeric_reference(&id)
            );
        }

        #[test]
        fn digits_round_trip_and_order_as_bytes(
            a in any::<u64>(),
            b in any::<u64>(),
            shift in 0u32..19,
        ) {
            let a = a >> shift;
            let id = IdText::digits(a);
            prop_assert_eq!(id.as_str(), a.to_string());
            let (ta, tb) = (a.to_string(), b.to_string());
            prop_assert_eq!(
                IdText::digits(a).cmp_bytes(&IdText::digits(b)),
                ta.as_bytes().cmp(tb.as_bytes())
            );
            if a < IN_SLAB {
                prop_assert_eq!(TaskKey::numeric(&ta).and_then(TaskKey::number), Some(a));
            }
        }
    }
}
