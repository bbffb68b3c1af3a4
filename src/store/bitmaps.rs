//! Fleet-wide indexes of a shard: roaring bitmaps of rows per (instance, status), per
//! (instance, module) and per (instance, job).
//!
//! A device owns a handful of tasks, so the device query walks the device's posting list
//! (see the planner); these bitmaps serve the sets that
//! are large — every task of a module, a job, a status — and the counts over them
//! ([`Engine::count_tasks`](crate::Engine::count_tasks)), computed with `intersection_len`
//! without materialising anything.

use std::borrow::Cow;

use hashbrown::HashMap;
use roaring::RoaringBitmap;

use super::ids::InstanceId;
use crate::model::{StatusSet, TaskStatus};
use crate::table::intern::Sym;

/// The bitmaps of one shard. Invariant: every live row is in exactly one status bitmap, one
/// module bitmap and one job bitmap, all of its own instance; no bitmap in a map is empty.
#[derive(Default)]
pub(crate) struct Bitmaps {
    /// `status[instance][status]`.
    status: Vec<[RoaringBitmap; 7]>,
    /// Keyed by the case-folded module name.
    module: HashMap<(InstanceId, Sym), RoaringBitmap>,
    job: HashMap<(InstanceId, Sym), RoaringBitmap>,
}

impl Bitmaps {
    pub(crate) fn insert(
        &mut self,
        instance: InstanceId,
        status: TaskStatus,
        module: Sym,
        job: Sym,
        row: u32,
    ) {
        if self.status.len() <= instance.idx() {
            self.status
                .resize_with(instance.idx() + 1, Default::default);
        }
        self.status[instance.idx()][status as usize].insert(row);
        self.module
            .entry((instance, module))
            .or_default()
            .insert(row);
        self.job.entry((instance, job)).or_default().insert(row);
    }

    pub(crate) fn remove(
        &mut self,
        instance: InstanceId,
        status: TaskStatus,
        module: Sym,
        job: Sym,
        row: u32,
    ) {
        if let Some(set) = self.status.get_mut(instance.idx()) {
            set[status as usize].remove(row);
        }
        for (map, key) in [(&mut self.module, module), (&mut self.job, job)] {
            if let Some(bitmap) = map.get_mut(&(instance, key)) {
                bitmap.remove(row);
                if bitmap.is_empty() {
                    map.remove(&(instance, key));
                }
            }
        }
    }

    /// Moves `row` from one status bitmap to another.
    pub(crate) fn restatus(
        &mut self,
        instance: InstanceId,
        from: TaskStatus,
        to: TaskStatus,
        row: u32,
    ) {
        if let Some(set) = self.status.get_mut(instance.idx()) {
            set[from as usize].remove(row);
            set[to as usize].insert(row);
        }
    }

    pub(crate) fn module(&self, instance: InstanceId, module: Sym) -> Option<&RoaringBitmap> {
        self.module.get(&(instance, module))
    }

    pub(crate) fn job(&self, instance: InstanceId, job: Sym) -> Option<&RoaringBitmap> {
        self.job.get(&(instance, job))
    }

    /// How many rows of `instance` are in one of `statuses` and, when given, in the module and
    /// the job; `intersection_len` counts without building the result.
    pub(crate) fn count(
        &self,
        instance: InstanceId,
        statuses: StatusSet,
        module: Option<Option<Sym>>,
        job: Option<Option<Sym>>,
    ) -> u64 {
        let Some(by_status) = self.status.get(instance.idx()) else {
            return 0;
        };
        // `Some(None)`: a filter naming a value this shard never saw: nothing matches; so
        // does a value with no bitmap for this instance.
        let module = match module {
            None => None,
            Some(m) => match m.and_then(|m| self.module(instance, m)) {
                Some(b) => Some(b),
                None => return 0,
            },
        };
        let job = match job {
            None => None,
            Some(j) => match j.and_then(|j| self.job(instance, j)) {
                Some(b) => Some(b),
                None => return 0,
            },
        };
        // Intersect the filters once, then count against each status bitmap.
        let filter: Option<Cow<'_, RoaringBitmap>> = match (module, job) {
            (None, None) => None,
            (Some(b), None) | (None, Some(b)) => Some(Cow::Borrowed(b)),
            (Some(a), Some(b)) => Some(Cow::Owned(a & b)),
        };
        statuses
            .iter()
            .map(|status| {
                let set = &by_status[status as usize];
                filter
                    .as_ref()
                    .map_or(set.len(), |f| f.intersection_len(set))
            })
            .sum()
    }

    /// Approximate heap bytes (roaring's serialized size is within a few bytes of its heap).
    pub(crate) fn heap_bytes(&self) -> usize {
        let per_entry = std::mem::size_of::<((InstanceId, Sym), RoaringBitmap)>() + 1;
        self.status
            .iter()
            .flatten()
            .map(|b| b.serialized_size() + std::mem::size_of::<RoaringBitmap>())
            .sum::<usize>()
            + self
                .module
                .values()
                .chain(self.job.values())
                .map(|b| b.serialized_size() + per_entry)
                .sum::<usize>()
    }

    /// Checks the invariant against the shard's live rows, given as (row, instance, status,
    /// folded module, job): every one in exactly its three bitmaps, and nothing else held.
    pub(crate) fn validate(
        &self,
        live: impl Iterator<Item = (u32, InstanceId, TaskStatus, Sym, Sym)>,
    ) -> Result<(), String> {
        if self
            .module
            .values()
            .chain(self.job.values())
            .any(|b| b.is_empty())
        {
            return Err("an empty bitmap is kept".into());
        }
        let mut rows = 0u64;
        for (row, instance, status, module, job) in live {
            rows += 1;
            let in_status = self
                .status
                .get(instance.idx())
                .is_some_and(|s| s[status as usize].contains(row));
            let in_module = self
                .module(instance, module)
                .is_some_and(|b| b.contains(row));
            let in_job = self.job(instance, job).is_some_and(|b| b.contains(row));
            if !(in_status && in_module && in_job) {
                return Err(format!("row {row} missing from its bitmaps"));
            }
        }
        let status_total: u64 = self.status.iter().flatten().map(|b| b.len()).sum();
        let module_total: u64 = self.module.values().map(|b| b.len()).sum();
        let job_total: u64 = self.job.values().map(|b| b.len()).sum();
        if status_total != rows || module_total != rows || job_total != rows {
            return Err(format!(
                "bitmaps hold {status_total}/{module_total}/{job_total} rows for {rows} live rows"
            ));
        }
        Ok(())
    }
}
