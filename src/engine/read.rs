//! The read path: device queries, their hints, counts, and copies of stored tasks.

use std::sync::atomic::Ordering;

use smallvec::SmallVec;

use super::answer::{FirstCandidate, Hint, PREFETCH_TASKS};
use super::directory::{Loc, PairShard};
use super::{DeviceHint, Engine, HeldDevice, TaskView, Unfinished};
use crate::model::{StatusSet, TaskFields, TaskRecord};
use crate::query::{DeviceRef, Query, QueryError};
use crate::store::{DeviceIdx, InstanceId, RowIdx, Shard};
use crate::sync::slotlock::SlotReadGuard;

/// A fleet-wide count: tasks of an instance by status, optionally of one module and one job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaskFilter<'a> {
    /// The instance (`None`: the default one).
    pub instance: Option<&'a str>,
    /// Statuses counted; empty means all seven.
    pub statuses: StatusSet,
    /// Only this module (ASCII case ignored). Values are not checked against the field
    /// rules: one no task has (`Some("")` included, unlike an empty `ModuleName` in a query)
    /// counts 0.
    pub module: Option<&'a str>,
    /// Only this job (`Some("")`, or any id no task has, counts 0).
    pub job: Option<&'a str>,
}

/// Where a walk over the stored tasks stands ([`Engine::visit_tasks`]).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TaskCursor {
    shard: usize,
    row: u32,
}

impl Engine {
    /// The unfinished tasks of the query's device that pass its filters, in answer order
    /// (`utcCreate` ascending, then `taskId` bytes), as borrowed views.
    ///
    /// The answer holds a read lock on the device's shard until dropped: serialize it and let
    /// it go (writers to that shard wait meanwhile; other queries, on this thread or another,
    /// pass a waiting writer and are answered). Before returning, it starts loading the
    /// fields of the answer's first few tasks (they are about to be read), so that their cache
    /// misses overlap.
    pub fn unfinished<'a>(&'a self, query: &Query<'a>) -> Result<Unfinished<'a>, QueryError> {
        query.validate()?;
        self.unfinished_held(query, None)
    }

