//! The devices: identity, the `iotId` index, the posting list of each device's unfinished rows
//! in answer order, and the locality entries a query's hint reads ahead.

use std::hash::BuildHasher;

use hashbrown::DefaultHashBuilder;
use smallvec::SmallVec;

use super::{instance_hash, DeviceIdx, InstanceId, RowIdx, Shard};
use crate::model::Timestamp;
use crate::raw::column::Column;
use crate::raw::prefetch::prefetch;
use crate::table::intern::{ByteSlab, SlabRef, Sym};

/// A device: its identity and its unfinished tasks. A removed device's slot holds
/// a free device (no instance) until a new device takes it.
pub(crate) struct Device {
    pub(crate) iot: SlabRef,
    pub(crate) name: SlabRef,
    pub(crate) product_key: Sym,
    pub(crate) instance: InstanceId,
    /// The latest `utcModified` of a record that bound the device or named it bound, in
    /// epoch milliseconds: a removal not older than it unbinds the device (every task of it
    /// is then not newer than the removal either).
    pub(crate) bound_at: i64,
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

impl Device {
    /// A free slot: no instance, no strings.
    fn free() -> Device {
        Device {
            iot: SlabRef(u32::MAX),
            name: SlabRef(u32::MAX),
            product_key: Sym(u32::MAX),
            instance: InstanceId::FREE,
            bound_at: i64::MIN,
            unfinished: SmallVec::new(),
        }
    }
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
            if self.device_is_live(DeviceIdx(d)) {
                self.refresh_locality(DeviceIdx(d));
            }
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
        let reuse = self.free_devices.last().copied();
        if reuse.is_none() && self.devices.len() >= self.capacity as usize {
            return None;
        }
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
        let device = Device {
            iot: iot_ref,
            name,
            product_key,
            instance,
            bound_at: i64::MIN,
            unfinished: SmallVec::new(),
        };
        let idx = match reuse {
            Some(free) => {
                self.free_devices.pop();
                self.devices[free as usize] = device;
                free
            }
            None => {
                self.devices.push(device);
                (self.devices.len() - 1) as u32
            }
        };
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

    /// Forgets device `d`, which no row names any more: its binding, its `iotId` index
    /// entry, its locality entry, its strings; its slot is reused by a later device.
    pub(crate) fn remove_device(&mut self, d: DeviceIdx) {
        debug_assert!(self.devices[d.idx()].unfinished.is_empty());
        let hash = device_hash(&self.hasher, &self.devices, &self.device_strs, d.0);
        self.by_iot.remove(hash, d.0);
        self.locality_memo = None;
        let owned = self
            .locality_slot(hash)
            .filter(|&slot| self.locality[slot].iot == self.devices[d.idx()].iot.0);
        let dev = std::mem::replace(&mut self.devices[d.idx()], Device::free());
        self.device_strs.free(dev.iot);
        self.device_strs.free(dev.name);
        self.dict.release(dev.product_key);
        self.free_devices.push(d.0);
        if let Some(slot) = owned {
            // Another device of the slot takes it over, if there is one (a scan: removals
            // are rare), so that no device's slot is left empty.
            self.locality[slot] = Locality::EMPTY;
            let heir = (0..self.devices.len() as u32)
                .map(DeviceIdx)
                .find(|&other| {
                    self.device_is_live(other)
                        && self.locality_slot(device_hash(
                            &self.hasher,
                            &self.devices,
                            &self.device_strs,
                            other.0,
                        )) == Some(slot)
                });
            if let Some(heir) = heir {
                self.refresh_locality(heir);
            }
        }
    }

    /// Notes a record of `at` that names device `d` bound as it is (see [`Device::bound_at`]).
    #[inline]
    pub(crate) fn confirm_device(&mut self, d: DeviceIdx, at: Timestamp) {
        let dev = &mut self.devices[d.idx()];
        dev.bound_at = dev.bound_at.max(at.as_millis());
    }

    /// The latest `utcModified` of a record that named device `d` bound.
    pub(crate) fn device_bound_at(&self, d: DeviceIdx) -> Timestamp {
        Timestamp::from_millis(self.devices[d.idx()].bound_at)
    }

    /// Whether slot `d` holds a device (not one removed and not yet reused).
    pub(crate) fn device_is_live(&self, d: DeviceIdx) -> bool {
        self.devices
            .get(d.idx())
            .is_some_and(|dev| dev.instance != InstanceId::FREE)
    }

    /// The devices bound, removed ones not counted.
    pub(crate) fn live_devices(&self) -> usize {
        self.devices.len() - self.free_devices.len()
    }

    /// Every row of device `d`, finished ones included (a scan of the shard's rows: for the
    /// rare removal of a device).
    pub(crate) fn device_rows(&self, d: DeviceIdx) -> Vec<RowIdx> {
        self.rows().filter(|&r| self.row_device(r) == d).collect()
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
