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
pub(crate) mod taskkey;

use std::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashMap, HashTable};
use roaring::RoaringBitmap;
use smallvec::SmallVec;

use crate::raw::column::Column;
use bitmaps::Bitmaps;
use crate::table::intern::{table_bytes, ByteSlab, Interner, SlabRef, Sym};
use crate::model::{RecordRef, StatusSet, TaskStatus, Timestamp};
use crate::table::tagtable::TagTable;
use taskkey::{IdText, TaskKey};
use crate::model::PlainTask;

/// Marks a free row in the `status` column.
pub(crate) const FREE_ROW: u8 = u8::MAX;

/// Longest module name (field rule), so case folding fits a stack buffer.
const MODULE_MAX: usize = 64;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub(crate) struct $name(pub(crate) u32);
        impl $name {
            pub(crate) fn idx(self) -> usize {
                self.0 as usize
            }
        }
    };
}

id_type!(
    /// A row of a shard.
    RowIdx
);
id_type!(
    /// A device of a shard. Devices are never removed (bindings last as long as the store).
    DeviceIdx
);
id_type!(
    /// An interned (job, firmware, product name, module, src, dest) tuple of a shard.
    VariantId
);
id_type!(
    /// A platform instance of the engine; 0 is the default instance.
    InstanceId
);

/// The shared strings of a task, interned once per distinct tuple.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Variant {
    pub(crate) job: Sym,
    pub(crate) firmware: Sym,
    pub(crate) product_name: Sym,
    /// The stored spelling, echoed in answers.
    pub(crate) module: Sym,
    /// The ASCII-lower-case spelling, matched by queries.
    pub(crate) module_fold: Sym,
    pub(crate) src: Sym,
    pub(crate) dest: Sym,
}

struct VariantSlot {
    variant: Variant,
    /// Rows using this variant; freed (and its strings released) at zero.
    refs: u32,
}

/// One task's fixed-size fields, packed to 32 bytes at 4-byte alignment. Point queries read
/// every field of a returned task: one row array instead of six column arrays turns six
/// cache misses a task into one (574 k against 494 k queries/s of the benchmark mix on a
/// 300,000-device fleet, medians of five runs each, interleaved).
#[repr(C, packed(4))]
#[derive(Clone, Copy)]
struct Row {
    /// The task id: the number, or where its bytes are in the key slab.
    key: TaskKey,
    device: DeviceIdx,
    /// The variant id in the low 24 bits, the [`TaskStatus`] byte (or [`FREE_ROW`]) above.
    variant_status: u32,
    /// `utcCreate`, epoch milliseconds.
    created: i64,
    /// `utcModified`, epoch milliseconds.
    modified: i64,
}

/// Variants a shard may hold (the low 24 bits of [`Row::variant_status`]).
const MAX_VARIANTS: usize = 1 << 24;

impl Row {
    const FREE: Row = Row {
        key: TaskKey::FREE,
        device: DeviceIdx(0),
        variant_status: (FREE_ROW as u32) << 24,
        created: 0,
        modified: 0,
    };

    fn variant(&self) -> VariantId {
        VariantId(self.variant_status & 0x00FF_FFFF)
    }

    fn status(&self) -> u8 {
        (self.variant_status >> 24) as u8
    }

    fn set_variant_status(&mut self, variant: VariantId, status: u8) {
        self.variant_status = variant.0 & 0x00FF_FFFF | u32::from(status) << 24;
    }

    fn created(&self) -> i64 {
        self.created
    }

    fn modified(&self) -> i64 {
        self.modified
    }
}

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
struct Locality {
    /// A live row of the device, or [`Locality::NONE`].
    first_row: u32,
    /// The device's `iotId` bytes in the device string slab (its name follows them), or
    /// [`Locality::NONE`].
    iot: u32,
}

