//! String storage: a reference-counted dictionary for repeated strings, and a byte slab for
//! strings that belong to one row or one device.

use std::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashTable};

/// The id of a string in an [`Interner`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Sym(pub(crate) u32);

struct Slot {
    text: Box<str>,
    /// Number of holders (variants, devices); the slot is freed when it drops to zero.
    refs: u32,
}

/// A dictionary of repeated strings (job ids, module names, versions, …): each distinct string
/// is stored once and rows hold its [`Sym`]. Entries are reference counted so that a store fed
/// forever with new jobs does not grow without bound; freed ids are reused.
pub(crate) struct Interner {
    /// `slots[id]`; a freed slot has `refs == 0` and sits on `free`.
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// Hash of the text → id.
    table: HashTable<u32>,
    hasher: DefaultHashBuilder,
}

impl Interner {
    pub(crate) fn new(hasher: DefaultHashBuilder) -> Interner {
        Interner {
            slots: Vec::new(),
            free: Vec::new(),
            table: HashTable::new(),
            hasher,
        }
    }

    pub(crate) fn get(&self, sym: Sym) -> &str {
        &self.slots[sym.0 as usize].text
    }

    pub(crate) fn lookup(&self, text: &str) -> Option<Sym> {
        let hash = self.hasher.hash_one(text);
        self.table
            .find(hash, |&id| &*self.slots[id as usize].text == text)
            .map(|&id| Sym(id))
    }

    /// The id of `text`, adding it if new; takes one reference.
    pub(crate) fn intern(&mut self, text: &str) -> Sym {
        let hash = self.hasher.hash_one(text);
        let slots = &self.slots;
        if let Some(&id) = self
            .table
            .find(hash, |&id| &*slots[id as usize].text == text)
        {
            self.slots[id as usize].refs += 1;
            return Sym(id);
        }
        let slot = Slot {
            text: text.into(),
            refs: 1,
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.slots[id as usize] = slot;
                id
            }
            None => {
                self.slots.push(slot);
                (self.slots.len() - 1) as u32
            }
        };
        let (slots, hasher) = (&self.slots, &self.hasher);
        self.table
            .insert_unique(hash, id, |&id| hasher.hash_one(&*slots[id as usize].text));
        Sym(id)
    }

    /// Drops one reference; the string is freed with its last one.
    pub(crate) fn release(&mut self, sym: Sym) {
        let slot = &mut self.slots[sym.0 as usize];
        debug_assert!(slot.refs > 0, "release of a free symbol");
        slot.refs -= 1;
        if slot.refs == 0 {
            let text = std::mem::take(&mut slot.text);
            let hash = self.hasher.hash_one(&*text);
            if let Ok(entry) = self.table.find_entry(hash, |&id| id == sym.0) {
                entry.remove();
            }
            self.free.push(sym.0);
        }
    }

    pub(crate) fn live(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    #[cfg(test)]
    pub(crate) fn refs(&self, sym: Sym) -> u32 {
        self.slots[sym.0 as usize].refs
    }

    /// Every live (id, text, refs).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (Sym, &str, u32)> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.refs > 0)
            .map(|(i, s)| (Sym(i as u32), &*s.text, s.refs))
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Slot>()
            + self.slots.iter().map(|s| s.text.len()).sum::<usize>()
            + self.free.capacity() * 4
            + table_bytes(&self.table)
    }

    /// Checks that the table and the slots agree.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.table.len() != self.live() {
            return Err(format!(
                "interner: {} table entries for {} live strings",
                self.table.len(),
                self.live()
            ));
        }
        for (sym, text, _) in self.iter() {
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

/// Strings of at most 255 bytes packed into one buffer as `[len][bytes]`, with a free list
/// per length so that a removed task's id is reused by the next id of the same length (task
/// ids of one platform have near-constant length, so reuse is near-perfect and the buffer
/// stays bounded under endless churn).
///
/// Chosen over `Box<str>` per string: a 19-byte task id costs 20 bytes here against 16 for the
/// box plus a 32-byte allocation.
#[derive(Default)]
pub(crate) struct ByteSlab {
    bytes: Vec<u8>,
    /// `free[len]`: offsets of freed entries with that length.
    free: Vec<Vec<u32>>,
}

impl ByteSlab {
    /// Stores `text` (at most 255 bytes, checked by the field rules).
    pub(crate) fn alloc(&mut self, text: &str) -> Option<SlabRef> {
        let len = u8::try_from(text.len()).ok()?;
        if let Some(off) = self.free.get_mut(len as usize).and_then(Vec::pop) {
            let start = off as usize + 1;
            self.bytes[start..start + text.len()].copy_from_slice(text.as_bytes());
            return Some(SlabRef(off));
        }
        let off = u32::try_from(self.bytes.len()).ok()?;
        if self.bytes.len() + 1 + text.len() > u32::MAX as usize {
            return None;
        }
        self.bytes.push(len);
        self.bytes.extend_from_slice(text.as_bytes());
        Some(SlabRef(off))
    }

    pub(crate) fn get(&self, r: SlabRef) -> &str {
        let start = r.0 as usize;
        let len = self.bytes[start] as usize;
        // Only whole `&str`s are written at entry boundaries, so this never fails.
        std::str::from_utf8(&self.bytes[start + 1..start + 1 + len]).unwrap_or("")
    }

    pub(crate) fn free(&mut self, r: SlabRef) {
        let len = self.bytes[r.0 as usize] as usize;
        if self.free.len() <= len {
            self.free.resize_with(len + 1, Vec::new);
        }
        self.free[len].push(r.0);
    }

    pub(crate) fn reserve(&mut self, bytes: usize) {
        self.bytes.reserve(bytes);
    }

    pub(crate) fn shrink_to_fit(&mut self) {
        self.bytes.shrink_to_fit();
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.bytes.capacity()
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
    fn interner_counts_references_and_reuses_ids() {
        let mut i = Interner::new(DefaultHashBuilder::default());
        let a = i.intern("ble");
        let b = i.intern("wifi");
        assert_eq!(i.intern("ble"), a);
        assert_eq!(i.refs(a), 2);
        assert_eq!(i.get(b), "wifi");
        i.release(a);
        assert_eq!(i.lookup("ble"), Some(a));
        i.release(a);
        assert_eq!(i.lookup("ble"), None);
        let c = i.intern("zigbee");
        assert_eq!(c, a, "freed id is reused");
        assert_eq!(i.get(c), "zigbee");
        assert_eq!(i.live(), 2);
        i.validate().unwrap();
    }

    #[test]
    fn slab_reuses_entries_of_the_same_length() {
        let mut s = ByteSlab::default();
        let a = s.alloc("task-0001").unwrap();
        let b = s.alloc("t2").unwrap();
        assert_eq!(s.get(a), "task-0001");
        assert_eq!(s.get(b), "t2");
        let size = s.bytes.len();
        s.free(a);
        let c = s.alloc("task-0002").unwrap();
        assert_eq!(c, a);
        assert_eq!(s.get(c), "task-0002");
        assert_eq!(s.bytes.len(), size, "no growth on reuse");
        assert!(s.alloc(&"x".repeat(256)).is_none());
        let empty = s.alloc("").unwrap();
        assert_eq!(s.get(empty), "");
    }
}
