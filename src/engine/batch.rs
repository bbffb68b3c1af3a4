//! Batches: records checked together against the store and each other, then applied in
//! place, shard by shard, or record by record.

use std::hash::BuildHasher;

use smallvec::SmallVec;

use super::directory::{Directory, Loc};
use super::error::conflict;
use super::write::{kept_over, Found, Known};
use super::{Binding, Engine, WriteError, WriteSummary};
use crate::model::RecordRef;
use crate::store::taskkey::TaskKey;
use crate::store::{Growth, InstanceId, RowIdx, Shard};
use crate::sync::slotlock::SlotReadGuard;
use crate::table::intern::ByteSlab;
use crate::table::tagtable::{TagTable, MAX_ADDR};

/// Records a shard-by-shard apply writes under one shard lock: readers of the shard wait for
/// at most this many inserts.
pub(super) const BY_SHARD_RUN: usize = 256;

/// How far ahead of the record being looked up [`Engine::plan_in_place`] starts loading a
/// record's buckets.
pub(super) const PLAN_AHEAD: usize = 8;

/// How far ahead of the record being applied a shard-by-shard apply prefetches a record's
/// values (and twice as far, the staged record itself). Measured with 4, 8 and 16: alike.
pub(super) const BY_SHARD_AHEAD: usize = 8;

/// What the earlier records of a batch that is not applied yet will have done: the bindings
/// they make and the latest version they leave of each task. Entries are record indices in
/// [`TagTable`]s (4 bytes, with a few bits of the hash beside them), hashed by the strings they
/// stand for and confirmed against the record they name; the tables are sized for the whole
/// batch at once, and a batch's loop prefetches the buckets of the records ahead of it
/// ([`BatchHashes`]), which hashbrown's tables offer no way to do.
pub(super) struct Overlay {
    /// (instance, iotId) → the record that binds the device (to its pair).
    pub(super) by_iot: TagTable,
    /// (instance, productKey, deviceName) → the record that binds the pair (to its iotId).
    pub(super) by_pair: TagTable,
    /// (instance, taskId) → the task's latest record that is not stale.
    pub(super) latest: TagTable,
    /// (instance, taskId) → the greatest record that, covered by its device's removal and
    /// greater than the task's latest version, will delete the task when applied (only
    /// while the store holds tombstones).
    pub(super) deleted: Option<TagTable>,
    /// The store held no task and no device when the batch began (a first load): no record
    /// needs looking up there. The writer lock, held throughout, keeps it so.
    pub(super) store_empty: bool,
}

impl Overlay {
    /// The overlay of a batch of `n` records, checked with the writer lock (`dir`) held.
    pub(super) fn new(engine: &Engine, dir: &Directory, n: usize) -> Overlay {
        let last = u32::try_from(n.saturating_sub(1)).unwrap_or(MAX_ADDR);
        Overlay {
            by_iot: TagTable::with_capacity(n, last),
            by_pair: TagTable::with_capacity(n, last),
            latest: TagTable::with_capacity(n, last),
            deleted: (!dir.tombs.is_empty()).then(|| TagTable::with_capacity(n, last)),
            store_empty: dir.table.is_empty() && engine.device_count() == 0,
        }
    }

    /// Starts loading the buckets a record with these hashes will probe.
    pub(super) fn prefetch(&self, h: &BatchHashes) {
        self.by_iot.prefetch(h.iot);
        self.by_pair.prefetch(h.pair);
        self.latest.prefetch(h.task);
    }
}

/// A batch record's hashes in the three [`Overlay`] tables.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct BatchHashes {
    pub(super) iot: u64,
    pub(super) pair: u64,
    pub(super) task: u64,
}

/// A batch record about to be checked.
#[derive(Debug, Clone, Copy)]
pub(super) struct Checking {
    /// Its index in the batch.
    pub(super) i: usize,
    pub(super) hashes: BatchHashes,
    /// The record before it named the same device and was not stale, so it bound the device
    /// to this very pair or found it so bound: the device tables need no look.
    pub(super) bound: bool,
}

/// How many records ahead of its checks a batch computes hashes and prefetches buckets.
pub(super) const CHECK_AHEAD: usize = 8;

/// True when two records name the same device the same way (instance, iotId and pair).
pub(super) fn same_device(a: &RecordRef<'_>, b: &RecordRef<'_>) -> bool {
    a.iot_id == b.iot_id
        && a.device_name == b.device_name
        && a.product_key == b.product_key
        && a.iot_instance_id == b.iot_instance_id
}

