//! A hash table of 4-byte entries that carry part of their hash, for directories whose keys
//! live elsewhere (a task's id in its shard's slab).
//!
//! Each entry packs an address (the caller's `u32`, plus one) in its low bits and, in the bits
//! the largest address leaves free, a tag taken from the hash. A lookup reads one array and
//! asks the caller to compare a key only for an entry whose tag matches, so finding a task is
//! one cache miss for the entry and then the row, where a hashbrown table of bare addresses
//! reads its control bytes and then, in another array, the slot (two misses before the row:
//! 44 % of an upsert's time at 1,000,000 devices, measured with `perf`). It is also smaller:
//! 4 bytes a bucket instead of 5.
//!
//! Linear probing over a power-of-two array, at most 7/8 full (counting tombstones). The
//! address field grows (and the tags shrink) as addresses do; every rebuild recomputes the
//! hashes through the caller's function, as a hashbrown table's growth does. That function
//! runs inside `insert`, `reserve` and `shrink_to_fit`, so it must not wait on anything their
//! caller holds: the engine's reads rows under shard read locks, and it changes a table only
//! with no shard lock of its own held (a cross-shard move updates the task directory after
//! releasing both shards).

use crate::raw::column::Column;

/// Largest address a [`TagTable`] stores.
pub(crate) const MAX_ADDR: u32 = u32::MAX - 2;

/// [`TagTable::insert_all`] orders a large batch by the top this many bits of its buckets.
const REGION_BITS: u32 = 8;

/// An unused bucket.
const EMPTY: u32 = 0;

/// See the module documentation.
#[derive(Debug, Default)]
pub(crate) struct TagTable {
    /// Entries; the length is zero or a power of two.
    slots: Column<u32>,
    /// The address field's mask (its low bits): the field holds `addr + 1` for every stored
    /// address and is never all ones (that value, with a zero tag, marks a tombstone). The
    /// bits above it hold the same bits of the hash's upper half.
    field: u32,
    /// Live entries.
    len: usize,
    /// Removed entries still occupying their bucket.
    tombstones: usize,
}

/// The bits `value` needs.
fn bits_for(value: u64) -> u32 {
    u64::BITS - value.leading_zeros()
}