impl Locality {
    const NONE: u32 = u32::MAX;
    const EMPTY: Locality = Locality {
        first_row: Self::NONE,
        iot: Self::NONE,
    };
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
    free_rows: Vec<u32>,
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
            free_rows: Vec::new(),
            devices: Column::new(),
            device_strs: ByteSlab::default(),
            by_iot: TagTable::default(),
            locality: Column::new(),
            locality_memo: None,
            bitmaps: Bitmaps::default(),
            capacity,
        }
    }

    // ---- devices -------------------------------------------------------------------------

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
            crate::raw::prefetch::prefetch(&self.locality[slot]);
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
    fn locality_slot(&self, hash: u64) -> Option<usize> {
        let mask = self.locality.len().checked_sub(1)?;
        Some(hash as usize & mask)
    }

    /// Writes device `d`'s [`Locality`] entry (it then owns its slot).
    fn refresh_locality(&mut self, d: DeviceIdx) {
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

    fn locality_of(&self, d: DeviceIdx) -> Locality {
        let dev = &self.devices[d.idx()];
        Locality {
            first_row: dev.unfinished.first().map_or(Locality::NONE, |r| r.0),
            iot: dev.iot.0,
        }
    }

    /// Sizes the [`Locality`] slots for `devices` devices (the next power of two), rewriting
    /// every entry when the size changes.
    fn size_locality(&mut self, devices: usize) {
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
    fn posting_insert(&mut self, d: DeviceIdx, pos: usize, row: RowIdx) {
        self.devices[d.idx()].unfinished.insert(pos, row);
        if pos == 0 {
            self.refresh_locality(d);
        }
    }

    /// Starts loading device `d`'s record, if there is one.
    pub(crate) fn prefetch_device_at(&self, d: DeviceIdx) {
        if let Some(dev) = self.devices.get(d.idx()) {
            crate::raw::prefetch::prefetch(dev);
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
                    crate::raw::prefetch::prefetch(row);
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
                crate::raw::prefetch::prefetch(row);
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

    // ---- rows ----------------------------------------------------------------------------

    pub(crate) fn row_is_live(&self, r: RowIdx) -> bool {
        self.rows
            .get(r.idx())
            .is_some_and(|row| row.status() != FREE_ROW)
    }

    /// The task id of row `r`.
    pub(crate) fn row_id(&self, r: RowIdx) -> IdText<'_> {
        self.key_text(self.rows[r.idx()].key)
    }

    fn key_text(&self, key: TaskKey) -> IdText<'_> {
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
    fn row_order(&self, a: RowIdx, b: RowIdx) -> std::cmp::Ordering {
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
    fn row_strings<'s, T>(
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

    /// Every live row.
    pub(crate) fn rows(&self) -> impl Iterator<Item = RowIdx> + '_ {
        self.rows
            .iter()
            .enumerate()
            .filter(|(_, row)| row.status() != FREE_ROW)
            .map(|(i, _)| RowIdx(i as u32))
    }

    /// Reserves room for what a batch adds (exactly, so no doubling slack is left behind).
    pub(crate) fn reserve(&mut self, g: &crate::engine::Growth) {
        let rows = g.rows.saturating_sub(self.free_rows.len());
        self.rows.reserve_exact(rows);
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

    /// Inserts a new task of device `d`; `None` when the shard is full.
    pub(crate) fn insert_task(&mut self, d: DeviceIdx, rec: &RecordRef<'_>) -> Option<RowIdx> {
        if self.free_rows.is_empty() && self.rows.len() >= self.capacity as usize {
            return None;
        }
        // Everything that can fail comes first, so that a failure leaves nothing behind.
        let variant = self.intern_variant(rec)?;
        let key = match TaskKey::numeric(rec.task_id) {
            Some(key) => key,
            None => {
                let Some(at) = self.keys.alloc(rec.task_id) else {
                    self.release_variant(variant);
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
                RowIdx(r as u32)
            }
        };
        self.rows[row.idx()].key = key;
        self.write_row(row, d, variant, rec);
        self.link(row);
        Some(row)
    }

    /// Replaces the task in `row` with `rec`, now belonging to device `d` (same task id);
    /// `false`, with nothing changed, when the shard's string space is full.
    pub(crate) fn replace_task(&mut self, row: RowIdx, d: DeviceIdx, rec: &RecordRef<'_>) -> bool {
        let same = self.row_variant_matches(row, rec);
        self.replace_task_known(row, d, rec, same)
    }

    /// [`Shard::replace_task`] when the caller already knows whether the record's six shared
    /// strings equal the row's (`same_variant`).
    pub(crate) fn replace_task_known(
        &mut self,
        row: RowIdx,
        d: DeviceIdx,
        rec: &RecordRef<'_>,
        same_variant: bool,
    ) -> bool {
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
    fn restatus(&mut self, row: RowIdx, status: TaskStatus) {
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
        if let Some(at) = self.rows[row.idx()].key.in_slab() {
            self.keys.free(at);
        }
        self.rows[row.idx()].set_variant_status(VariantId(0), FREE_ROW);
        self.free_rows.push(row.0);
    }

    fn write_row(&mut self, row: RowIdx, d: DeviceIdx, variant: VariantId, rec: &RecordRef<'_>) {
        let i = row.idx();
        let row = &mut self.rows[i];
        row.device = d;
        row.set_variant_status(variant, rec.status as u8);
        row.created = rec.utc_create.as_millis();
        row.modified = rec.utc_modified.as_millis();
    }

    /// Adds a written row to its device's posting list (when unfinished) and to the bitmaps.
    fn link(&mut self, row: RowIdx) {
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

    fn unlink(&mut self, row: RowIdx) {
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
    fn posting_position(&self, d: DeviceIdx, row: RowIdx) -> usize {
        self.devices[d.idx()]
            .unfinished
            .partition_point(|&r| self.row_order(r, row).is_lt())
    }

    // ---- variants ------------------------------------------------------------------------

    /// Variants are found by the hash of their six strings, so a write resolves its tuple
    /// with one hash and one probe (then six short comparisons) instead of seven dictionary
    /// lookups and a tuple probe.
    fn text_hash(hasher: &DefaultHashBuilder, t: [&str; 6]) -> u64 {
        hasher.hash_one(t)
    }

    fn variant_text(&self, v: &Variant) -> [&str; 6] {
        variant_text(&self.dict, v)
    }

    fn record_text<'r>(rec: &RecordRef<'r>) -> [&'r str; 6] {
        [
            rec.job_id,
            rec.firmware_id,
            rec.product_name,
            rec.module_name,
            rec.src_version,
            rec.dest_version,
        ]
    }

    /// True when row `r`'s six shared strings equal the record's.
    pub(crate) fn row_variant_matches(&self, r: RowIdx, rec: &RecordRef<'_>) -> bool {
        self.variant_matches(self.rows[r.idx()].variant(), rec)
    }

    fn variant_matches(&self, id: VariantId, rec: &RecordRef<'_>) -> bool {
        self.variant_text(&self.variants[id.idx()].variant) == Self::record_text(rec)
    }

    fn find_variant_text(&self, text: [&str; 6]) -> Option<u32> {
        let hash = Self::text_hash(&self.hasher, text);
        self.variant_table
            .find(hash, |&id| {
                self.variant_text(&self.variants[id as usize].variant) == text
            })
            .copied()
    }

    /// The variant of `rec`, taking one reference to it; `None`, with nothing taken, when the
    /// dictionary's bytes are full.
    fn intern_variant(&mut self, rec: &RecordRef<'_>) -> Option<VariantId> {
        let text = Self::record_text(rec);
        if let Some(id) = self.find_variant_text(text) {
            self.variants[id as usize].refs += 1;
            return Some(VariantId(id));
        }
        if self.variant_free.is_empty() && self.variants.len() >= MAX_VARIANTS {
            return None;
        }
        let mut buf = [0u8; MODULE_MAX];
        let fold = fold_module(rec.module_name, &mut buf);
        let mut taken: SmallVec<[Sym; 7]> = SmallVec::new();
        for s in [
            rec.job_id,
            rec.firmware_id,
            rec.product_name,
            rec.module_name,
            fold,
            rec.src_version,
            rec.dest_version,
        ] {
            match self.dict.intern(s) {
                Some(sym) => taken.push(sym),
                None => {
                    for sym in taken {
                        self.dict.release(sym);
                    }
                    return None;
                }
            }
        }
        let v = Variant {
            job: taken[0],
            firmware: taken[1],
            product_name: taken[2],
            module: taken[3],
            module_fold: taken[4],
            src: taken[5],
            dest: taken[6],
        };
        let slot = VariantSlot {
            variant: v,
            refs: 1,
        };
        let id = match self.variant_free.pop() {
            Some(id) => {
                self.variants[id as usize] = slot;
                id
            }
            None => {
                self.variants.push(slot);
                (self.variants.len() - 1) as u32
            }
        };
        let hash = Self::text_hash(&self.hasher, text);
        let (variants, dict, hasher) = (&self.variants, &self.dict, &self.hasher);
        self.variant_table.insert_unique(hash, id, |&id| {
            Self::text_hash(hasher, variant_text(dict, &variants[id as usize].variant))
        });
        Some(VariantId(id))
    }

    fn release_variant(&mut self, id: VariantId) {
        let slot = &mut self.variants[id.idx()];
        slot.refs -= 1;
        if slot.refs == 0 {
            let v = slot.variant;
            let hash = Self::text_hash(&self.hasher, self.variant_text(&v));
            if let Ok(entry) = self.variant_table.find_entry(hash, |&x| x == id.0) {
                entry.remove();
            }
            self.variant_free.push(id.0);
            self.release_strings(&v);
        }
    }

    fn release_strings(&mut self, v: &Variant) {
        for sym in [
            v.job,
            v.firmware,
            v.product_name,
            v.module,
            v.module_fold,
            v.src,
            v.dest,
        ] {
            self.dict.release(sym);
        }
    }

    /// The query-side id of a module name (ASCII case ignored); `None` when no task of this
    /// shard has that module.
    pub(crate) fn module_key(&self, module: &str) -> Option<Sym> {
        let mut buf = [0u8; MODULE_MAX];
        self.dict.lookup(fold_module(module, &mut buf))
    }

    // ---- queries -------------------------------------------------------------------------

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

    // ---- accounting and checks -----------------------------------------------------------

    pub(crate) fn memory(&self, m: &mut crate::engine::MemoryUsage) {
        m.rows += self.rows.capacity() * std::mem::size_of::<Row>() + self.free_rows.capacity() * 4;
        m.task_ids += self.keys.heap_bytes();
        m.strings += self.dict.heap_bytes()
            + self.variants.capacity() * std::mem::size_of::<VariantSlot>()
            + self.variant_free.capacity() * 4
            + table_bytes(&self.variant_table);
        m.devices += self.devices.capacity() * std::mem::size_of::<Device>()
            + self
                .devices
                .iter()
                .filter(|d| d.unfinished.spilled())
                .map(|d| d.unfinished.capacity() * 4)
                .sum::<usize>()
            + self.device_strs.heap_bytes()
            + self.by_iot.heap_bytes()
            + self.locality.capacity() * std::mem::size_of::<Locality>();
        m.bitmaps += self.bitmaps.heap_bytes();
    }

    /// How many of the columns are held in mappings of their own (see [`Column`]).
    #[cfg(test)]
    pub(crate) fn mapped_columns(&self) -> usize {
        [
            self.rows.is_mapped(),
            self.devices.is_mapped(),
            self.locality.is_mapped(),
        ]
        .into_iter()
        .filter(|&m| m)
        .count()
    }

    /// Compacts growth slack (after a bulk load).
    pub(crate) fn shrink_to_fit(&mut self) {
        self.rows.shrink_to_fit();
        self.keys.shrink_to_fit();
        self.devices.shrink_to_fit();
        self.device_strs.shrink_to_fit();
        self.dict.shrink_to_fit();
        self.variants.shrink_to_fit();
        self.variant_free.shrink_to_fit();
        let (variants, dict, hasher) = (&self.variants, &self.dict, &self.hasher);
        self.variant_table.shrink_to_fit(|&id| {
            Self::text_hash(hasher, variant_text(dict, &variants[id as usize].variant))
        });
        let (devices, strs, hasher) = (&self.devices, &self.device_strs, &self.hasher);
        self.by_iot
            .shrink_to_fit(|d| device_hash(hasher, devices, strs, d));
        self.size_locality(self.devices.len());
        self.locality.shrink_to_fit();
    }

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
        for d in self.devices.iter() {
            *sym_refs.entry(d.product_key).or_default() += 1;
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
        if self.by_iot.len() != self.devices.len() {
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
        self.bitmaps.validate(self)
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

/// The hash the `iotId` index keeps a device under, from `iot_bytes_hash` (the engine's
/// hasher over the `iotId` alone, which also picks the device's shard) and its instance: one
/// hash of the bytes serves both (the halves swapped, so that the bits that picked the shard,
/// the same for every device of a shard, are not the table's tags).
pub(crate) fn instance_hash(iot_bytes_hash: u64, instance: InstanceId) -> u64 {
    (iot_bytes_hash ^ u64::from(instance.0).wrapping_mul(0x9E37_79B9_7F4A_7C15)).rotate_left(32)
}

/// The device index's hash of device `d` (what [`Shard::find_device`] hashes), from its
/// stored iotId.
fn device_hash(hasher: &DefaultHashBuilder, devices: &[Device], strs: &ByteSlab, d: u32) -> u64 {
    let dev = &devices[d as usize];
    instance_hash(hasher.hash_one(strs.get(dev.iot)), dev.instance)
}

/// The six strings of a variant, in hashing order.
fn variant_text<'d>(dict: &'d Interner, v: &Variant) -> [&'d str; 6] {
    [
        dict.get(v.job),
        dict.get(v.firmware),
        dict.get(v.product_name),
        dict.get(v.module),
        dict.get(v.src),
        dict.get(v.dest),
    ]
}

/// ASCII-lower-cases a module name (at most 64 bytes by its field rule) into `buf`.
pub(crate) fn fold_module<'b>(module: &'b str, buf: &'b mut [u8; MODULE_MAX]) -> &'b str {
    if !module.bytes().any(|b| b.is_ascii_uppercase()) || module.len() > MODULE_MAX {
        return module;
    }
    let out = &mut buf[..module.len()];
    out.copy_from_slice(module.as_bytes());
    out.make_ascii_lowercase();
    // Lower-casing ASCII bytes keeps UTF-8 valid.
    std::str::from_utf8(out).unwrap_or(module)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TaskRecord;

    fn record(i: u64, module: &str, status: TaskStatus, created: i64) -> TaskRecord {
        TaskRecord {
            task_id: format!("task-{}", (i * 7919) % 1009),
            job_id: format!("job-{}", i % 3),
            firmware_id: "fw".into(),
            iot_id: "gateway-1".into(),
            product_key: "pk".into(),
            product_name: "Gateway".into(),
            device_name: "gateway".into(),
            module_name: module.into(),
            src_version: String::new(),
            dest_version: "2.0".into(),
            status,
            utc_create: Timestamp::from_millis(created),
            utc_modified: Timestamp::from_millis(created),
            iot_instance_id: String::new(),
        }
    }

    /// Device `d`'s locality entry, if `d` owns its slot.
    fn own_locality(shard: &Shard, d: DeviceIdx) -> Option<Locality> {
        let hash = device_hash(&shard.hasher, &shard.devices, &shard.device_strs, d.0);
        let entry = shard.locality[shard.locality_slot(hash)?];
        (entry.iot == shard.devices[d.idx()].iot.0).then_some(entry)
    }

    /// A device's locality entry names its first unfinished row after inserts that sort first
    /// or last; a status change leaves it (the row stays the device's); a removal or a move of
    /// the named row rewrites it; `validate` refuses an entry naming a row not the device's.
    #[test]
    fn locality_entries_name_a_row_of_their_device() {
        let mut shard = Shard::new(DefaultHashBuilder::default(), u32::MAX);
        let d = shard
            .add_device(InstanceId(0), "gateway-1", "pk", "gateway")
            .unwrap();
        let first = |shard: &Shard| own_locality(shard, d).map(|e| e.first_row);
        assert_eq!(first(&shard), Some(Locality::NONE));
        let late = record(1, "m", TaskStatus::Queued, 50);
        let r_late = shard.insert_task(d, &late.as_ref()).unwrap();
        assert_eq!(first(&shard), Some(r_late.0));
        let early = record(2, "m", TaskStatus::InProgress, 10);
        let r_early = shard.insert_task(d, &early.as_ref()).unwrap();
        assert_eq!(first(&shard), Some(r_early.0));
        let done = record(3, "m", TaskStatus::Succeeded, 5);
        let r_done = shard.insert_task(d, &done.as_ref()).unwrap();
        assert_eq!(
            first(&shard),
            Some(r_early.0),
            "a finished task is not posted"
        );
        // Status changes leave the entry: the row is still the device's.
        let mut succeeded = early.clone();
        succeeded.status = TaskStatus::Succeeded;
        assert!(shard.replace_task(r_early, d, &succeeded.as_ref()));
        assert_eq!(first(&shard), Some(r_early.0));
        shard.validate().unwrap();
        assert!(shard.replace_task(r_early, d, &early.as_ref()));
        assert_eq!(first(&shard), Some(r_early.0));
        // A removal of the named row (finished or not) rewrites the entry.
        assert!(shard.replace_task(r_early, d, &succeeded.as_ref()));
        shard.remove_task(r_early);
        assert_eq!(first(&shard), Some(r_late.0));
        shard.validate().unwrap();
        // A move of the named row to another device rewrites both devices' entries.
        let other = shard
            .add_device(InstanceId(0), "gateway-2", "pk", "gateway-2")
            .unwrap();
        let mut moved = late.clone();
        moved.iot_id = "gateway-2".into();
        moved.device_name = "gateway-2".into();
        assert!(shard.replace_task(r_late, other, &moved.as_ref()));
        // (The two devices may share a slot: then the later write, the move's, owns it.)
        assert!(matches!(first(&shard), Some(Locality::NONE) | None));
        assert_eq!(
            own_locality(&shard, other).map(|e| e.first_row),
            Some(r_late.0)
        );
        // Each removal rewrites its device's entry last, so that device owns the slot.
        shard.remove_task(r_late);
        assert_eq!(
            own_locality(&shard, other).map(|e| e.first_row),
            Some(Locality::NONE)
        );
        shard.remove_task(r_done);
        assert_eq!(first(&shard), Some(Locality::NONE));
        shard.validate().unwrap();

        // Many devices: every slot is sized and owned; a shrink keeps the entries.
        for i in 0..300u64 {
            let iot = format!("dev-{i}");
            let dev = shard.add_device(InstanceId(0), &iot, "pk", &iot).unwrap();
            let mut rec = record(i, "m", TaskStatus::Queued, i as i64);
            rec.iot_id = iot.clone();
            rec.device_name = iot;
            let row = shard.insert_task(dev, &rec.as_ref()).unwrap();
            if let Some(entry) = own_locality(&shard, dev) {
                assert_eq!(entry.first_row, row.0);
            }
        }
        assert_eq!(shard.locality.len(), 512);
        shard.validate().unwrap();
        // Batches reserve room for their devices: the slots grow to the next power of two
        // of what the batches add, not by each batch.
        for _ in 0..20 {
            shard.reserve(&crate::engine::Growth {
                rows: 0,
                key_bytes: 0,
                devices: 100,
                device_bytes: 0,
                pairs: 0,
            });
            assert_eq!(shard.locality.len(), 512);
        }
        shard.reserve(&crate::engine::Growth {
            rows: 0,
            key_bytes: 0,
            devices: 300,
            device_bytes: 0,
            pairs: 0,
        });
        assert_eq!(shard.locality.len(), 1024);
        shard.validate().unwrap();
        shard.shrink_to_fit();
        assert_eq!(shard.locality.len(), 512);
        shard.validate().unwrap();
        shard.shrink_to_fit();
        assert_eq!(shard.locality.len(), 512);
        shard.validate().unwrap();

        // A stale entry is caught.
        let owned = (0..shard.devices.len() as u32)
            .map(DeviceIdx)
            .find(|&d| own_locality(&shard, d).is_some_and(|e| e.first_row != Locality::NONE))
            .unwrap();
        let hash = device_hash(&shard.hasher, &shard.devices, &shard.device_strs, owned.0);
        let slot = shard.locality_slot(hash).unwrap();
        shard.locality[slot].first_row += 1;
        assert!(shard.validate().unwrap_err().contains("stale locality"));
        shard.locality[slot] = Locality::EMPTY;
        assert!(shard.validate().unwrap_err().contains("slot is empty"));
    }

    /// Both plans give the same rows in the same order, and the planner picks the bitmap for a
    /// rare module of a large device.
    #[test]
    fn plans_agree_and_the_planner_picks_by_cardinality() {
        let mut shard = Shard::new(DefaultHashBuilder::default(), u32::MAX);
        let d = shard
            .add_device(InstanceId(0), "gateway-1", "pk", "gateway")
            .unwrap();
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        for i in 0..400u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let module = match x % 100 {
                0 | 1 => "Rare",
                2..=40 => "wifi",
                _ => "ble",
            };
            let status = TaskStatus::ALL[(x >> 8) as usize % 7];
            let rec = record(i, module, status, (x >> 20) as i64 % 50);
            shard.insert_task(d, &rec.as_ref()).unwrap();
        }
        shard.validate().unwrap();
        for module in ["rare", "WIFI", "ble"] {
            let m = shard.module_key(module).unwrap();
            let bitmap = shard.bitmaps.module(InstanceId(0), m).unwrap();
            for statuses in [
                StatusSet::UNFINISHED,
                StatusSet::only(TaskStatus::Queued),
                StatusSet::only(TaskStatus::Confirm).with(TaskStatus::InProgress),
            ] {
                let (mut probe, mut by_bitmap) = (SmallVec::new(), SmallVec::new());
                shard.collect_by_probe(d, Some(m), statuses, &mut probe);
                shard.collect_by_bitmap(d, bitmap, statuses, &mut by_bitmap);
                assert_eq!(probe, by_bitmap, "{module} {statuses:?}");
            }
            let rare = module == "rare";
            assert_eq!(
                matches!(shard.plan(d, Some(m)), Plan::ModuleBitmap(_)),
                rare,
                "plan for {module}"
            );
        }
    }
}