/// The records of each shard in input order (a counting sort of `shard_of`, one shard index
/// a record): shard `s`'s records are `order[start[s]..start[s + 1]]`.
pub(super) fn by_shard(
    shards: usize,
    shard_of: impl Iterator<Item = u32> + Clone,
) -> (Vec<usize>, Vec<u32>) {
    let mut start = vec![0usize; shards + 1];
    for s in shard_of.clone() {
        start[s as usize + 1] += 1;
    }
    for s in 0..shards {
        start[s + 1] += start[s];
    }
    let mut next = start.clone();
    let mut order = vec![0u32; start[shards]];
    for (i, s) in shard_of.enumerate() {
        order[next[s as usize]] = i as u32;
        next[s as usize] += 1;
    }
    (start, order)
}

/// Read guards of the shards a plan has touched, by shard ([`Engine::plan_in_place`]).
pub(super) type Guards<'e> = SmallVec<[Option<SlotReadGuard<'e, Shard>>; 64]>;

impl Engine {
    /// A record's hashes in the overlay's tables: by instance name (the batch may name
    /// instances the store lacks).
    pub(super) fn batch_hashes(&self, rec: &RecordRef<'_>) -> BatchHashes {
        let (inst, h) = (rec.iot_instance_id, &self.inner.hasher);
        BatchHashes {
            iot: h.hash_one((inst, rec.iot_id)),
            pair: h.hash_one((inst, rec.product_key, rec.device_name)),
            task: h.hash_one((inst, rec.task_id)),
        }
    }

    /// Applies records in order, all or nothing: every record is validated and checked for
    /// identity conflicts (against the store and the batch's earlier records) before the
    /// first is applied. The outcome is that of upserting the records one by one
    /// ([`Engine::upsert`]), stale records included; on error, the index of the first record
    /// one-by-one upserts would refuse, the same error, and nothing changed.
    ///
    /// The way to feed an event stream: a batch of status changes (stored tasks, every
    /// string as stored) needs no validation and goes in shard by shard, one lock a shard
    /// for up to 256 of its records, skipping shards that readers hold until the others are
    /// done; it costs less than upserting its records one by one (about 400 against 450 ns a
    /// record in batches of 100 at 1,000,000 devices), and its writer waits
    /// for readers about once a batch rather than at each record whose shard a reader holds.
    /// Readers may see such a batch's records of different shards go in out of input order
    /// (each task's records in order). A batch is all or nothing: where one by one a bad
    /// event would be refused alone, here it refuses the batch, and the error's index names
    /// it (drop it and write the rest).
    ///
    /// ```
    /// # use ota_index::{Engine, TaskRecord, TaskStatus, Timestamp, WriteSummary};
    /// # let t = |s| Timestamp::parse(s).unwrap();
    /// # let task = |id: &str, dev: &str| TaskRecord { task_id: id.into(), job_id: "j1".into(), firmware_id: "f1".into(), iot_id: dev.into(), product_key: "pk1".into(), product_name: "Lamp".into(), device_name: dev.into(), module_name: "default".into(), src_version: "1.0".into(), dest_version: "1.1".into(), status: TaskStatus::Queued, utc_create: t("2024-01-01T00:00:00Z"), utc_modified: t("2024-01-01T00:00:00Z"), iot_instance_id: String::new(), progress: None, task_desc: None, timeout: None };
    /// let engine = Engine::new();
    /// let stored = [task("t1", "lamp-1"), task("t2", "lamp-2")];
    /// let refs: Vec<_> = stored.iter().map(TaskRecord::as_ref).collect();
    /// assert_eq!(engine.write_batch(&refs).unwrap().inserted, 2);
    ///
    /// // Status events since the last poll: t1 twice, then an old event of t2 replayed.
    /// let mut events = vec![stored[0].clone(), stored[0].clone(), stored[1].clone()];
    /// (events[0].status, events[0].utc_modified) = (TaskStatus::InProgress, t("2024-01-02T00:00:00Z"));
    /// (events[1].status, events[1].utc_modified) = (TaskStatus::Succeeded, t("2024-01-03T00:00:00Z"));
    /// events[2].utc_modified = t("2023-12-31T00:00:00Z");
    /// let refs: Vec<_> = events.iter().map(TaskRecord::as_ref).collect();
    /// let summary = engine.write_batch(&refs).unwrap();
    /// assert_eq!(summary, WriteSummary { replaced: 2, stale: 1, ..WriteSummary::default() });
    /// assert_eq!(engine.get("", "t1").unwrap().status, TaskStatus::Succeeded);
    /// ```
    pub fn write_batch(
        &self,
        records: &[RecordRef<'_>],
    ) -> Result<WriteSummary, (usize, WriteError)> {
        self.write_batch_by(records.len(), false, |i| records[i], |_, _| {})
    }

    /// [`Engine::write_batch`] over records made on demand by `get(0..n)` (the bulk loader
    /// keeps them compact and builds each view twice rather than holding them all).
    /// `validated`: the caller already checked every field rule (the bulk loader does, while
    /// parsing).
    pub(crate) fn write_batch_by<'r>(
        &self,
        n: usize,
        validated: bool,
        get: impl Fn(usize) -> RecordRef<'r>,
        prefetch: impl Fn(usize, bool),
    ) -> Result<WriteSummary, (usize, WriteError)> {
        if self.inner.horizon.is_none() || n == 0 {
            return self.write_batch_kept(n, validated, get, prefetch);
        }
        // Each record is judged against the clock as the records before it leave it (as one
        // by one): past the horizon, it is stale before any check but its fields', and
        // changes nothing, so the batch is the others'.
        let mut clock = self.inner.writer.lock().retention.clock;
        let horizon = self.inner.horizon.unwrap_or(i64::MAX);
        let mut kept: Vec<u32> = Vec::new();
        let mut past = Vec::new();
        for i in 0..n {
            let at = get(i).utc_modified;
            let cut = clock.map(|c| c.as_millis().saturating_sub(horizon));
            if cut.is_some_and(|cut| at.as_millis() < cut) {
                if past.is_empty() {
                    kept = (0..i as u32).collect();
                }
                past.push(i);
            } else if !past.is_empty() {
                kept.push(i as u32);
            }
            clock = clock.max(Some(at));
        }
        let Some(newest) = clock else {
            return Ok(WriteSummary::default());
        };
        let summary = if past.is_empty() {
            self.write_batch_kept(n, validated, get, prefetch)?
        } else {
            if !validated {
                self.check_past_horizon(&past, &kept, &get)?;
            }
            let at = |j: usize| kept[j] as usize;
            let mut done = self
                .write_batch_kept(
                    kept.len(),
                    validated,
                    |j| get(at(j)),
                    |j, last| prefetch(at(j), last),
                )
                .map_err(|(j, e)| (at(j), e))?;
            done.stale += past.len();
            done
        };
        self.advance_clock(&mut self.inner.writer.lock(), newest, n);
        Ok(summary)
    }