impl TagTable {
    /// Live entries.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// True when no entry is live.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Heap bytes held.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<u32>()
    }

    /// The tag of `hash`, in place: the bits of its upper half above the address field.
    fn tag(&self, hash: u64) -> u32 {
        (hash >> 32) as u32 & !self.field
    }

    fn entry(&self, hash: u64, addr: u32) -> u32 {
        self.tag(hash) | (addr + 1)
    }

    /// True when `addr` fits the address field as it is.
    fn fits(&self, addr: u32) -> bool {
        u64::from(addr) + 2 <= u64::from(self.field)
    }

    fn home(&self, hash: u64) -> usize {
        hash as usize & (self.slots.len() - 1)
    }

    /// The address whose entry matches `hash` and for which `eq` holds.
    #[inline]
    pub(crate) fn find(&self, hash: u64, mut eq: impl FnMut(u32) -> bool) -> Option<u32> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let field = self.field;
        let tag = self.tag(hash);
        let mut i = self.home(hash);
        loop {
            let e = self.slots[i];
            if e == EMPTY {
                return None;
            }
            // Same tag: the bits above the field agree.
            if e ^ tag <= field {
                let f = e & field;
                if f != field && eq(f - 1) {
                    return Some(f - 1);
                }
            }
            i = (i + 1) & mask;
        }
    }

    /// The bucket holding `addr` under `hash`.
    fn bucket_of(&self, hash: u64, addr: u32) -> Option<usize> {
        if self.slots.is_empty() || !self.fits(addr) {
            return None;
        }
        let mask = self.slots.len() - 1;
        let want = self.entry(hash, addr);
        let mut i = self.home(hash);
        loop {
            match self.slots[i] {
                EMPTY => return None,
                e if e == want => return Some(i),
                _ => i = (i + 1) & mask,
            }
        }
    }

    /// Removes the entry of `addr` stored under `hash`; false when there is none.
    pub(crate) fn remove(&mut self, hash: u64, addr: u32) -> bool {
        let Some(i) = self.bucket_of(hash, addr) else {
            return false;
        };
        let mask = self.slots.len() - 1;
        // No probe passes an entry followed by an empty bucket: it can become empty itself,
        // and so can the tombstones just before it.
        if self.slots[(i + 1) & mask] == EMPTY {
            self.slots[i] = EMPTY;
            let field = self.field;
            let mut j = i.wrapping_sub(1) & mask;
            while self.slots[j] == field {
                self.slots[j] = EMPTY;
                self.tombstones -= 1;
                j = j.wrapping_sub(1) & mask;
            }
        } else {
            self.slots[i] = self.field;
            self.tombstones += 1;
        }
        self.len -= 1;
        true
    }

    /// Stores `addr` under `hash`; the caller knows no equal key is stored. `rehash` gives the
    /// hash of a stored address, for a rebuild. False (and nothing stored) when `addr` is over
    /// [`MAX_ADDR`].
    pub(crate) fn insert(&mut self, hash: u64, addr: u32, rehash: impl Fn(u32) -> u64) -> bool {
        if addr > MAX_ADDR {
            return false;
        }
        if self.len + self.tombstones + 1 > self.max_load() {
            self.rebuild(self.len + 1, addr, &rehash);
        } else if !self.fits(addr) {
            // For width alone, keep the buckets: a reservation must outlive it (sized for
            // `len + 1`, a reserved table being filled rebuilt again at every doubling: 1.8
            // million rehashes, each reading a device, loading the million-device fleet's
            // pairs).
            self.rebuild((self.len + 1).max(self.max_load()), addr, &rehash);
        }
        self.put(hash, addr);
        true
    }

    /// An empty table that holds `n` entries with addresses up to `largest` without a
    /// rebuild.
    pub(crate) fn with_capacity(n: usize, largest: u32) -> TagTable {
        let mut table = TagTable::default();
        if n > 0 {
            table.rebuild(n, largest.min(MAX_ADDR), &|_| 0); // no live entry to rehash
        }
        table
    }

    /// Starts loading the bucket a probe for `hash` begins at.
    pub(crate) fn prefetch(&self, hash: u64) {
        if !self.slots.is_empty() {
            crate::raw::prefetch::prefetch(&self.slots[self.home(hash)]);
        }
    }

    /// Stores every `(hash, addr)` of `entries` (distinct keys, none stored yet), reordering
    /// `entries`: they go in by the region of the array they land in, so that a batch larger
    /// than the caches writes each region while it is cached rather than one random bucket
    /// at a time. False, with nothing stored, when an address is over [`MAX_ADDR`].
    pub(crate) fn insert_all(
        &mut self,
        entries: &mut [(u64, u32)],
        rehash: impl Fn(u32) -> u64,
    ) -> bool {
        let largest = entries.iter().map(|e| e.1).max().unwrap_or(0);
        if largest > MAX_ADDR {
            return false;
        }
        if self.len + self.tombstones + entries.len() > self.max_load() || !self.fits(largest) {
            self.rebuild(self.len + entries.len(), largest, &rehash);
        }
        let bits = self.slots.len().trailing_zeros();
        if entries.len() >= 1 << 16 && bits > REGION_BITS {
            // A counting sort by the top bits of the home bucket, in place: each swap puts one
            // entry in its region for good (no second array of the batch's size).
            let shift = bits - REGION_BITS;
            let region = |hash: u64| (hash as usize & (self.slots.len() - 1)) >> shift;
            let mut end = vec![0usize; 1 << REGION_BITS];
            for e in entries.iter() {
                end[region(e.0)] += 1;
            }
            let mut next = vec![0usize; 1 << REGION_BITS];
            let mut at = 0;
            for r in 0..1 << REGION_BITS {
                next[r] = at;
                at += end[r];
                end[r] = at;
            }
            for r in 0..1 << REGION_BITS {
                while next[r] < end[r] {
                    let home = region(entries[next[r]].0);
                    if home != r {
                        entries.swap(next[r], next[home]);
                    }
                    next[home] += 1;
                }
            }
        }
        for &(hash, addr) in entries.iter() {
            self.put(hash, addr);
        }
        true
    }

    /// Makes room for `additional` more entries without a rebuild.
    pub(crate) fn reserve(&mut self, additional: usize, rehash: impl Fn(u32) -> u64) {
        let want = self.len + additional;
        if self.len + self.tombstones + additional > self.max_load() {
            self.rebuild(want, 0, &rehash);
        }
    }

    /// Rebuilds at the smallest size that holds the live entries.
    pub(crate) fn shrink_to_fit(&mut self, rehash: impl Fn(u32) -> u64) {
        if Self::buckets_for(self.len) < self.slots.len() || self.tombstones > 0 {
            self.rebuild(self.len, 0, &rehash);
        }
        self.slots.shrink_to_fit(); // a large table settles into huge pages (see `Column`)
    }

    fn max_load(&self) -> usize {
        self.slots.len() / 8 * 7
    }

    /// Buckets for `n` live entries.
    fn buckets_for(n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        (n.saturating_mul(8).div_ceil(7)).next_power_of_two().max(8)
    }

    fn put(&mut self, hash: u64, addr: u32) {
        let mask = self.slots.len() - 1;
        let field = self.field;
        let entry = self.entry(hash, addr);
        let mut i = self.home(hash);
        loop {
            let e = self.slots[i];
            if e == EMPTY {
                break;
            }
            if e & field == field {
                self.tombstones -= 1;
                break;
            }
            i = (i + 1) & mask;
        }
        self.slots[i] = entry;
        self.len += 1;
    }

    /// Rebuilds for at least `n` live entries, with an address field that also holds `addr`
    /// and room for the addresses to come, rehashing every live entry.
    fn rebuild(&mut self, n: usize, addr: u32, rehash: &impl Fn(u32) -> u64) {
        let field = self.field;
        let mut live: Vec<u32> = self
            .slots
            .iter()
            .filter(|&&e| e != EMPTY && e & field != field)
            .map(|&e| (e & field) - 1)
            .collect();
        // Rehashed in address order: `rehash` reads each entry's key where the address
        // points, so the reads walk the keys' arrays in order instead of at random.
        live.sort_unstable();
        let largest = live.iter().copied().chain([addr]).max().unwrap_or(0);
        let buckets = Self::buckets_for(n.max(live.len()));
        // Room for addresses up to four times the largest so far and four times the buckets
        // (a directory's addresses grow about as its entries do), so that a rebuild for width
        // alone stays rare.
        let bits = bits_for((u64::from(largest) + 2) * 4).max(bits_for(buckets as u64) + 2);
        self.field = u32::MAX.checked_shr(32 - bits.min(32)).unwrap_or(0);
        self.slots = Column::filled(buckets, EMPTY);
        self.len = 0;
        self.tombstones = 0;
        for a in live {
            self.put(rehash(a), a);
        }
    }

    /// Checks the counts and that every live entry is found under its own hash.
    pub(crate) fn validate(&self, rehash: impl Fn(u32) -> u64) -> Result<(), String> {
        let field = self.field;
        let (mut live, mut tombs) = (0, 0);
        for &e in self.slots.iter() {
            if e == EMPTY {
                continue;
            }
            if e & field == field {
                tombs += 1;
                continue;
            }
            live += 1;
            let a = (e & field) - 1;
            if self.bucket_of(rehash(a), a).is_none() {
                return Err(format!("address {a} is not found under its hash"));
            }
        }
        if live != self.len || tombs != self.tombstones {
            return Err(format!(
                "table counts {} live and {} removed entries, holds {live} and {tombs}",
                self.len, self.tombstones
            ));
        }
        if !self.slots.is_empty() && live + tombs > self.max_load() {
            return Err("table is over its load".to_owned());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// A deliberately poor hash: few distinct values, so probes cross many entries and tags
    /// collide.
    fn weak(key: u32, bits: u32) -> u64 {
        let h = u64::from(key).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        h >> (64 - bits) | (h >> (64 - bits)) << 40
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u32),
        Remove(u32),
        Reserve(u8),
        Shrink,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            5 => (0u32..400).prop_map(Op::Insert),
            3 => (0u32..400).prop_map(Op::Remove),
            1 => any::<u8>().prop_map(Op::Reserve),
            1 => Just(Op::Shrink),
        ]
    }

    /// A reserved table filled one insert at a time with growing addresses (a pair directory
    /// after a bulk load's reservation) widens its address field without giving up the
    /// reservation: a handful of rebuilds, not one at every doubling, and every entry found.
    #[test]
    fn widening_keeps_a_reservation() {
        let hash = |a: u32| u64::from(a).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let rehashes = std::cell::Cell::new(0usize);
        let rehash = |a: u32| {
            rehashes.set(rehashes.get() + 1);
            hash(a)
        };
        let n = 20_000u32;
        let mut table = TagTable::default();
        table.reserve(n as usize, rehash);
        let buckets = table.slots.len();
        for i in 0..n {
            // Addresses as a directory's locations grow: index << 6 | shard.
            let addr = i << 6 | (i % 64);
            assert!(table.insert(hash(addr), addr, rehash));
        }
        assert_eq!(table.slots.len(), buckets, "the reservation was given up");
        // One rebuild for width (4,095 entries then); at every doubling it was 25,599.
        assert!(
            rehashes.get() < n as usize / 2,
            "{} rehashes",
            rehashes.get()
        );
        for i in 0..n {
            let addr = i << 6 | (i % 64);
            assert_eq!(table.find(hash(addr), |a| a == addr), Some(addr));
        }
        table.validate(hash).unwrap();
    }

    /// A batch large enough to be ordered by region goes in whole: into an empty table and
    /// into one holding entries and tombstones, with a well-mixed hash and a weak one (long
    /// runs that cross region borders).
    #[test]
    fn a_large_batch_goes_in_whole() {
        let mixed = |key: u32| {
            let mut z = u64::from(key).wrapping_add(0x9E37_79B9_7F4A_7C15);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z ^ (z >> 31)
        };
        let weak20 = |key: u32| weak(key, 20);
        for hash in [&mixed as &dyn Fn(u32) -> u64, &weak20] {
            for prior in [0u32, 5_000] {
                let mut table = TagTable::default();
                for a in 0..prior {
                    assert!(table.insert(hash(a), a, hash));
                }
                for a in (0..prior).step_by(3) {
                    assert!(table.remove(hash(a), a));
                }
                let mut batch: Vec<(u64, u32)> =
                    (prior..prior + 100_000).map(|a| (hash(a), a)).collect();
                assert!(table.insert_all(&mut batch, hash));
                let mut sorted: Vec<u32> = batch.iter().map(|e| e.1).collect();
                sorted.sort_unstable();
                assert!(
                    sorted.iter().copied().eq(prior..prior + 100_000),
                    "a permutation"
                );
                table.validate(hash).unwrap();
                let live = prior - prior.div_ceil(3) + 100_000;
                assert_eq!(table.len(), live as usize);
                for a in 0..prior + 100_000 {
                    let want = (a >= prior || a % 3 != 0).then_some(a);
                    assert_eq!(table.find(hash(a), |x| x == a), want, "{a}");
                }
            }
        }
        let mut over = vec![(1, MAX_ADDR + 1)];
        let mut table = TagTable::default();
        assert!(!table.insert_all(&mut over, |_| 1));
        assert!(table.is_empty());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Keys are `0..400`; each key's address is derived from it, some of them large so the
        /// field widens mid-run. The table must agree with a map after every step.
        #[test]
        fn the_table_agrees_with_a_map(ops in prop::collection::vec(op(), 1..300), bits in 1u32..20, scale in prop::sample::select(vec![1u32, 1000, 1 << 20, MAX_ADDR / 400])) {
            let addr_of = |key: u32| key * scale;
            let key_of = |addr: u32| addr / scale;
            let hash = |key: u32| weak(key, bits);
            let mut table = TagTable::default();
            let mut model: HashMap<u32, u32> = HashMap::new();
            for op in ops {
                match op {
                    Op::Insert(k) => {
                        if let std::collections::hash_map::Entry::Vacant(e) = model.entry(k) {
                            prop_assert!(table.insert(hash(k), addr_of(k), |a| hash(key_of(a))));
                            e.insert(addr_of(k));
                        }
                    }
                    Op::Remove(k) => {
                        prop_assert_eq!(table.remove(hash(k), addr_of(k)), model.remove(&k).is_some());
                    }
                    Op::Reserve(n) => {
                        table.reserve(usize::from(n), |a| hash(key_of(a)));
                        prop_assert!(table.len + table.tombstones + usize::from(n) <= table.max_load());
                    }
                    Op::Shrink => table.shrink_to_fit(|a| hash(key_of(a))),
                }
                prop_assert_eq!(table.len(), model.len());
                table.validate(|a| hash(key_of(a))).map_err(TestCaseError::fail)?;
            }
            for k in 0..400 {
                let found = table.find(hash(k), |a| key_of(a) == k);
                prop_assert_eq!(found, model.get(&k).copied());
            }
        }
    }

    #[test]
    fn a_tag_mismatch_is_never_compared() {
        let mut table = TagTable::default();
        let h = |k: u32| u64::from(k) << 60 | 5; // same home bucket, distinct tags
        for k in 0..8 {
            assert!(table.insert(h(k), k, h));
        }
        let mut compared = Vec::new();
        let found = table.find(h(6), |a| {
            compared.push(a);
            a == 6
        });
        assert_eq!(found, Some(6));
        assert_eq!(compared, [6]);
    }

    #[test]
    fn addresses_past_the_limit_are_refused_and_the_largest_is_kept() {
        let mut table = TagTable::default();
        assert!(!table.insert(1, MAX_ADDR + 1, |_| 1));
        assert!(table.is_empty());
        assert!(table.insert(1, MAX_ADDR, |_| 1));
        assert!(table.insert(2, 0, |a| if a == 0 { 2 } else { 1 }));
        assert_eq!(table.find(1, |a| a == MAX_ADDR), Some(MAX_ADDR));
        assert_eq!(table.find(2, |a| a == 0), Some(0));
        assert!(table.remove(1, MAX_ADDR));
        assert_eq!(table.find(1, |a| a == MAX_ADDR), None);
        assert_eq!(table.len(), 1);
    }

    #[test]
    fn removals_leave_no_tombstone_before_an_empty_bucket() {
        let mut table = TagTable::default();
        let h = |k: u32| u64::from(k);
        for k in 0..4 {
            assert!(table.insert(h(k) * 2, k, |a| h(a) * 2));
        }
        assert!(table.remove(h(3) * 2, 3));
        assert_eq!(table.tombstones, 0);
        let mut same = TagTable::default();
        for k in 0..4 {
            assert!(same.insert(7, k, |_| 7));
        }
        assert!(same.remove(7, 1));
        assert_eq!(same.tombstones, 1);
        assert_eq!(same.find(7, |a| a == 3), Some(3));
        assert!(same.insert(7, 9, |_| 7));
        assert_eq!(same.tombstones, 0, "an insert reuses the tombstone");
    }
}
