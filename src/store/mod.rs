//! One shard of the columnar store: the rows of the tasks whose devices hash to this shard,
//! their devices, dictionaries and indexes. A shard knows nothing of locks; the
//! [`Engine`](crate::Engine) wraps each in its own reader-writer lock.
//!
//! Layout of a task: one packed 32-byte [`Row`] (plus, for a task id that is not a decimal
//! number, its bytes in the key slab). The variable parts live in dictionaries (one copy per
//! shard) and the row holds small typed ids:
//!
//! | field | type | note |
//! |---|---|---|
//! | `key` | [`TaskKey`] | the task id: the number itself, or its bytes' offset in `keys` |
//! | `device` | [`DeviceIdx`] | device-level fields (iotId, productKey, deviceName) live there |
//! | variant (24 bits) | [`VariantId`] | the tuple (job, firmware, product name, module, src, dest), interned |
//! | status (8 bits) | `u8` | [`TaskStatus`] as a byte, [`FREE_ROW`] when the row is free |
//! | `created`, `modified` | `i64` | epoch milliseconds |
//!
//! Rows were six column arrays at first; a point query reads every field of the tasks it
//! returns, so one packed row array (one cache line a task instead of six) answers faster and
//! is a byte smaller. The fleet-wide sets are the bitmaps of [`bitmaps`]. The platform's
//! task ids are 19-digit numbers, which the row keeps in place ([`taskkey`]): 8 bytes
//! in the row instead of a 4-byte offset there and 20 bytes in the slab (16 a task fewer),
//! and no read of the slab when a query writes them or an upsert compares them.
//!
//! A query by `iotId` reads its bucket of the `iotId` table, then the device, then (together)
//! the device's `iotId` bytes and rows (which hold numeric task ids). A [`Locality`] table
//! beside the index (8 bytes a slot, a slot per device rounded up to a power of two) names a
//! row of each device (its first unfinished one when written) and its `iotId` bytes, so that
//! the query's hint, which has the hash before the request is checked, starts loading rows,
//! bytes and device together.
//!
//! The tasks of one job share their firmware, module, product name and target version, and
//! mostly a handful of source versions, so the six strings of a task cost one `u32` per row.

pub(crate) mod bitmaps;
mod devices;
mod extras;
mod ids;
mod memory;
mod planner;
mod rows;
pub(crate) mod taskkey;
mod validate;
mod variants;

#[cfg(test)]
mod tests;

use hashbrown::{DefaultHashBuilder, HashTable};

use crate::raw::column::Column;
use crate::table::intern::{ByteSlab, Interner};
use crate::table::tagtable::TagTable;
use bitmaps::Bitmaps;
use devices::{device_hash, Locality};
use extras::RowExtras;
use rows::Row;
use variants::{fold_module, variant_text, VariantSlot, MODULE_MAX};

pub(crate) use devices::Device;
pub(crate) use ids::{DeviceIdx, InstanceId, RowIdx, VariantId};
pub(crate) use variants::Variant;

/// What a batch adds to one shard at most, to size its columns once.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Growth {
    /// Rows, every record counted as a new task.
    pub(crate) rows: usize,
    /// Key slab bytes of the task ids that are not decimal numbers.
    pub(crate) key_bytes: usize,
    /// New devices.
    pub(crate) devices: usize,
    /// Their `iotId` and name bytes.
    pub(crate) device_bytes: usize,
}

/// One shard: columns, dictionaries, devices and indexes.
///
/// Aligned to 128 bytes so that, inside the engine's lock, the lock's writer flag has its own
/// pair of cache lines: every reader reads the flag and every write writes it, and the fields
/// every query reads (the hasher, the tables' headers) are not invalidated by a write that
/// changes none of them.
#[repr(align(128))]
pub(crate) struct Shard {
    hasher: DefaultHashBuilder,
    pub(crate) dict: Interner,
    variants: Vec<VariantSlot>,
    variant_free: Vec<u32>,
    /// Hash of a variant's six strings → id.
    variant_table: HashTable<u32>,
    /// Task id bytes.
    keys: ByteSlab,
    /// The rows, packed (see [`Row`]).
    rows: Column<Row>,
    /// Each row's progress and description, by row (as long as `rows`).
    extras: Column<RowExtras>,
    free_rows: Vec<u32>,
    /// Slots of removed devices, reused by the next devices added.
    free_devices: Vec<u32>,
    pub(crate) devices: Column<Device>,
    /// iotId and deviceName bytes of the devices (never freed: devices are permanent).
    device_strs: ByteSlab,
    /// (instance, iotId) → device: one array read a probe (see [`TagTable`]).
    by_iot: TagTable,
    /// Where each device's query reads, by the low bits of its hash (see [`Locality`]): a
    /// power of two of slots, at least as many as devices.
    locality: Column<Locality>,
    /// The last device whose locality slot was computed, and that slot: a bulk load adds a
    /// device and then posts its first task, and the second finds the slot without hashing.
    locality_memo: Option<(DeviceIdx, usize)>,
    pub(crate) bitmaps: Bitmaps,
    /// Most rows (and devices) this shard may hold, from the engine's id packing.
    capacity: u32,
}

impl Shard {
    pub(crate) fn new(hasher: DefaultHashBuilder, capacity: u32) -> Shard {
        Shard {
            dict: Interner::new(hasher),
            hasher,
            variants: Vec::new(),
            variant_free: Vec::new(),
            variant_table: HashTable::new(),
            keys: ByteSlab::default(),
            rows: Column::new(),
            extras: Column::new(),
            free_rows: Vec::new(),
            free_devices: Vec::new(),
            devices: Column::new(),
            device_strs: ByteSlab::default(),
            by_iot: TagTable::default(),
            locality: Column::new(),
            locality_memo: None,
            bitmaps: Bitmaps::default(),
            capacity,
        }
    }

    /// The largest of the shard's byte buffers (their offsets are 32-bit).
    pub(crate) fn bytes_used(&self) -> usize {
        self.keys
            .len()
            .max(self.device_strs.len())
            .max(self.dict.bytes_len())
    }

    pub(crate) fn live_rows(&self) -> usize {
        self.rows.len() - self.free_rows.len()
    }

    /// Reserves room for what a batch adds (exactly, so no doubling slack is left behind).
    pub(crate) fn reserve(&mut self, g: &Growth) {
        let rows = g.rows.saturating_sub(self.free_rows.len());
        self.rows.reserve_exact(rows);
        self.extras.reserve_exact(rows);
        self.keys.reserve(g.key_bytes);
        self.devices.reserve_exact(g.devices);
        self.device_strs.reserve(g.device_bytes);
        let (devices, strs, hasher) = (&self.devices, &self.device_strs, &self.hasher);
        self.by_iot
            .reserve(g.devices, |d| device_hash(hasher, devices, strs, d));
        let devices = self.devices.len() + g.devices;
        if devices > self.locality.len() {
            self.size_locality(devices);
        }
    }
}

/// The hash the `iotId` index keeps a device under, from `iot_bytes_hash` (the engine's
/// hasher over the `iotId` alone, which also picks the device's shard) and its instance: one
/// hash of the bytes serves both (the halves swapped, so that the bits that picked the shard,
/// the same for every device of a shard, are not the table's tags).
pub(crate) fn instance_hash(iot_bytes_hash: u64, instance: InstanceId) -> u64 {
    (iot_bytes_hash ^ u64::from(instance.0).wrapping_mul(0x9E37_79B9_7F4A_7C15)).rotate_left(32)
}
