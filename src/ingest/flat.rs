//! The flat scanner: the usual line, a flat object of plain strings, read in place.

/// Reads a line that is exactly `{"k":"v",…}` (spaces allowed between tokens) where no key or
/// value holds a backslash or a control character, giving its pairs to `pair` in order; false
/// for every other line (which serde_json then reads, and reports), perhaps after giving some
/// pairs. Such strings are their own decoded values, so the pairs are slices of `line`.
pub(super) fn scan_flat<'l>(line: &'l str, mut pair: impl FnMut(&'l str, &'l str)) -> bool {
    use crate::raw::swar::{word_at, zero_bytes, ONES};
    let b = line.as_bytes();
    // One pass, a word at a time: refuse control bytes (with none, JSON's only whitespace
    // left is the space) and backslashes (with none, every string ends at its next quote),
    // and note where every quote is. Against a `memchr` call a string (26 a line), staging
    // the million-device fleet took 1.49 s instead of 1.56 s (medians of three alternating
    // runs) for 3 % more instructions: fewer calls and mispredicted loop exits.
    let mut quotes = [0u16; MAX_FLAT_QUOTES];
    let mut count = 0;
    let mut note = |at: usize| {
        if count == MAX_FLAT_QUOTES {
            return false;
        }
        quotes[count] = at as u16; // lines are at most 64 KiB
        count += 1;
        true
    };
    let mut at = 0;
    while at + 8 <= b.len() {
        let v = word_at(b, at);
        // Both tests at once, one branch (each flags exactly when its byte is present).
        let backslash = zero_bytes(v ^ (ONES * u64::from(b'\\')));
        if (v.wrapping_sub(ONES * 0x20) & !v) & (ONES * 0x80) | backslash != 0 {
            return false;
        }
        // The high bit of each byte equal to `"`, exactly (no borrow between lanes).
        let x = v ^ (ONES * u64::from(b'"'));
        let low7 = ONES * 0x7F;
        let mut found = !(((x & low7) + low7) | x) & (ONES * 0x80);
        while found != 0 {
            if !note(at + (found.trailing_zeros() / 8) as usize) {
                return false;
            }
            found &= found - 1;
        }
        at += 8;
    }
    for (i, &c) in b.iter().enumerate().skip(at) {
        if c < 0x20 || c == b'\\' || (c == b'"' && !note(i)) {
            return false;
        }
    }
    let quotes = &quotes[..count];
    // Every byte outside the strings is in one of these gaps: spaces, then `want`, then
    // spaces (`want` absent: spaces only).
    let gap = |from: usize, to: usize, want: u8| {
        let g = &b[from..to];
        if g.len() == 1 {
            return g[0] == want; // the usual, unspaced case
        }
        let Some(p) = g.iter().position(|&c| c != b' ') else {
            return false;
        };
        g[p] == want && g[p + 1..].iter().all(|&c| c == b' ')
    };
    // Key, value, key, value…: four quotes a pair, at least one pair.
    if count == 0 || count % 4 != 0 || !gap(0, usize::from(quotes[0]), b'{') {
        return false;
    }
    for (k, q) in quotes.chunks_exact(4).enumerate() {
        let [k0, k1, v0, v1] = [q[0], q[1], q[2], q[3]].map(usize::from);
        if !gap(k1 + 1, v0, b':') {
            return false;
        }
        let (Some(key), Some(value)) = (line.get(k0 + 1..k1), line.get(v0 + 1..v1)) else {
            return false;
        };
        pair(key, value);
        let ok = match quotes.get(4 * k + 4) {
            Some(&next) => gap(v1 + 1, usize::from(next), b','),
            None => gap(v1 + 1, b.len(), b'}'),
        };
        if !ok {
            return false;
        }
    }
    true
}

/// Quotes a line read by [`scan_flat`] may hold (32 pairs); a longer object goes to
/// serde_json.
pub(super) const MAX_FLAT_QUOTES: usize = 128;
