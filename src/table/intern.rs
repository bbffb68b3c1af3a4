//! String storage: a reference-counted dictionary for repeated strings, and a byte slab for
//! strings that belong to one row or one device.

use std::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashTable};

use crate::raw::column::Text;

/// The id of a string in an [`Interner`]: the offset of its entry in the interner's byte slab,
/// so that reading a string is one access (its length byte and text), not two.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Sym(pub(crate) u32);

/// A live string's table entry.
#[derive(Clone, Copy)]
struct Entry {
    /// The string: its entry in `bytes`.
    sym: Sym,
    /// Number of holders (variants, devices); the string is freed when it drops to zero.
    refs: u32,
}

/// A dictionary of repeated strings (job ids, module names, versions, …): each distinct string
/// is stored once and rows hold its [`Sym`]. Entries are reference counted so that a store fed
/// forever with new jobs does not grow without bound; freed entries are reused.
///
/// A string costs its bytes plus a 9-byte table entry (its id and count), against a 24-byte
/// slot and a separate allocation with `Box<str>`. The id is the string's offset in the slab:
/// answers read every string of a task, and with dense ids and a slot array in between
/// (the earlier layout) each read was two dependent memory accesses.
pub(crate) struct Interner {
    bytes: ByteSlab,
    /// Hash of the text → its entry.
    table: HashTable<Entry>,
    hasher: DefaultHashBuilder,
}

impl Interner {
    pub(crate) fn new(hasher: DefaultHashBuilder) -> Interner {
        Interner {
            bytes: ByteSlab::default(),
            table: HashTable::new(),
            hasher,
        }
    }

    #[inline(always)]
    pub(crate) fn get(&self, sym: Sym) -> &str {
        self.bytes.get(SlabRef(sym.0))
    }

    /// Where `sym`'s text is: the interner's slab and the entry's place in it.
    #[inline(always)]
    pub(crate) fn entry(&self, sym: Sym) -> (&ByteSlab, SlabRef) {
        (&self.bytes, SlabRef(sym.0))
    }

    /// See [`ByteSlab::prefetch`].
    #[inline(always)]
    pub(crate) fn prefetch(&self, sym: Sym) {
        self.bytes.prefetch(SlabRef(sym.0));
    }

    pub(crate) fn lookup(&self, text: &str) -> Option<Sym> {
        let hash = self.hasher.hash_one(text);
        self.table
            .find(hash, |e| self.get(e.sym) == text)
            .map(|e| e.sym)
    }

    /// The id of `text`, adding it if new; takes one reference. `None` only when the byte
    /// buffer would pass 4 GiB.
    pub(crate) fn intern(&mut self, text: &str) -> Option<Sym> {
        let hash = self.hasher.hash_one(text);
        let bytes = &self.bytes;
        if let Some(e) = self
            .table
            .find_mut(hash, |e| bytes.get(SlabRef(e.sym.0)) == text)
        {
            e.refs += 1;
            return Some(e.sym);
        }
        let sym = Sym(self.bytes.alloc(text)?.0);
        let (bytes, hasher) = (&self.bytes, &self.hasher);
        self.table.insert_unique(hash, Entry { sym, refs: 1 }, |e| {
            hasher.hash_one(bytes.get(SlabRef(e.sym.0)))
        });
        Some(sym)
    }

    /// Drops one reference; the string is freed with its last one.
    pub(crate) fn release(&mut self, sym: Sym) {
        let hash = self.hasher.hash_one(self.get(sym));
        let Ok(mut entry) = self.table.find_entry(hash, |e| e.sym == sym) else {
            debug_assert!(false, "release of a free symbol");
            return;
        };
        let e = entry.get_mut();
        e.refs -= 1;
        if e.refs == 0 {
            entry.remove();
            self.bytes.free(SlabRef(sym.0));
        }
    }

    pub(crate) fn shrink_to_fit(&mut self) {
        self.bytes.shrink_to_fit();
        let (bytes, hasher) = (&self.bytes, &self.hasher);
        self.table
            .shrink_to_fit(|e| hasher.hash_one(bytes.get(SlabRef(e.sym.0))));
    }

