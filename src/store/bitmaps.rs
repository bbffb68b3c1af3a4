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
use smallvec::SmallVec;

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
    job: HashMap<(InstanceId, Sym), RowSet>,
}

/// Rows inline before a job's set becomes a bitmap.
const FEW_ROWS: usize = 4;

/// A job's rows: a few inline, a roaring bitmap past [`FEW_ROWS`]. Where jobs are many and
/// small (a job's few tasks spread over the shards), a one-row roaring bitmap costs its map
/// entry, a container vector and an array allocation, about 96 bytes; inline rows cost the
/// entry alone.
pub(crate) enum RowSet {
    Few(SmallVec<[u32; FEW_ROWS]>),
    Many(RoaringBitmap),
}

impl Default for RowSet {
    fn default() -> RowSet {
        RowSet::Few(SmallVec::new())
    }
}

impl RowSet {
    fn insert(&mut self, row: u32) {
        match self {
            RowSet::Few(rows) if rows.len() < FEW_ROWS => {
                if !rows.contains(&row) {
                    rows.push(row);
                }
            }
            RowSet::Few(rows) => {
                let mut bitmap: RoaringBitmap = rows.iter().copied().collect();
                bitmap.insert(row);
                *self = RowSet::Many(bitmap);
            }
            RowSet::Many(bitmap) => {
                bitmap.insert(row);
            }
        }
    }

    fn remove(&mut self, row: u32) {
        match self {
            RowSet::Few(rows) => {
                if let Some(at) = rows.iter().position(|&r| r == row) {
                    rows.swap_remove(at);
                }
            }
            RowSet::Many(bitmap) => {
                bitmap.remove(row);
            }
        }
    }

    pub(crate) fn len(&self) -> u64 {
        match self {
            RowSet::Few(rows) => rows.len() as u64,
            RowSet::Many(bitmap) => bitmap.len(),
        }
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn contains(&self, row: u32) -> bool {
        match self {
            RowSet::Few(rows) => rows.contains(&row),
            RowSet::Many(bitmap) => bitmap.contains(row),
        }
    }

    /// Heap bytes beyond the set itself.
    fn heap_bytes(&self) -> usize {
        match self {
            RowSet::Few(_) => 0,
            RowSet::Many(bitmap) => bitmap.serialized_size(),
        }
    }
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
        if let Some(bitmap) = self.module.get_mut(&(instance, module)) {
            bitmap.remove(row);
            if bitmap.is_empty() {
                self.module.remove(&(instance, module));
            }
        }
        if let Some(rows) = self.job.get_mut(&(instance, job)) {
            rows.remove(row);
            if rows.is_empty() {
                self.job.remove(&(instance, job));
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

    pub(crate) fn job(&self, instance: InstanceId, job: Sym) -> Option<&RowSet> {
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
        // A job of a few rows: each row looked up in the other sets.
        if let Some(RowSet::Few(rows)) = job {
            return rows
                .iter()
                .filter(|&&r| module.is_none_or(|m| m.contains(r)))
                .filter(|&&r| statuses.iter().any(|s| by_status[s as usize].contains(r)))
                .count() as u64;
        }
        let job = job.map(|j| match j {
            RowSet::Many(bitmap) => bitmap,
            RowSet::Few(_) => unreachable!("counted above"),
        });
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
        let module_entry = std::mem::size_of::<((InstanceId, Sym), RoaringBitmap)>() + 1;
        let job_entry = std::mem::size_of::<((InstanceId, Sym), RowSet)>() + 1;
        self.status
            .iter()
            .flatten()
            .map(|b| b.serialized_size() + std::mem::size_of::<RoaringBitmap>())
            .sum::<usize>()
            + self
                .module
                .values()
                .map(|b| b.serialized_size() + module_entry)
                .sum::<usize>()
            + self
                .job
                .values()
                .map(|r| r.heap_bytes() + job_entry)
                .sum::<usize>()
    }

    /// Checks the invariant against the shard's live rows, given as (row, instance, status,
    /// folded module, job): every one in exactly its three bitmaps, and nothing else held.
    pub(crate) fn validate(
        &self,
        live: impl Iterator<Item = (u32, InstanceId, TaskStatus, Sym, Sym)>,
    ) -> Result<(), String> {
        if self.module.values().any(|b| b.is_empty()) || self.job.values().any(|r| r.is_empty()) {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A job's set answers the same inline and as a bitmap, across the change and back down
    /// to empty; counts through a small and a large job agree with counting row by row.
    #[test]
    fn a_job_set_answers_alike_inline_and_as_a_bitmap() {
        let mut set = RowSet::default();
        for row in 0..10u32 {
            set.insert(row * 3);
            assert_eq!(set.len(), u64::from(row) + 1);
            assert!(matches!(set, RowSet::Few(_)) == (row < FEW_ROWS as u32));
            assert!((0..=row).all(|r| set.contains(r * 3)) && !set.contains(1));
        }
        for row in 0..10u32 {
            set.remove(row * 3);
            assert!(!set.contains(row * 3));
        }
        assert!(set.is_empty());

        let (inst, module, other) = (InstanceId(0), Sym(1), Sym(2));
        let (small, large) = (Sym(10), Sym(11));
        let mut maps = Bitmaps::default();
        let mut rows = Vec::new();
        for row in 0..40u32 {
            let status = TaskStatus::ALL[row as usize % 7];
            let m = if row % 3 == 0 { other } else { module };
            let job = if row < 3 { small } else { large };
            maps.insert(inst, status, m, job, row);
            rows.push((row, status, m, job));
        }
        let statuses = StatusSet::only(TaskStatus::Queued).with(TaskStatus::Failed);
        for job in [small, large] {
            for m in [None, Some(module), Some(other)] {
                let naive = rows
                    .iter()
                    .filter(|r| r.3 == job && m.is_none_or(|m| r.2 == m))
                    .filter(|r| statuses.contains(r.1))
                    .count() as u64;
                let counted = maps.count(inst, statuses, m.map(Some), Some(Some(job)));
                assert_eq!(counted, naive, "job {job:?}, module {m:?}");
            }
        }
    }
}
