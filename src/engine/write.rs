//! The write path: one record at a time (upserts, removals), identity checks, and the
//! in-place fast path of the usual event.

use std::cmp::Ordering;

use super::directory::{Directory, Loc};
use super::error::conflict;
use super::{Binding, Engine, TaskView, UpsertOutcome, WriteError};
use crate::model::{Field, FieldError, RecordRef, TaskFields, TaskRecord};
use crate::store::{DeviceIdx, InstanceId, RowIdx, Shard};
use crate::sync::slotlock::SlotWriteGuard;
use crate::table::tagtable::MAX_ADDR;

/// How an upsert's record is known to satisfy the field rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Checked {
    /// Not validated: only a record whose every string equals a stored (validated) one's may
    /// be applied.
    ByEquality,
    /// [`RecordRef::validate`] passed.
    Validated,
}

/// What [`Engine::replace_in_place`] did.
pub(super) enum InPlace {
    /// Applied, refused or found stale.
    Done(Result<UpsertOutcome, WriteError>),
    /// The task is not in the shard of the record's device (or the device or instance is
    /// unknown): the general path decides.
    NotHere,
    /// The task is there, but a string differs from the stored one: validate, then try again.
    Differs,
}

/// What a batch's checks learned of a record, so that applying it skips lookups whose
/// answer is known. [`Known::NOTHING`] for a write that was not checked as part of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Known {
    /// Neither the store nor an earlier record has the task: it is inserted.
    pub(super) new_task: bool,
    /// Neither the store nor an earlier record has the device: it is added.
    pub(super) new_device: bool,
    /// The task's latest version is greater or equal: the record changes no task (it is
    /// stale or a no-op), and binds its device all the same.
    pub(super) keeps_task: bool,
    /// A tombstone covers the record: stale before any other check, it binds nothing.
    pub(super) covered: bool,
}

impl Known {
    pub(super) const NOTHING: Known = Known {
        new_task: false,
        new_device: false,
        keeps_task: false,
        covered: false,
    };
}

/// A record's stored task in its device's shard ([`Engine::find_here`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct Found {
    pub(super) row: RowIdx,
    /// The device the record names by its iotId.
    pub(super) device: DeviceIdx,
    /// The row belongs to that device.
    pub(super) same_iot: bool,
    /// That device has the record's product key and device name.
    pub(super) same_device: bool,
    /// The row's seven shared strings equal the record's.
    pub(super) same_variant: bool,
    /// The row's progress and description equal the record's.
    pub(super) same_extras: bool,
}

impl Found {
    /// Every string of the record equals the stored task's.
    pub(super) fn all_same(&self) -> bool {
        self.same_iot && self.same_device && self.same_variant && self.same_extras
    }
}

impl Engine {
    /// The write locks of shards `a` and `b` (different), never waiting for one while
    /// holding the other: a thread holding an answer of one shard may query the other while
    /// this writer waits (see the module's "Concurrency model"), and a writer holding that
    /// other shard meanwhile would wait for the answer while the answer's thread waits for
    /// it.
    pub(super) fn write_two(
        &self,
        a: usize,
        b: usize,
    ) -> (SlotWriteGuard<'_, Shard>, SlotWriteGuard<'_, Shard>) {
        let (la, lb) = (&self.inner.shards[a].0, &self.inner.shards[b].0);
        loop {
            let ga = la.write();
            if let Some(gb) = lb.try_write() {
                return (ga, gb);
            }
            drop(ga);
            let gb = lb.write();
            if let Some(ga) = la.try_write() {
                return (ga, gb);
            }
        }
    }

