//! The shard's invariants, checked whole: for tests and fuzzing.

use hashbrown::HashMap;

use super::rows::FREE_ROW;
use super::taskkey::TaskKey;
use super::{device_hash, fold_module, DeviceIdx, Locality, RowExtras, RowIdx, Shard, MODULE_MAX};
use crate::table::intern::Sym;

impl Shard {
    /// Checks every invariant between the columns, the dictionaries and the indexes.
    pub(crate) fn validate(&self) -> Result<(), String> {
        self.dict.validate()?;
        let n = self.rows.len();
        let mut free: Vec<u32> = self.free_rows.clone();
        free.sort_unstable();
        free.dedup();
        if free.len() != self.free_rows.len() {
            return Err("a row is on the free list twice".into());
        }
        for r in 0..n as u32 {
            let is_free = self.rows[r as usize].status() == FREE_ROW;
            if is_free != free.binary_search(&r).is_ok() {
                return Err(format!("row {r}: free marker and free list disagree"));
            }
        }
        let free_keys = self.keys.free_offsets();
        let slab_keys = || {
            self.rows()
                .filter_map(|r| Some((r, self.rows[r.idx()].key.in_slab()?.0)))
        };
        if let Some((r, _)) = slab_keys().find(|(_, at)| free_keys.contains(at)) {
            return Err(format!("row {r:?} holds a freed task id entry"));
        }
        if let Some(r) = self.rows().find(|&r| {
            let key = self.rows[r.idx()].key;
            key.in_slab().is_some() && TaskKey::numeric(self.row_id(r).as_str()).is_some()
        }) {
            return Err(format!("row {r:?} keeps a numeric task id in the slab"));
        }
        let mut keys: Vec<u32> = slab_keys().map(|(_, at)| at).collect();
        keys.sort_unstable();
        if keys.windows(2).any(|w| w[0] == w[1]) {
            return Err("two rows share one task id entry".into());
        }
        // Variant reference counts and string reference counts, recomputed.
        let mut variant_refs = vec![0u32; self.variants.len()];
        for r in self.rows() {
            variant_refs[self.rows[r.idx()].variant().idx()] += 1;
        }
        let free_variants: std::collections::HashSet<u32> =
            self.variant_free.iter().copied().collect();
        let mut sym_refs: HashMap<Sym, u32> = HashMap::new();
        for (i, slot) in self.variants.iter().enumerate() {
            if free_variants.contains(&(i as u32)) {
                if variant_refs[i] != 0 {
                    return Err(format!("free variant {i} is used"));
                }
                continue;
            }
            if slot.refs != variant_refs[i] || slot.refs == 0 {
                return Err(format!(
                    "variant {i}: {} refs recorded, {} rows use it",
                    slot.refs, variant_refs[i]
                ));
            }
            if self.find_variant_text(self.variant_text(&slot.variant)) != Some(i as u32) {
                return Err(format!("variant {i} does not look up to itself"));
            }
            let v = slot.variant;
            for s in [
                v.job,
                v.firmware,
                v.product_name,
                v.module,
                v.module_fold,
                v.src,
                v.dest,
                v.timeout,
            ] {
                *sym_refs.entry(s).or_default() += 1;
            }
            let mut buf = [0u8; MODULE_MAX];
            if fold_module(self.dict.get(v.module), &mut buf) != self.dict.get(v.module_fold) {
                return Err(format!("variant {i}: module fold is wrong"));
            }
        }
        if self.variant_table.len() != self.variants.len() - self.variant_free.len() {
            return Err("variant table size differs from live variants".into());
        }
        for (i, d) in self.devices.iter().enumerate() {
            if self.device_is_live(DeviceIdx(i as u32)) {
                *sym_refs.entry(d.product_key).or_default() += 1;
            }
        }
        let mut free_devices = self.free_devices.clone();
        free_devices.sort_unstable();
        free_devices.dedup();
        if free_devices.len() != self.free_devices.len() {
            return Err("a device slot is on the free list twice".into());
        }
        for i in 0..self.devices.len() as u32 {
            let listed = free_devices.binary_search(&i).is_ok();
            if listed == self.device_is_live(DeviceIdx(i)) {
                return Err(format!(
                    "device slot {i}: free marker and free list disagree"
                ));
            }
        }
        if let Some(r) = self
            .rows()
            .find(|&r| !self.device_is_live(self.row_device(r)))
        {
            return Err(format!("row {r:?} names a removed device"));
        }
        if self.extras.len() != self.rows.len() {
            return Err(format!(
                "{} extras for {} rows",
                self.extras.len(),
                self.rows.len()
            ));
        }
        for (r, extras) in self.extras.iter().enumerate() {
            let live = self.rows[r].status() != FREE_ROW;
            if !live && *extras != RowExtras::EMPTY {
                return Err(format!("free row {r} holds extras"));
            }
            for sym in extras.syms() {
                *sym_refs.entry(sym).or_default() += 1;
            }
        }
        for (sym, text, refs) in self.dict.iter() {
            let want = sym_refs.get(&sym).copied().unwrap_or(0);
            if refs != want {
                return Err(format!(
                    "string {text:?}: {refs} refs recorded, {want} held"
                ));
            }
        }
        if sym_refs.len() != self.dict.live() {
            return Err("a held string is not live".into());
        }
        // Devices: index, posting lists exactly the unfinished rows, in order.
        if self.by_iot.len() != self.live_devices() {
            return Err("device index size differs from devices".into());
        }
        let (devices, strs, hasher) = (&self.devices, &self.device_strs, &self.hasher);
        self.by_iot
            .validate(|d| device_hash(hasher, devices, strs, d))
            .map_err(|e| format!("device index: {e}"))?;
        // Locality entries: enough slots; each device's slot owned by a device of that slot,
        // and a device's own entry naming one of its live rows (or none).
        if !(self.locality.is_empty() || self.locality.len().is_power_of_two())
            || self.locality.len() < self.devices.len()
        {
            return Err(format!(
                "{} locality slots for {} devices",
                self.locality.len(),
                self.devices.len()
            ));
        }
        let mut owners = 0usize;
        let mut posted = 0usize;
        for (i, dev) in self.devices.iter().enumerate() {
            let d = DeviceIdx(i as u32);
            if !self.device_is_live(d) {
                if !dev.unfinished.is_empty() {
                    return Err(format!("removed device {i} posts rows"));
                }
                continue;
            }
            if self.find_device(dev.instance, self.device_iot(d)) != Some(d) {
                return Err(format!("device {i} does not look up by iotId"));
            }
            let hash = device_hash(&self.hasher, &self.devices, &self.device_strs, d.0);
            let entry = self.locality_slot(hash).map(|slot| self.locality[slot]);
            match entry {
                Some(e) if e.iot == dev.iot.0 => {
                    owners += 1;
                    let row = RowIdx(e.first_row);
                    if e.first_row != Locality::NONE
                        && !(self.row_is_live(row) && self.rows[row.idx()].device == d)
                    {
                        return Err(format!("device {i}: stale locality entry {e:?}"));
                    }
                }
                Some(e) if e.iot != Locality::NONE => {}
                _ => return Err(format!("device {i}: its locality slot is empty")),
            }
            for w in dev.unfinished.windows(2) {
                if self.row_order(w[0], w[1]).is_ge() {
                    return Err(format!("device {i}: posting list out of order"));
                }
            }
            for &r in &dev.unfinished {
                if !self.row_is_live(r)
                    || self.rows[r.idx()].device != d
                    || !self.row_status(r).is_unfinished()
                {
                    return Err(format!("device {i}: posting list holds a wrong row {r:?}"));
                }
            }
            posted += dev.unfinished.len();
        }
        let held = self
            .locality
            .iter()
            .filter(|e| e.iot != Locality::NONE)
            .count();
        if held != owners {
            return Err(format!(
                "{held} locality slots held, {owners} by a device of their slot"
            ));
        }
        let unfinished = self
            .rows()
            .filter(|&r| self.row_status(r).is_unfinished())
            .count();
        if posted != unfinished {
            return Err(format!(
                "{posted} rows posted for {unfinished} unfinished rows"
            ));
        }
        self.bitmaps.validate(self.rows().map(|r| {
            let v = self.row_variant(r);
            (
                r.0,
                self.row_instance(r),
                self.row_status(r),
                v.module_fold,
                v.job,
            )
        }))
    }
}
