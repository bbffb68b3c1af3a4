//! The devices: identity, the `iotId` index, the posting list of each device's unfinished rows
//! in answer order, and the locality entries a query's hint reads ahead.

use std::hash::BuildHasher;

use hashbrown::DefaultHashBuilder;
use smallvec::SmallVec;

use super::{instance_hash, DeviceIdx, InstanceId, RowIdx, Shard};
use crate::raw::column::Column;
use crate::raw::prefetch::prefetch;
use crate::table::intern::{ByteSlab, SlabRef, Sym};

/// A device: its identity and its unfinished tasks.
pub(crate) struct Device {
    pub(crate) iot: SlabRef,
    pub(crate) name: SlabRef,
    pub(crate) product_key: Sym,
    pub(crate) instance: InstanceId,
    /// The device's unfinished rows, sorted by (`utcCreate`, `taskId` bytes): the answer's
    /// order, so a query never sorts. Inline up to four rows: most devices have 1–4 tasks.
    pub(crate) unfinished: SmallVec<[RowIdx; 4]>,
}

/// Where a device's query will read, kept beside its `iotId` hash so that the query's hint can
/// start loading the device's rows and `iotId` bytes together with the device itself, instead
/// of one after the other: a query by `iotId` then waits for two dependent misses after its
/// bucket rather than three (see [`Shard::prefetch_device`]).
///
/// A slot is picked by the low bits of the device's hash, and the last device written to a
/// slot owns it, so a device sharing its slot may find another's entry there: the entry is only
/// ever used to prefetch, and a wrong one costs a wasted load.
///
/// The row is the device's first unfinished row when the entry was written: a new first row
/// (an insert) or a row leaving the device (a removal, a move) rewrites it, a status change
/// does not (the row stays the device's, and the device's rows mostly lie together). So an
/// upsert that changes a status never touches the table: rewriting the entry there made upserts
/// wait for a miss on a random line of it (criterion's `upsert` at 1,000,000 devices 495/544/499
/// against 550/532/545 ns, alternating runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Locality {
    /// A live row of the device, or [`Locality::NONE`].
    pub(super) first_row: u32,
    /// The device's `iotId` bytes in the device string slab (its name follows them), or
    /// [`Locality::NONE`].
    pub(super) iot: u32,
}

impl Locality {
    pub(super) const NONE: u32 = u32::MAX;
    pub(super) const EMPTY: Locality = Locality {
        first_row: Self::NONE,
        iot: Self::NONE,
    };
}

impl Shard {
    /// The hash the `iotId` index keeps device `iot` of `instance` under.
    pub(crate) fn iot_hash(&self, instance: InstanceId, iot: &str) -> u64 {
        instance_hash(self.hasher.hash_one(iot), instance)
    }

    pub(crate) fn find_device(&self, instance: InstanceId, iot: &str) -> Option<DeviceIdx> {
        self.find_device_hashed(instance, iot, self.iot_hash(instance, iot))
    }

    /// [`Shard::find_device`] with `hash` from [`Shard::iot_hash`] (or [`instance_hash`]).
    pub(crate) fn find_device_hashed(
        &self,
        instance: InstanceId,
        iot: &str,
        hash: u64,
    ) -> Option<DeviceIdx> {
        self.by_iot
            .find(hash, |d| {
                let dev = &self.devices[d as usize];
                dev.instance == instance && self.device_strs.get(dev.iot) == iot
            })
            .map(DeviceIdx)
    }

    /// Starts loading the `iotId` table's bucket where [`Shard::find_device`] will begin for
    /// `hash` (from [`Shard::iot_hash`]), and the device's [`Locality`] entry.
    pub(crate) fn prefetch_bucket(&self, hash: u64) {
        self.by_iot.prefetch(hash);
        if let Some(slot) = self.locality_slot(hash) {
            prefetch(&self.locality[slot]);
        }
    }

    /// Starts loading what a query of the device of `hash` reads next, all at once: the first
    /// device whose entry carries `hash`'s tag (the one [`Shard::find_device`] will most likely
    /// compare, and find), and from the [`Locality`] entry its first rows and its `iotId` and
    /// name bytes. Without the entry the rows and bytes would wait for the device to arrive:
    /// 988 → 898 ns a request (medians of 20 interleaved rounds, 1,000,000 devices; the rows
    /// alone 3 %, the bytes alone nothing).
    pub(crate) fn prefetch_device(&self, hash: u64) {
        if let Some(slot) = self.locality_slot(hash) {
            let at = self.locality[slot];
            self.prefetch_rows_at(at.first_row);
            self.prefetch_device_str(at.iot);
        }
        if let Some(d) = self.by_iot.find(hash, |_| true) {
            self.prefetch_device_at(DeviceIdx(d));
        }
    }

    /// The [`Locality`] slot of a device hash; `None` while the shard has no devices.
    pub(super) fn locality_slot(&self, hash: u64) -> Option<usize> {
        let mask = self.locality.len().checked_sub(1)?;
        Some(hash as usize & mask)
    }

    /// Writes device `d`'s [`Locality`] entry (it then owns its slot).
    pub(super) fn refresh_locality(&mut self, d: DeviceIdx) {
        let slot = match self.locality_memo {
            Some((memo, slot)) if memo == d => Some(slot),
            _ => {
                let hash = device_hash(&self.hasher, &self.devices, &self.device_strs, d.0);
                self.locality_slot(hash)
            }
        };
        if let Some(slot) = slot {
            self.locality[slot] = self.locality_of(d);
            self.locality_memo = Some((d, slot));
        }
    }

