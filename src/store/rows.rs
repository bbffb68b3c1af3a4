//! The rows: one packed 32-byte record a task, and what writes do to them (insert, replace,
//! restatus, remove), keeping the posting lists, the bitmaps and the extras in step.

use super::extras::RowExtras;
use super::taskkey::{IdText, TaskKey};
use super::{DeviceIdx, InstanceId, RowIdx, Shard, Variant, VariantId};
use crate::model::{PlainTask, RecordRef, TaskStatus, Timestamp};
use crate::table::intern::{ByteSlab, SlabRef};

/// Marks a free row in the `status` column.
pub(crate) const FREE_ROW: u8 = u8::MAX;

/// One task's fixed-size fields, packed to 32 bytes at 4-byte alignment. Point queries read
/// every field of a returned task: one row array instead of six column arrays turns six
/// cache misses a task into one (574 k against 494 k queries/s of the benchmark mix on a
/// 300,000-device fleet, medians of five runs each, interleaved).
#[repr(C, packed(4))]
#[derive(Clone, Copy)]
pub(super) struct Row {
    /// The task id: the number, or where its bytes are in the key slab.
    pub(super) key: TaskKey,
    pub(super) device: DeviceIdx,
    /// The variant id in the low 24 bits, the [`TaskStatus`] byte (or [`FREE_ROW`]) above.
    variant_status: u32,
    /// `utcCreate`, epoch milliseconds.
    pub(super) created: i64,
    /// `utcModified`, epoch milliseconds.
    pub(super) modified: i64,
}

impl Row {
    pub(super) const FREE: Row = Row {
        key: TaskKey::FREE,
        device: DeviceIdx(0),
        variant_status: (FREE_ROW as u32) << 24,
        created: 0,
        modified: 0,
    };

    pub(super) fn variant(&self) -> VariantId {
        VariantId(self.variant_status & 0x00FF_FFFF)
    }

    pub(super) fn status(&self) -> u8 {
        (self.variant_status >> 24) as u8
    }

    pub(super) fn set_variant_status(&mut self, variant: VariantId, status: u8) {
        self.variant_status = variant.0 & 0x00FF_FFFF | u32::from(status) << 24;
    }

    pub(super) fn created(&self) -> i64 {
        self.created
    }

    pub(super) fn modified(&self) -> i64 {
        self.modified
    }
}

impl Shard {
    pub(crate) fn row_is_live(&self, r: RowIdx) -> bool {
        self.rows
            .get(r.idx())
            .is_some_and(|row| row.status() != FREE_ROW)
    }

