//! Removals (reference section 2): a task or a device deleted as of an instant, and the
//! tombstones that keep an older record of it from bringing it back.

use hashbrown::HashMap;

use super::directory::{Directory, Loc};
use super::write::kept_over;
use super::{Engine, TaskView, UpsertOutcome, Write, WriteError};
use crate::model::{Field, FieldError, RecordRef, TaskFields, TaskRecord, Timestamp, Violation};
use crate::store::{DeviceIdx, InstanceId, RowIdx};

/// What a removal deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Removal {
    /// Tasks deleted (those not newer than the removal).
    pub tasks: usize,
    /// The device's binding went too (a device removal that left it no task).
    pub unbound: bool,
}

/// productKey → deviceName → the latest removal of the device bound to the pair.
type PairTombs = HashMap<Box<str>, HashMap<Box<str>, Timestamp>>;

/// The removals' tombstones, by instance: only writers read them. Each keeps the latest
/// removal of its task or device.
#[derive(Default)]
pub(super) struct Tombstones {
    /// instance → taskId → the latest removal of the task.
    tasks: HashMap<InstanceId, HashMap<Box<str>, Timestamp>>,
    /// instance → taskId → the greatest version of the task a device's removal deleted: a
    /// record of the task not greater than it is stale, whichever device it names (it is an
    /// older version of a task that went with its device).
    deleted: HashMap<InstanceId, HashMap<Box<str>, TaskRecord>>,
    /// instance → iotId → the latest removal of the device, and the pair it was bound to.
    devices: HashMap<InstanceId, HashMap<Box<str>, DeviceTomb>>,
    /// instance → productKey → deviceName → the latest removal of the device bound to it.
    pairs: HashMap<InstanceId, PairTombs>,
    /// Tombstones held, over the three maps.
    len: usize,
}

/// A device's tombstone.
#[derive(Debug, Clone)]
pub(super) struct DeviceTomb {
    /// The latest removal.
    pub(super) at: Timestamp,
    /// The (productKey, deviceName) the device was bound to when a removal found it bound.
    pub(super) pair: Option<(Box<str>, Box<str>)>,
}

/// The tombstones that cover a record, by their latest removal.
#[derive(Debug, Clone, Copy)]
pub(super) struct Cover {
    /// The latest removal covering it.
    pub(super) at: Timestamp,
    /// The latest removal of the record's device (by `iotId` or by pair) covering it.
    pub(super) device: Option<Timestamp>,
}

impl Tombstones {
    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The tombstones that cover `rec` in `instance`: of its task, its `iotId` or its pair,
    /// at or after its `utcModified`.
    pub(super) fn covering(&self, instance: InstanceId, rec: &RecordRef<'_>) -> Option<Cover> {
        if self.len == 0 {
            return None;
        }
        let covers = |at: &Timestamp| *at >= rec.utc_modified;
        let task = self
            .tasks
            .get(&instance)
            .and_then(|t| t.get(rec.task_id))
            .filter(|at| covers(at))
            .copied();
        let by_iot = self
            .devices
            .get(&instance)
            .and_then(|d| d.get(rec.iot_id))
            .map(|d| d.at)
            .filter(covers);
        let by_pair = self
            .pairs
            .get(&instance)
            .and_then(|p| p.get(rec.product_key))
            .and_then(|p| p.get(rec.device_name))
            .filter(|at| covers(at))
            .copied();
        let device = by_iot.max(by_pair);
        let deleted = self
            .deleted
            .get(&instance)
            .and_then(|d| d.get(rec.task_id))
            .filter(|v| rec.cmp_version(v).is_le())
            .map(|v| v.utc_modified);
        let at = task.max(device).max(deleted)?;
        Some(Cover { at, device })
    }