    /// Bytes in the string buffer.
    pub(crate) fn bytes_len(&self) -> usize {
        self.bytes.len()
    }

    pub(crate) fn live(&self) -> usize {
        self.table.len()
    }

    #[cfg(test)]
    pub(crate) fn refs(&self, sym: Sym) -> u32 {
        self.table
            .iter()
            .find(|e| e.sym == sym)
            .map_or(0, |e| e.refs)
    }

    /// Every live (id, text, refs).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (Sym, &str, u32)> {
        self.table.iter().map(|e| (e.sym, self.get(e.sym), e.refs))
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.bytes.heap_bytes() + table_bytes(&self.table)
    }

    /// Checks that every live string looks up to itself and that no live entry sits on the
    /// slab's free lists.
    pub(crate) fn validate(&self) -> Result<(), String> {
        let free = self.bytes.free_offsets();
        for (sym, text, refs) in self.iter() {
            if refs == 0 {
                return Err(format!("interner: {text:?} is live with no reference"));
            }
            if free.contains(&sym.0) {
                return Err(format!("interner: {text:?} is live and on a free list"));
            }
            if self.lookup(text) != Some(sym) {
                return Err(format!("interner: {text:?} does not look up to itself"));
            }
        }
        Ok(())
    }
}

/// Approximate heap bytes of a hashbrown table of `T`: one slot and one control byte per bucket.
pub(crate) fn table_bytes<T>(table: &HashTable<T>) -> usize {
    let buckets = if table.capacity() == 0 {
        0
    } else {
        (table.capacity() * 8 / 7).next_power_of_two()
    };
    buckets * (std::mem::size_of::<T>() + 1)
}

/// A reference to a string in a [`ByteSlab`]: the offset of its length byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct SlabRef(pub(crate) u32);

/// Strings packed into one `String` as `[header][text]`, with a free list per length so that
/// a removed task's id is reused by the next id of the same length (task ids of one platform
/// have near-constant length, so reuse is near-perfect and the buffer stays bounded under
/// endless churn).
///
/// The header is one `char`: for a text under 64 bytes one byte, its length, plus
/// [`PLAIN`] when no byte of the text needs escaping in JSON (so the response writer skips
/// its escape check for nearly every stored string at no cost in memory); for a longer text
/// the char `len + 64` (two or three bytes, never flagged plain).
///
/// Keeping the buffer UTF-8 text (a [`Text`], a `String` whose buffer is a huge-page
/// mapping once it is large) makes every read a bounds-checked slice with no UTF-8
/// validation (reads happen for every field of every answer; validating them cost more than
/// the rest of serialization). Chosen over `Box<str>` per string: a 19-byte task id costs
/// 20 bytes here against 16 for the box plus a 32-byte allocation.
#[derive(Default)]
pub(crate) struct ByteSlab {
    text: Text,
    /// `free[len]`: offsets of freed entries with that length.
    free: Vec<Vec<u32>>,
}

/// The header flag of a short text that JSON writes as is (see [`ByteSlab`]).
const PLAIN: u8 = 0x40;
/// Texts of this many bytes or more have a multi-byte header.
const SHORT: usize = 0x40;
/// Longest string a slab stores: the header `len + 64` is a `char`, which excludes the
/// surrogate range (the longest field is 64 characters of up to 4 bytes).
const SLAB_MAX: usize = 0xD7FF - SHORT;

impl ByteSlab {
    /// The header written before `text`.
    fn header(text: &str) -> Option<char> {
        let len = text.len();
        if len < SHORT {
            let plain = !crate::raw::swar::needs_json_escape(text.as_bytes());
            return Some(char::from(len as u8 | if plain { PLAIN } else { 0 }));
        }
        if len > SLAB_MAX {
            return None;
        }
        char::from_u32(u32::try_from(len + SHORT).ok()?)
    }