    pub(super) fn locality_of(&self, d: DeviceIdx) -> Locality {
        let dev = &self.devices[d.idx()];
        Locality {
            first_row: dev.unfinished.first().map_or(Locality::NONE, |r| r.0),
            iot: dev.iot.0,
        }
    }

    /// Sizes the [`Locality`] slots for `devices` devices (the next power of two), rewriting
    /// every entry when the size changes.
    pub(super) fn size_locality(&mut self, devices: usize) {
        let want = if devices == 0 {
            0
        } else {
            devices.next_power_of_two().max(8)
        };
        if want == self.locality.len() {
            return;
        }
        self.locality = Column::filled(want, Locality::EMPTY);
        self.locality_memo = None;
        for d in 0..self.devices.len() as u32 {
            self.refresh_locality(DeviceIdx(d));
        }
    }

    /// Inserts `row` at `pos` of device `d`'s posting list (its [`Locality`] names a new
    /// first row).
    pub(super) fn posting_insert(&mut self, d: DeviceIdx, pos: usize, row: RowIdx) {
        self.devices[d.idx()].unfinished.insert(pos, row);
        if pos == 0 {
            self.refresh_locality(d);
        }
    }

    /// Starts loading device `d`'s record, if there is one.
    pub(crate) fn prefetch_device_at(&self, d: DeviceIdx) {
        if let Some(dev) = self.devices.get(d.idx()) {
            prefetch(dev);
        }
    }

    /// Adds a device; `None` when the shard is full.
    pub(crate) fn add_device(
        &mut self,
        instance: InstanceId,
        iot: &str,
        product_key: &str,
        device_name: &str,
    ) -> Option<DeviceIdx> {
        if self.devices.len() >= self.capacity as usize {
            return None;
        }
        let idx = self.devices.len() as u32;
        let product_key = self.dict.intern(product_key)?;
        let Some(iot_ref) = self.device_strs.alloc(iot) else {
            self.dict.release(product_key);
            return None;
        };
        let Some(name) = self.device_strs.alloc(device_name) else {
            self.device_strs.free(iot_ref);
            self.dict.release(product_key);
            return None;
        };
        self.devices.push(Device {
            iot: iot_ref,
            name,
            product_key,
            instance,
            unfinished: SmallVec::new(),
        });
        let hash = self.iot_hash(instance, iot);
        let (devices, strs, hasher) = (&self.devices, &self.device_strs, &self.hasher);
        let stored = self
            .by_iot
            .insert(hash, idx, |d| device_hash(hasher, devices, strs, d));
        debug_assert!(stored, "capacity keeps every index storable");
        if self.devices.len() > self.locality.len() {
            self.size_locality(self.devices.len());
        } else if let Some(slot) = self.locality_slot(hash) {
            self.locality_memo = Some((DeviceIdx(idx), slot));
            self.refresh_locality(DeviceIdx(idx));
        }
        Some(DeviceIdx(idx))
    }

    pub(crate) fn device(&self, d: DeviceIdx) -> &Device {
        &self.devices[d.idx()]
    }

    pub(crate) fn device_iot(&self, d: DeviceIdx) -> &str {
        self.device_strs.get(self.devices[d.idx()].iot)
    }

    pub(crate) fn device_name(&self, d: DeviceIdx) -> &str {
        self.device_strs.get(self.devices[d.idx()].name)
    }

    pub(crate) fn device_product_key(&self, d: DeviceIdx) -> &str {
        self.dict.get(self.devices[d.idx()].product_key)
    }

    /// Starts loading device `d`'s first four unfinished rows (reading its record).
    pub(crate) fn prefetch_rows(&self, d: DeviceIdx) {
        if let Some(dev) = self.devices.get(d.idx()) {
            for &r in dev.unfinished.iter().take(4) {
                if let Some(row) = self.rows.get(r.idx()) {
                    prefetch(row);
                }
            }
        }
    }

    /// Starts loading row `r` and the one two after it, where they exist: rows are 32 bytes,
    /// so the first and the third start the first two lines a device's consecutive rows
    /// span.
    pub(crate) fn prefetch_rows_at(&self, r: u32) {
        for r in [r, r.saturating_add(2)] {
            if let Some(row) = self.rows.get(r as usize) {
                prefetch(row);
            }
        }
    }

    /// Starts loading the device string at slab offset `at` (an `iotId` or name), where it
    /// exists.
    pub(crate) fn prefetch_device_str(&self, at: u32) {
        if (at as usize) < self.device_strs.len() {
            self.device_strs.prefetch(SlabRef(at));
        }
    }

    /// Device `d`'s first unfinished row, if it has one.
    pub(crate) fn first_unfinished(&self, d: DeviceIdx) -> Option<RowIdx> {
        self.devices.get(d.idx())?.unfinished.first().copied()
    }

    /// True when device `d` is the pair (`product_key`, `device_name`) of `instance`.
    pub(crate) fn device_is(
        &self,
        d: DeviceIdx,
        instance: InstanceId,
        product_key: &str,
        device_name: &str,
    ) -> bool {
        let dev = &self.devices[d.idx()];
        dev.instance == instance
            && self.device_strs.get(dev.name) == device_name
            && self.dict.get(dev.product_key) == product_key
    }
}

/// The device index's hash of device `d` (what [`Shard::find_device`] hashes), from its
/// stored iotId.
pub(super) fn device_hash(
    hasher: &DefaultHashBuilder,
    devices: &[Device],
    strs: &ByteSlab,
    d: u32,
) -> u64 {
    let dev = &devices[d as usize];
    instance_hash(hasher.hash_one(strs.get(dev.iot)), dev.instance)
}