    /// Adds or replaces one task (reference section 2): a new task id adds, a known one
    /// replaces unless the stored task has a newer `utcModified`.
    ///
    /// ```
    /// # use ota_index::{Engine, TaskRecord, TaskStatus, Timestamp, UpsertOutcome};
    /// # let t = |s| Timestamp::parse(s).unwrap();
    /// # let mut task = TaskRecord { task_id: "t1".into(), job_id: "j1".into(), firmware_id: "f1".into(), iot_id: "dev-1".into(), product_key: "pk1".into(), product_name: "Lamp".into(), device_name: "lamp-01".into(), module_name: "default".into(), src_version: "1.0".into(), dest_version: "1.1".into(), status: TaskStatus::Queued, utc_create: t("2024-01-01T00:00:00Z"), utc_modified: t("2024-01-01T00:00:00Z"), iot_instance_id: String::new(), progress: None, task_desc: None, timeout: None };
    /// let engine = Engine::new();
    /// assert_eq!(engine.upsert(&task), Ok(UpsertOutcome::Inserted));
    /// task.status = TaskStatus::Succeeded;
    /// task.utc_modified = t("2024-01-02T00:00:00Z");
    /// assert_eq!(engine.upsert(&task), Ok(UpsertOutcome::Replaced));
    /// task.status = TaskStatus::Queued; // a replayed, older event
    /// task.utc_modified = t("2024-01-01T00:00:00Z");
    /// assert!(matches!(engine.upsert(&task), Ok(UpsertOutcome::Stale { .. })));
    /// ```
    pub fn upsert(&self, record: &TaskRecord) -> Result<UpsertOutcome, WriteError> {
        self.upsert_ref(&record.as_ref())
    }

    /// [`Engine::upsert`] for a borrowed record.
    pub fn upsert_ref(&self, record: &RecordRef<'_>) -> Result<UpsertOutcome, WriteError> {
        if self.inner.horizon.is_none() {
            return self.upsert_kept(record);
        }
        let dir = self.inner.writer.lock();
        if let Some(cut) = self.cutoff(&dir).filter(|&cut| record.utc_modified < cut) {
            // Past the horizon: stale before any check but its fields', binding nothing
            // (it can no longer be told from a record of a removed device or task).
            drop(dir);
            record.validate()?;
            return Ok(UpsertOutcome::Stale { stored: cut });
        }
        drop(dir);
        self.free_if_forgotten(record);
        let outcome = self.upsert_kept(record)?;
        self.advance_clock(&mut self.inner.writer.lock(), record.utc_modified, 1);
        Ok(outcome)
    }

    /// Frees the record's task now if it is stored but past the retention horizon (the
    /// sweep has not reached it), so that the record is told it adds the task.
    fn free_if_forgotten(&self, record: &RecordRef<'_>) {
        let mut dir = self.inner.writer.lock();
        let (Some(cut), Some(instance)) = (
            self.cutoff(&dir),
            self.known_instance(record.iot_instance_id),
        ) else {
            return;
        };
        let Some(loc) = self.find_task(&dir, instance, record.task_id) else {
            return;
        };
        let (shard, row) = self.unloc(loc);
        let forgotten = self.inner.shards[shard]
            .0
            .read()
            .row_forgotten(RowIdx(row), cut.as_millis());
        if forgotten {
            self.delete_task(&mut dir, instance, record.task_id, loc);
        }
    }

    /// [`Engine::upsert_ref`] of a record within the retention horizon (or of an engine
    /// without one).
    fn upsert_kept(&self, record: &RecordRef<'_>) -> Result<UpsertOutcome, WriteError> {
        let mut dir = self.inner.writer.lock();
        if !dir.tombs.is_empty() {
            // A record a tombstone covers is stale before any check but its fields'.
            if let Some(instance) = self.known_instance(record.iot_instance_id) {
                if dir.tombs.covering(instance, record).is_some() {
                    drop(dir);
                    record.validate()?;
                    dir = self.inner.writer.lock();
                    if let Some(cover) = dir.tombs.covering(instance, record) {
                        return Ok(self.write_covered(&mut dir, instance, record, cover));
                    }
                }
            }
        }
        // The usual event, a status change, repeats every string of the stored task: those
        // were validated when stored, so the record needs no validation (the field rules were
        // a third of an upsert's instructions). Anything else is validated first, as always.
        let fast = if record.within_bounds() {
            self.replace_in_place(&dir, record, Checked::ByEquality)
        } else {
            InPlace::NotHere
        };
        let known = match fast {
            InPlace::Done(outcome) => return outcome,
            InPlace::NotHere => false,
            InPlace::Differs => true,
        };
        // Validation needs no lock (a hostile record's long strings must not hold writers up).
        drop(dir);
        record.validate()?;
        let mut dir = self.inner.writer.lock();
        if known {
            if let InPlace::Done(outcome) = self.replace_in_place(&dir, record, Checked::Validated)
            {
                return outcome;
            }
        }
        self.check_identity(record)?;
        self.check_capacity(std::iter::once((self.shard_index(record.iot_id), 1)))?;
        self.apply(&mut dir, record, Known::NOTHING)
    }

