//! The device query's plans: the posting list probed row by row, or the module bitmap when it
//! is much smaller than the device's list.

use roaring::RoaringBitmap;
use smallvec::SmallVec;

use super::{DeviceIdx, RowIdx, Shard};
use crate::model::StatusSet;
use crate::table::intern::Sym;

impl Shard {
    /// Appends device `d`'s unfinished rows passing both filters, in answer order.
    ///
    /// Plan choice: walking the device's sorted posting list and probing each row's status and
    /// variant costs a few ns a row and needs no sort; walking the module bitmap costs its
    /// length plus a sort of what it keeps. `benches/planner.rs` (one shard, a module filter
    /// keeping 2 rows; probe / bitmap with 2 rows / bitmap with N/8 − 1 rows):
    ///
    /// | device rows N | probe | bitmap, 2 rows | bitmap, N/8 − 1 rows |
    /// |---|---|---|---|
    /// | 64 | 132 ns | 136 ns | 147 ns |
    /// | 200 | 219 ns | 134 ns | 211 ns |
    /// | 2,000 | 1.29 µs | 136 ns | 1.08 µs |
    /// | 20,000 | 12.1 µs | 136 ns | 10.3 µs |
    ///
    /// So: the bitmap plan when the device has at least [`BITMAP_PLAN_MIN_ROWS`] rows and the
    /// module bitmap is [`BITMAP_PLAN_RATIO`] times smaller than the posting list.
    pub(crate) fn collect_unfinished(
        &self,
        d: DeviceIdx,
        module: Option<Sym>,
        statuses: StatusSet,
        out: &mut SmallVec<[RowIdx; 8]>,
    ) {
        match self.plan(d, module) {
            Plan::Probe => self.collect_by_probe(d, module, statuses, out),
            Plan::ModuleBitmap(bitmap) => {
                self.collect_by_bitmap(d, bitmap, statuses, out);
            }
        }
    }

    /// Picks the cheaper plan for device `d` and the module filter.
    pub(crate) fn plan(&self, d: DeviceIdx, module: Option<Sym>) -> Plan<'_> {
        let dev = &self.devices[d.idx()];
        if let Some(m) = module {
            if dev.unfinished.len() >= BITMAP_PLAN_MIN_ROWS {
                if let Some(bitmap) = self.bitmaps.module(dev.instance, m) {
                    if (bitmap.len() as usize).saturating_mul(BITMAP_PLAN_RATIO)
                        < dev.unfinished.len()
                    {
                        return Plan::ModuleBitmap(bitmap);
                    }
                }
            }
        }
        Plan::Probe
    }

    /// Starts loading everything serializing `rows` will read (row, task id, device name, the
    /// variant and its strings), in one short loop: the cache misses of these tasks then
    /// overlap instead of arriving one field and one task at a time. Rows and variants are
    /// read (their fields say where the strings are); the strings are prefetched, which
    /// leaves the loop free to go on (plain reads of each string's first and last byte, as
    /// before: 1,012/995/974/1,098/1,158/984/1,065 against 960/980/985/1,037/1,040/994/960
    /// ns a request, 1,000,000 devices).
    pub(crate) fn prefetch_answer(&self, rows: &[RowIdx]) {
        for &r in rows {
            let Some(row) = self.rows.get(r.idx()) else {
                continue;
            };
            if let Some(at) = row.key.in_slab() {
                self.keys.prefetch(at);
            }
            if let Some(dev) = self.devices.get(row.device.idx()) {
                self.device_strs.prefetch(dev.name);
            }
            if let Some(slot) = self.variants.get(row.variant().idx()) {
                let v = &slot.variant;
                for sym in [v.job, v.firmware, v.product_name, v.module, v.src, v.dest] {
                    self.dict.prefetch(sym);
                }
            }
        }
    }

    pub(crate) fn collect_by_probe(
        &self,
        d: DeviceIdx,
        module: Option<Sym>,
        statuses: StatusSet,
        out: &mut SmallVec<[RowIdx; 8]>,
    ) {
        let all = statuses == StatusSet::UNFINISHED;
        for &r in &self.devices[d.idx()].unfinished {
            let i = r.idx();
            if !all && !statuses.contains(self.row_status(r)) {
                continue;
            }
            if let Some(m) = module {
                if self.variants[self.rows[i].variant().idx()]
                    .variant
                    .module_fold
                    != m
                {
                    continue;
                }
            }
            out.push(r);
        }
    }

    pub(crate) fn collect_by_bitmap(
        &self,
        d: DeviceIdx,
        bitmap: &RoaringBitmap,
        statuses: StatusSet,
        out: &mut SmallVec<[RowIdx; 8]>,
    ) {
        let start = out.len();
        for r in bitmap.iter().map(RowIdx) {
            if self.rows[r.idx()].device == d {
                let status = self.row_status(r);
                if status.is_unfinished() && statuses.contains(status) {
                    out.push(r);
                }
            }
        }
        out[start..].sort_unstable_by(|&a, &b| self.row_order(a, b));
    }
}

/// A device must have at least this many unfinished rows before the module-bitmap plan is
/// considered: at 64 rows the probe is still as fast, at 200 the bitmap wins (table above).
pub(crate) const BITMAP_PLAN_MIN_ROWS: usize = 128;
/// The module bitmap must be this many times smaller than the posting list.
pub(crate) const BITMAP_PLAN_RATIO: usize = 8;

/// How a device query is executed.
pub(crate) enum Plan<'a> {
    /// Walk the device's sorted posting list, probing status and module columns.
    Probe,
    /// Walk the (smaller) module bitmap, keep the device's unfinished rows, sort.
    ModuleBitmap(&'a RoaringBitmap),
}