    /// [`Engine::unfinished`] for a request front that has checked the query's values
    /// already (a parser that must report their faults in its own order), answered under the
    /// shard lock `held` took ([`Engine::hold_device`]) when the query's device is in that
    /// shard; otherwise `held` is let go before the device's shard is locked.
    ///
    /// The values are not checked again ([`Query::validate`] is about 170 instructions of a
    /// served request's 3,500): one that breaks its rule finds what it names, nothing (no task
    /// has such a device or module, and a finished status matches no unfinished task), where
    /// [`Engine::unfinished`] refuses it. An unknown instance is refused either way.
    ///
    /// ```
    /// use ota_index::{Engine, Query};
    /// let engine = Engine::new();
    /// let held = engine.hold_device("dev-1");
    /// // ... decode and check the request ...
    /// if let Some(held) = &held {
    ///     held.prefetch_record();
    /// }
    /// let answer = engine.unfinished_held(&Query::by_iot_id("dev-1"), held).unwrap();
    /// assert!(answer.is_empty());
    /// ```
    pub fn unfinished_held<'a>(
        &'a self,
        query: &Query<'a>,
        held: Option<HeldDevice<'a>>,
    ) -> Result<Unfinished<'a>, QueryError> {
        let instance_name = query.instance_name();
        let instance = self.instance_for_read(instance_name)?;
        let mut answer = Unfinished {
            guard: None,
            rows: SmallVec::new(),
            instance: instance_name,
        };
        let Some((guard, device)) = self.locate(instance, query.device, held) else {
            return Ok(answer);
        };
        let module = match query.module.filter(|m| !m.is_empty()) {
            None => None,
            Some(m) => match guard.module_key(m) {
                Some(key) => Some(key),
                None => return Ok(answer),
            },
        };
        guard.collect_unfinished(device, module, query.effective_statuses(), &mut answer.rows);
        // Start loading what serializing the first tasks will read, so that their cache
        // misses overlap (about 15% of a served query at 1,000,000 devices; placed here, not
        // in a method the service calls after this returns, which measured no gain).
        guard.prefetch_answer(&answer.rows[..answer.rows.len().min(PREFETCH_TASKS)]);
        answer.guard = Some(guard);
        Ok(answer)
    }

    /// Starts loading, without waiting for it, the first memory a query of `device` in the
    /// instance named `instance` reads (a lock and the device's bucket: in its shard's `iotId`
    /// table, or in the pair directory for a device named by product key and name), so that
    /// work the caller does before the query (decoding and checking a request) overlaps that
    /// wait instead of preceding it. Pass what it returns to
    /// [`Engine::prefetch_device_record`] after some more work, to start loading the device
    /// itself. A hint: it changes nothing and answers nothing; an unknown instance or device
    /// costs only the hint, and it gives up (`None`) rather than wait for a writer.
    ///
    /// ```
    /// use ota_index::{DeviceRef, Engine, Query};
    /// let engine = Engine::new();
    /// let hint = engine.prefetch_device("", DeviceRef::IotId("dev-1"));
    /// // ... decode the request ...
    /// if let Some(hint) = hint {
    ///     engine.prefetch_device_record(hint);
    /// }
    /// // ... check the rest of it ...
    /// assert!(engine.unfinished(&Query::by_iot_id("dev-1")).unwrap().is_empty());
    /// ```
    pub fn prefetch_device(&self, instance: &str, device: DeviceRef<'_>) -> Option<DeviceHint> {
        let instance = self.instance_for_read(instance).ok()?;
        match device {
            DeviceRef::IotId(iot) => {
                let (shard, hash) = self.iot_location(instance, iot);
                let guard = self.inner.shards[shard].0.try_read()?;
                guard.prefetch_bucket(hash);
                Some(DeviceHint(Hint::Iot { shard, hash }))
            }
            DeviceRef::Name {
                product_key,
                device_name,
            } => {
                let hash = self.pair_hash(instance, product_key, device_name);
                let dir = self.pair_shard(hash);
                let pairs = self.inner.pairs[dir].0.try_read()?;
                pairs.table.prefetch(hash);
                if let Some(entry) = pairs.hint(hash) {
                    crate::raw::prefetch::prefetch(entry);
                }
                Some(DeviceHint(Hint::Pair { dir, hash }))
            }
        }
    }

    /// The second step of [`Engine::prefetch_device`]: reads the device's bucket (by now
    /// loaded, or on its way) and starts loading the device its first candidate entry points
    /// to, and its first rows, from a small table the first step loaded too (for a device
    /// named by `IotId`, also its `iotId` bytes), so that the query then waits for them once,
    /// not one after the other. A hint, as the first step.
    pub fn prefetch_device_record(&self, hint: DeviceHint) {
        let (shard, first) = match hint.0 {
            Hint::Iot { shard, hash } => (shard, FirstCandidate::Iot(hash)),
            Hint::Pair { dir, hash } => {
                let Some(pairs) = self.inner.pairs.get(dir).and_then(|p| p.0.try_read()) else {
                    return;
                };
                let Some(loc) = pairs.table.find(hash, |_| true) else {
                    return;
                };
                let row = pairs
                    .hint(hash)
                    .map_or(PairShard::NO_HINT, |e| e.load(Ordering::Relaxed));
                drop(pairs);
                let (shard, d) = self.unloc(Loc(loc));
                (shard, FirstCandidate::Device(DeviceIdx(d), row))
            }
        };
        if let Some(guard) = self.inner.shards.get(shard).and_then(|s| s.0.try_read()) {
            match first {
                FirstCandidate::Iot(hash) => guard.prefetch_device(hash),
                FirstCandidate::Device(d, entry) => {
                    guard.prefetch_device_at(d);
                    // Medians of 30 rounds in one process at 1,000,000 devices, with
                    // and without these two: the mix 826 / 848 ns, by name 1,115 / 1,325.
                    guard.prefetch_rows_at(entry as u32);
                    guard.prefetch_device_str((entry >> 32) as u32);
                }
            }
        }
    }

    /// How many tasks [`Engine::unfinished`] would return (the matching rows are found, no
    /// view is built).
    pub fn count_unfinished(&self, query: &Query<'_>) -> Result<usize, QueryError> {
        Ok(self.unfinished(query)?.len())
    }

    /// Counts tasks of the whole instance by status, module and job, from the bitmaps
    /// (finished tasks past a retention horizon count until freed, as for [`Engine::len`]).
    ///
    /// ```
    /// use ota_index::{Engine, StatusSet, TaskFilter};
    /// let engine = Engine::new();
    /// assert_eq!(engine.count_tasks(&TaskFilter::default()).unwrap(), 0);
    /// ```
    pub fn count_tasks(&self, filter: &TaskFilter<'_>) -> Result<u64, QueryError> {
        let instance = self.instance_for_read(filter.instance.unwrap_or(""))?;
        let statuses = if filter.statuses.is_empty() {
            StatusSet::ALL
        } else {
            filter.statuses
        };
        Ok(self
            .inner
            .shards
            .iter()
            .map(|s| {
                let shard = s.0.read();
                let module = filter.module.map(|m| shard.module_key(m));
                let job = filter.job.map(|j| shard.dict.lookup(j));
                shard.bitmaps.count(instance, statuses, module, job)
            })
            .sum())
    }

    /// The shard (read-locked) and device a query names, if the device is known.
    pub(super) fn locate<'a>(
        &'a self,
        instance: InstanceId,
        device: DeviceRef<'_>,
        held: Option<HeldDevice<'a>>,
    ) -> Option<(SlotReadGuard<'a, Shard>, DeviceIdx)> {
        match device {
            DeviceRef::IotId(iot) => {
                let (shard, hash) = self.iot_location(instance, iot);
                // The hint's lock when it is this shard's; otherwise it goes before another
                // is taken (a reader never waits for a lock while holding one).
                let guard = match held {
                    Some(h) if h.shard == shard => h.guard,
                    other => {
                        drop(other);
                        // Past a waiting writer (see the module's "Concurrency model").
                        self.inner.shards[shard].0.read()
                    }
                };
                let d = guard.find_device_hashed(instance, iot, hash)?;
                Some((guard, d))
            }
            DeviceRef::Name {
                product_key,
                device_name,
            } => {
                drop(held);
                let (guard, _, d) = self.find_pair(instance, product_key, device_name)?;
                Some((guard, d))
            }
        }
    }

    /// [`Engine::prefetch_device`] for the device `iot_id` of the default instance, keeping
    /// its shard's read lock for the query that follows ([`Engine::unfinished_held`]): the
    /// lock is then taken once a query rather than once for each of the hint's two steps and
    /// again for the query. For a caller that does nothing but check the request between the
    /// two (writers of the shard wait meanwhile, and a thread holding it must not write).
    /// `None` when a writer holds the shard (or is checking its readers).
    pub fn hold_device(&self, iot_id: &str) -> Option<HeldDevice<'_>> {
        let (shard, hash) = self.iot_location(InstanceId(0), iot_id);
        let guard = self.inner.shards[shard].0.try_read()?;
        guard.prefetch_bucket(hash);
        Some(HeldDevice { shard, hash, guard })
    }

    /// The device bound to a pair: candidates from the pair directory, confirmed in their
    /// shard (the directory keeps hashes, not strings), returned with the read lock of that
    /// shard it was confirmed under. Never waits for a lock while holding another: the one
    /// lock it may take beside the shard's is the directory's, with `try_read`, to correct the
    /// device's hint (see [`PairShard`]) when it found it stale.
    pub(super) fn find_pair(
        &self,
        instance: InstanceId,
        product_key: &str,
        device_name: &str,
    ) -> Option<(SlotReadGuard<'_, Shard>, usize, DeviceIdx)> {
        let hash = self.pair_hash(instance, product_key, device_name);
        let dir = self.pair_shard(hash);
        let mut candidates: SmallVec<[Loc; 4]> = SmallVec::new();
        let pairs = self.inner.pairs[dir].0.read();
        pairs.table.find(hash, |addr| {
            candidates.push(Loc(addr));
            false // every entry with the hash's tag
        });
        let hinted = pairs
            .hint(hash)
            .map_or(PairShard::NO_HINT, |e| e.load(Ordering::Relaxed));
        drop(pairs);
        candidates.into_iter().find_map(|loc| {
            let (shard, idx) = self.unloc(loc);
            let d = DeviceIdx(idx);
            let guard = self.inner.shards[shard].0.read();
            // The rows start loading while the name is compared (when the hint did not
            // start them earlier): medians of 30 interleaved rounds of the mix at 1,000,000
            // devices 972 -> 949 and 973 -> 958 ns.
            guard.prefetch_rows(d);
            let found = d.idx() < guard.devices.len()
                && guard.device_is(d, instance, product_key, device_name);
            if found {
                let first = guard.first_unfinished(d).map_or(u32::MAX, |r| r.0);
                let first = u64::from(first) | u64::from(guard.device(d).name.0) << 32;
                if first != hinted {
                    if let Some(pairs) = self.inner.pairs[dir].0.try_read() {
                        if let Some(entry) = pairs.hint(hash) {
                            entry.store(first, Ordering::Relaxed);
                        }
                    }
                }
            }
            found.then_some((guard, shard, d))
        })
    }

    /// The stored task `task_id` of `instance`, copied.
    ///
    /// It reads the task directory under the writers' mutex, so it waits for a write in
    /// progress, and a thread holding an answer ([`Unfinished`]) must not call it: a writer
    /// waiting for that answer's shard would hold the mutex meanwhile (see "Concurrency
    /// model" in the module docs).
    pub fn get(&self, instance: &str, task_id: &str) -> Option<TaskRecord> {
        let inst = self.instance_for_read(instance).ok()?;
        let dir = self.inner.writer.lock();
        let loc = self.find_task(&dir, inst, task_id)?;
        let (shard, row) = self.unloc(loc);
        let guard = self.inner.shards[shard].0.read();
        if guard.row_forgotten(RowIdx(row), self.read_cutoff()) {
            return None;
        }
        Some(TaskView::new(&guard, RowIdx(row), instance).to_record())
    }

    /// Every stored task (finished ones too), copied, in no particular order. For tests,
    /// dumps and fleet-wide exports; takes each shard's read lock in turn.
    pub fn tasks(&self) -> Vec<TaskRecord> {
        let names: Vec<Box<str>> = self.inner.instances.read().names.clone();
        let mut out = Vec::with_capacity(self.len());
        let cutoff = self.read_cutoff();
        for s in self.inner.shards.iter() {
            let shard = s.0.read();
            for row in shard.rows().filter(|&r| !shard.row_forgotten(r, cutoff)) {
                let instance = names
                    .get(shard.row_instance(row).idx())
                    .map_or("", |n| &**n);
                out.push(TaskView::new(&shard, row, instance).to_record());
            }
        }
        out
    }

    /// Calls `visit` with up to `max` stored tasks from `cursor` on, in the order of their
    /// shards and rows, under one shard read lock, and moves `cursor` past them; `false` once
    /// every task has been visited. Writes between calls may move a task past or before the
    /// cursor: a walk sees every task that stays put, each whole.
    pub(crate) fn visit_tasks(
        &self,
        cursor: &mut TaskCursor,
        max: usize,
        mut visit: impl FnMut(&TaskView<'_>),
    ) -> bool {
        let names: Vec<Box<str>> = self.inner.instances.read().names.clone();
        let cutoff = self.read_cutoff();
        while let Some(lock) = self.inner.shards.get(cursor.shard) {
            let shard = lock.0.read();
            let rows = shard.rows_from(cursor.row);
            let mut seen = 0;
            for row in rows {
                if seen == max {
                    cursor.row = row.0;
                    return true;
                }
                if shard.row_forgotten(row, cutoff) {
                    continue;
                }
                let instance = names
                    .get(shard.row_instance(row).idx())
                    .map_or("", |n| &**n);
                visit(&TaskView::new(&shard, row, instance));
                seen += 1;
            }
            cursor.shard += 1;
            cursor.row = 0;
            if seen > 0 {
                return true;
            }
        }
        false
    }

    /// The number of stored tasks, finished ones included. With a retention horizon, a
    /// finished task past it counts until the sweep frees its row
    /// ([`Engine::forget_expired`] frees them all at once); reads that list tasks skip it
    /// from the moment the clock passes it.
    pub fn len(&self) -> usize {
        self.inner
            .shards
            .iter()
            .map(|s| s.0.read().live_rows())
            .sum()
    }

    /// True when no task is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The number of devices ever bound (bindings outlive their tasks).
    pub fn device_count(&self) -> usize {
        self.inner
            .shards
            .iter()
            .map(|s| s.0.read().live_devices())
            .sum()
    }

    /// The instances the store holds, the default one (`""`) first.
    pub fn instances(&self) -> Vec<String> {
        self.inner
            .instances
            .read()
            .names
            .iter()
            .map(|n| n.to_string())
            .collect()
    }
}