    /// Remembers `version`, deleted with its device, if it is the task's greatest so far.
    fn remember_deleted(&mut self, instance: InstanceId, version: TaskRecord) {
        let deleted = self.deleted.entry(instance).or_default();
        match deleted.get_mut(version.task_id.as_str()) {
            Some(kept) if kept.cmp_version(&version).is_ge() => {}
            Some(kept) => *kept = version,
            None => {
                deleted.insert(version.task_id.as_str().into(), version);
                self.len += 1;
            }
        }
    }

    fn remember_task(&mut self, instance: InstanceId, task_id: &str, at: Timestamp) {
        let tasks = self.tasks.entry(instance).or_default();
        match tasks.get_mut(task_id) {
            Some(latest) => *latest = (*latest).max(at),
            None => {
                tasks.insert(task_id.into(), at);
                self.len += 1;
            }
        }
    }

    fn remember_device(
        &mut self,
        instance: InstanceId,
        iot_id: &str,
        pair: Option<(&str, &str)>,
        at: Timestamp,
    ) {
        let devices = self.devices.entry(instance).or_default();
        match devices.get_mut(iot_id) {
            Some(tomb) => {
                tomb.at = tomb.at.max(at);
                if tomb.pair.is_none() {
                    tomb.pair = pair.map(|(pk, dn)| (pk.into(), dn.into()));
                }
            }
            None => {
                let pair = pair.map(|(pk, dn)| (pk.into(), dn.into()));
                devices.insert(iot_id.into(), DeviceTomb { at, pair });
                self.len += 1;
            }
        }
        if let Some((product_key, device_name)) = pair {
            let names = self
                .pairs
                .entry(instance)
                .or_default()
                .entry(product_key.into())
                .or_default();
            match names.get_mut(device_name) {
                Some(latest) => *latest = (*latest).max(at),
                None => {
                    names.insert(device_name.into(), at);
                    self.len += 1;
                }
            }
        }
    }

    /// Tombstones held, over every map.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Forgets every tombstone, and every version deleted with its device, older than
    /// `cutoff` (the retention horizon): a record they would cover is older still, so stale
    /// on arrival without them. Visits every tombstone once.
    pub(super) fn forget_before(&mut self, cutoff: Timestamp) {
        let mut len = 0;
        for t in self.tasks.values_mut() {
            t.retain(|_, at| *at >= cutoff);
            len += t.len();
        }
        for d in self.deleted.values_mut() {
            d.retain(|_, v| v.utc_modified >= cutoff);
            len += d.len();
        }
        for d in self.devices.values_mut() {
            d.retain(|_, tomb| tomb.at >= cutoff);
            len += d.len();
        }
        for by_key in self.pairs.values_mut() {
            for names in by_key.values_mut() {
                names.retain(|_, at| *at >= cutoff);
                len += names.len();
            }
            by_key.retain(|_, names| !names.is_empty());
        }
        self.tasks.retain(|_, t| !t.is_empty());
        self.deleted.retain(|_, d| !d.is_empty());
        self.devices.retain(|_, d| !d.is_empty());
        self.pairs.retain(|_, p| !p.is_empty());
        self.len = len;
    }

    /// Every task version deleted with its device: (instance, the version).
    pub(super) fn deleted_versions(&self) -> impl Iterator<Item = (InstanceId, &TaskRecord)> {
        self.deleted
            .iter()
            .flat_map(|(&inst, d)| d.values().map(move |v| (inst, v)))
    }

    /// Every task tombstone: (instance, taskId, removal).
    pub(super) fn task_tombs(&self) -> impl Iterator<Item = (InstanceId, &str, Timestamp)> {
        self.tasks
            .iter()
            .flat_map(|(&inst, t)| t.iter().map(move |(id, &at)| (inst, &**id, at)))
    }

    /// Every device tombstone: (instance, iotId, tombstone).
    pub(super) fn device_tombs(&self) -> impl Iterator<Item = (InstanceId, &str, &DeviceTomb)> {
        self.devices
            .iter()
            .flat_map(|(&inst, d)| d.iter().map(move |(iot, tomb)| (inst, &**iot, tomb)))
    }

