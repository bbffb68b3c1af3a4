//! Byte tests eight bytes at a time ("SIMD within a register"), for the short strings of
//! requests and records: field checks, escape checks and the request scanner. No `unsafe`:
//! words are read with `u64::from_le_bytes`.
//!
//! The classic tricks answer "does some byte of the word …" exactly as a yes/no; the flag
//! bits they set are exact only at the lowest flagged byte (a borrow can flag bytes above a
//! true one), which is all [`first_match`] relies on.

/// A byte of ones in every lane.
pub(crate) const ONES: u64 = 0x0101_0101_0101_0101;
/// The high bit of every lane.
const HIGH: u64 = 0x8080_8080_8080_8080;

/// The word `v` with the high bit of its lowest zero byte set (and perhaps of bytes above it).
#[inline]
pub(crate) fn zero_bytes(v: u64) -> u64 {
    v.wrapping_sub(ONES) & !v & HIGH
}

/// True when some byte of `v` is below `n` (`n` ≤ 0x80).
#[inline]
pub(crate) fn has_byte_below(v: u64, n: u8) -> bool {
    v.wrapping_sub(ONES * u64::from(n)) & !v & HIGH != 0
}

/// True when some byte of `v` is 0x7F or above (DEL or any non-ASCII byte).
#[inline]
pub(crate) fn has_byte_above_7e(v: u64) -> bool {
    (v.wrapping_add(ONES) | v) & HIGH != 0
}

/// True when some byte of `v` equals `b`.
#[inline]
pub(crate) fn has_byte(v: u64, b: u8) -> bool {
    zero_bytes(v ^ (ONES * u64::from(b))) != 0
}

/// The eight bytes of `bytes` at `at` as a little-endian word.
#[inline]
pub(crate) fn word_at(bytes: &[u8], at: usize) -> u64 {
    let c = &bytes[at..at + 8];
    u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])
}

/// True when a byte of `bytes` is one JSON must escape: a control character, `"` or `\\`.
/// Eight bytes at a time, so a typical 20-byte field costs a few instructions rather than a
/// table lookup a byte.
#[inline]
pub(crate) fn needs_json_escape(bytes: &[u8]) -> bool {
    any_word(bytes, |v| {
        has_byte_below(v, 0x20) || has_byte(v, b'"') || has_byte(v, b'\\')
    })
}

/// True when `flagged` holds for some word of `bytes`, for a byte test `flagged` (one that
/// is true exactly when some byte of the word passes it). Every byte is in at least one word
/// and only bytes of `bytes` are: the tail is one overlapping word, and a string shorter than
/// eight bytes is padded with copies of its own bytes. False for an empty string.
#[inline]
pub(crate) fn any_word(bytes: &[u8], flagged: impl Fn(u64) -> bool) -> bool {
    let n = bytes.len();
    let read4 = |at: usize| {
        let c = &bytes[at..at + 4];
        u64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
    };
    match n {
        8.. => {
            let mut at = 0;
            while at + 8 <= n {
                if flagged(word_at(bytes, at)) {
                    return true;
                }
                at += 8;
            }
            at < n && flagged(word_at(bytes, n - 8))
        }
        4..=7 => flagged(read4(0) | read4(n - 4) << 32),
        1..=3 => {
            let (a, b, c) = (bytes[0], bytes[n / 2], bytes[n - 1]);
            flagged(u64::from_le_bytes([a, b, c, a, a, a, a, a]))
        }
        0 => false,
    }
}

/// The index of the first byte of `bytes` at or after `from` for which `matches(word)`
/// flags, where `matches` returns [`zero_bytes`]-style flags (exact at the lowest one), and
/// `is_match` says the same of one byte (for the tail).
#[cfg(feature = "rpc")]
#[inline]
pub(crate) fn first_match(
    bytes: &[u8],
    mut from: usize,
    matches: impl Fn(u64) -> u64,
    is_match: impl Fn(u8) -> bool,
) -> Option<usize> {
    while from + 8 <= bytes.len() {
        let found = matches(word_at(bytes, from));
        if found != 0 {
            return Some(from + (found.trailing_zeros() / 8) as usize);
        }
        from += 8;
    }
    bytes
        .get(from..)?
        .iter()
        .position(|&b| is_match(b))
        .map(|i| from + i)
}

/// The index of the first byte of `bytes` at or after `from` that is one of `set`, eight
/// bytes at a time ([`first_match`] with one [`zero_bytes`] test a member, unrolled).
#[cfg(feature = "rpc")]
#[inline]
pub(crate) fn first_of<const N: usize>(bytes: &[u8], from: usize, set: [u8; N]) -> Option<usize> {
    first_match(
        bytes,
        from,
        |v| {
            set.iter()
                .fold(0, |found, &b| found | zero_bytes(v ^ (ONES * u64::from(b))))
        },
        |b| set.contains(&b),
    )
}

/// Calls `f` with every string of 1 to 23 `a`s in which one byte is replaced, at every
/// position, by every value: each byte at each place of strings shorter than, equal to and
/// longer than a word (for the tests of the word-at-a-time scanners).
#[cfg(test)]
pub(crate) fn each_byte_at_each_position(mut f: impl FnMut(&mut Vec<u8>, usize)) {
    for len in 1..24 {
        for at in 0..len {
            for b in 0u8..=0xff {
                let mut text = vec![b'a'; len];
                text[at] = b;
                f(&mut text, at);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_word_sees_every_byte_and_no_other() {
        for len in 0..24 {
            for at in 0..len {
                let mut text = vec![b'a'; len];
                text[at] = b'!';
                assert!(any_word(&text, |v| has_byte(v, b'!')), "{text:?}");
                assert!(!any_word(&text, |v| has_byte(v, b'?')), "{text:?}");
            }
            assert!(!any_word(&vec![b'a'; len], |v| has_byte(v, b'!')));
        }
    }

    #[test]
    fn word_tests_are_exact_for_every_byte() {
        for b in 0u8..=0xff {
            for lane in 0..8 {
                let mut bytes = [b'a'; 8];
                bytes[lane] = b;
                let v = u64::from_le_bytes(bytes);
                assert_eq!(has_byte_below(v, 0x20), b < 0x20, "{b:#x}");
                assert_eq!(has_byte_below(v, 0x21), b < 0x21, "{b:#x}");
                assert_eq!(has_byte_above_7e(v), b > 0x7e, "{b:#x}");
                assert_eq!(has_byte(v, b'"'), b == b'"', "{b:#x}");
            }
        }
    }
}
