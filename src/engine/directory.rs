//! The engine's directories: where a task or a device lives across the shards, and the
//! registry of platform instances.

use std::hash::BuildHasher;
use std::sync::atomic::AtomicU64;

use hashbrown::HashMap;

use super::remove::Tombstones;
use super::retention::Retention;
use super::Engine;
use crate::store::{DeviceIdx, InstanceId, RowIdx};
use crate::table::tagtable::TagTable;

/// A row or device address: shard in the low `shard_bits`, index above.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Loc(pub(super) u32);

/// Task id → row, across all shards. Owned by the writer mutex: only writers look tasks up
/// by id.
///
/// Entries are addresses with a few bits of hash beside them in 4 bytes (a [`TagTable`]): a
/// probe reads one array and confirms a candidate by reading the task's id in its shard, and a
/// rebuild recomputes hashes the same way. Against 8-byte entries carrying 32 bits of hash:
/// 16.8 MB instead of 37.7 MB for the 3.2 million tasks of the million-device fleet
/// (`memory_usage`).
#[derive(Default)]
pub(super) struct Directory {
    pub(super) table: TagTable,
    /// The removals' tombstones (only writers read them).
    pub(super) tombs: Tombstones,
    /// The clock and the sweep of the retention horizon.
    pub(super) retention: Retention,
}

/// (instance, productKey, deviceName) → device, for queries by name.
/// Addresses with a few bits of hash beside them, as in [`Directory`] (a [`TagTable`]):
/// candidates are confirmed in the device's shard, and a query can start loading its bucket
/// ahead ([`Engine::prefetch_device`]), which hashbrown's tables do not offer.
/// Aligned like [`Shard`], so the table's header does not share the lock's writer flag's line.
#[derive(Default)]
#[repr(align(128))]
pub(super) struct PairShard {
    pub(super) table: TagTable,
    /// Where a query by name reads: by the low bits of the pair's hash, the device's first
    /// unfinished row in its shard (low half) and its name bytes (high half), as the last
    /// query by name found them ([`PairShard::NO_HINT`] when none has). The hint's first step
    /// loads the entry with the bucket, and its second step starts the rows and the name with
    /// the device, where they used to wait for it. A hint: queries write it when they find it
    /// stale, a wrong entry costs a wasted load, and a resize forgets them all.
    pub(super) hints: Vec<AtomicU64>,
}

impl PairShard {
    pub(super) const NO_HINT: u64 = u64::MAX;

    /// The hint of `hash`; `None` while the shard has no slots.
    pub(super) fn hint(&self, hash: u64) -> Option<&AtomicU64> {
        let mask = self.hints.len().checked_sub(1)?;
        self.hints.get(hash as usize & mask)
    }

    /// Sizes the row entries for the pairs held and `additional` more (a slot each, rounded
    /// up to a power of two), forgetting them when the size changes.
    pub(super) fn size_hints(&mut self, additional: usize) {
        let want = (self.table.len() + additional).next_power_of_two().max(8);
        if want > self.hints.len() {
            self.hints = (0..want).map(|_| AtomicU64::new(Self::NO_HINT)).collect();
        }
    }
}

/// Platform instances; id 0 is the default instance (`""`), which always exists.
pub(super) struct Instances {
    pub(super) names: Vec<Box<str>>,
    pub(super) by_name: HashMap<Box<str>, InstanceId>,
}

impl Engine {
    pub(super) fn task_hash(&self, instance: InstanceId, task_id: &str) -> u64 {
        self.inner.hasher.hash_one((instance.0, task_id))
    }

    /// The directory hash of the task at `loc`, read from its shard.
    pub(super) fn task_hash_at(&self, loc: Loc) -> u64 {
        let (shard, row) = self.unloc(loc);
        let guard = self.inner.shards[shard].0.read();
        let row = RowIdx(row);
        self.task_hash(guard.row_instance(row), guard.row_id(row).as_str())
    }

    /// The pair hash of the device at `loc`, read from its shard.
    pub(super) fn pair_hash_at(&self, loc: Loc) -> u64 {
        let (shard, d) = self.unloc(loc);
        let guard = self.inner.shards[shard].0.read();
        let d = DeviceIdx(d);
        self.pair_hash(
            guard.device(d).instance,
            guard.device_product_key(d),
            guard.device_name(d),
        )
    }

    pub(super) fn loc(&self, shard: usize, idx: u32) -> Loc {
        Loc(idx << self.inner.shard_bits | shard as u32)
    }

    pub(super) fn unloc(&self, loc: Loc) -> (usize, u32) {
        let mask = (1u32 << self.inner.shard_bits) - 1;
        ((loc.0 & mask) as usize, loc.0 >> self.inner.shard_bits)
    }

    /// The pair directory shard of a pair hash, from bits 16–31: a [`TagTable`] takes its
    /// bucket from the low bits (below 2^26 buckets a shard, bits 0–25) and its tags from the
    /// top of the upper half, which must stay independent of it (the shard is the product's
    /// top bits: bits 26–31 for 64 shards).
    pub(super) fn pair_shard(&self, hash: u64) -> usize {
        ((u64::from((hash >> 16) as u16) * self.inner.pairs.len() as u64) >> 16) as usize
    }

    pub(super) fn find_task(
        &self,
        dir: &Directory,
        instance: InstanceId,
        task_id: &str,
    ) -> Option<Loc> {
        let hash = self.task_hash(instance, task_id);
        dir.table
            .find(hash, |a| {
                let (shard, row) = self.unloc(Loc(a));
                let guard = self.inner.shards[shard].0.read();
                let row = RowIdx(row);
                guard.row_is_live(row)
                    && guard.row_instance(row) == instance
                    && guard.row_id_is(row, task_id)
            })
            .map(Loc)
    }
}