    /// Deletes task `task_id` of `instance` outright; `Ok(false)` when there is none.
    pub fn remove(&self, instance: &str, task_id: &str) -> Result<bool, WriteError> {
        Field::TaskId
            .check(task_id)
            .map_err(|v| FieldError::new(Field::TaskId, v))?;
        Field::IotInstanceId
            .check(instance)
            .map_err(|v| FieldError::new(Field::IotInstanceId, v))?;
        let Ok(inst) = self.instance_for_read(instance) else {
            return Ok(false);
        };
        let mut dir = self.inner.writer.lock();
        let hash = self.task_hash(inst, task_id);
        let Some(loc) = self.find_task(&dir, inst, task_id) else {
            return Ok(false);
        };
        // Unlink from the directory first: the entry's hash is read from the row.
        dir.table.remove(hash, loc.0);
        let (shard, row) = self.unloc(loc);
        self.inner.shards[shard].0.write().remove_task(RowIdx(row));
        Ok(true)
    }

    /// Refuses a record that would bind a device to a second identity (reference section 1),
    /// against the store's bindings; `Ok(true)` when the store already binds the device.
    pub(super) fn check_identity(&self, rec: &RecordRef<'_>) -> Result<bool, WriteError> {
        if self.check_device(rec)? {
            return Ok(true);
        }
        self.check_pair(rec)?;
        Ok(false)
    }

    /// The device half of [`Engine::check_identity`]: `Ok(true)` when the store binds the
    /// record's iotId to its pair, an error when to another pair.
    pub(super) fn check_device(&self, rec: &RecordRef<'_>) -> Result<bool, WriteError> {
        let Some(inst) = self.known_instance(rec.iot_instance_id) else {
            return Ok(false);
        };
        let guard = self.inner.shards[self.shard_index(rec.iot_id)].0.read();
        let Some(d) = guard.find_device(inst, rec.iot_id) else {
            return Ok(false);
        };
        if guard.device_is(d, inst, rec.product_key, rec.device_name) {
            return Ok(true);
        }
        Err(conflict(
            rec,
            Binding::IotIdBoundTo {
                product_key: guard.device_product_key(d).to_owned(),
                device_name: guard.device_name(d).to_owned(),
            },
        ))
    }

    /// The pair half of [`Engine::check_identity`], for a record whose iotId the store does
    /// not bind: an error when the store binds its pair to another iotId.
    pub(super) fn check_pair(&self, rec: &RecordRef<'_>) -> Result<(), WriteError> {
        let Some(inst) = self.known_instance(rec.iot_instance_id) else {
            return Ok(());
        };
        match self.find_pair(inst, rec.product_key, rec.device_name) {
            Some((guard, _, d)) => Err(conflict(
                rec,
                Binding::PairBoundTo {
                    iot_id: guard.device_iot(d).to_owned(),
                },
            )),
            None => Ok(()),
        }
    }

    /// Refuses a write that could overfill a shard, given `(shard, records)` pairs (every
    /// record counted as new), so that capacity never fails half-way through a batch.
    pub(super) fn check_capacity(
        &self,
        per_shard: impl Iterator<Item = (usize, usize)>,
    ) -> Result<(), WriteError> {
        let capacity = (MAX_ADDR >> self.inner.shard_bits) as usize;
        for (shard, n) in per_shard.filter(|&(_, n)| n > 0) {
            let guard = self.inner.shards[shard].0.read();
            let used = guard.live_rows().max(guard.devices.len());
            // A record adds at most 11 strings of at most 256 bytes to a shard's buffers.
            let bytes = guard
                .bytes_used()
                .saturating_add(n.saturating_mul(11 * 259));
            if used + n > capacity || bytes > u32::MAX as usize {
                return Err(WriteError::CapacityExceeded);
            }
        }
        Ok(())
    }