    /// The field rules of a batch's records past the horizon (`past`, ascending), reported
    /// in the order one by one would meet them: a fault of a record within the horizon
    /// before the first bad one (`kept`, the others' indexes) comes first, and is left for
    /// the batch to report.
    fn check_past_horizon<'r>(
        &self,
        past: &[usize],
        kept: &[u32],
        get: &impl Fn(usize) -> RecordRef<'r>,
    ) -> Result<(), (usize, WriteError)> {
        let Some((bad, e)) = past
            .iter()
            .find_map(|&i| get(i).validate().err().map(|e| (i, e)))
        else {
            return Ok(());
        };
        let before = kept.partition_point(|&j| (j as usize) < bad);
        let at = |j: usize| kept[j] as usize;
        if (0..before).any(|j| get(at(j)).validate().is_err()) {
            return Ok(());
        }
        if let Some((j, conflict)) = self.first_identity_conflict(before, |j| get(at(j))) {
            return Err((at(j), conflict));
        }
        Err((bad, WriteError::from(e)))
    }

    /// [`Engine::write_batch_by`] of records within the retention horizon (or of an
    /// engine without one).
    fn write_batch_kept<'r>(
        &self,
        n: usize,
        validated: bool,
        get: impl Fn(usize) -> RecordRef<'r>,
        prefetch: impl Fn(usize, bool),
    ) -> Result<WriteSummary, (usize, WriteError)> {
        {
            let dir = self.inner.writer.lock();
            if let Some(plan) = self.plan_in_place(&dir, n, &get) {
                return Ok(self.apply_in_place(&plan, &get));
            }
        }
        if !validated {
            for i in 0..n {
                if let Err(e) = get(i).validate() {
                    // One by one, an earlier record's identity conflict would be refused first.
                    return Err(self
                        .first_identity_conflict(i, &get)
                        .unwrap_or((i, WriteError::from(e))));
                }
            }
        }
        let mut dir = self.inner.writer.lock();
        let mut overlay = Overlay::new(self, &dir, n);
        let mut known = Vec::with_capacity(n);
        // Each record's shard, for a batch of new tasks, which is applied shard by shard.
        let mut shard_of = Vec::with_capacity(n);
        let mut named_instances = false;
        // What each shard will receive at most, for capacity and sizing.
        let mut per_shard = vec![Growth::default(); self.inner.shards.len()];
        // New pairs for each pair directory shard (devices of known instances).
        let mut pairs_per_shard = vec![0usize; self.inner.pairs.len()];
        // The records ahead and their hashes, their buckets on the way (each record made
        // once: `get` checks eleven string bounds).
        let mut ahead = std::collections::VecDeque::with_capacity(CHECK_AHEAD + 1);
        let announce = |ahead: &mut std::collections::VecDeque<_>, overlay: &Overlay, i| {
            let r = get(i);
            let h = self.batch_hashes(&r);
            overlay.prefetch(&h);
            ahead.push_back((r, h));
        };
        for i in 0..n.min(CHECK_AHEAD) {
            announce(&mut ahead, &overlay, i);
        }
        let mut previous = None;
        for i in 0..n {
            if i + CHECK_AHEAD < n {
                announce(&mut ahead, &overlay, i + CHECK_AHEAD);
            }
            let Some((r, hashes)) = ahead.pop_front() else {
                break; // cannot happen: record `i` was announced
            };
            // A device's records usually come together: the second and later need no look
            // at the device tables.
            let bound = previous.is_some_and(|p: RecordRef<'_>| same_device(&p, &r));
            let k = self
                .check_batch_record(&dir, Checking { i, hashes, bound }, &r, &mut overlay, &get)
                .map_err(|e| (i, e))?;
            // A covered record binds nothing: the next one looks for itself.
            previous = (!k.covered).then_some(r);
            known.push(k);
            let shard = self.shard_index(r.iot_id);
            shard_of.push(shard as u32);
            named_instances |= !r.iot_instance_id.is_empty();
            let g = &mut per_shard[shard];
            g.rows += 1;
            if TaskKey::numeric(r.task_id).is_none() {
                g.key_bytes += ByteSlab::entry_bytes(r.task_id.len());
            }
            if k.new_device {
                g.devices += 1;
                g.device_bytes += ByteSlab::entry_bytes(r.iot_id.len())
                    + ByteSlab::entry_bytes(r.device_name.len());
                // A new instance's id (and so its pairs' hashes) is only made when applied.
                if let Some(id) = self.known_instance(r.iot_instance_id) {
                    let hash = self.pair_hash(id, r.product_key, r.device_name);
                    pairs_per_shard[self.pair_shard(hash)] += 1;
                }
            }
        }
        drop(overlay);
        self.check_capacity(per_shard.iter().enumerate().map(|(s, g)| (s, g.rows)))
            .map_err(|e| (0, e))?;
        if n >= 1024 {
            // Grow every column once, exactly: a bulk-loaded fleet carries no doubling slack.
            for (shard, g) in per_shard.iter().enumerate() {
                self.inner.shards[shard].0.write().reserve(g);
                let mut pairs = self.inner.pairs[shard].0.write();
                let new_pairs = pairs_per_shard[shard];
                pairs
                    .table
                    .reserve(new_pairs, |a| self.pair_hash_at(Loc(a)));
                pairs.size_hints(new_pairs);
            }
            dir.table.reserve(n, |a| self.task_hash_at(Loc(a)));
        }
        if known.iter().all(|k| k.new_task) {
            return self.apply_new_by_shard(
                &mut dir,
                &known,
                &shard_of,
                named_instances,
                &get,
                &prefetch,
            );
        }
        let mut summary = WriteSummary::default();
        for (i, k) in known.into_iter().enumerate() {
            // Cannot fail: identity and capacity were checked above with the writer lock held.
            summary.count(self.apply(&mut dir, &get(i), k).map_err(|e| (i, e))?);
        }
        Ok(summary)
    }

    /// Applies a checked batch of new tasks (no record replaces a stored task or an earlier
    /// record's) shard by shard: with no task written twice, the order of application changes
    /// nothing but the rows' places, and one shard's devices, rows, dictionaries and bitmaps
    /// stay in cache while its records go in. Each run of up to [`BY_SHARD_RUN`] records goes
    /// in under one write lock (each task whole to readers, as ever); the pairs of a shard's
    /// new devices follow its runs, and the task directory, which only writers read, is
    /// filled last in the order of its buckets.
    pub(super) fn apply_new_by_shard<'r>(
        &self,
        dir: &mut Directory,
        known: &[Known],
        shard_of: &[u32],
        named_instances: bool,
        get: &impl Fn(usize) -> RecordRef<'r>,
        prefetch: &impl Fn(usize, bool),
    ) -> Result<WriteSummary, (usize, WriteError)> {
        let n = known.len();
        if named_instances {
            // Instances get their ids in order of first appearance, as one by one.
            for i in 0..n {
                self.instance_for_write(get(i).iot_instance_id);
            }
        }
        let (start, order) = by_shard(self.inner.shards.len(), shard_of.iter().copied());
        let mut tasks: Vec<(u64, u32)> = Vec::with_capacity(n);
        let mut pairs: Vec<(u64, Loc)> = Vec::new();
        for (s, lock) in self.inner.shards.iter().enumerate() {
            let group = &order[start[s]..start[s + 1]];
            for run in (0..group.len()).step_by(BY_SHARD_RUN) {
                let mut shard = lock.0.write();
                for at in run..(run + BY_SHARD_RUN).min(group.len()) {
                    // The records are scattered over the input: start loading a later one,
                    // and the values of the one after it, while this one is applied.
                    if let Some(&ahead) = group.get(at + 2 * BY_SHARD_AHEAD) {
                        prefetch(ahead as usize, false);
                    }
                    if let Some(&ahead) = group.get(at + BY_SHARD_AHEAD) {
                        prefetch(ahead as usize, true);
                    }
                    let i = group[at] as usize;
                    let rec = get(i);
                    let instance = self.instance_for_write(rec.iot_instance_id);
                    let found = if known[i].new_device {
                        None
                    } else {
                        shard.find_device(instance, rec.iot_id)
                    };
                    let device = match found {
                        Some(d) => d,
                        None => {
                            let d = shard
                                .add_device(instance, rec.iot_id, rec.product_key, rec.device_name)
                                .ok_or((i, WriteError::CapacityExceeded))?;
                            let hash = self.pair_hash(instance, rec.product_key, rec.device_name);
                            pairs.push((hash, self.loc(s, d.0)));
                            d
                        }
                    };
                    shard.confirm_device(device, rec.utc_modified);
                    let row = shard
                        .insert_task(device, &rec)
                        .ok_or((i, WriteError::CapacityExceeded))?;
                    tasks.push((self.task_hash(instance, rec.task_id), self.loc(s, row.0).0));
                }
            }
            for (hash, loc) in pairs.drain(..) {
                let mut p = self.inner.pairs[self.pair_shard(hash)].0.write();
                let stored = p.table.insert(hash, loc.0, |a| self.pair_hash_at(Loc(a)));
                p.size_hints(0);
                debug_assert!(
                    stored,
                    "a location is at most MAX_ADDR (the shards' capacity)"
                );
            }
        }
        let stored = dir
            .table
            .insert_all(&mut tasks, |a| self.task_hash_at(Loc(a)));
        if !stored {
            return Err((0, WriteError::CapacityExceeded)); // addresses were checked above
        }
        Ok(WriteSummary {
            inserted: n,
            ..WriteSummary::default()
        })
    }

    /// The first record of `0..n` that contradicts a binding of the store or of an earlier
    /// record, checked without writing. The bulk loader asks this about the lines before a
    /// malformed one, so that the first bad line is the one reported.
    pub(crate) fn first_identity_conflict<'r>(
        &self,
        n: usize,
        get: impl Fn(usize) -> RecordRef<'r>,
    ) -> Option<(usize, WriteError)> {
        let dir = self.inner.writer.lock();
        let mut overlay = Overlay::new(self, &dir, n);
        (0..n).find_map(|i| {
            let r = get(i);
            let hashes = self.batch_hashes(&r);
            let at = Checking {
                i,
                hashes,
                bound: false,
            };
            self.check_batch_record(&dir, at, &r, &mut overlay, &get)
                .err()
                .map(|e| (i, e))
        })
    }

    /// [`Engine::check_identity`] for record `i` of a batch (`rec`, as `get(i)` makes it):
    /// bindings made by the batch's earlier records count too. A record that changes no task
    /// (stale or equal) binds its device all the same, exactly as when the records are
    /// upserted one by one.
    pub(super) fn check_batch_record<'r>(
        &self,
        dir: &Directory,
        at: Checking,
        rec: &RecordRef<'r>,
        overlay: &mut Overlay,
        get: &impl Fn(usize) -> RecordRef<'r>,
    ) -> Result<Known, WriteError> {
        let Checking { i, hashes, bound } = at;
        // `Some(true)`: covered by its device's removal, binding nothing; `Some(false)`: by
        // its task's, binding its device when that contradicts no binding.
        let covered = if overlay.deleted.is_some() {
            self.check_covered(dir, at, rec, overlay, get)
        } else {
            None
        };
        if covered == Some(true) {
            return Ok(Known {
                covered: true,
                ..Known::NOTHING
            });
        }
        let inst = rec.iot_instance_id;
        // The tables are sized for the whole batch, so these never run (an insert rebuilds
        // only past its size).
        let rehash_iot = |j: u32| self.batch_hashes(&get(j as usize)).iot;
        let rehash_pair = |j: u32| self.batch_hashes(&get(j as usize)).pair;
        let rehash_task = |j: u32| self.batch_hashes(&get(j as usize)).task;
        // The record the device table's probe matched, kept so that its binding is read
        // without making the record a second time (most records find their device there).
        let matched = std::cell::Cell::new(None);
        let same_iot = |j: u32| {
            let b = get(j as usize);
            let same = b.iot_id == rec.iot_id && b.iot_instance_id == inst;
            if same {
                matched.set(Some(b));
            }
            same
        };
        let same_pair = |j: u32| {
            let b = get(j as usize);
            b.device_name == rec.device_name
                && b.product_key == rec.product_key
                && b.iot_instance_id == inst
        };
        let same_task = |j: u32| {
            let b = get(j as usize);
            b.task_id == rec.task_id && b.iot_instance_id == inst
        };
        // True when neither the store nor an earlier record binds the device.
        let binding = || -> Result<bool, WriteError> {
            // In the order one-by-one upserts would look: the device (in the store, then bound by
            // an earlier record), and only for a device bound nowhere, its pair (likewise).
            let in_store = bound || (!overlay.store_empty && self.check_device(rec)?);
            let mut unbound = false;
            if !in_store {
                match overlay.by_iot.find(hashes.iot, same_iot) {
                    Some(j) => {
                        let b = matched.get().unwrap_or_else(|| get(j as usize));
                        if (b.product_key, b.device_name) != (rec.product_key, rec.device_name) {
                            return Err(conflict(
                                rec,
                                Binding::IotIdBoundTo {
                                    product_key: b.product_key.to_owned(),
                                    device_name: b.device_name.to_owned(),
                                },
                            ));
                        }
                    }
                    None => {
                        if !overlay.store_empty {
                            self.check_pair(rec)?;
                        }
                        if let Some(j) = overlay.by_pair.find(hashes.pair, same_pair) {
                            return Err(conflict(
                                rec,
                                Binding::PairBoundTo {
                                    iot_id: get(j as usize).iot_id.to_owned(),
                                },
                            ));
                        }
                        unbound = true;
                    }
                }
            }
            Ok(unbound)
        };
        let unbound = match (binding(), covered) {
            (Ok(unbound), _) => unbound,
            (Err(_), Some(_)) => {
                return Ok(Known {
                    covered: true,
                    ..Known::NOTHING
                })
            }
            (Err(e), None) => return Err(e),
        };
        // Every record not refused binds its device, one that changes no task included (a
        // binding is a fact about the device).
        let new_device = unbound;
        if unbound {
            // Record indices fit: the tables were made for this batch's last index.
            overlay.by_iot.insert(hashes.iot, i as u32, rehash_iot);
            overlay.by_pair.insert(hashes.pair, i as u32, rehash_pair);
        }
        if covered.is_some() {
            return Ok(Known {
                covered: true,
                new_device,
                ..Known::NOTHING
            });
        }
        let latest = overlay.latest.find(hashes.task, same_task);
        // Whether the task exists before this record, and whether its version there is
        // greater or equal (the record then changes no task).
        let (exists, keeps_task) = match latest {
            Some(j) => (true, get(j as usize).cmp_version(rec).is_ge()),
            None if overlay.store_empty => (false, false),
            None => self
                .stored_keeps(dir, inst, rec)
                .map_or((false, false), |keeps| (true, keeps)),
        };
        if keeps_task {
            return Ok(Known {
                new_device,
                keeps_task: true,
                ..Known::NOTHING
            });
        }
        if let Some(j) = latest {
            overlay.latest.remove(hashes.task, j);
        }
        overlay.latest.insert(hashes.task, i as u32, rehash_task);
        Ok(Known {
            new_task: !exists,
            new_device,
            keeps_task: false,
            covered: false,
        })
    }

    /// Whether a tombstone covers record `at.i`, as one-by-one writes would find when they
    /// reach it: the store's tombstones, or the deletion an earlier record of the batch
    /// covered by its device's removal will make (see [`Engine::write_covered`]); such a
    /// record, greater than its task's latest version, is noted as one.
    fn check_covered<'r>(
        &self,
        dir: &Directory,
        at: Checking,
        rec: &RecordRef<'r>,
        overlay: &mut Overlay,
        get: &impl Fn(usize) -> RecordRef<'r>,
    ) -> Option<bool> {
        let inst = rec.iot_instance_id;
        let same_task = |j: u32| {
            let b = get(j as usize);
            b.task_id == rec.task_id && b.iot_instance_id == inst
        };
        let rehash_task = |j: u32| self.batch_hashes(&get(j as usize)).task;
        let deleted = overlay.deleted.as_mut()?;
        let earlier = deleted.find(at.hashes.task, same_task);
        let cover = self
            .known_instance(inst)
            .and_then(|id| dir.tombs.covering(id, rec));
        if cover.is_none() {
            // Not greater than the version an earlier record's deletion leaves: covered as
            // by its task's tombstone.
            return earlier
                .is_some_and(|j| rec.cmp_version(&get(j as usize)).is_le())
                .then_some(false);
        }
        let cover = cover?;
        if cover.device.is_some() {
            let latest = overlay.latest.find(at.hashes.task, same_task);
            // Whether applying it will delete the task (or, none being left, note it as the
            // version deleted): it is greater than the task's latest version, if any.
            let greater = match (latest, earlier) {
                (Some(j), _) => rec.cmp_version(&get(j as usize)).is_gt(),
                // An earlier record of the batch deletes the task: none is left.
                (None, Some(j)) => rec.cmp_version(&get(j as usize)).is_gt(),
                (None, None) => self.stored_keeps(dir, inst, rec) != Some(true),
            };
            if greater {
                if let Some(j) = latest {
                    overlay.latest.remove(at.hashes.task, j);
                }
                let deleted = overlay.deleted.as_mut().unwrap_or_else(|| unreachable!());
                if let Some(j) = earlier {
                    deleted.remove(at.hashes.task, j);
                }
                deleted.insert(at.hashes.task, at.i as u32, rehash_task);
            }
        }
        Some(cover.device.is_some())
    }

    /// Whether the store's version of the record's task is greater or equal
    /// ([`Record::cmp_version`](crate::Record::cmp_version)); `None` when the store does not
    /// hold the task.
    pub(super) fn stored_keeps(
        &self,
        dir: &Directory,
        instance: &str,
        rec: &RecordRef<'_>,
    ) -> Option<bool> {
        let inst = self.known_instance(instance)?;
        let loc = self.find_task(dir, inst, rec.task_id)?;
        let (shard, row) = self.unloc(loc);
        Some(kept_over(&self.inner.shards[shard].0.read(), RowIdx(row), rec).is_some())
    }

    /// A batch made only of the usual event (see [`Engine::replace_in_place`]): where each
    /// record's task is stored, when every record names a stored task of its device (in its
    /// device's shard) with every string equal to the stored task's; `None` as soon as one
    /// does not (the general path decides then). Such a record needs no validation (its
    /// strings were validated when stored) and makes no new binding, so no record can be
    /// refused. Shards are read (a read passes a waiting writer), each from its first record
    /// to the end of the plan: only writers change shards, and this one holds the writer lock,
    /// so nothing changes between the plan and the writes, and no reader is waited for. Each
    /// record's two buckets (its device's in the `iotId` table, its task's in the directory)
    /// start loading [`PLAN_AHEAD`] records before it is looked up: 515–519 → 391–403 ns a
    /// record for the benches' writer's batches of 100 status events at 1,000,000 devices
    /// (medians of 10 rounds in one process; upserts one by one 447–465).
    pub(super) fn plan_in_place<'r>(
        &self,
        dir: &Directory,
        n: usize,
        get: &impl Fn(usize) -> RecordRef<'r>,
    ) -> Option<Vec<(u32, Found)>> {
        // Each shard's guard, taken when a record first needs the shard and kept for the
        // whole plan: one lock taken a shard, not a record.
        let mut shards: Guards<'_> = self.inner.shards.iter().map(|_| None).collect();
        let mut ahead = std::collections::VecDeque::with_capacity(PLAN_AHEAD.min(n));
        for i in 0..n.min(PLAN_AHEAD) {
            ahead.push_back(self.place(&mut shards, dir, &get(i))?);
        }
        // Sized once the first record is found in place (a bulk load of new tasks stops at
        // its first record).
        let mut plan = Vec::new();
        for i in 0..n {
            if i + PLAN_AHEAD < n {
                ahead.push_back(self.place(&mut shards, dir, &get(i + PLAN_AHEAD))?);
            }
            let (instance, target, device_hash, hash) = ahead.pop_front()?;
            let shard = shards[target].as_deref()?;
            let rec = get(i);
            let found = self.find_here(dir, shard, target, instance, &rec, device_hash, hash)?;
            if !found.all_same() {
                return None;
            }
            if plan.is_empty() {
                plan.reserve_exact(n);
            }
            plan.push((target as u32, found));
        }
        Some(plan)
    }

    /// A record's place for [`Engine::plan_in_place`]: (instance, shard, device hash, task
    /// hash), with the two buckets it will probe on the way (its device's in the shard's
    /// `iotId` table, its task's in the directory); the shard's guard taken into `shards` if
    /// not held yet. `None` when the record cannot be the usual event (a string over its
    /// length, a time the format cannot write, an unknown instance).
    pub(super) fn place<'e>(
        &'e self,
        shards: &mut Guards<'e>,
        dir: &Directory,
        rec: &RecordRef<'_>,
    ) -> Option<(InstanceId, usize, u64, u64)> {
        if !rec.within_bounds() {
            return None;
        }
        let instance = self.known_instance(rec.iot_instance_id)?;
        if dir.tombs.covering(instance, rec).is_some() {
            return None; // stale before any check: the general path
        }
        let (target, device_hash) = self.iot_location(instance, rec.iot_id);
        let hash = self.task_hash(instance, rec.task_id);
        let shard = shards[target].get_or_insert_with(|| self.inner.shards[target].0.read());
        shard.prefetch_bucket(device_hash);
        dir.table.prefetch(hash);
        Some((instance, target, device_hash, hash))
    }

    /// Applies a plan of [`Engine::plan_in_place`] shard by shard, each shard's records in
    /// input order (a record of a task follows the batch's earlier records of it, so staleness
    /// is judged as one by one would), up to [`BY_SHARD_RUN`] of them under one write lock.
    /// A shard some reader holds is left for later while another has records waiting: the
    /// writer blocks only when every shard left is held. Where threads outnumber cores the
    /// reader holding a shard is often one the writer itself preempted, which cannot let go
    /// until the writer sleeps or blocks; one by one, the writer blocked on it for a scheduler
    /// slice at each of its records there. Called with the writer lock held.
    pub(super) fn apply_in_place<'r>(
        &self,
        plan: &[(u32, Found)],
        get: &impl Fn(usize) -> RecordRef<'r>,
    ) -> WriteSummary {
        let (start, order) = by_shard(self.inner.shards.len(), plan.iter().map(|p| p.0));
        // Each shard with records, and where its next run starts.
        let mut left: SmallVec<[(usize, usize); 64]> = (0..self.inner.shards.len())
            .filter(|&s| start[s] < start[s + 1])
            .map(|s| (s, start[s]))
            .collect();
        let mut summary = WriteSummary::default();
        let mut run = |guard: &mut Shard, from: usize, to: usize| {
            for &i in &order[from..to] {
                let i = i as usize;
                let (rec, found) = (get(i), plan[i].1);
                guard.confirm_device(found.device, rec.utc_modified);
                if let Some(kept) = kept_over(guard, found.row, &rec) {
                    summary.count(kept);
                } else {
                    let replaced =
                        guard.replace_task_known(found.row, found.device, &rec, true, true);
                    debug_assert!(replaced, "an equal variant is reused, never interned");
                    summary.replaced += 1;
                }
            }
        };
        while !left.is_empty() {
            let mut progressed = false;
            left.retain(|(s, at)| {
                let end = start[*s + 1];
                while *at < end {
                    let Some(mut guard) = self.inner.shards[*s].0.try_write() else {
                        return true;
                    };
                    progressed = true;
                    let to = (*at + BY_SHARD_RUN).min(end);
                    run(&mut guard, *at, to);
                    *at = to;
                }
                false
            });
            if !progressed {
                // Every shard left is held: wait for the first (its readers are done within
                // a query unless the scheduler has put one aside).
                if let Some((s, at)) = left.first_mut() {
                    let to = (*at + BY_SHARD_RUN).min(start[*s + 1]);
                    run(&mut self.inner.shards[*s].0.write(), *at, to);
                    *at = to;
                    if *at == start[*s + 1] {
                        left.remove(0);
                    }
                }
            }
        }
        summary
    }
}
