//! What the engine holds, giving back growth slack, and the whole store's invariants.

use std::sync::atomic::AtomicU64;

use hashbrown::HashMap;

use super::directory::Loc;
use super::Engine;
use crate::store::DeviceIdx;

/// Bytes held by the engine, by part (heap capacity, so growth slack counts).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryUsage {
    /// The rows (numeric task ids included: rows keep them as numbers).
    pub rows: usize,
    /// The bytes of task ids that are not decimal numbers (the key slab).
    pub task_ids: usize,
    /// Dictionaries of repeated strings and the variant tuples.
    pub strings: usize,
    /// Devices: records, posting lists, iotId and name bytes, the iotId index and its
    /// locality entries (where each device's query reads, 8 bytes a slot).
    pub devices: usize,
    /// Status, module and job bitmaps.
    pub bitmaps: usize,
    /// The task-id directory.
    pub task_directory: usize,
    /// The (productKey, deviceName) directory.
    pub pair_directory: usize,
    /// The locks' reader slots (128 bytes for each of 64 threads, for each shard and each
    /// directory shard).
    pub locks: usize,
    /// The removals' tombstones (approximate: keys and entries).
    pub tombstones: usize,
}

impl MemoryUsage {
    /// All parts together.
    pub fn total(&self) -> usize {
        self.rows
            + self.task_ids
            + self.strings
            + self.devices
            + self.bitmaps
            + self.task_directory
            + self.pair_directory
            + self.locks
            + self.tombstones
    }
}

impl Engine {
    /// Releases growth slack in every column, and moves each column of 2 MiB or more into a
    /// memory mapping of its own backed by 2 MiB pages where the kernel offers them (Linux's
    /// transparent huge pages, `madvise` mode or `always`). Call it once a bulk load of the
    /// fleet is in: at 1,000,000 devices queries answer about 3 % faster on huge pages (fewer
    /// TLB misses), and growing columns stay with the global allocator until then, which
    /// keeps loads as fast as a `Vec`'s growth. Takes each shard's write lock in turn; at
    /// 1,000,000 devices it copies about 200 MB.
    ///
    /// ```
    /// use ota_index::{fleet::Fleet, Engine};
    ///
    /// let engine = Engine::new();
    /// engine.load_jsonl(&Fleet::new(100).to_jsonl()).unwrap();
    /// engine.shrink_to_fit();
    /// assert_eq!(engine.len(), Fleet::new(100).tasks().count());
    /// ```
    pub fn shrink_to_fit(&self) {
        let mut dir = self.inner.writer.lock();
        dir.table.shrink_to_fit(|a| self.task_hash_at(Loc(a)));
        for s in self.inner.shards.iter() {
            s.0.write().shrink_to_fit();
        }
        for p in self.inner.pairs.iter() {
            let mut pairs = p.0.write();
            pairs.table.shrink_to_fit(|a| self.pair_hash_at(Loc(a)));
        }
    }

    /// Bytes held, by part. Like [`Engine::get`], it takes the writers' mutex (for the task
    /// directory's size): not to be called while the thread holds an answer.
    pub fn memory_usage(&self) -> MemoryUsage {
        let mut m = {
            let dir = self.inner.writer.lock();
            MemoryUsage {
                task_directory: dir.table.heap_bytes(),
                tombstones: dir.tombs.heap_bytes(),
                ..MemoryUsage::default()
            }
        };
        for s in self.inner.shards.iter() {
            let shard = s.0.read().memory();
            m.rows += shard.rows;
            m.task_ids += shard.task_ids;
            m.strings += shard.strings;
            m.devices += shard.devices;
            m.bitmaps += shard.bitmaps;
            m.locks += s.0.slot_bytes();
        }
        m.locks += self
            .inner
            .pairs
            .iter()
            .map(|p| p.0.slot_bytes())
            .sum::<usize>();
        m.pair_directory = self
            .inner
            .pairs
            .iter()
            .map(|p| {
                let p = p.0.read();
                p.table.heap_bytes() + p.hints.capacity() * std::mem::size_of::<AtomicU64>()
            })
            .sum();
        m
    }

    /// Checks every invariant between columns, dictionaries, indexes and directories; the
    /// first broken one, described. Stops writers while it runs. For tests and fuzzing.
    #[doc(hidden)]
    pub fn internal_validate(&self) -> Result<(), String> {
        let dir = self.inner.writer.lock();
        let instances = self.inner.instances.read().names.len();
        let mut live = 0usize;
        let mut pairs = HashMap::new();
        for (si, s) in self.inner.shards.iter().enumerate() {
            let shard = s.0.read();
            shard.validate().map_err(|e| format!("shard {si}: {e}"))?;
            live += shard.live_rows();
            for (di, dev) in shard.devices.iter().enumerate() {
                let d = DeviceIdx(di as u32);
                if !shard.device_is_live(d) {
                    continue;
                }
                if dev.instance.idx() >= instances {
                    return Err(format!("device {di} of shard {si} has an unknown instance"));
                }
                if self.shard_index(shard.device_iot(d)) != si {
                    return Err(format!("device {di} is in the wrong shard {si}"));
                }
                let key = (
                    dev.instance,
                    shard.device_product_key(d).to_owned(),
                    shard.device_name(d).to_owned(),
                );
                if pairs.insert(key, (si, d)).is_some() {
                    return Err(format!("two devices share the pair of device {di}"));
                }
            }
            for row in shard.rows() {
                let inst = shard.row_instance(row);
                let id = shard.row_id(row);
                let key = id.as_str();
                drop_then_check(self.find_task(&dir, inst, key), self.loc(si, row.0))
                    .map_err(|e| format!("task {key:?}: {e}"))?;
            }
        }
        dir.table
            .validate(|a| self.task_hash_at(Loc(a)))
            .map_err(|e| format!("task directory: {e}"))?;
        if dir.table.len() != live {
            return Err(format!(
                "directory holds {} tasks, shards {live}",
                dir.table.len()
            ));
        }
        let pair_entries: usize = self
            .inner
            .pairs
            .iter()
            .map(|p| p.0.read().table.len())
            .sum();
        if pair_entries != pairs.len() {
            return Err(format!(
                "pair directory holds {pair_entries} entries for {} devices",
                pairs.len()
            ));
        }
        for ((inst, pk, dn), (si, d)) in &pairs {
            let found = self
                .find_pair(*inst, pk, dn)
                .map(|(_, shard, d)| (shard, d));
            if found != Some((*si, *d)) {
                return Err(format!("pair ({pk}, {dn}) does not resolve to its device"));
            }
        }
        Ok(())
    }
}

pub(super) fn drop_then_check(found: Option<Loc>, want: Loc) -> Result<(), String> {
    match found {
        Some(loc) if loc == want => Ok(()),
        Some(loc) => Err(format!("directory points to {loc:?}, row is at {want:?}")),
        None => Err("missing from the directory".into()),
    }
}