    /// The task id of row `r`.
    pub(crate) fn row_id(&self, r: RowIdx) -> IdText<'_> {
        self.key_text(self.rows[r.idx()].key)
    }

    pub(super) fn key_text(&self, key: TaskKey) -> IdText<'_> {
        match key.in_slab() {
            Some(at) => {
                let (text, plain) = self.keys.get_plain(at);
                IdText::Slab(text, plain)
            }
            None => IdText::digits(key.number().unwrap_or_default()),
        }
    }

    /// True when row `r`'s task id is `id`.
    pub(crate) fn row_id_is(&self, r: RowIdx, id: &str) -> bool {
        let key = self.rows[r.idx()].key;
        match key.in_slab() {
            Some(at) => self.keys.get(at) == id,
            None => TaskKey::numeric(id) == Some(key),
        }
    }

    /// The answer's order of two rows: (`utcCreate`, task id bytes).
    pub(super) fn row_order(&self, a: RowIdx, b: RowIdx) -> std::cmp::Ordering {
        let (ra, rb) = (&self.rows[a.idx()], &self.rows[b.idx()]);
        ra.created()
            .cmp(&rb.created())
            .then_with(|| self.row_id(a).cmp_bytes(&self.row_id(b)))
    }

    pub(crate) fn row_device(&self, r: RowIdx) -> DeviceIdx {
        self.rows[r.idx()].device
    }

    pub(crate) fn row_instance(&self, r: RowIdx) -> InstanceId {
        self.devices[self.rows[r.idx()].device.idx()].instance
    }

    pub(crate) fn row_variant(&self, r: RowIdx) -> &Variant {
        &self.variants[self.rows[r.idx()].variant().idx()].variant
    }

    /// `read` applied to each of the row's nine stored strings (its slab and entry), and
    /// `id` (the task id, which a row may keep as a number), in [`crate::JSON_STRING_ORDER`]:
    /// the one list both readers below take them from.
    #[inline(always)]
    pub(super) fn row_strings<'s, T>(
        &'s self,
        row: &Row,
        read: impl Fn(&'s ByteSlab, SlabRef) -> T,
        id: T,
    ) -> [T; 10] {
        let dev = &self.devices[row.device.idx()];
        let v = &self.variants[row.variant().idx()].variant;
        let dict = |sym| {
            let (slab, at) = self.dict.entry(sym);
            read(slab, at)
        };
        [
            dict(v.dest),
            read(&self.device_strs, dev.name),
            dict(v.firmware),
            read(&self.device_strs, dev.iot),
            dict(v.job),
            dict(v.module),
            dict(dev.product_key),
            dict(v.product_name),
            dict(v.src),
            id,
        ]
    }

    /// The row's ten strings in [`crate::JSON_STRING_ORDER`], each with its plain flag; `id`
    /// is the row's task id ([`Shard::row_id`]).
    pub(crate) fn row_json_strings<'s>(
        &'s self,
        r: RowIdx,
        id: &'s IdText<'_>,
    ) -> [(&'s str, bool); 10] {
        let id = (id.as_str(), id.plain());
        self.row_strings(&self.rows[r.idx()], ByteSlab::get_plain, id)
    }

    /// The row as [`PlainTask`] when all ten strings are plain (see
    /// [`TaskFields::plain_json`](crate::TaskFields::plain_json)); `None` otherwise. `id` is
    /// the row's task id ([`Shard::row_id`]).
    pub(crate) fn row_plain_json<'s>(
        &'s self,
        r: RowIdx,
        id: &'s IdText<'_>,
    ) -> Option<PlainTask<'s>> {
        let row = &self.rows[r.idx()];
        let parts = self.row_strings(row, ByteSlab::plain_bytes, (id.as_bytes(), id.plain()));
        // One branch for all ten.
        if !parts.iter().fold(true, |all, &(_, plain)| all & plain) {
            return None;
        }
        Some(PlainTask {
            strings: parts.map(|(bytes, _)| bytes),
            status: TaskStatus::from_u8(row.status())?,
            utc_create: Timestamp::from_millis(row.created()),
            utc_modified: Timestamp::from_millis(row.modified()),
        })
    }

    pub(crate) fn row_status(&self, r: RowIdx) -> TaskStatus {
        TaskStatus::from_u8(self.rows[r.idx()].status()).unwrap_or(TaskStatus::Canceled)
    }

    pub(crate) fn row_created(&self, r: RowIdx) -> Timestamp {
        Timestamp::from_millis(self.rows[r.idx()].created())
    }

    pub(crate) fn row_modified(&self, r: RowIdx) -> Timestamp {
        Timestamp::from_millis(self.rows[r.idx()].modified())
    }

    /// Rows held, live or free (one past the highest row index).
    pub(crate) fn row_slots(&self) -> u32 {
        self.rows.len() as u32
    }

    /// True when row `r` holds a finished task modified before `cutoff_ms` (the retention
    /// horizon's cutoff): a task forgotten, whose row the sweep frees.
    pub(crate) fn row_forgotten(&self, r: RowIdx, cutoff_ms: i64) -> bool {
        let row = &self.rows[r.idx()];
        row.status() != FREE_ROW
            && row.modified() < cutoff_ms
            && !self.row_status(r).is_unfinished()
    }

    /// Every live row from row `from` on.
    pub(crate) fn rows_from(&self, from: u32) -> impl Iterator<Item = RowIdx> + '_ {
        let from = (from as usize).min(self.rows.len());
        self.rows[from..]
            .iter()
            .enumerate()
            .filter(|(_, row)| row.status() != FREE_ROW)
            .map(move |(i, _)| RowIdx((from + i) as u32))
    }

    /// Every live row.
    pub(crate) fn rows(&self) -> impl Iterator<Item = RowIdx> + '_ {
        self.rows
            .iter()
            .enumerate()
            .filter(|(_, row)| row.status() != FREE_ROW)
            .map(|(i, _)| RowIdx(i as u32))
    }

    /// Inserts a new task of device `d`; `None` when the shard is full.
    pub(crate) fn insert_task(&mut self, d: DeviceIdx, rec: &RecordRef<'_>) -> Option<RowIdx> {
        if self.free_rows.is_empty() && self.rows.len() >= self.capacity as usize {
            return None;
        }
        // Everything that can fail comes first, so that a failure leaves nothing behind.
        let variant = self.intern_variant(rec)?;
        let Some(extras) = self.intern_extras(rec) else {
            self.release_variant(variant);
            return None;
        };
        let key = match TaskKey::numeric(rec.task_id) {
            Some(key) => key,
            None => {
                let Some(at) = self.keys.alloc(rec.task_id) else {
                    self.release_variant(variant);
                    self.release_extras(extras);
                    return None;
                };
                TaskKey::slab(at)
            }
        };
        let row = match self.free_rows.pop() {
            Some(r) => RowIdx(r),
            None => {
                let r = self.rows.len();
                self.rows.push(Row::FREE);
                self.extras.push(RowExtras::EMPTY);
                RowIdx(r as u32)
            }
        };
        self.rows[row.idx()].key = key;
        self.extras[row.idx()] = extras;
        self.write_row(row, d, variant, rec);
        self.link(row);
        Some(row)
    }

    /// Replaces the task in `row` with `rec`, now belonging to device `d` (same task id);
    /// `false`, with nothing changed, when the shard's string space is full.
    pub(crate) fn replace_task(&mut self, row: RowIdx, d: DeviceIdx, rec: &RecordRef<'_>) -> bool {
        let same_variant = self.row_variant_matches(row, rec);
        let same_extras = self.row_extras_match(row, rec);
        self.replace_task_known(row, d, rec, same_variant, same_extras)
    }

    /// [`Shard::replace_task`] when the caller already knows whether the record's seven
    /// shared strings equal the row's (`same_variant`), and its progress and description
    /// (`same_extras`).
    pub(crate) fn replace_task_known(
        &mut self,
        row: RowIdx,
        d: DeviceIdx,
        rec: &RecordRef<'_>,
        same_variant: bool,
        same_extras: bool,
    ) -> bool {
        // Everything that can fail comes first, so that a failure leaves nothing behind.
        if !same_extras && !self.set_extras(row, rec) {
            return false;
        }
        let old = self.rows[row.idx()].variant();
        // Status changes keep the tuple: reuse the variant without touching the dictionary.
        let variant = if same_variant {
            old
        } else {
            let Some(new) = self.intern_variant(rec) else {
                return false;
            };
            new
        };
        let i = row.idx();
        let before = self.rows[i];
        if variant == old && before.device == d && before.created() == rec.utc_create.as_millis() {
            // The usual event: a status change. The posting position (by creation time and
            // id) and the module and job bitmaps stay; only the status moves.
            self.restatus(row, rec.status);
            self.rows[i].modified = rec.utc_modified.as_millis();
            return true;
        }
        self.unlink(row);
        if variant != old {
            self.release_variant(old);
        }
        self.write_row(row, d, variant, rec);
        self.link(row);
        true
    }

    /// Moves `row` to `status`: status bitmap, and in or out of its device's posting list.
    pub(super) fn restatus(&mut self, row: RowIdx, status: TaskStatus) {
        let i = row.idx();
        let from = self.row_status(row);
        if from == status {
            return;
        }
        let d = self.rows[i].device;
        let instance = self.devices[d.idx()].instance;
        self.bitmaps.restatus(instance, from, status, row.0);
        let variant = self.rows[i].variant();
        self.rows[i].set_variant_status(variant, status as u8);
        // The locality entry stays: it names a live row of the device, which a status
        // change keeps (rewriting it here cost upserts a miss on a random line of the table).
        match (from.is_unfinished(), status.is_unfinished()) {
            (true, false) => {
                let list = &mut self.devices[d.idx()].unfinished;
                if let Some(pos) = list.iter().position(|&r| r == row) {
                    list.remove(pos);
                }
            }
            (false, true) => {
                let pos = self.posting_position(d, row);
                self.devices[d.idx()].unfinished.insert(pos, row);
            }
            _ => {}
        }
    }

    /// Removes the task in `row`; its row and id bytes are reused by later inserts.
    pub(crate) fn remove_task(&mut self, row: RowIdx) {
        self.unlink(row);
        self.release_variant(self.rows[row.idx()].variant());
        let extras = std::mem::replace(&mut self.extras[row.idx()], RowExtras::EMPTY);
        self.release_extras(extras);
        if let Some(at) = self.rows[row.idx()].key.in_slab() {
            self.keys.free(at);
        }
        self.rows[row.idx()].set_variant_status(VariantId(0), FREE_ROW);
        self.free_rows.push(row.0);
    }

    pub(super) fn write_row(
        &mut self,
        row: RowIdx,
        d: DeviceIdx,
        variant: VariantId,
        rec: &RecordRef<'_>,
    ) {
        let i = row.idx();
        let row = &mut self.rows[i];
        row.device = d;
        row.set_variant_status(variant, rec.status as u8);
        row.created = rec.utc_create.as_millis();
        row.modified = rec.utc_modified.as_millis();
    }

    /// Adds a written row to its device's posting list (when unfinished) and to the bitmaps.
    pub(super) fn link(&mut self, row: RowIdx) {
        let status = self.row_status(row);
        let d = self.rows[row.idx()].device;
        if status.is_unfinished() {
            let pos = self.posting_position(d, row);
            self.posting_insert(d, pos, row);
        }
        let instance = self.devices[d.idx()].instance;
        let v = self.variants[self.rows[row.idx()].variant().idx()].variant;
        self.bitmaps
            .insert(instance, status, v.module_fold, v.job, row.0);
    }

    pub(super) fn unlink(&mut self, row: RowIdx) {
        let status = self.row_status(row);
        let d = self.rows[row.idx()].device;
        if status.is_unfinished() {
            let list = &mut self.devices[d.idx()].unfinished;
            if let Some(pos) = list.iter().position(|&r| r == row) {
                list.remove(pos);
            }
        }
        // The entry may name this row, which is leaving the device (removed or moved).
        self.refresh_locality(d);
        let instance = self.devices[d.idx()].instance;
        let v = self.variants[self.rows[row.idx()].variant().idx()].variant;
        self.bitmaps
            .remove(instance, status, v.module_fold, v.job, row.0);
    }

    /// Where `row` goes in device `d`'s posting list, ordered by (created, task id).
    pub(super) fn posting_position(&self, d: DeviceIdx, row: RowIdx) -> usize {
        self.devices[d.idx()]
            .unfinished
            .partition_point(|&r| self.row_order(r, row).is_lt())
    }
}