    /// Approximate heap bytes (a key's bytes and an entry's size).
    pub(super) fn heap_bytes(&self) -> usize {
        let entry = 48;
        self.task_tombs()
            .map(|(_, id, _)| id.len() + entry)
            .chain(self.device_tombs().map(|(_, iot, tomb)| {
                iot.len()
                    + entry
                    + tomb
                        .pair
                        .as_ref()
                        .map_or(0, |(pk, dn)| 2 * (pk.len() + dn.len() + entry))
            }))
            .sum()
    }
}

/// Checks a removal's fields: the key, the instance, the time.
fn check_removal(key: (Field, &str), instance: &str, at: Timestamp) -> Result<(), WriteError> {
    for (field, value) in [key, (Field::IotInstanceId, instance)] {
        field.check(value).map_err(|v| FieldError::new(field, v))?;
    }
    if !at.is_writable() {
        return Err(FieldError::new(Field::UtcModified, Violation::BadTimestamp).into());
    }
    Ok(())
}

impl Engine {
    /// Calls `visit` with the tombstones as writes that make them again, in an order that
    /// does: each task version deleted with its device (a record, with its instance), then
    /// the devices' removals, then the tasks'. For a dump; writers wait meanwhile.
    pub(crate) fn visit_tombstones(&self, mut visit: impl FnMut(Write<'_>)) {
        let dir = self.inner.writer.lock();
        let names: Vec<Box<str>> = self.inner.instances.read().names.clone();
        let name = |inst: InstanceId| names.get(inst.idx()).map_or("", |n| &**n);
        // Past the retention horizon, a tombstone is forgotten whether purged yet or not.
        let kept = |at: Timestamp| self.cutoff(&dir).is_none_or(|cut| at >= cut);
        for (inst, version) in dir.tombs.deleted_versions() {
            if !kept(version.utc_modified) {
                continue;
            }
            let mut record = version.as_ref();
            record.iot_instance_id = name(inst);
            visit(Write::Record(record));
        }
        for (inst, iot_id, tomb) in dir.tombs.device_tombs() {
            if !kept(tomb.at) {
                continue;
            }
            visit(Write::RemoveDevice {
                instance: name(inst),
                iot_id,
                pair: tomb.pair.as_ref().map(|(pk, dn)| (&**pk, &**dn)),
                utc_modified: tomb.at,
            });
        }
        for (inst, task_id, at) in dir.tombs.task_tombs() {
            if !kept(at) {
                continue;
            }
            visit(Write::RemoveTask {
                instance: name(inst),
                task_id,
                utc_modified: at,
            });
        }
    }

    /// Removes task `task_id` of `instance` as of `utc_modified` (reference section 2): the
    /// task is deleted unless the stored task is newer, and a tombstone makes every record of
    /// it not newer than the removal stale, whenever it arrives. Of several removals of one
    /// task the latest counts.
    ///
    /// ```
    /// use ota_index::{fleet::Fleet, Engine, Timestamp, UpsertOutcome};
    ///
    /// let engine = Engine::new();
    /// let task = Fleet::new(1).device_tasks(0)[0].clone();
    /// engine.upsert(&task).unwrap();
    /// let later = Timestamp::from_millis(task.utc_modified.as_millis() + 1);
    /// assert_eq!(engine.remove_task("", &task.task_id, later).unwrap().tasks, 1);
    /// // A replay of the record is older than the removal: stale, the task stays gone.
    /// assert!(matches!(engine.upsert(&task), Ok(UpsertOutcome::Stale { .. })));
    /// assert!(engine.is_empty());
    /// ```
    pub fn remove_task(
        &self,
        instance: &str,
        task_id: &str,
        utc_modified: Timestamp,
    ) -> Result<Removal, WriteError> {
        check_removal((Field::TaskId, task_id), instance, utc_modified)?;
        let mut dir = self.inner.writer.lock();
        let inst = self.instance_for_write(instance);
        let removal = self.remove_task_locked(&mut dir, inst, task_id, utc_modified);
        self.advance_clock(&mut dir, utc_modified, 1);
        Ok(removal)
    }

    /// Removes device `iot_id` of `instance` as of `utc_modified` (reference section 2):
    /// each of its tasks not newer than the removal is deleted, and when none is left, its
    /// binding, so that its (productKey, deviceName) may later bind to another `iotId` (the
    /// platform deletes a device and the name is registered again). A tombstone makes every
    /// record naming the `iotId`, or the pair it was bound to, not newer than the removal
    /// stale. A record newer than the removal brings the device back, bound as it says.
    ///
    /// The device's tasks are found by a scan of its shard's rows (milliseconds at a million
    /// devices): a device's removal is rare beside its tasks' events.
    pub fn remove_device(
        &self,
        instance: &str,
        iot_id: &str,
        utc_modified: Timestamp,
    ) -> Result<Removal, WriteError> {
        self.remove_device_named(instance, iot_id, None, utc_modified)
    }

    /// [`Engine::remove_device`], also naming the pair the tombstone covers when the store
    /// does not bind the device (a dump's removal line carries it).
    pub(crate) fn remove_device_named(
        &self,
        instance: &str,
        iot_id: &str,
        pair: Option<(&str, &str)>,
        utc_modified: Timestamp,
    ) -> Result<Removal, WriteError> {
        check_removal((Field::IotId, iot_id), instance, utc_modified)?;
        if let Some((product_key, device_name)) = pair {
            for (field, value) in [
                (Field::ProductKey, product_key),
                (Field::DeviceName, device_name),
            ] {
                field.check(value).map_err(|v| FieldError::new(field, v))?;
            }
        }
        let mut dir = self.inner.writer.lock();
        let inst = self.instance_for_write(instance);
        let removal = self.remove_device_locked(&mut dir, inst, iot_id, pair, utc_modified);
        self.advance_clock(&mut dir, utc_modified, 1);
        Ok(removal)
    }

    pub(super) fn remove_task_locked(
        &self,
        dir: &mut Directory,
        instance: InstanceId,
        task_id: &str,
        at: Timestamp,
    ) -> Removal {
        dir.tombs.remember_task(instance, task_id, at);
        let Some(loc) = self.find_task(dir, instance, task_id) else {
            return Removal::default();
        };
        let (shard, row) = self.unloc(loc);
        let (newer, forgotten) = {
            let shard = self.inner.shards[shard].0.read();
            let cut = self.cutoff(dir).map_or(i64::MIN, Timestamp::as_millis);
            (
                shard.row_modified(RowIdx(row)) > at,
                shard.row_forgotten(RowIdx(row), cut),
            )
        };
        if newer && !forgotten {
            return Removal::default();
        }
        self.delete_task(dir, instance, task_id, loc);
        Removal {
            // A task past the retention horizon was forgotten already.
            tasks: usize::from(!forgotten),
            unbound: false,
        }
    }

    pub(super) fn remove_device_locked(
        &self,
        dir: &mut Directory,
        instance: InstanceId,
        iot_id: &str,
        pair: Option<(&str, &str)>,
        at: Timestamp,
    ) -> Removal {
        let s = self.shard_index(iot_id);
        let cut = self.cutoff(dir).map_or(i64::MIN, Timestamp::as_millis);
        let found = {
            let shard = self.inner.shards[s].0.read();
            shard.find_device(instance, iot_id).map(|d| {
                let bound = (
                    shard.device_product_key(d).to_owned(),
                    shard.device_name(d).to_owned(),
                );
                // Each task of the device, its version when the removal deletes it, and
                // whether it was forgotten already (past the retention horizon).
                let rows: Vec<(RowIdx, Box<str>, Option<TaskRecord>, bool)> = shard
                    .device_rows(d)
                    .into_iter()
                    .map(|r| {
                        let forgotten = shard.row_forgotten(r, cut);
                        let deleted = (shard.row_modified(r) <= at && !forgotten)
                            .then(|| TaskView::new(&shard, r, "").to_record());
                        (r, shard.row_id(r).as_str().into(), deleted, forgotten)
                    })
                    .collect();
                (d, bound, rows, shard.device_bound_at(d))
            })
        };
        let Some((d, bound, rows, bound_at)) = found else {
            dir.tombs.remember_device(instance, iot_id, pair, at);
            return Removal::default();
        };
        dir.tombs
            .remember_device(instance, iot_id, Some((&bound.0, &bound.1)), at);
        let mut removal = Removal::default();
        // Unbound when no record naming it bound is newer than the removal: then none of its
        // tasks is either, whatever order the removal and the records came in.
        let unbinds = bound_at <= at;
        debug_assert!(!unbinds || rows.iter().all(|(_, _, v, gone)| v.is_some() || *gone));
        for (row, task_id, deleted, forgotten) in rows {
            if let Some(version) = deleted {
                self.delete_task(dir, instance, &task_id, self.loc(s, row.0));
                dir.tombs.remember_deleted(instance, version);
                removal.tasks += 1;
            } else if forgotten {
                self.delete_task(dir, instance, &task_id, self.loc(s, row.0));
            }
        }
        if unbinds {
            self.unbind(s, d, instance, (&bound.0, &bound.1));
            removal.unbound = true;
        }
        removal
    }

    /// Deletes the stored task at `loc` (task `task_id` of `instance`) from the directory and
    /// its shard.
    pub(super) fn delete_task(
        &self,
        dir: &mut Directory,
        instance: InstanceId,
        task_id: &str,
        loc: Loc,
    ) {
        // Unlink from the directory first: the entry's hash is read from the row.
        dir.table.remove(self.task_hash(instance, task_id), loc.0);
        let (shard, row) = self.unloc(loc);
        self.inner.shards[shard].0.write().remove_task(RowIdx(row));
    }

    /// Forgets device `d` of shard `s`, which has no task left: its pair directory entry,
    /// then the device itself.
    fn unbind(&self, s: usize, d: DeviceIdx, instance: InstanceId, (pk, dn): (&str, &str)) {
        let hash = self.pair_hash(instance, pk, dn);
        self.inner.pairs[self.pair_shard(hash)]
            .0
            .write()
            .table
            .remove(hash, self.loc(s, d.0).0);
        self.inner.shards[s].0.write().remove_device(d);
    }

    /// A record a tombstone covers: stale before any other check. One covered by its task's
    /// removal binds its device as a stale record does; one covered by its
    /// device's removal went, as that removal saw the store, to a device removed after it:
    /// when it is greater than the stored task (or none is stored), the removal would have
    /// deleted the task in that version, so the task is deleted here too, and the record kept
    /// as the version deleted (its task's lesser records are stale from now on). So a
    /// removal and the records of its device end in the same store in any order.
    pub(super) fn write_covered(
        &self,
        dir: &mut Directory,
        instance: InstanceId,
        rec: &RecordRef<'_>,
        cover: super::remove::Cover,
    ) -> UpsertOutcome {
        if cover.device.is_some() {
            let deletes = match self.find_task(dir, instance, rec.task_id) {
                Some(loc) => {
                    let (shard, row) = self.unloc(loc);
                    let greater =
                        kept_over(&self.inner.shards[shard].0.read(), RowIdx(row), rec).is_none();
                    if greater {
                        self.delete_task(dir, instance, rec.task_id, loc);
                    }
                    greater
                }
                // No version of the task is stored: this one is what the removal deleted.
                None => true,
            };
            if deletes {
                dir.tombs.remember_deleted(instance, rec.to_owned());
            }
        } else {
            // Covered by its task's removal only: stale, it binds its device as any stale
            // record does (a binding is a fact about the device), unless that contradicts a
            // binding (no error: stale comes first). Capacity failing leaves it unbound.
            if self.check_identity(rec).is_ok() {
                let _ = self.bind_device(instance, rec, false);
            }
        }
        UpsertOutcome::Stale { stored: cover.at }
    }
}