    /// Bytes an entry of a `len`-byte text takes (header included).
    pub(crate) fn entry_bytes(len: usize) -> usize {
        len + match len {
            0..SHORT => 1,
            _ => u32::try_from(len + SHORT)
                .ok()
                .and_then(char::from_u32)
                .map_or(4, char::len_utf8),
        }
    }

    /// Stores `text`; `None` when it is longer than [`SLAB_MAX`] bytes or the buffer would pass
    /// 4 GiB.
    pub(crate) fn alloc(&mut self, text: &str) -> Option<SlabRef> {
        let len = text.len();
        let header = Self::header(text)?;
        if let Some(off) = self.free.get_mut(len).and_then(Vec::pop) {
            // Same length, same header width: the header is rewritten (plainness may differ).
            let start = off as usize;
            let text_start = start + header.len_utf8();
            self.text.overwrite(start, header.encode_utf8(&mut [0; 4]));
            self.text.overwrite(text_start, text);
            return Some(SlabRef(off));
        }
        let off = u32::try_from(self.text.len()).ok()?;
        if self.text.len() + header.len_utf8() + len > u32::MAX as usize {
            return None;
        }
        self.text.push(header);
        self.text.push_str(text);
        Some(SlabRef(off))
    }

    /// Where the text at `r` starts, its length, and whether it is plain.
    #[inline(always)]
    fn span(&self, r: SlabRef) -> (usize, usize, bool) {
        let start = r.0 as usize;
        match self.text.as_bytes().get(start) {
            Some(&b) if b < 0x80 => (start + 1, usize::from(b & !PLAIN), b & PLAIN != 0),
            _ => match self
                .text
                .as_str()
                .get(start..)
                .and_then(|t| t.chars().next())
            {
                Some(c) => (
                    start + c.len_utf8(),
                    (c as usize).saturating_sub(SHORT),
                    false,
                ),
                None => (start, 0, false),
            },
        }
    }

    /// Starts loading the entry at `r` without reading it: the line of its header and the
    /// next (a one-byte-header entry is at most 64 bytes, so it lies within those two).
    #[inline]
    pub(crate) fn prefetch(&self, r: SlabRef) {
        crate::raw::prefetch::prefetch_bytes(self.text.as_bytes(), r.0 as usize, SHORT);
    }

    #[inline(always)]
    pub(crate) fn get(&self, r: SlabRef) -> &str {
        self.get_plain(r).0
    }

    /// The text at `r`, and `true` when it holds no byte that JSON escapes. Always inlined:
    /// called for every string of every answer and upsert (a call cost 340 instructions an
    /// upsert).
    #[inline(always)]
    pub(crate) fn get_plain(&self, r: SlabRef) -> (&str, bool) {
        let (start, len, plain) = self.span(r);
        // Entries are written whole at char boundaries, so the slice always exists.
        (
            self.text.as_str().get(start..start + len).unwrap_or(""),
            plain,
        )
    }

    /// The bytes at `r` and `true` when they are plain and short (a one-byte header, which
    /// every plain entry has: plainness is recorded only there); otherwise `false` and
    /// whatever bytes, for the row reader to fall back. One
    /// bounds check for the header, one for the bytes, no char boundaries.
    #[inline(always)]
    pub(crate) fn plain_bytes(&self, r: SlabRef) -> (&[u8], bool) {
        let bytes = self.text.as_bytes();
        let start = r.0 as usize;
        match bytes.get(start) {
            Some(&b) if b & PLAIN != 0 && b < 0x80 => {
                let len = usize::from(b & !PLAIN);
                match bytes.get(start + 1..start + 1 + len) {
                    Some(text) => (text, true),
                    None => (&[], false),
                }
            }
            _ => (&[], false),
        }
    }

    pub(crate) fn free(&mut self, r: SlabRef) {
        let (_, len, _) = self.span(r);
        if self.free.len() <= len {
            self.free.resize_with(len + 1, Vec::new);
        }
        self.free[len].push(r.0);
    }

    /// Bytes in the buffer, freed entries included.
    pub(crate) fn len(&self) -> usize {
        self.text.len()
    }