    /// Where a record's task is stored in `shard` (the shard of the record's device, index
    /// `target`), and how the record compares with it; `None` when the instance, the device
    /// (by iotId) or the task is not there. `device_hash` and `hash` are the record's
    /// [`Engine::iot_location`] and [`Engine::task_hash`]. Called with the writer lock held.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn find_here(
        &self,
        dir: &Directory,
        shard: &Shard,
        target: usize,
        instance: InstanceId,
        rec: &RecordRef<'_>,
        device_hash: u64,
        hash: u64,
    ) -> Option<Found> {
        // The record's device by its iotId, looked up before the task so that the two chains
        // of cache misses (index entry, device, iotId bytes; directory entry, row, task id)
        // run side by side rather than one after the other through the row.
        let device = shard.find_device_hashed(instance, rec.iot_id, device_hash)?;
        // Only entries of this shard can match: others are left to the general path, which
        // locks their shards itself.
        let loc = dir.table.find(hash, |a| {
            let (s, row) = self.unloc(Loc(a));
            let row = RowIdx(row);
            s == target
                && shard.row_is_live(row)
                && shard.row_instance(row) == instance
                && shard.row_id_is(row, rec.task_id)
        })?;
        let row = RowIdx(self.unloc(Loc(loc)).1);
        Some(Found {
            row,
            device,
            // The row's device has the record's iotId exactly when it is the device found by
            // it.
            same_iot: shard.row_device(row) == device,
            same_device: shard.device_is(device, instance, rec.product_key, rec.device_name),
            same_variant: shard.row_variant_matches(row, rec),
            same_extras: shard.row_extras_match(row, rec),
        })
    }

    /// The usual event, a known task of a known device in the same shard, under one shard
    /// write lock: identity, staleness and the replacement. With [`Checked::ByEquality`] (the
    /// record not validated) it acts only when every string of the record equals the stored
    /// task's, and answers [`InPlace::Differs`] otherwise, errors included. Called with the
    /// writer lock held.
    pub(super) fn replace_in_place(
        &self,
        dir: &Directory,
        rec: &RecordRef<'_>,
        checked: Checked,
    ) -> InPlace {
        let Some(instance) = self.known_instance(rec.iot_instance_id) else {
            return InPlace::NotHere;
        };
        let (target, device_hash) = self.iot_location(instance, rec.iot_id);
        let hash = self.task_hash(instance, rec.task_id);
        let mut guard = self.inner.shards[target].0.write();
        let Some(found) = self.find_here(dir, &guard, target, instance, rec, device_hash, hash)
        else {
            return InPlace::NotHere;
        };
        if checked == Checked::ByEquality && !found.all_same() {
            return InPlace::Differs;
        }
        let d = found.device;
        if !found.same_device {
            return InPlace::Done(Err(conflict(
                rec,
                Binding::IotIdBoundTo {
                    product_key: guard.device_product_key(d).to_owned(),
                    device_name: guard.device_name(d).to_owned(),
                },
            )));
        }
        guard.confirm_device(d, rec.utc_modified);
        if let Some(outcome) = kept_over(&guard, found.row, rec) {
            return InPlace::Done(Ok(outcome));
        }
        InPlace::Done(
            if guard.replace_task_known(found.row, d, rec, found.same_variant, found.same_extras) {
                Ok(UpsertOutcome::Replaced)
            } else {
                Err(WriteError::CapacityExceeded)
            },
        )
    }

    /// The record's device, found, or added and bound to its pair (`new`: known not to be
    /// there), with its shard. The record's identity was checked.
    pub(super) fn bind_device(
        &self,
        instance: InstanceId,
        rec: &RecordRef<'_>,
        new: bool,
    ) -> Result<(usize, DeviceIdx), WriteError> {
        let target = self.shard_index(rec.iot_id);
        let found = if new {
            None
        } else {
            self.inner.shards[target]
                .0
                .read()
                .find_device(instance, rec.iot_id)
        };
        if let Some(d) = found {
            self.inner.shards[target]
                .0
                .write()
                .confirm_device(d, rec.utc_modified);
            return Ok((target, d));
        }
        let device = {
            let mut shard = self.inner.shards[target].0.write();
            let d = shard
                .add_device(instance, rec.iot_id, rec.product_key, rec.device_name)
                .ok_or(WriteError::CapacityExceeded)?;
            shard.confirm_device(d, rec.utc_modified);
            d
        };
        let hash = self.pair_hash(instance, rec.product_key, rec.device_name);
        let loc = self.loc(target, device.0);
        let mut pairs = self.inner.pairs[self.pair_shard(hash)].0.write();
        let stored = pairs
            .table
            .insert(hash, loc.0, |a| self.pair_hash_at(Loc(a)));
        pairs.size_hints(0);
        debug_assert!(
            stored,
            "a location is at most MAX_ADDR (the shards' capacity)"
        );
        Ok((target, device))
    }

    /// Applies one validated, identity-checked record, skipping the lookups whose answers
    /// `known` gives. Called with the writer lock held.
    pub(super) fn apply(
        &self,
        dir: &mut Directory,
        rec: &RecordRef<'_>,
        known: Known,
    ) -> Result<UpsertOutcome, WriteError> {
        let instance = self.instance_for_write(rec.iot_instance_id);
        if let Some(cover) = dir.tombs.covering(instance, rec) {
            return Ok(self.write_covered(dir, instance, rec, cover));
        }
        let old = if known.new_task {
            None
        } else {
            self.find_task(dir, instance, rec.task_id)
        };
        // Stale or equal: the store keeps its task, but the record's binding is made below.
        let kept = old.and_then(|loc| {
            let (shard, row) = self.unloc(loc);
            kept_over(&self.inner.shards[shard].0.read(), RowIdx(row), rec)
        });
        let (target, device) = self.bind_device(instance, rec, known.new_device)?;
        if let Some(outcome) = kept {
            return Ok(outcome);
        }
        let task_hash = self.task_hash(instance, rec.task_id);
        match old {
            Some(loc) => {
                let (shard, row) = self.unloc(loc);
                if shard == target {
                    let replaced =
                        self.inner.shards[target]
                            .0
                            .write()
                            .replace_task(RowIdx(row), device, rec);
                    if !replaced {
                        return Err(WriteError::CapacityExceeded);
                    }
                } else {
                    // Move between shards: hold both write locks so no reader sees the task
                    // in neither or both devices.
                    let (first, second) = (shard.min(target), shard.max(target));
                    let new_row = {
                        let (mut a, mut b) = self.write_two(first, second);
                        let (from, to) = if shard == first {
                            (&mut a, &mut b)
                        } else {
                            (&mut b, &mut a)
                        };
                        let new_row = to
                            .insert_task(device, rec)
                            .ok_or(WriteError::CapacityExceeded)?;
                        from.remove_task(RowIdx(row));
                        new_row
                    };
                    // With both shard locks released: a rebuild of the directory reads rows.
                    let new_loc = self.loc(target, new_row.0);
                    dir.table.remove(task_hash, loc.0);
                    let stored = dir
                        .table
                        .insert(task_hash, new_loc.0, |a| self.task_hash_at(Loc(a)));
                    debug_assert!(stored, "capacity keeps every address storable");
                }
                Ok(UpsertOutcome::Replaced)
            }
            None => {
                let row = self.inner.shards[target]
                    .0
                    .write()
                    .insert_task(device, rec)
                    .ok_or(WriteError::CapacityExceeded)?;
                let loc = self.loc(target, row.0);
                let stored = dir
                    .table
                    .insert(task_hash, loc.0, |a| self.task_hash_at(Loc(a)));
                debug_assert!(stored, "capacity keeps every address storable");
                Ok(UpsertOutcome::Inserted)
            }
        }
    }
}

/// What a write of `rec` does to the stored task in `row` when the store keeps that task:
/// `Stale` when the stored task is the greater (reference section 2's order), `Unchanged`
/// when they are equal; `None` when `rec` is the greater and replaces it. The whole records
/// are compared only when their `utcModified` tie.
pub(super) fn kept_over(shard: &Shard, row: RowIdx, rec: &RecordRef<'_>) -> Option<UpsertOutcome> {
    let stored = shard.row_modified(row);
    let order = match stored.cmp(&rec.utc_modified) {
        Ordering::Equal => TaskView::new(shard, row, "").as_record().cmp_version(rec),
        other => other,
    };
    match order {
        Ordering::Greater => Some(UpsertOutcome::Stale { stored }),
        Ordering::Equal => Some(UpsertOutcome::Unchanged),
        Ordering::Less => None,
    }
}
