//! Retention (reference section 2): a horizon behind the store's clock (the newest
//! `utcModified` it has accepted) past which finished tasks and tombstones are forgotten and
//! records are stale on arrival.
//!
//! Forgetting is logical at once and physical in arrears: from the moment the clock moves,
//! every read that lists tasks skips a finished task past the horizon, and a sweep that
//! walks the shards' rows a few at a time, [`ROWS_PER_WRITE`] for each write, deletes them
//! and frees their rows for reuse. So no write pauses for the whole store, and a store holds
//! at most about a third more rows than the tasks within the horizon: a sweep of `R` rows
//! takes `R / 4` writes, and those writes can finish at most that many tasks.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::directory::Directory;
use super::Engine;
use crate::model::Timestamp;
use crate::store::RowIdx;

/// Rows the sweep examines for each write.
const ROWS_PER_WRITE: usize = 4;
/// The sweep runs once this many rows are owed, so that a stream of single upserts takes a
/// shard's lock for it once in 64 writes.
const SWEEP_STEP: usize = 256;
/// Most rows examined under one hold of a shard's lock.
const SWEEP_SLICE: usize = 4096;
/// Tombstones are purged once they have doubled since the last purge, and not below this.
const TOMB_PURGE_MIN: usize = 1024;

/// The retention state, kept with the writers' directory.
#[derive(Debug, Default)]
pub(super) struct Retention {
    /// The newest `utcModified` accepted; `None` before the first write (or without a
    /// horizon: the clock is kept only when it is used).
    pub(super) clock: Option<Timestamp>,
    /// Where the sweep stands: a shard, and a row in it.
    sweep_shard: usize,
    sweep_row: u32,
    /// Rows the sweep owes the writes since it last ran.
    owed: usize,
    /// Tombstones held after the last purge.
    tombs_after_purge: usize,
}

/// The horizon in milliseconds, from a builder's duration (saturating).
pub(super) fn horizon_millis(horizon: Duration) -> i64 {
    i64::try_from(horizon.as_millis()).unwrap_or(i64::MAX)
}

impl Engine {
    /// The retention horizon, `None` when the engine keeps everything
    /// ([`EngineBuilder::retention`](crate::EngineBuilder::retention)).
    pub fn retention(&self) -> Option<Duration> {
        self.inner
            .horizon
            .map(|ms| Duration::from_millis(ms.unsigned_abs()))
    }

    /// The store's clock: the newest `utcModified` it has accepted (a record or a removal),
    /// never the wall clock, so that a replay of the same writes ends in the same state.
    /// `None` before the first write, and always for an engine without a retention horizon
    /// (which keeps no clock).
    pub fn clock(&self) -> Option<Timestamp> {
        self.inner.writer.lock().retention.clock
    }

    /// The instant before which finished tasks and tombstones are forgotten and records
    /// are stale on arrival: clock − horizon; `None` without a horizon or a clock.
    pub(super) fn cutoff(&self, dir: &Directory) -> Option<Timestamp> {
        let horizon = self.inner.horizon?;
        let clock = dir.retention.clock?;
        Some(Timestamp::from_millis(
            clock.as_millis().saturating_sub(horizon),
        ))
    }

    /// The cutoff as readers see it, without the writers' mutex: `i64::MIN` (nothing
    /// forgotten) when there is none.
    pub(super) fn read_cutoff(&self) -> i64 {
        self.inner.cutoff.load(Ordering::Acquire)
    }

    /// Moves the clock to `newest` if that is later, after `writes` accepted writes, and
    /// pays the sweep what they owe. Without a horizon, nothing.
    pub(super) fn advance_clock(&self, dir: &mut Directory, newest: Timestamp, writes: usize) {
        if self.inner.horizon.is_none() {
            return;
        }
        let r = &mut dir.retention;
        if r.clock.is_none_or(|c| newest > c) {
            r.clock = Some(newest);
            if let Some(cut) = self.cutoff(dir) {
                self.inner.cutoff.store(cut.as_millis(), Ordering::Release);
            }
        }
        let r = &mut dir.retention;
        r.owed = r.owed.saturating_add(writes.saturating_mul(ROWS_PER_WRITE));
        if r.owed >= SWEEP_STEP {
            let rows = std::mem::take(&mut r.owed);
            self.sweep(dir, rows);
        }
        let Some(cut) = self.cutoff(dir) else {
            return;
        };
        let held = dir.tombs.len();
        if held >= TOMB_PURGE_MIN.max(2 * dir.retention.tombs_after_purge) {
            dir.tombs.forget_before(cut);
            dir.retention.tombs_after_purge = dir.tombs.len();
        }
    }

    /// Examines `rows` rows from where the sweep stands, deleting the finished tasks past
    /// the horizon among them; moves on to the next shard at the end of one.
    fn sweep(&self, dir: &mut Directory, mut rows: usize) {
        let Some(cut) = self.cutoff(dir) else {
            return;
        };
        let shards = self.inner.shards.len();
        // A whole lap at most: rows beyond the store's would find nothing new.
        let mut lap = 0;
        while rows > 0 && lap < shards {
            let s = dir.retention.sweep_shard % shards;
            let from = dir.retention.sweep_row;
            let (expired, end, slots) = {
                let shard = self.inner.shards[s].0.read();
                let slots = shard.row_slots();
                let end = slots.min(from.saturating_add(rows.min(SWEEP_SLICE) as u32));
                let expired: Vec<(u64, RowIdx)> = (from..end)
                    .map(RowIdx)
                    .filter(|&r| shard.row_forgotten(r, cut.as_millis()))
                    .map(|r| {
                        let hash = self.task_hash(shard.row_instance(r), shard.row_id(r).as_str());
                        (hash, r)
                    })
                    .collect();
                (expired, end, slots)
            };
            rows = rows.saturating_sub(((end - from.min(end)) as usize).max(1));
            if !expired.is_empty() {
                // Unlinked from the directory first: a directory entry's hash is read from
                // its row.
                for &(hash, r) in &expired {
                    dir.table.remove(hash, self.loc(s, r.0).0);
                }
                let mut shard = self.inner.shards[s].0.write();
                for &(_, r) in &expired {
                    shard.remove_task(r);
                }
            }
            if end >= slots {
                dir.retention.sweep_shard = (s + 1) % shards;
                dir.retention.sweep_row = 0;
                lap += 1;
            } else {
                dir.retention.sweep_row = end;
            }
        }
    }

    /// Forgets now, rather than in arrears, every finished task and tombstone past the
    /// horizon (a walk over every row: for tests, and before measuring memory). Nothing
    /// without a horizon.
    pub fn forget_expired(&self) {
        let mut dir = self.inner.writer.lock();
        let Some(cut) = self.cutoff(&dir) else {
            return;
        };
        dir.tombs.forget_before(cut);
        dir.retention.tombs_after_purge = dir.tombs.len();
        dir.retention.sweep_shard = 0;
        dir.retention.sweep_row = 0;
        self.sweep(&mut dir, usize::MAX);
    }
}