    pub(crate) fn reserve(&mut self, bytes: usize) {
        self.text.reserve_exact(bytes);
    }

    pub(crate) fn shrink_to_fit(&mut self) {
        self.text.shrink_to_fit();
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.text.capacity()
            + self.free.capacity() * std::mem::size_of::<Vec<u32>>()
            + self.free.iter().map(|f| f.capacity() * 4).sum::<usize>()
    }

    /// Offsets of every freed entry.
    pub(crate) fn free_offsets(&self) -> std::collections::HashSet<u32> {
        self.free.iter().flatten().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interner_counts_references_and_reuses_entries() {
        let mut i = Interner::new(DefaultHashBuilder::default());
        let a = i.intern("ble").unwrap();
        let b = i.intern("wifi").unwrap();
        assert_eq!(i.intern("ble"), Some(a));
        assert_eq!(i.refs(a), 2);
        assert_eq!(i.get(b), "wifi");
        i.release(a);
        assert_eq!(i.lookup("ble"), Some(a));
        i.release(a);
        assert_eq!(i.lookup("ble"), None);
        let c = i.intern("zig").unwrap();
        assert_eq!(c, a, "a freed entry is reused by a string of its length");
        assert_eq!(i.get(c), "zig");
        assert_eq!(i.refs(c), 1);
        assert_eq!(i.live(), 2);
        i.validate().unwrap();
    }

    #[test]
    fn slab_headers_flag_plain_text_and_size_entries_exactly() {
        let mut s = ByteSlab::default();
        for (text, plain) in [
            ("", true),
            ("task-0001", true),
            ("a\"b", false),
            ("a\\b", false),
            ("tab\there", false),
            ("智能灯 DEL\u{7f}", true),
        ] {
            let before = s.len();
            let r = s.alloc(text).unwrap();
            assert_eq!(s.get_plain(r), (text, plain), "{text:?}");
            assert_eq!(s.len() - before, ByteSlab::entry_bytes(text.len()));
        }
        crate::raw::swar::each_byte_at_each_position(|text, at| {
            let Ok(text) = std::str::from_utf8(text) else {
                return;
            };
            let b = text.as_bytes()[at];
            let r = s.alloc(text).unwrap();
            let want = !(b < 0x20 || b == b'"' || b == b'\\');
            assert_eq!(s.get_plain(r), (text, want), "byte at {at}");
        });
        // 64 bytes and more: a longer header, never flagged (the writer checks them).
        for len in [SHORT - 1, SHORT, 127, 128, 2000, SLAB_MAX] {
            let text = "z".repeat(len);
            let before = s.len();
            let r = s.alloc(&text).unwrap();
            assert_eq!(s.get_plain(r), (text.as_str(), len < SHORT), "{len}");
            assert_eq!(s.len() - before, ByteSlab::entry_bytes(len), "{len}");
        }
    }

    #[test]
    fn slab_reuses_entries_of_the_same_length() {
        let mut s = ByteSlab::default();
        let a = s.alloc("task-0001").unwrap();
        let b = s.alloc("t2").unwrap();
        assert_eq!(s.get(a), "task-0001");
        assert_eq!(s.get(b), "t2");
        let size = s.text.len();
        s.free(a);
        let c = s.alloc("task-0002").unwrap();
        assert_eq!(c, a);
        assert_eq!(s.get(c), "task-0002");
        assert_eq!(s.text.len(), size, "no growth on reuse");
        let long = "é".repeat(128); // 256 bytes: a two-byte header
        let r = s.alloc(&long).unwrap();
        assert_eq!(s.get(r), long);
        s.free(r);
        assert_eq!(s.alloc(&"ü".repeat(128)), Some(r));
        assert!(s.alloc(&"x".repeat(SLAB_MAX + 1)).is_none());
        let big = "y".repeat(SLAB_MAX);
        let r = s.alloc(&big).unwrap();
        assert_eq!(s.get(r), big);
        let empty = s.alloc("").unwrap();
        assert_eq!(s.get(empty), "");
    }
}
