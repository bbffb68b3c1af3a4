//! The shared, concurrent engine: the write path, the read path and the sharding.
//!
//! # Concurrency model
//!
//! Devices are spread over `N` shards ([`default_shards`] by default) by a hash of their
//! `iotId`; a shard holds its devices, their tasks' rows, its dictionaries and its bitmaps,
//! behind its own reader-writer lock. A device query touches exactly one shard (plus one
//! small pair directory shard when the device is named by product key and device name), under
//! a read lock, so readers never wait for each other.
//!
//! The lock is the crate's own (`slotlock`): a reader counts itself in on a cache line of its
//! thread's, for that lock, and then reads a flag that only writers write, so readers on
//! different cores (up to 64 reading at once) write no memory in common. With a plain
//! reader-writer lock every reader writes the lock's one word, and on many cores that cache
//! line travels from core to core, a cross-core transfer for most queries (on a 16-core machine
//! 16 readers answered 11.5–14.4 times what one does with `parking_lot::RwLock`, 64 shards,
//! where the lock-free naive store reached 14.9 and the floor 18.5: BENCHMARKS.md). A writer
//! pays instead: it sets the flag and reads each thread's line (up to a process-wide high-water
//! mark of threads reading at once, at most 64; past 64 reading at once threads share lines).
//!
//! A reader is never held up by a writer that waits, only by one that writes: a writer keeps
//! the flag set only while it checks the readers' lines and, when they are all clear, while it
//! writes, and it never waits for one shard while holding another. A thread holding an answer
//! may therefore query again ([`Engine::unfinished`], the counts, [`Engine::tasks`], …), on any
//! shard, while a writer waits. Two reads are the exception: [`Engine::get`] and
//! [`Engine::memory_usage`] read the task directory, which the writers' mutex owns, and so wait
//! for a writer as a write does; a thread holding an answer must not call them (nor write): the
//! writer would wait for the answer, and the call for the writer. Where threads outnumber cores
//! the writer often waits for a reader it has itself preempted mid-query; with readers queued
//! behind a waiting writer (a plain `parking_lot` read) every other reader of that shard then
//! parked behind it too, and two readers beside the benches' 100,000-a-second writer on two
//! CPUs answered 0.83–0.89 of their speed alone, against 0.91–0.95 when they passed it
//! (BENCHMARKS.md). The price: a writer waits until its shard has no reader at all, and must
//! find that moment itself (readers that overlap without a pause on one shard, a hot device,
//! can keep it out; a `parking_lot` writer is let in once the readers in drain). At a query's
//! microsecond of hold that comes within microseconds while the readers run, but a reader the
//! writer preempted holds the shard until the scheduler runs it again: beside two readers that
//! keep both CPUs busy, a writer upserting one by one made 86,000–98,600 of its 100,000 upserts
//! a second. A writer with a CPU to spare keeps its rate, and so does one that applies its
//! events in batches ([`Engine::write_batch`]), which waits for such a reader about once a
//! batch (below). A writer that waits parks until a reader of its shard lets go; a reader that
//! waits for a write (a run of a batch; a whole shard's reallocation while a bulk load reserves
//! room) spins, yields its CPU, then naps 20 µs at a time.
//!
//! Writers are serialized by one mutex that also owns the task directory (task id → row). A
//! write takes the write lock of the one shard it changes (two when a task moves to a device
//! of another shard, never waiting for one while holding the other) for the microsecond it
//! needs, so a reader sees each task wholly before or wholly after a write. A batch (a bulk
//! load) checks every record first, then applies them shard by shard, 256 records under one
//! shard lock at a time (each shard's structures stay in cache while its records go in), when
//! its records are all new tasks or all the usual event (a stored task with every string
//! unchanged: a status change), and record by record otherwise. Readers wait for at most one
//! such run, and may see a batch half applied (each task whole); a device's pair reaches the
//! name directory once its shard's records are in. A batch of usual events leaves a shard some
//! reader holds for later while another shard has records waiting: a stream consumer that
//! applies what arrived since its last wakeup as one batch waits for readers about once a
//! batch, where upserts one by one may wait at each record (above).
//!
//! Chosen over a snapshot swap (a second copy of the store doubles memory, the first cost of
//! this crate) and over one global lock (its lock word alone caps read scaling).

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use hashbrown::{DefaultHashBuilder, HashMap};
use parking_lot::{Mutex, RwLock};
use smallvec::SmallVec;

use crate::model::{Field, FieldError, RecordRef, StatusSet, TaskRecord, TaskStatus, Timestamp};
use crate::model::{PlainTask, TaskFields};
use crate::query::{DeviceRef, Query, QueryError};
use crate::store::taskkey::{IdText, TaskKey};
use crate::store::{instance_hash, DeviceIdx, Growth, InstanceId, RowIdx, Shard};
use crate::sync::slotlock::{SlotLock, SlotReadGuard, SlotWriteGuard};
use crate::table::intern::ByteSlab;
use crate::table::tagtable::{TagTable, MAX_ADDR};

/// The shard count of [`Engine::new`]: four for each CPU this process may run on
/// ([`std::thread::available_parallelism`]; 1 when unknown), rounded up to a power of two,
/// at least 4 and at most 64: 8 on two CPUs, 64 on sixteen. Answers never depend on it.
///
/// Writers are serialized by one mutex whatever the count, so shards buy readers fewer
/// waits for a writer (which holds one shard at a time), which matters as reader threads
/// (and so CPUs) multiply, and cost
/// copies and cache: each shard interns the job, firmware and version strings and the
/// variant tuples of its own tasks, so with `N` shards the fleet's few thousand variants are
/// held `N` times, and `N` times as many of them must stay in cache for answers and upserts
/// to find them there. On two CPUs at 1,000,000 devices (three engines in one process, 24
/// rounds in turn; BENCHMARKS.md): one reader 800 ns a query with 4 shards, 939 with 8, 963
/// with 16; upserts 515, 570 and 641 ns; but two readers beside the benchmarks' 100,000-a-
/// second writer answered 0.89 of their speed alone with 4 shards against 0.96 with 8 or
/// 16 (the writer, waking on a busy CPU, preempts a reader that holds its shard's read lock,
/// and with fewer shards its next upserts more often need that shard). Four a CPU is
/// `dashmap`'s rule too. [`Engine::with_shards`] sets any other count.
pub fn default_shards() -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    cpus.saturating_mul(4).next_power_of_two().clamp(4, 64)
}

/// Records a shard-by-shard apply writes under one shard lock: readers of the shard wait for
/// at most this many inserts.
const BY_SHARD_RUN: usize = 256;

/// How far ahead of the record being looked up [`Engine::plan_in_place`] starts loading a
/// record's buckets.
const PLAN_AHEAD: usize = 8;

/// How far ahead of the record being applied a shard-by-shard apply prefetches a record's
/// values (and twice as far, the staged record itself). Measured with 4, 8 and 16: alike.
const BY_SHARD_AHEAD: usize = 8;

/// Keeps each lock on its own cache lines so that a writer of one shard does not invalidate
/// the lines readers of its neighbours read.
#[repr(align(128))]
struct Padded<T>(T);

/// How an upsert's record is known to satisfy the field rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Checked {
    /// Not validated: only a record whose every string equals a stored (validated) one's may
    /// be applied.
    ByEquality,
    /// [`RecordRef::validate`] passed.
    Validated,
}

/// What [`Engine::replace_in_place`] did.
enum InPlace {
    /// Applied, refused or found stale.
    Done(Result<UpsertOutcome, WriteError>),
    /// The task is not in the shard of the record's device (or the device or instance is
    /// unknown): the general path decides.
    NotHere,
    /// The task is there, but a string differs from the stored one: validate, then try again.
    Differs,
}

/// A row or device address: shard in the low `shard_bits`, index above.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Loc(u32);

/// Task id → row, across all shards. Owned by the writer mutex: only writers look tasks up
/// by id.
///
/// Entries are addresses with a few bits of hash beside them in 4 bytes (a [`TagTable`]): a
/// probe reads one array and confirms a candidate by reading the task's id in its shard, and a
/// rebuild recomputes hashes the same way. Against 8-byte entries carrying 32 bits of hash:
/// 16.8 MB instead of 37.7 MB for the 3.2 million tasks of the million-device fleet
/// (`memory_usage`).
#[derive(Default)]
struct Directory {
    table: TagTable,
}

/// (instance, productKey, deviceName) → device, for queries by name.
/// Addresses with a few bits of hash beside them, as in [`Directory`] (a [`TagTable`]):
/// candidates are confirmed in the device's shard, and a query can start loading its bucket
/// ahead ([`Engine::prefetch_device`]), which hashbrown's tables do not offer.
/// Aligned like [`Shard`], so the table's header does not share the lock's writer flag's line.
#[derive(Default)]
#[repr(align(128))]
struct PairShard {
    table: TagTable,
    /// Where a query by name reads: by the low bits of the pair's hash, the device's first
    /// unfinished row in its shard (low half) and its name bytes (high half), as the last
    /// query by name found them ([`PairShard::NO_HINT`] when none has). The hint's first step
    /// loads the entry with the bucket, and its second step starts the rows and the name with
    /// the device, where they used to wait for it. A hint: queries write it when they find it
    /// stale, a wrong entry costs a wasted load, and a resize forgets them all.
    hints: Vec<AtomicU64>,
}

impl PairShard {
    const NO_HINT: u64 = u64::MAX;

    /// The hint of `hash`; `None` while the shard has no slots.
    fn hint(&self, hash: u64) -> Option<&AtomicU64> {
        let mask = self.hints.len().checked_sub(1)?;
        self.hints.get(hash as usize & mask)
    }

    /// Sizes the row entries for the pairs held and `additional` more (a slot each, rounded
    /// up to a power of two), forgetting them when the size changes.
    fn size_hints(&mut self, additional: usize) {
        let want = (self.table.len() + additional).next_power_of_two().max(8);
        if want > self.hints.len() {
            self.hints = (0..want).map(|_| AtomicU64::new(Self::NO_HINT)).collect();
        }
    }
}

/// Platform instances; id 0 is the default instance (`""`), which always exists.
struct Instances {
    names: Vec<Box<str>>,
    by_name: HashMap<Box<str>, InstanceId>,
}

struct Inner {
    hasher: DefaultHashBuilder,
    shard_bits: u32,
    shards: Box<[Padded<SlotLock<Shard>>]>,
    pairs: Box<[Padded<SlotLock<PairShard>>]>,
    instances: RwLock<Instances>,
    writer: Mutex<Directory>,
}

/// The in-memory task index. Cheap to clone (an `Arc`), `Send + Sync`: share one per process.
///
/// ```
/// use ota_index::{Engine, Query, TaskFields};
///
/// let engine = Engine::new();
/// engine.load_jsonl(br#"{"taskId":"t1","jobId":"j1","firmwareId":"f1","iotId":"dev-1","productKey":"pk1","productName":"Lamp","deviceName":"lamp-01","moduleName":"default","srcVersion":"1.0","destVersion":"1.1","taskStatus":"QUEUED","utcCreate":"2024-01-01T00:00:00Z","utcModified":"2024-01-01T00:00:00Z"}"#).unwrap();
///
/// let answer = engine.unfinished(&Query::by_iot_id("dev-1")).unwrap();
/// let ids: Vec<String> = answer.iter().map(|t| t.task_id().to_owned()).collect();
/// assert_eq!(ids, ["t1"]);
/// ```
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl Default for Engine {
    fn default() -> Self {
        Engine::new()
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("shards", &self.inner.shards.len())
            .field("tasks", &self.len())
            .finish()
    }
}

/// What an upsert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpsertOutcome {
    /// A new task id: the task was added.
    Inserted,
    /// A known task id: the stored task was replaced.
    Replaced,
    /// The stored task is newer (`utcModified`): the record was dropped.
    Stale {
        /// The stored task's `utcModified`.
        stored: Timestamp,
    },
}

/// A device binding that a record contradicts (contract section 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Binding {
    /// The record's `iotId` is bound to another (`productKey`, `deviceName`).
    IotIdBoundTo {
        /// The bound product key.
        product_key: String,
        /// The bound device name.
        device_name: String,
    },
    /// The record's (`productKey`, `deviceName`) is bound to another `iotId`.
    PairBoundTo {
        /// The bound iotId.
        iot_id: String,
    },
}

/// Why a write was refused. A refused write changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// A field breaks its rule (contract section 1).
    #[error("{0}")]
    InvalidField(#[from] FieldError),
    /// The record would bind a device to a second identity.
    #[error("identity conflict: record binds iotId `{iot_id}` to (`{product_key}`, `{device_name}`), but {}", match .bound {
        Binding::IotIdBoundTo { product_key, device_name } => format!("that iotId is bound to (`{product_key}`, `{device_name}`)"),
        Binding::PairBoundTo { iot_id } => format!("that device is bound to iotId `{iot_id}`"),
    })]
    IdentityConflict {
        /// The record's `iotId`.
        iot_id: String,
        /// The record's `productKey`.
        product_key: String,
        /// The record's `deviceName`.
        device_name: String,
        /// The existing binding it contradicts.
        bound: Binding,
    },
    /// A shard is full (2^32 rows over all shards, or a very skewed device hash).
    #[error("store is full: a shard cannot hold more rows or devices")]
    CapacityExceeded,
}

impl WriteError {
    /// The field at fault: for an identity conflict, `iotId` when the record's `iotId` is
    /// bound to another pair, `deviceName` when its pair is bound to another `iotId`.
    pub fn field(&self) -> Option<Field> {
        match self {
            WriteError::InvalidField(e) => Some(e.field),
            WriteError::IdentityConflict { bound, .. } => Some(match bound {
                Binding::IotIdBoundTo { .. } => Field::IotId,
                Binding::PairBoundTo { .. } => Field::DeviceName,
            }),
            WriteError::CapacityExceeded => None,
        }
    }
}

/// Counts of what a batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteSummary {
    /// New tasks added.
    pub inserted: usize,
    /// Stored tasks replaced.
    pub replaced: usize,
    /// Records dropped as older than the stored task.
    pub stale: usize,
}

impl WriteSummary {
    fn count(&mut self, outcome: UpsertOutcome) {
        match outcome {
            UpsertOutcome::Inserted => self.inserted += 1,
            UpsertOutcome::Replaced => self.replaced += 1,
            UpsertOutcome::Stale { .. } => self.stale += 1,
        }
    }
}

/// Bytes held by the engine, by part (heap capacity, so growth slack counts).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryUsage {
    /// The rows (numeric task ids included: rows keep them as numbers).
    pub rows: usize,
    /// The bytes of task ids that are not decimal numbers (the key slab).
    pub task_ids: usize,
    /// Dictionaries of repeated strings and the variant tuples.
    pub strings: usize,
    /// Devices: records, posting lists, iotId and name bytes, the iotId index and its
    /// locality entries (where each device's query reads, 8 bytes a slot).
    pub devices: usize,
    /// Status, module and job bitmaps.
    pub bitmaps: usize,
    /// The task-id directory.
    pub task_directory: usize,
    /// The (productKey, deviceName) directory.
    pub pair_directory: usize,
    /// The locks' reader slots (128 bytes for each of 64 threads, for each shard and each
    /// directory shard).
    pub locks: usize,
}

impl MemoryUsage {
    /// All parts together.
    pub fn total(&self) -> usize {
        self.rows
            + self.task_ids
            + self.strings
            + self.devices
            + self.bitmaps
            + self.task_directory
            + self.pair_directory
            + self.locks
    }
}

/// A fleet-wide count: tasks of an instance by status, optionally of one module and one job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaskFilter<'a> {
    /// The instance (`None`: the default one).
    pub instance: Option<&'a str>,
    /// Statuses counted; empty means all seven.
    pub statuses: StatusSet,
    /// Only this module (ASCII case ignored). Values are not checked against the field
    /// rules: one no task has (`Some("")` included, unlike an empty `ModuleName` in a query)
    /// counts 0.
    pub module: Option<&'a str>,
    /// Only this job (`Some("")`, or any id no task has, counts 0).
    pub job: Option<&'a str>,
}

/// What the earlier records of a batch that is not applied yet will have done: the bindings
/// they make and the latest version they leave of each task. Entries are record indices in
/// [`TagTable`]s (4 bytes, with a few bits of the hash beside them), hashed by the strings they
/// stand for and confirmed against the record they name; the tables are sized for the whole
/// batch at once, and a batch's loop prefetches the buckets of the records ahead of it
/// ([`BatchHashes`]), which hashbrown's tables offer no way to do.
struct Overlay {
    /// (instance, iotId) → the record that binds the device (to its pair).
    by_iot: TagTable,
    /// (instance, productKey, deviceName) → the record that binds the pair (to its iotId).
    by_pair: TagTable,
    /// (instance, taskId) → the task's latest record that is not stale.
    latest: TagTable,
    /// The store held no task and no device when the batch began (a first load): no record
    /// needs looking up there. The writer lock, held throughout, keeps it so.
    store_empty: bool,
}

impl Overlay {
    /// The overlay of a batch of `n` records, checked with the writer lock (`dir`) held.
    fn new(engine: &Engine, dir: &Directory, n: usize) -> Overlay {
        let last = u32::try_from(n.saturating_sub(1)).unwrap_or(MAX_ADDR);
        Overlay {
            by_iot: TagTable::with_capacity(n, last),
            by_pair: TagTable::with_capacity(n, last),
            latest: TagTable::with_capacity(n, last),
            store_empty: dir.table.is_empty() && engine.device_count() == 0,
        }
    }

    /// Starts loading the buckets a record with these hashes will probe.
    fn prefetch(&self, h: &BatchHashes) {
        self.by_iot.prefetch(h.iot);
        self.by_pair.prefetch(h.pair);
        self.latest.prefetch(h.task);
    }
}

/// A batch record's hashes in the three [`Overlay`] tables.
#[derive(Debug, Clone, Copy, Default)]
struct BatchHashes {
    iot: u64,
    pair: u64,
    task: u64,
}

/// A batch record about to be checked.
#[derive(Debug, Clone, Copy)]
struct Checking {
    /// Its index in the batch.
    i: usize,
    hashes: BatchHashes,
    /// The record before it named the same device and was not stale, so it bound the device
    /// to this very pair or found it so bound: the device tables need no look.
    bound: bool,
}

/// How many records ahead of its checks a batch computes hashes and prefetches buckets.
const CHECK_AHEAD: usize = 8;

/// What a batch's checks learned of a record, so that applying it skips lookups whose
/// answer is known. [`Known::NOTHING`] for a write that was not checked as part of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Known {
    /// Neither the store nor an earlier record has the task: it is inserted.
    new_task: bool,
    /// Neither the store nor an earlier record has the device: it is added.
    new_device: bool,
    /// The record is older than the task's latest version: it makes no binding.
    stale: bool,
}

impl Known {
    const NOTHING: Known = Known {
        new_task: false,
        new_device: false,
        stale: false,
    };
}

/// True when two records name the same device the same way (instance, iotId and pair).
fn same_device(a: &RecordRef<'_>, b: &RecordRef<'_>) -> bool {
    a.iot_id == b.iot_id
        && a.device_name == b.device_name
        && a.product_key == b.product_key
        && a.iot_instance_id == b.iot_instance_id
}

/// The records of each shard in input order (a counting sort of `shard_of`, one shard index
/// a record): shard `s`'s records are `order[start[s]..start[s + 1]]`.
fn by_shard(shards: usize, shard_of: impl Iterator<Item = u32> + Clone) -> (Vec<usize>, Vec<u32>) {
    let mut start = vec![0usize; shards + 1];
    for s in shard_of.clone() {
        start[s as usize + 1] += 1;
    }
    for s in 0..shards {
        start[s + 1] += start[s];
    }
    let mut next = start.clone();
    let mut order = vec![0u32; start[shards]];
    for (i, s) in shard_of.enumerate() {
        order[next[s as usize]] = i as u32;
        next[s as usize] += 1;
    }
    (start, order)
}

/// Read guards of the shards a plan has touched, by shard ([`Engine::plan_in_place`]).
type Guards<'e> = SmallVec<[Option<SlotReadGuard<'e, Shard>>; 64]>;

/// A record's stored task in its device's shard ([`Engine::find_here`]).
#[derive(Debug, Clone, Copy)]
struct Found {
    row: RowIdx,
    /// The device the record names by its iotId.
    device: DeviceIdx,
    /// The row belongs to that device.
    same_iot: bool,
    /// That device has the record's product key and device name.
    same_device: bool,
    /// The row's six shared strings equal the record's.
    same_variant: bool,
}

impl Found {
    /// Every string of the record equals the stored task's.
    fn all_same(&self) -> bool {
        self.same_iot && self.same_device && self.same_variant
    }
}

fn conflict(rec: &RecordRef<'_>, bound: Binding) -> WriteError {
    WriteError::IdentityConflict {
        iot_id: rec.iot_id.to_owned(),
        product_key: rec.product_key.to_owned(),
        device_name: rec.device_name.to_owned(),
        bound,
    }
}

impl Engine {
    /// An empty engine with [`default_shards`] shards (four a CPU).
    pub fn new() -> Engine {
        Engine::with_shards(default_shards())
    }

    /// An empty engine with `shards` shards (at least 1, at most 4096).
    pub fn with_shards(shards: usize) -> Engine {
        let shards = shards.clamp(1, 4096);
        let shard_bits = usize::BITS - (shards - 1).leading_zeros();
        let capacity = MAX_ADDR >> shard_bits;
        let hasher = DefaultHashBuilder::default();
        let mut names = Vec::new();
        let mut by_name = HashMap::new();
        names.push(Box::<str>::from(""));
        by_name.insert(Box::<str>::from(""), InstanceId(0));
        Engine {
            inner: Arc::new(Inner {
                shards: (0..shards)
                    .map(|_| Padded(SlotLock::new(Shard::new(hasher, capacity))))
                    .collect(),
                pairs: (0..shards)
                    .map(|_| Padded(SlotLock::new(PairShard::default())))
                    .collect(),
                instances: RwLock::new(Instances { names, by_name }),
                writer: Mutex::new(Directory::default()),
                shard_bits,
                hasher,
            }),
        }
    }

    /// The number of shards.
    pub fn shards(&self) -> usize {
        self.inner.shards.len()
    }

    // ---- reads ---------------------------------------------------------------------------

    /// The unfinished tasks of the query's device that pass its filters, in contract order
    /// (`utcCreate` ascending, then `taskId` bytes), as borrowed views.
    ///
    /// The answer holds a read lock on the device's shard until dropped: serialize it and let
    /// it go (writers to that shard wait meanwhile; other queries, on this thread or another,
    /// pass a waiting writer and are answered). Before returning, it starts loading the
    /// fields of the answer's first few tasks (they are about to be read), so that their cache
    /// misses overlap.
    pub fn unfinished<'a>(&'a self, query: &Query<'a>) -> Result<Unfinished<'a>, QueryError> {
        query.validate()?;
        self.unfinished_checked(query)
    }

    /// [`Engine::unfinished`] for a query whose values passed their field rules already (the
    /// RPC layer checks them, in the contract's order, while parsing).
    pub(crate) fn unfinished_checked<'a>(
        &'a self,
        query: &Query<'a>,
    ) -> Result<Unfinished<'a>, QueryError> {
        self.unfinished_held(query, None)
    }

    /// [`Engine::unfinished_checked`] with the shard lock a [`HeldHint`] took, used when the
    /// query's device is in that shard (and dropped first otherwise).
    pub(crate) fn unfinished_held<'a>(
        &'a self,
        query: &Query<'a>,
        held: Option<HeldHint<'a>>,
    ) -> Result<Unfinished<'a>, QueryError> {
        let instance_name = query.instance_name();
        let instance = self.instance_for_read(instance_name)?;
        let mut answer = Unfinished {
            guard: None,
            rows: SmallVec::new(),
            instance: instance_name,
        };
        let Some((guard, device)) = self.locate(instance, query.device, held) else {
            return Ok(answer);
        };
        let module = match query.module.filter(|m| !m.is_empty()) {
            None => None,
            Some(m) => match guard.module_key(m) {
                Some(key) => Some(key),
                None => return Ok(answer),
            },
        };
        guard.collect_unfinished(device, module, query.effective_statuses(), &mut answer.rows);
        // Start loading what serializing the first tasks will read, so that their cache
        // misses overlap (about 15% of a served query at 1,000,000 devices; placed here, not
        // in a method the service calls after this returns, which measured no gain).
        guard.prefetch_answer(&answer.rows[..answer.rows.len().min(PREFETCH_TASKS)]);
        answer.guard = Some(guard);
        Ok(answer)
    }

    /// Starts loading, without waiting for it, the first memory a query of `device` in the
    /// instance named `instance` reads (a lock and the device's bucket: in its shard's `iotId`
    /// table, or in the pair directory for a device named by product key and name), so that
    /// work the caller does before the query (decoding and checking a request) overlaps that
    /// wait instead of preceding it. Pass what it returns to
    /// [`Engine::prefetch_device_record`] after some more work, to start loading the device
    /// itself. A hint: it changes nothing and answers nothing; an unknown instance or device
    /// costs only the hint, and it gives up (`None`) rather than wait for a writer.
    ///
    /// ```
    /// use ota_index::{DeviceRef, Engine, Query};
    /// let engine = Engine::new();
    /// let hint = engine.prefetch_device("", DeviceRef::IotId("dev-1"));
    /// // ... decode the request ...
    /// if let Some(hint) = hint {
    ///     engine.prefetch_device_record(hint);
    /// }
    /// // ... check the rest of it ...
    /// assert!(engine.unfinished(&Query::by_iot_id("dev-1")).unwrap().is_empty());
    /// ```
    pub fn prefetch_device(&self, instance: &str, device: DeviceRef<'_>) -> Option<DeviceHint> {
        let instance = self.instance_for_read(instance).ok()?;
        match device {
            DeviceRef::IotId(iot) => {
                let (shard, hash) = self.iot_location(instance, iot);
                let guard = self.inner.shards[shard].0.try_read()?;
                guard.prefetch_bucket(hash);
                Some(DeviceHint(Hint::Iot { shard, hash }))
            }
            DeviceRef::Name {
                product_key,
                device_name,
            } => {
                let hash = self.pair_hash(instance, product_key, device_name);
                let dir = self.pair_shard(hash);
                let pairs = self.inner.pairs[dir].0.try_read()?;
                pairs.table.prefetch(hash);
                if let Some(entry) = pairs.hint(hash) {
                    crate::raw::prefetch::prefetch(entry);
                }
                Some(DeviceHint(Hint::Pair { dir, hash }))
            }
        }
    }

    /// The second step of [`Engine::prefetch_device`]: reads the device's bucket (by now
    /// loaded, or on its way) and starts loading the device its first candidate entry points
    /// to, and its first rows, from a small table the first step loaded too (for a device
    /// named by `IotId`, also its `iotId` bytes), so that the query then waits for them once,
    /// not one after the other. A hint, as the first step.
    pub fn prefetch_device_record(&self, hint: DeviceHint) {
        let (shard, first) = match hint.0 {
            Hint::Iot { shard, hash } => (shard, FirstCandidate::Iot(hash)),
            Hint::Pair { dir, hash } => {
                let Some(pairs) = self.inner.pairs.get(dir).and_then(|p| p.0.try_read()) else {
                    return;
                };
                let Some(loc) = pairs.table.find(hash, |_| true) else {
                    return;
                };
                let row = pairs
                    .hint(hash)
                    .map_or(PairShard::NO_HINT, |e| e.load(Ordering::Relaxed));
                drop(pairs);
                let (shard, d) = self.unloc(Loc(loc));
                (shard, FirstCandidate::Device(DeviceIdx(d), row))
            }
        };
        if let Some(guard) = self.inner.shards.get(shard).and_then(|s| s.0.try_read()) {
            match first {
                FirstCandidate::Iot(hash) => guard.prefetch_device(hash),
                FirstCandidate::Device(d, entry) => {
                    guard.prefetch_device_at(d);
                    // Medians of 30 rounds in one process at 1,000,000 devices, with
                    // and without these two: the mix 826 / 848 ns, by name 1,115 / 1,325.
                    guard.prefetch_rows_at(entry as u32);
                    guard.prefetch_device_str((entry >> 32) as u32);
                }
            }
        }
    }

    /// How many tasks [`Engine::unfinished`] would return (the matching rows are found, no
    /// view is built).
    pub fn count_unfinished(&self, query: &Query<'_>) -> Result<usize, QueryError> {
        Ok(self.unfinished(query)?.len())
    }

    /// Counts tasks of the whole instance by status, module and job, from the bitmaps.
    ///
    /// ```
    /// use ota_index::{Engine, StatusSet, TaskFilter};
    /// let engine = Engine::new();
    /// assert_eq!(engine.count_tasks(&TaskFilter::default()).unwrap(), 0);
    /// ```
    pub fn count_tasks(&self, filter: &TaskFilter<'_>) -> Result<u64, QueryError> {
        let instance = self.instance_for_read(filter.instance.unwrap_or(""))?;
        let statuses = if filter.statuses.is_empty() {
            StatusSet::ALL
        } else {
            filter.statuses
        };
        Ok(self
            .inner
            .shards
            .iter()
            .map(|s| {
                let shard = s.0.read();
                let module = filter.module.map(|m| shard.module_key(m));
                let job = filter.job.map(|j| shard.dict.lookup(j));
                shard.bitmaps.count(instance, statuses, module, job)
            })
            .sum())
    }

    /// The default instance inline (every query pays this twice); a named one out of line.
    #[inline]
    fn instance_for_read(&self, name: &str) -> Result<InstanceId, QueryError> {
        if name.is_empty() {
            return Ok(InstanceId(0));
        }
        self.named_instance_for_read(name)
    }

    #[inline(never)]
    fn named_instance_for_read(&self, name: &str) -> Result<InstanceId, QueryError> {
        self.inner
            .instances
            .read()
            .by_name
            .get(name)
            .copied()
            .ok_or_else(|| QueryError::InstanceNotFound(name.to_owned()))
    }

    fn shard_index(&self, iot: &str) -> usize {
        self.shard_of_hash(self.inner.hasher.hash_one(iot))
    }

    /// The shard of the device whose `iotId` bytes hash to `iot_bytes_hash` (the engine's
    /// hasher over the `iotId` alone).
    fn shard_of_hash(&self, iot_bytes_hash: u64) -> usize {
        ((u128::from(iot_bytes_hash) * self.inner.shards.len() as u128) >> 64) as usize
    }

    /// Device `iot` of `instance`: its shard and its key in that shard's `iotId` index (what
    /// [`Shard::iot_hash`] gives), from one hash of the bytes.
    fn iot_location(&self, instance: InstanceId, iot: &str) -> (usize, u64) {
        let bytes_hash = self.inner.hasher.hash_one(iot);
        (
            self.shard_of_hash(bytes_hash),
            instance_hash(bytes_hash, instance),
        )
    }

    fn pair_hash(&self, instance: InstanceId, product_key: &str, device_name: &str) -> u64 {
        self.inner
            .hasher
            .hash_one((instance.0, product_key, device_name))
    }

    /// A record's hashes in the overlay's tables: by instance name (the batch may name
    /// instances the store lacks).
    fn batch_hashes(&self, rec: &RecordRef<'_>) -> BatchHashes {
        let (inst, h) = (rec.iot_instance_id, &self.inner.hasher);
        BatchHashes {
            iot: h.hash_one((inst, rec.iot_id)),
            pair: h.hash_one((inst, rec.product_key, rec.device_name)),
            task: h.hash_one((inst, rec.task_id)),
        }
    }

    fn task_hash(&self, instance: InstanceId, task_id: &str) -> u64 {
        self.inner.hasher.hash_one((instance.0, task_id))
    }

    /// The directory hash of the task at `loc`, read from its shard.
    fn task_hash_at(&self, loc: Loc) -> u64 {
        let (shard, row) = self.unloc(loc);
        let guard = self.inner.shards[shard].0.read();
        let row = RowIdx(row);
        self.task_hash(guard.row_instance(row), guard.row_id(row).as_str())
    }

    /// The pair hash of the device at `loc`, read from its shard.
    fn pair_hash_at(&self, loc: Loc) -> u64 {
        let (shard, d) = self.unloc(loc);
        let guard = self.inner.shards[shard].0.read();
        let d = DeviceIdx(d);
        self.pair_hash(
            guard.device(d).instance,
            guard.device_product_key(d),
            guard.device_name(d),
        )
    }

    fn loc(&self, shard: usize, idx: u32) -> Loc {
        Loc(idx << self.inner.shard_bits | shard as u32)
    }

    fn unloc(&self, loc: Loc) -> (usize, u32) {
        let mask = (1u32 << self.inner.shard_bits) - 1;
        ((loc.0 & mask) as usize, loc.0 >> self.inner.shard_bits)
    }

    /// The pair directory shard of a pair hash, from bits 16–31: a [`TagTable`] takes its
    /// bucket from the low bits (below 2^26 buckets a shard, bits 0–25) and its tags from the
    /// top of the upper half, which must stay independent of it (the shard is the product's
    /// top bits: bits 26–31 for 64 shards).
    fn pair_shard(&self, hash: u64) -> usize {
        ((u64::from((hash >> 16) as u16) * self.inner.pairs.len() as u64) >> 16) as usize
    }

    /// The shard (read-locked) and device a query names, if the device is known.
    fn locate<'a>(
        &'a self,
        instance: InstanceId,
        device: DeviceRef<'_>,
        held: Option<HeldHint<'a>>,
    ) -> Option<(SlotReadGuard<'a, Shard>, DeviceIdx)> {
        match device {
            DeviceRef::IotId(iot) => {
                let (shard, hash) = self.iot_location(instance, iot);
                // The hint's lock when it is this shard's; otherwise it goes before another
                // is taken (a reader never waits for a lock while holding one).
                let guard = match held {
                    Some(h) if h.shard == shard => h.guard,
                    other => {
                        drop(other);
                        // Past a waiting writer (see the module's "Concurrency model").
                        self.inner.shards[shard].0.read()
                    }
                };
                let d = guard.find_device_hashed(instance, iot, hash)?;
                Some((guard, d))
            }
            DeviceRef::Name {
                product_key,
                device_name,
            } => {
                drop(held);
                let (guard, _, d) = self.find_pair(instance, product_key, device_name)?;
                Some((guard, d))
            }
        }
    }

    /// The first step of a device hint for a device named by `iotId` in the default
    /// instance, keeping its shard's read lock for the query ([`Engine::unfinished_held`]):
    /// the lock is taken once a query rather than once for each of the hint's two steps and
    /// again for the query. For the service's fast path only, where nothing
    /// but parsing the request comes between the hint and the query (the lock delays writers
    /// of the shard meanwhile). `None` when a writer holds the shard (or is checking its
    /// readers).
    pub(crate) fn hold_iot_hint(&self, iot: &str) -> Option<HeldHint<'_>> {
        let (shard, hash) = self.iot_location(InstanceId(0), iot);
        let guard = self.inner.shards[shard].0.try_read()?;
        guard.prefetch_bucket(hash);
        Some(HeldHint { shard, hash, guard })
    }

    /// The device bound to a pair: candidates from the pair directory, confirmed in their
    /// shard (the directory keeps hashes, not strings), returned with the read lock of that
    /// shard it was confirmed under. Never waits for a lock while holding another: the one
    /// lock it may take beside the shard's is the directory's, with `try_read`, to correct the
    /// device's hint (see [`PairShard`]) when it found it stale.
    fn find_pair(
        &self,
        instance: InstanceId,
        product_key: &str,
        device_name: &str,
    ) -> Option<(SlotReadGuard<'_, Shard>, usize, DeviceIdx)> {
        let hash = self.pair_hash(instance, product_key, device_name);
        let dir = self.pair_shard(hash);
        let mut candidates: SmallVec<[Loc; 4]> = SmallVec::new();
        let pairs = self.inner.pairs[dir].0.read();
        pairs.table.find(hash, |addr| {
            candidates.push(Loc(addr));
            false // every entry with the hash's tag
        });
        let hinted = pairs
            .hint(hash)
            .map_or(PairShard::NO_HINT, |e| e.load(Ordering::Relaxed));
        drop(pairs);
        candidates.into_iter().find_map(|loc| {
            let (shard, idx) = self.unloc(loc);
            let d = DeviceIdx(idx);
            let guard = self.inner.shards[shard].0.read();
            // The rows start loading while the name is compared (when the hint did not
            // start them earlier): medians of 30 interleaved rounds of the mix at 1,000,000
            // devices 972 -> 949 and 973 -> 958 ns.
            guard.prefetch_rows(d);
            let found = d.idx() < guard.devices.len()
                && guard.device_is(d, instance, product_key, device_name);
            if found {
                let first = guard.first_unfinished(d).map_or(u32::MAX, |r| r.0);
                let first = u64::from(first) | u64::from(guard.device(d).name.0) << 32;
                if first != hinted {
                    if let Some(pairs) = self.inner.pairs[dir].0.try_read() {
                        if let Some(entry) = pairs.hint(hash) {
                            entry.store(first, Ordering::Relaxed);
                        }
                    }
                }
            }
            found.then_some((guard, shard, d))
        })
    }

    /// The write locks of shards `a` and `b` (different), never waiting for one while
    /// holding the other: a thread holding an answer of one shard may query the other while
    /// this writer waits (see the module's "Concurrency model"), and a writer holding that
    /// other shard meanwhile would wait for the answer while the answer's thread waits for
    /// it.
    fn write_two(
        &self,
        a: usize,
        b: usize,
    ) -> (SlotWriteGuard<'_, Shard>, SlotWriteGuard<'_, Shard>) {
        let (la, lb) = (&self.inner.shards[a].0, &self.inner.shards[b].0);
        loop {
            let ga = la.write();
            if let Some(gb) = lb.try_write() {
                return (ga, gb);
            }
            drop(ga);
            let gb = lb.write();
            if let Some(ga) = la.try_write() {
                return (ga, gb);
            }
        }
    }

    /// The stored task `task_id` of `instance`, copied.
    ///
    /// It reads the task directory under the writers' mutex, so it waits for a write in
    /// progress, and a thread holding an answer ([`Unfinished`]) must not call it: a writer
    /// waiting for that answer's shard would hold the mutex meanwhile (see "Concurrency
    /// model" in the module docs).
    pub fn get(&self, instance: &str, task_id: &str) -> Option<TaskRecord> {
        let inst = self.instance_for_read(instance).ok()?;
        let dir = self.inner.writer.lock();
        let loc = self.find_task(&dir, inst, task_id)?;
        let (shard, row) = self.unloc(loc);
        let guard = self.inner.shards[shard].0.read();
        Some(TaskView::new(&guard, RowIdx(row), instance).to_record())
    }

    /// Every stored task (finished ones too), copied, in no particular order. For tests,
    /// dumps and fleet-wide exports; takes each shard's read lock in turn.
    pub fn tasks(&self) -> Vec<TaskRecord> {
        let names: Vec<Box<str>> = self.inner.instances.read().names.clone();
        let mut out = Vec::with_capacity(self.len());
        for s in self.inner.shards.iter() {
            let shard = s.0.read();
            for row in shard.rows() {
                let instance = names
                    .get(shard.row_instance(row).idx())
                    .map_or("", |n| &**n);
                out.push(TaskView::new(&shard, row, instance).to_record());
            }
        }
        out
    }

    /// The number of stored tasks, finished ones included.
    pub fn len(&self) -> usize {
        self.inner
            .shards
            .iter()
            .map(|s| s.0.read().live_rows())
            .sum()
    }

    /// True when no task is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The number of devices ever bound (bindings outlive their tasks).
    pub fn device_count(&self) -> usize {
        self.inner
            .shards
            .iter()
            .map(|s| s.0.read().devices.len())
            .sum()
    }

    /// The instances the store holds, the default one (`""`) first.
    pub fn instances(&self) -> Vec<String> {
        self.inner
            .instances
            .read()
            .names
            .iter()
            .map(|n| n.to_string())
            .collect()
    }

    // ---- writes --------------------------------------------------------------------------

    /// Adds or replaces one task (contract section 2): a new task id adds, a known one
    /// replaces unless the stored task has a newer `utcModified`.
    ///
    /// ```
    /// # use ota_index::{Engine, TaskRecord, TaskStatus, Timestamp, UpsertOutcome};
    /// # let t = |s| Timestamp::parse(s).unwrap();
    /// # let mut task = TaskRecord { task_id: "t1".into(), job_id: "j1".into(), firmware_id: "f1".into(), iot_id: "dev-1".into(), product_key: "pk1".into(), product_name: "Lamp".into(), device_name: "lamp-01".into(), module_name: "default".into(), src_version: "1.0".into(), dest_version: "1.1".into(), status: TaskStatus::Queued, utc_create: t("2024-01-01T00:00:00Z"), utc_modified: t("2024-01-01T00:00:00Z"), iot_instance_id: String::new() };
    /// let engine = Engine::new();
    /// assert_eq!(engine.upsert(&task), Ok(UpsertOutcome::Inserted));
    /// task.status = TaskStatus::Succeeded;
    /// task.utc_modified = t("2024-01-02T00:00:00Z");
    /// assert_eq!(engine.upsert(&task), Ok(UpsertOutcome::Replaced));
    /// task.status = TaskStatus::Queued; // a replayed, older event
    /// task.utc_modified = t("2024-01-01T00:00:00Z");
    /// assert!(matches!(engine.upsert(&task), Ok(UpsertOutcome::Stale { .. })));
    /// ```
    pub fn upsert(&self, record: &TaskRecord) -> Result<UpsertOutcome, WriteError> {
        self.upsert_ref(&record.as_ref())
    }

    /// [`Engine::upsert`] for a borrowed record.
    pub fn upsert_ref(&self, record: &RecordRef<'_>) -> Result<UpsertOutcome, WriteError> {
        let dir = self.inner.writer.lock();
        // The usual event, a status change, repeats every string of the stored task: those
        // were validated when stored, so the record needs no validation (the field rules were
        // a third of an upsert's instructions). Anything else is validated first, as always.
        let fast = if record.within_bounds() {
            self.replace_in_place(&dir, record, Checked::ByEquality)
        } else {
            InPlace::NotHere
        };
        let known = match fast {
            InPlace::Done(outcome) => return outcome,
            InPlace::NotHere => false,
            InPlace::Differs => true,
        };
        // Validation needs no lock (a hostile record's long strings must not hold writers up).
        drop(dir);
        record.validate()?;
        let mut dir = self.inner.writer.lock();
        if known {
            if let InPlace::Done(outcome) = self.replace_in_place(&dir, record, Checked::Validated)
            {
                return outcome;
            }
        }
        self.check_identity(record)?;
        self.check_capacity(std::iter::once((self.shard_index(record.iot_id), 1)))?;
        self.apply(&mut dir, record, Known::NOTHING)
    }

    /// Applies records in order, all or nothing: every record is validated and checked for
    /// identity conflicts (against the store and the batch's earlier records) before the
    /// first is applied. The outcome is that of upserting the records one by one
    /// ([`Engine::upsert`]), stale records included; on error, the index of the first record
    /// one-by-one upserts would refuse, the same error, and nothing changed.
    ///
    /// The way to feed an event stream: a batch of status changes (stored tasks, every
    /// string as stored) needs no validation and goes in shard by shard, one lock a shard
    /// for up to 256 of its records, skipping shards that readers hold until the others are
    /// done; it costs less than upserting its records one by one (about 400 against 450 ns a
    /// record in batches of 100 at 1,000,000 devices, BENCHMARKS.md), and its writer waits
    /// for readers about once a batch rather than at each record whose shard a reader holds.
    /// Readers may see such a batch's records of different shards go in out of input order
    /// (each task's records in order). A batch is all or nothing: where one by one a bad
    /// event would be refused alone, here it refuses the batch, and the error's index names
    /// it (drop it and write the rest).
    ///
    /// ```
    /// # use ota_index::{Engine, TaskRecord, TaskStatus, Timestamp, WriteSummary};
    /// # let t = |s| Timestamp::parse(s).unwrap();
    /// # let task = |id: &str, dev: &str| TaskRecord { task_id: id.into(), job_id: "j1".into(), firmware_id: "f1".into(), iot_id: dev.into(), product_key: "pk1".into(), product_name: "Lamp".into(), device_name: dev.into(), module_name: "default".into(), src_version: "1.0".into(), dest_version: "1.1".into(), status: TaskStatus::Queued, utc_create: t("2024-01-01T00:00:00Z"), utc_modified: t("2024-01-01T00:00:00Z"), iot_instance_id: String::new() };
    /// let engine = Engine::new();
    /// let stored = [task("t1", "lamp-1"), task("t2", "lamp-2")];
    /// let refs: Vec<_> = stored.iter().map(TaskRecord::as_ref).collect();
    /// assert_eq!(engine.write_batch(&refs).unwrap().inserted, 2);
    ///
    /// // Status events since the last poll: t1 twice, then an old event of t2 replayed.
    /// let mut events = vec![stored[0].clone(), stored[0].clone(), stored[1].clone()];
    /// (events[0].status, events[0].utc_modified) = (TaskStatus::InProgress, t("2024-01-02T00:00:00Z"));
    /// (events[1].status, events[1].utc_modified) = (TaskStatus::Succeeded, t("2024-01-03T00:00:00Z"));
    /// events[2].utc_modified = t("2023-12-31T00:00:00Z");
    /// let refs: Vec<_> = events.iter().map(TaskRecord::as_ref).collect();
    /// let summary = engine.write_batch(&refs).unwrap();
    /// assert_eq!(summary, WriteSummary { inserted: 0, replaced: 2, stale: 1 });
    /// assert_eq!(engine.get("", "t1").unwrap().status, TaskStatus::Succeeded);
    /// ```
    pub fn write_batch(
        &self,
        records: &[RecordRef<'_>],
    ) -> Result<WriteSummary, (usize, WriteError)> {
        self.write_batch_by(records.len(), false, |i| records[i], |_, _| {})
    }

    /// [`Engine::write_batch`] over records made on demand by `get(0..n)` (the bulk loader
    /// keeps them compact and builds each view twice rather than holding them all).
    /// `validated`: the caller already checked every field rule (the bulk loader does, while
    /// parsing).
    pub(crate) fn write_batch_by<'r>(
        &self,
        n: usize,
        validated: bool,
        get: impl Fn(usize) -> RecordRef<'r>,
        prefetch: impl Fn(usize, bool),
    ) -> Result<WriteSummary, (usize, WriteError)> {
        {
            let dir = self.inner.writer.lock();
            if let Some(plan) = self.plan_in_place(&dir, n, &get) {
                return Ok(self.apply_in_place(&plan, &get));
            }
        }
        if !validated {
            for i in 0..n {
                if let Err(e) = get(i).validate() {
                    // One by one, an earlier record's identity conflict would be refused first.
                    return Err(self
                        .first_identity_conflict(i, &get)
                        .unwrap_or((i, WriteError::from(e))));
                }
            }
        }
        let mut dir = self.inner.writer.lock();
        let mut overlay = Overlay::new(self, &dir, n);
        let mut known = Vec::with_capacity(n);
        // Each record's shard, for a batch of new tasks, which is applied shard by shard.
        let mut shard_of = Vec::with_capacity(n);
        let mut named_instances = false;
        // What each shard will receive at most, for capacity and sizing.
        let mut per_shard = vec![Growth::default(); self.inner.shards.len()];
        // New pairs for each pair directory shard (devices of known instances).
        let mut pairs_per_shard = vec![0usize; self.inner.pairs.len()];
        // The records ahead and their hashes, their buckets on the way (each record made
        // once: `get` checks eleven string bounds).
        let mut ahead = std::collections::VecDeque::with_capacity(CHECK_AHEAD + 1);
        let announce = |ahead: &mut std::collections::VecDeque<_>, overlay: &Overlay, i| {
            let r = get(i);
            let h = self.batch_hashes(&r);
            overlay.prefetch(&h);
            ahead.push_back((r, h));
        };
        for i in 0..n.min(CHECK_AHEAD) {
            announce(&mut ahead, &overlay, i);
        }
        let mut previous = None;
        for i in 0..n {
            if i + CHECK_AHEAD < n {
                announce(&mut ahead, &overlay, i + CHECK_AHEAD);
            }
            let Some((r, hashes)) = ahead.pop_front() else {
                break; // cannot happen: record `i` was announced
            };
            // A device's records usually come together: the second and later need no look
            // at the device tables.
            let bound = previous
                .is_some_and(|(p, k): (RecordRef<'_>, Known)| !k.stale && same_device(&p, &r));
            let k = self
                .check_batch_record(&dir, Checking { i, hashes, bound }, &r, &mut overlay, &get)
                .map_err(|e| (i, e))?;
            previous = Some((r, k));
            known.push(k);
            let shard = self.shard_index(r.iot_id);
            shard_of.push(shard as u32);
            named_instances |= !r.iot_instance_id.is_empty();
            let g = &mut per_shard[shard];
            g.rows += 1;
            if TaskKey::numeric(r.task_id).is_none() {
                g.key_bytes += ByteSlab::entry_bytes(r.task_id.len());
            }
            if k.new_device {
                g.devices += 1;
                g.device_bytes += ByteSlab::entry_bytes(r.iot_id.len())
                    + ByteSlab::entry_bytes(r.device_name.len());
                // A new instance's id (and so its pairs' hashes) is only made when applied.
                if let Some(id) = self.known_instance(r.iot_instance_id) {
                    let hash = self.pair_hash(id, r.product_key, r.device_name);
                    pairs_per_shard[self.pair_shard(hash)] += 1;
                }
            }
        }
        drop(overlay);
        self.check_capacity(per_shard.iter().enumerate().map(|(s, g)| (s, g.rows)))
            .map_err(|e| (0, e))?;
        if n >= 1024 {
            // Grow every column once, exactly: a bulk-loaded fleet carries no doubling slack.
            for (shard, g) in per_shard.iter().enumerate() {
                self.inner.shards[shard].0.write().reserve(g);
                let mut pairs = self.inner.pairs[shard].0.write();
                let new_pairs = pairs_per_shard[shard];
                pairs
                    .table
                    .reserve(new_pairs, |a| self.pair_hash_at(Loc(a)));
                pairs.size_hints(new_pairs);
            }
            dir.table.reserve(n, |a| self.task_hash_at(Loc(a)));
        }
        if known.iter().all(|k| k.new_task) {
            return self.apply_new_by_shard(
                &mut dir,
                &known,
                &shard_of,
                named_instances,
                &get,
                &prefetch,
            );
        }
        let mut summary = WriteSummary::default();
        for (i, k) in known.into_iter().enumerate() {
            // Cannot fail: identity and capacity were checked above with the writer lock held.
            summary.count(self.apply(&mut dir, &get(i), k).map_err(|e| (i, e))?);
        }
        Ok(summary)
    }

    /// Applies a checked batch of new tasks (no record replaces a stored task or an earlier
    /// record's) shard by shard: with no task written twice, the order of application changes
    /// nothing but the rows' places, and one shard's devices, rows, dictionaries and bitmaps
    /// stay in cache while its records go in. Each run of up to [`BY_SHARD_RUN`] records goes
    /// in under one write lock (each task whole to readers, as ever); the pairs of a shard's
    /// new devices follow its runs, and the task directory, which only writers read, is
    /// filled last in the order of its buckets.
    fn apply_new_by_shard<'r>(
        &self,
        dir: &mut Directory,
        known: &[Known],
        shard_of: &[u32],
        named_instances: bool,
        get: &impl Fn(usize) -> RecordRef<'r>,
        prefetch: &impl Fn(usize, bool),
    ) -> Result<WriteSummary, (usize, WriteError)> {
        let n = known.len();
        if named_instances {
            // Instances get their ids in order of first appearance, as one by one.
            for i in 0..n {
                self.instance_for_write(get(i).iot_instance_id);
            }
        }
        let (start, order) = by_shard(self.inner.shards.len(), shard_of.iter().copied());
        let mut tasks: Vec<(u64, u32)> = Vec::with_capacity(n);
        let mut pairs: Vec<(u64, Loc)> = Vec::new();
        for (s, lock) in self.inner.shards.iter().enumerate() {
            let group = &order[start[s]..start[s + 1]];
            for run in (0..group.len()).step_by(BY_SHARD_RUN) {
                let mut shard = lock.0.write();
                for at in run..(run + BY_SHARD_RUN).min(group.len()) {
                    // The records are scattered over the input: start loading a later one,
                    // and the values of the one after it, while this one is applied.
                    if let Some(&ahead) = group.get(at + 2 * BY_SHARD_AHEAD) {
                        prefetch(ahead as usize, false);
                    }
                    if let Some(&ahead) = group.get(at + BY_SHARD_AHEAD) {
                        prefetch(ahead as usize, true);
                    }
                    let i = group[at] as usize;
                    let rec = get(i);
                    let instance = self.instance_for_write(rec.iot_instance_id);
                    let found = if known[i].new_device {
                        None
                    } else {
                        shard.find_device(instance, rec.iot_id)
                    };
                    let device = match found {
                        Some(d) => d,
                        None => {
                            let d = shard
                                .add_device(instance, rec.iot_id, rec.product_key, rec.device_name)
                                .ok_or((i, WriteError::CapacityExceeded))?;
                            let hash = self.pair_hash(instance, rec.product_key, rec.device_name);
                            pairs.push((hash, self.loc(s, d.0)));
                            d
                        }
                    };
                    let row = shard
                        .insert_task(device, &rec)
                        .ok_or((i, WriteError::CapacityExceeded))?;
                    tasks.push((self.task_hash(instance, rec.task_id), self.loc(s, row.0).0));
                }
            }
            for (hash, loc) in pairs.drain(..) {
                let mut p = self.inner.pairs[self.pair_shard(hash)].0.write();
                let stored = p.table.insert(hash, loc.0, |a| self.pair_hash_at(Loc(a)));
                p.size_hints(0);
                debug_assert!(
                    stored,
                    "a location is at most MAX_ADDR (the shards' capacity)"
                );
            }
        }
        let stored = dir
            .table
            .insert_all(&mut tasks, |a| self.task_hash_at(Loc(a)));
        if !stored {
            return Err((0, WriteError::CapacityExceeded)); // addresses were checked above
        }
        Ok(WriteSummary {
            inserted: n,
            ..WriteSummary::default()
        })
    }

    /// The first record of `0..n` that contradicts a binding of the store or of an earlier
    /// record, checked without writing. The bulk loader asks this about the lines before a
    /// malformed one, so that the first bad line is the one reported.
    pub(crate) fn first_identity_conflict<'r>(
        &self,
        n: usize,
        get: impl Fn(usize) -> RecordRef<'r>,
    ) -> Option<(usize, WriteError)> {
        let dir = self.inner.writer.lock();
        let mut overlay = Overlay::new(self, &dir, n);
        (0..n).find_map(|i| {
            let r = get(i);
            let hashes = self.batch_hashes(&r);
            let at = Checking {
                i,
                hashes,
                bound: false,
            };
            self.check_batch_record(&dir, at, &r, &mut overlay, &get)
                .err()
                .map(|e| (i, e))
        })
    }

    /// Deletes task `task_id` of `instance` outright; `Ok(false)` when there is none.
    pub fn remove(&self, instance: &str, task_id: &str) -> Result<bool, WriteError> {
        Field::TaskId
            .check(task_id)
            .map_err(|v| FieldError::new(Field::TaskId, v))?;
        Field::IotInstanceId
            .check(instance)
            .map_err(|v| FieldError::new(Field::IotInstanceId, v))?;
        let Ok(inst) = self.instance_for_read(instance) else {
            return Ok(false);
        };
        let mut dir = self.inner.writer.lock();
        let hash = self.task_hash(inst, task_id);
        let Some(loc) = self.find_task(&dir, inst, task_id) else {
            return Ok(false);
        };
        // Unlink from the directory first: the entry's hash is read from the row.
        dir.table.remove(hash, loc.0);
        let (shard, row) = self.unloc(loc);
        self.inner.shards[shard].0.write().remove_task(RowIdx(row));
        Ok(true)
    }

    /// Releases growth slack in every column, and moves each column of 2 MiB or more into a
    /// memory mapping of its own backed by 2 MiB pages where the kernel offers them (Linux's
    /// transparent huge pages, `madvise` mode or `always`). Call it once a bulk load of the
    /// fleet is in: at 1,000,000 devices queries answer about 3 % faster on huge pages (fewer
    /// TLB misses), and growing columns stay with the global allocator until then, which
    /// keeps loads as fast as a `Vec`'s growth. Takes each shard's write lock in turn; at
    /// 1,000,000 devices it copies about 200 MB.
    ///
    /// ```
    /// use ota_index::{fleet::Fleet, Engine};
    ///
    /// let engine = Engine::new();
    /// engine.load_jsonl(&Fleet::new(100).to_jsonl()).unwrap();
    /// engine.shrink_to_fit();
    /// assert_eq!(engine.len(), Fleet::new(100).tasks().count());
    /// ```
    pub fn shrink_to_fit(&self) {
        let mut dir = self.inner.writer.lock();
        dir.table.shrink_to_fit(|a| self.task_hash_at(Loc(a)));
        for s in self.inner.shards.iter() {
            s.0.write().shrink_to_fit();
        }
        for p in self.inner.pairs.iter() {
            let mut pairs = p.0.write();
            pairs.table.shrink_to_fit(|a| self.pair_hash_at(Loc(a)));
        }
    }

    fn find_task(&self, dir: &Directory, instance: InstanceId, task_id: &str) -> Option<Loc> {
        let hash = self.task_hash(instance, task_id);
        dir.table
            .find(hash, |a| {
                let (shard, row) = self.unloc(Loc(a));
                let guard = self.inner.shards[shard].0.read();
                let row = RowIdx(row);
                guard.row_is_live(row)
                    && guard.row_instance(row) == instance
                    && guard.row_id_is(row, task_id)
            })
            .map(Loc)
    }

    /// Refuses a record that would bind a device to a second identity (contract section 1),
    /// against the store's bindings; `Ok(true)` when the store already binds the device.
    fn check_identity(&self, rec: &RecordRef<'_>) -> Result<bool, WriteError> {
        if self.check_device(rec)? {
            return Ok(true);
        }
        self.check_pair(rec)?;
        Ok(false)
    }

    /// The device half of [`Engine::check_identity`]: `Ok(true)` when the store binds the
    /// record's iotId to its pair, an error when to another pair.
    fn check_device(&self, rec: &RecordRef<'_>) -> Result<bool, WriteError> {
        let Some(inst) = self.known_instance(rec.iot_instance_id) else {
            return Ok(false);
        };
        let guard = self.inner.shards[self.shard_index(rec.iot_id)].0.read();
        let Some(d) = guard.find_device(inst, rec.iot_id) else {
            return Ok(false);
        };
        if guard.device_is(d, inst, rec.product_key, rec.device_name) {
            return Ok(true);
        }
        Err(conflict(
            rec,
            Binding::IotIdBoundTo {
                product_key: guard.device_product_key(d).to_owned(),
                device_name: guard.device_name(d).to_owned(),
            },
        ))
    }

    /// The pair half of [`Engine::check_identity`], for a record whose iotId the store does
    /// not bind: an error when the store binds its pair to another iotId.
    fn check_pair(&self, rec: &RecordRef<'_>) -> Result<(), WriteError> {
        let Some(inst) = self.known_instance(rec.iot_instance_id) else {
            return Ok(());
        };
        match self.find_pair(inst, rec.product_key, rec.device_name) {
            Some((guard, _, d)) => Err(conflict(
                rec,
                Binding::PairBoundTo {
                    iot_id: guard.device_iot(d).to_owned(),
                },
            )),
            None => Ok(()),
        }
    }

    /// [`Engine::check_identity`] for record `i` of a batch (`rec`, as `get(i)` makes it):
    /// bindings made by the batch's earlier records count too. A record that will be dropped
    /// as stale makes no binding, exactly as when the records are upserted one by one.
    fn check_batch_record<'r>(
        &self,
        dir: &Directory,
        at: Checking,
        rec: &RecordRef<'r>,
        overlay: &mut Overlay,
        get: &impl Fn(usize) -> RecordRef<'r>,
    ) -> Result<Known, WriteError> {
        let Checking { i, hashes, bound } = at;
        // In the order one-by-one upserts would look: the device (in the store, then bound by
        // an earlier record), and only for a device bound nowhere, its pair (likewise).
        let in_store = bound || (!overlay.store_empty && self.check_device(rec)?);
        let inst = rec.iot_instance_id;
        // The tables are sized for the whole batch, so these never run (an insert rebuilds
        // only past its size).
        let rehash_iot = |j: u32| self.batch_hashes(&get(j as usize)).iot;
        let rehash_pair = |j: u32| self.batch_hashes(&get(j as usize)).pair;
        let rehash_task = |j: u32| self.batch_hashes(&get(j as usize)).task;
        // The record the device table's probe matched, kept so that its binding is read
        // without making the record a second time (most records find their device there).
        let matched = std::cell::Cell::new(None);
        let same_iot = |j: u32| {
            let b = get(j as usize);
            let same = b.iot_id == rec.iot_id && b.iot_instance_id == inst;
            if same {
                matched.set(Some(b));
            }
            same
        };
        let same_pair = |j: u32| {
            let b = get(j as usize);
            b.device_name == rec.device_name
                && b.product_key == rec.product_key
                && b.iot_instance_id == inst
        };
        let same_task = |j: u32| {
            let b = get(j as usize);
            b.task_id == rec.task_id && b.iot_instance_id == inst
        };
        // True when neither the store nor an earlier record binds the device.
        let mut unbound = false;
        if !in_store {
            match overlay.by_iot.find(hashes.iot, same_iot) {
                Some(j) => {
                    let b = matched.get().unwrap_or_else(|| get(j as usize));
                    if (b.product_key, b.device_name) != (rec.product_key, rec.device_name) {
                        return Err(conflict(
                            rec,
                            Binding::IotIdBoundTo {
                                product_key: b.product_key.to_owned(),
                                device_name: b.device_name.to_owned(),
                            },
                        ));
                    }
                }
                None => {
                    if !overlay.store_empty {
                        self.check_pair(rec)?;
                    }
                    if let Some(j) = overlay.by_pair.find(hashes.pair, same_pair) {
                        return Err(conflict(
                            rec,
                            Binding::PairBoundTo {
                                iot_id: get(j as usize).iot_id.to_owned(),
                            },
                        ));
                    }
                    unbound = true;
                }
            }
        }
        let latest = overlay.latest.find(hashes.task, same_task);
        let stored = match latest {
            Some(j) => Some(get(j as usize).utc_modified),
            None if overlay.store_empty => None,
            None => self.stored_modified(dir, inst, rec.task_id),
        };
        if stored.is_some_and(|m| m > rec.utc_modified) {
            // Stale: applying it finds the newer version.
            return Ok(Known {
                stale: true,
                ..Known::NOTHING
            });
        }
        let new_task = stored.is_none();
        if let Some(j) = latest {
            overlay.latest.remove(hashes.task, j);
        }
        // Record indices fit: the tables were made for this batch's last index.
        overlay.latest.insert(hashes.task, i as u32, rehash_task);
        let new_device = unbound;
        if unbound {
            overlay.by_iot.insert(hashes.iot, i as u32, rehash_iot);
            overlay.by_pair.insert(hashes.pair, i as u32, rehash_pair);
        }
        Ok(Known {
            new_task,
            new_device,
            stale: false,
        })
    }

    /// The stored `utcModified` of a task, if the store holds it.
    fn stored_modified(&self, dir: &Directory, instance: &str, task_id: &str) -> Option<Timestamp> {
        let inst = self.known_instance(instance)?;
        let loc = self.find_task(dir, inst, task_id)?;
        let (shard, row) = self.unloc(loc);
        Some(self.inner.shards[shard].0.read().row_modified(RowIdx(row)))
    }

    /// Refuses a write that could overfill a shard, given `(shard, records)` pairs (every
    /// record counted as new), so that capacity never fails half-way through a batch.
    fn check_capacity(
        &self,
        per_shard: impl Iterator<Item = (usize, usize)>,
    ) -> Result<(), WriteError> {
        let capacity = (MAX_ADDR >> self.inner.shard_bits) as usize;
        for (shard, n) in per_shard.filter(|&(_, n)| n > 0) {
            let guard = self.inner.shards[shard].0.read();
            let used = guard.live_rows().max(guard.devices.len());
            // A record adds at most 11 strings of at most 256 bytes to a shard's buffers.
            let bytes = guard
                .bytes_used()
                .saturating_add(n.saturating_mul(11 * 259));
            if used + n > capacity || bytes > u32::MAX as usize {
                return Err(WriteError::CapacityExceeded);
            }
        }
        Ok(())
    }

    /// The id of a known instance; the default one without taking the registry's lock.
    fn known_instance(&self, name: &str) -> Option<InstanceId> {
        if name.is_empty() {
            return Some(InstanceId(0));
        }
        self.inner.instances.read().by_name.get(name).copied()
    }

    fn instance_for_write(&self, name: &str) -> InstanceId {
        if let Some(id) = self.known_instance(name) {
            return id;
        }
        let mut instances = self.inner.instances.write();
        let id = InstanceId(instances.names.len() as u32);
        instances.names.push(name.into());
        instances.by_name.insert(name.into(), id);
        id
    }

    /// Where a record's task is stored in `shard` (the shard of the record's device, index
    /// `target`), and how the record compares with it; `None` when the instance, the device
    /// (by iotId) or the task is not there. `device_hash` and `hash` are the record's
    /// [`Engine::iot_location`] and [`Engine::task_hash`]. Called with the writer lock held.
    #[allow(clippy::too_many_arguments)]
    fn find_here(
        &self,
        dir: &Directory,
        shard: &Shard,
        target: usize,
        instance: InstanceId,
        rec: &RecordRef<'_>,
        device_hash: u64,
        hash: u64,
    ) -> Option<Found> {
        // The record's device by its iotId, looked up before the task so that the two chains
        // of cache misses (index entry, device, iotId bytes; directory entry, row, task id)
        // run side by side rather than one after the other through the row.
        let device = shard.find_device_hashed(instance, rec.iot_id, device_hash)?;
        // Only entries of this shard can match: others are left to the general path, which
        // locks their shards itself.
        let loc = dir.table.find(hash, |a| {
            let (s, row) = self.unloc(Loc(a));
            let row = RowIdx(row);
            s == target
                && shard.row_is_live(row)
                && shard.row_instance(row) == instance
                && shard.row_id_is(row, rec.task_id)
        })?;
        let row = RowIdx(self.unloc(Loc(loc)).1);
        Some(Found {
            row,
            device,
            // The row's device has the record's iotId exactly when it is the device found by
            // it.
            same_iot: shard.row_device(row) == device,
            same_device: shard.device_is(device, instance, rec.product_key, rec.device_name),
            same_variant: shard.row_variant_matches(row, rec),
        })
    }

    /// The usual event, a known task of a known device in the same shard, under one shard
    /// write lock: identity, staleness and the replacement. With [`Checked::ByEquality`] (the
    /// record not validated) it acts only when every string of the record equals the stored
    /// task's, and answers [`InPlace::Differs`] otherwise, errors included. Called with the
    /// writer lock held.
    fn replace_in_place(&self, dir: &Directory, rec: &RecordRef<'_>, checked: Checked) -> InPlace {
        let Some(instance) = self.known_instance(rec.iot_instance_id) else {
            return InPlace::NotHere;
        };
        let (target, device_hash) = self.iot_location(instance, rec.iot_id);
        let hash = self.task_hash(instance, rec.task_id);
        let mut guard = self.inner.shards[target].0.write();
        let Some(found) = self.find_here(dir, &guard, target, instance, rec, device_hash, hash)
        else {
            return InPlace::NotHere;
        };
        if checked == Checked::ByEquality && !found.all_same() {
            return InPlace::Differs;
        }
        let d = found.device;
        if !found.same_device {
            return InPlace::Done(Err(conflict(
                rec,
                Binding::IotIdBoundTo {
                    product_key: guard.device_product_key(d).to_owned(),
                    device_name: guard.device_name(d).to_owned(),
                },
            )));
        }
        let stored = guard.row_modified(found.row);
        if stored > rec.utc_modified {
            return InPlace::Done(Ok(UpsertOutcome::Stale { stored }));
        }
        InPlace::Done(
            if guard.replace_task_known(found.row, d, rec, found.same_variant) {
                Ok(UpsertOutcome::Replaced)
            } else {
                Err(WriteError::CapacityExceeded)
            },
        )
    }

    /// A batch made only of the usual event (see [`Engine::replace_in_place`]): where each
    /// record's task is stored, when every record names a stored task of its device (in its
    /// device's shard) with every string equal to the stored task's; `None` as soon as one
    /// does not (the general path decides then). Such a record needs no validation (its
    /// strings were validated when stored) and makes no new binding, so no record can be
    /// refused. Shards are read (a read passes a waiting writer), each from its first record
    /// to the end of the plan: only writers change shards, and this one holds the writer lock,
    /// so nothing changes between the plan and the writes, and no reader is waited for. Each
    /// record's two buckets (its device's in the `iotId` table, its task's in the directory)
    /// start loading [`PLAN_AHEAD`] records before it is looked up: 515–519 → 391–403 ns a
    /// record for the benches' writer's batches of 100 status events at 1,000,000 devices
    /// (medians of 10 rounds in one process; upserts one by one 447–465).
    fn plan_in_place<'r>(
        &self,
        dir: &Directory,
        n: usize,
        get: &impl Fn(usize) -> RecordRef<'r>,
    ) -> Option<Vec<(u32, Found)>> {
        // Each shard's guard, taken when a record first needs the shard and kept for the
        // whole plan: one lock taken a shard, not a record.
        let mut shards: Guards<'_> = self.inner.shards.iter().map(|_| None).collect();
        let mut ahead = std::collections::VecDeque::with_capacity(PLAN_AHEAD.min(n));
        for i in 0..n.min(PLAN_AHEAD) {
            ahead.push_back(self.place(&mut shards, dir, &get(i))?);
        }
        // Sized once the first record is found in place (a bulk load of new tasks stops at
        // its first record).
        let mut plan = Vec::new();
        for i in 0..n {
            if i + PLAN_AHEAD < n {
                ahead.push_back(self.place(&mut shards, dir, &get(i + PLAN_AHEAD))?);
            }
            let (instance, target, device_hash, hash) = ahead.pop_front()?;
            let shard = shards[target].as_deref()?;
            let rec = get(i);
            let found = self.find_here(dir, shard, target, instance, &rec, device_hash, hash)?;
            if !found.all_same() {
                return None;
            }
            if plan.is_empty() {
                plan.reserve_exact(n);
            }
            plan.push((target as u32, found));
        }
        Some(plan)
    }

    /// A record's place for [`Engine::plan_in_place`]: (instance, shard, device hash, task
    /// hash), with the two buckets it will probe on the way (its device's in the shard's
    /// `iotId` table, its task's in the directory); the shard's guard taken into `shards` if
    /// not held yet. `None` when the record cannot be the usual event (a string over its
    /// length, a time the format cannot write, an unknown instance).
    fn place<'e>(
        &'e self,
        shards: &mut Guards<'e>,
        dir: &Directory,
        rec: &RecordRef<'_>,
    ) -> Option<(InstanceId, usize, u64, u64)> {
        if !rec.within_bounds() {
            return None;
        }
        let instance = self.known_instance(rec.iot_instance_id)?;
        let (target, device_hash) = self.iot_location(instance, rec.iot_id);
        let hash = self.task_hash(instance, rec.task_id);
        let shard = shards[target].get_or_insert_with(|| self.inner.shards[target].0.read());
        shard.prefetch_bucket(device_hash);
        dir.table.prefetch(hash);
        Some((instance, target, device_hash, hash))
    }

    /// Applies a plan of [`Engine::plan_in_place`] shard by shard, each shard's records in
    /// input order (a record of a task follows the batch's earlier records of it, so staleness
    /// is judged as one by one would), up to [`BY_SHARD_RUN`] of them under one write lock.
    /// A shard some reader holds is left for later while another has records waiting: the
    /// writer blocks only when every shard left is held. Where threads outnumber cores the
    /// reader holding a shard is often one the writer itself preempted, which cannot let go
    /// until the writer sleeps or blocks; one by one, the writer blocked on it for a scheduler
    /// slice at each of its records there. Called with the writer lock held.
    fn apply_in_place<'r>(
        &self,
        plan: &[(u32, Found)],
        get: &impl Fn(usize) -> RecordRef<'r>,
    ) -> WriteSummary {
        let (start, order) = by_shard(self.inner.shards.len(), plan.iter().map(|p| p.0));
        // Each shard with records, and where its next run starts.
        let mut left: SmallVec<[(usize, usize); 64]> = (0..self.inner.shards.len())
            .filter(|&s| start[s] < start[s + 1])
            .map(|s| (s, start[s]))
            .collect();
        let mut summary = WriteSummary::default();
        let mut run = |guard: &mut Shard, from: usize, to: usize| {
            for &i in &order[from..to] {
                let i = i as usize;
                let (rec, found) = (get(i), plan[i].1);
                if guard.row_modified(found.row) > rec.utc_modified {
                    summary.stale += 1;
                } else {
                    let replaced = guard.replace_task_known(found.row, found.device, &rec, true);
                    debug_assert!(replaced, "an equal variant is reused, never interned");
                    summary.replaced += 1;
                }
            }
        };
        while !left.is_empty() {
            let mut progressed = false;
            left.retain(|(s, at)| {
                let end = start[*s + 1];
                while *at < end {
                    let Some(mut guard) = self.inner.shards[*s].0.try_write() else {
                        return true;
                    };
                    progressed = true;
                    let to = (*at + BY_SHARD_RUN).min(end);
                    run(&mut guard, *at, to);
                    *at = to;
                }
                false
            });
            if !progressed {
                // Every shard left is held: wait for the first (its readers are done within
                // a query unless the scheduler has put one aside).
                if let Some((s, at)) = left.first_mut() {
                    let to = (*at + BY_SHARD_RUN).min(start[*s + 1]);
                    run(&mut self.inner.shards[*s].0.write(), *at, to);
                    *at = to;
                    if *at == start[*s + 1] {
                        left.remove(0);
                    }
                }
            }
        }
        summary
    }

    /// Applies one validated, identity-checked record, skipping the lookups whose answers
    /// `known` gives. Called with the writer lock held.
    fn apply(
        &self,
        dir: &mut Directory,
        rec: &RecordRef<'_>,
        known: Known,
    ) -> Result<UpsertOutcome, WriteError> {
        let instance = self.instance_for_write(rec.iot_instance_id);
        let old = if known.new_task {
            None
        } else {
            self.find_task(dir, instance, rec.task_id)
        };
        if let Some(loc) = old {
            let (shard, row) = self.unloc(loc);
            let stored = self.inner.shards[shard].0.read().row_modified(RowIdx(row));
            if stored > rec.utc_modified {
                return Ok(UpsertOutcome::Stale { stored });
            }
        }
        let target = self.shard_index(rec.iot_id);
        let found = if known.new_device {
            None
        } else {
            self.inner.shards[target]
                .0
                .read()
                .find_device(instance, rec.iot_id)
        };
        let (device, new_device) = match found {
            Some(d) => (d, false),
            None => {
                let d = self.inner.shards[target]
                    .0
                    .write()
                    .add_device(instance, rec.iot_id, rec.product_key, rec.device_name)
                    .ok_or(WriteError::CapacityExceeded)?;
                (d, true)
            }
        };
        if new_device {
            let hash = self.pair_hash(instance, rec.product_key, rec.device_name);
            let loc = self.loc(target, device.0);
            let mut pairs = self.inner.pairs[self.pair_shard(hash)].0.write();
            let stored = pairs
                .table
                .insert(hash, loc.0, |a| self.pair_hash_at(Loc(a)));
            pairs.size_hints(0);
            debug_assert!(
                stored,
                "a location is at most MAX_ADDR (the shards' capacity)"
            );
        }
        let task_hash = self.task_hash(instance, rec.task_id);
        match old {
            Some(loc) => {
                let (shard, row) = self.unloc(loc);
                if shard == target {
                    let replaced =
                        self.inner.shards[target]
                            .0
                            .write()
                            .replace_task(RowIdx(row), device, rec);
                    if !replaced {
                        return Err(WriteError::CapacityExceeded);
                    }
                } else {
                    // Move between shards: hold both write locks so no reader sees the task
                    // in neither or both devices.
                    let (first, second) = (shard.min(target), shard.max(target));
                    let new_row = {
                        let (mut a, mut b) = self.write_two(first, second);
                        let (from, to) = if shard == first {
                            (&mut a, &mut b)
                        } else {
                            (&mut b, &mut a)
                        };
                        let new_row = to
                            .insert_task(device, rec)
                            .ok_or(WriteError::CapacityExceeded)?;
                        from.remove_task(RowIdx(row));
                        new_row
                    };
                    // With both shard locks released: a rebuild of the directory reads rows.
                    let new_loc = self.loc(target, new_row.0);
                    dir.table.remove(task_hash, loc.0);
                    let stored = dir
                        .table
                        .insert(task_hash, new_loc.0, |a| self.task_hash_at(Loc(a)));
                    debug_assert!(stored, "capacity keeps every address storable");
                }
                Ok(UpsertOutcome::Replaced)
            }
            None => {
                let row = self.inner.shards[target]
                    .0
                    .write()
                    .insert_task(device, rec)
                    .ok_or(WriteError::CapacityExceeded)?;
                let loc = self.loc(target, row.0);
                let stored = dir
                    .table
                    .insert(task_hash, loc.0, |a| self.task_hash_at(Loc(a)));
                debug_assert!(stored, "capacity keeps every address storable");
                Ok(UpsertOutcome::Inserted)
            }
        }
    }

    // ---- accounting and checks -----------------------------------------------------------

    /// Bytes held, by part. Like [`Engine::get`], it takes the writers' mutex (for the task
    /// directory's size): not to be called while the thread holds an answer.
    pub fn memory_usage(&self) -> MemoryUsage {
        let mut m = MemoryUsage {
            task_directory: self.inner.writer.lock().table.heap_bytes(),
            ..MemoryUsage::default()
        };
        for s in self.inner.shards.iter() {
            let shard = s.0.read().memory();
            m.rows += shard.rows;
            m.task_ids += shard.task_ids;
            m.strings += shard.strings;
            m.devices += shard.devices;
            m.bitmaps += shard.bitmaps;
            m.locks += s.0.slot_bytes();
        }
        m.locks += self
            .inner
            .pairs
            .iter()
            .map(|p| p.0.slot_bytes())
            .sum::<usize>();
        m.pair_directory = self
            .inner
            .pairs
            .iter()
            .map(|p| {
                let p = p.0.read();
                p.table.heap_bytes() + p.hints.capacity() * std::mem::size_of::<AtomicU64>()
            })
            .sum();
        m
    }

    /// Checks every invariant between columns, dictionaries, indexes and directories; the
    /// first broken one, described. Stops writers while it runs. For tests and fuzzing.
    #[doc(hidden)]
    pub fn internal_validate(&self) -> Result<(), String> {
        let dir = self.inner.writer.lock();
        let instances = self.inner.instances.read().names.len();
        let mut live = 0usize;
        let mut pairs = HashMap::new();
        for (si, s) in self.inner.shards.iter().enumerate() {
            let shard = s.0.read();
            shard.validate().map_err(|e| format!("shard {si}: {e}"))?;
            live += shard.live_rows();
            for (di, dev) in shard.devices.iter().enumerate() {
                let d = DeviceIdx(di as u32);
                if dev.instance.idx() >= instances {
                    return Err(format!("device {di} of shard {si} has an unknown instance"));
                }
                if self.shard_index(shard.device_iot(d)) != si {
                    return Err(format!("device {di} is in the wrong shard {si}"));
                }
                let key = (
                    dev.instance,
                    shard.device_product_key(d).to_owned(),
                    shard.device_name(d).to_owned(),
                );
                if pairs.insert(key, (si, d)).is_some() {
                    return Err(format!("two devices share the pair of device {di}"));
                }
            }
            for row in shard.rows() {
                let inst = shard.row_instance(row);
                let id = shard.row_id(row);
                let key = id.as_str();
                drop_then_check(self.find_task(&dir, inst, key), self.loc(si, row.0))
                    .map_err(|e| format!("task {key:?}: {e}"))?;
            }
        }
        dir.table
            .validate(|a| self.task_hash_at(Loc(a)))
            .map_err(|e| format!("task directory: {e}"))?;
        if dir.table.len() != live {
            return Err(format!(
                "directory holds {} tasks, shards {live}",
                dir.table.len()
            ));
        }
        let pair_entries: usize = self
            .inner
            .pairs
            .iter()
            .map(|p| p.0.read().table.len())
            .sum();
        if pair_entries != pairs.len() {
            return Err(format!(
                "pair directory holds {pair_entries} entries for {} devices",
                pairs.len()
            ));
        }
        for ((inst, pk, dn), (si, d)) in &pairs {
            let found = self
                .find_pair(*inst, pk, dn)
                .map(|(_, shard, d)| (shard, d));
            if found != Some((*si, *d)) {
                return Err(format!("pair ({pk}, {dn}) does not resolve to its device"));
            }
        }
        Ok(())
    }
}

fn drop_then_check(found: Option<Loc>, want: Loc) -> Result<(), String> {
    match found {
        Some(loc) if loc == want => Ok(()),
        Some(loc) => Err(format!("directory points to {loc:?}, row is at {want:?}")),
        None => Err("missing from the directory".into()),
    }
}

/// How many tasks of an answer [`Engine::unfinished`] starts loading before returning: past a
/// few, serializing one task overlaps the next one's misses by itself, and loading a long
/// answer ahead would only evict its start.
const PREFETCH_TASKS: usize = 8;

/// The answer to a device query: the matching rows of one shard, read-locked while it lives.
pub struct Unfinished<'a> {
    guard: Option<SlotReadGuard<'a, Shard>>,
    rows: SmallVec<[RowIdx; 8]>,
    instance: &'a str,
}

impl<'a> Unfinished<'a> {
    /// The number of tasks in the answer.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when the answer is the empty list.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The tasks, in contract order.
    pub fn iter(&self) -> impl Iterator<Item = TaskView<'_>> + '_ {
        self.guard.as_deref().into_iter().flat_map(move |shard| {
            self.rows
                .iter()
                .map(move |&row| TaskView::new(shard, row, self.instance))
        })
    }
}

impl std::fmt::Debug for Unfinished<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.iter().map(|t| t.task_id().to_owned()))
            .finish()
    }
}

/// Where [`Engine::prefetch_device`] found a device's bucket, for
/// [`Engine::prefetch_device_record`].
#[derive(Debug, Clone, Copy)]
pub struct DeviceHint(Hint);

/// A device hint holding its shard's read lock ([`Engine::hold_iot_hint`]).
pub(crate) struct HeldHint<'a> {
    shard: usize,
    hash: u64,
    guard: SlotReadGuard<'a, Shard>,
}

impl HeldHint<'_> {
    /// The hint's second step ([`Engine::prefetch_device_record`]) under the held lock.
    pub(crate) fn prefetch_record(&self) {
        self.guard.prefetch_device(self.hash);
    }
}

#[derive(Debug, Clone, Copy)]
enum Hint {
    /// A device named by `iotId`: its shard and its hash in the shard's `iotId` table.
    Iot { shard: usize, hash: u64 },
    /// A device named by product key and name: its pair directory shard and its hash there.
    Pair { dir: usize, hash: u64 },
}

/// What [`Engine::prefetch_device_record`] loads in a shard.
enum FirstCandidate {
    Iot(u64),
    /// A device named by its pair, and its hint.
    Device(DeviceIdx, u64),
}

/// One task, read straight from the columns: every accessor borrows, nothing is copied
/// (a task id the store keeps as a number is written out, once, when the view is made).
#[derive(Clone, Copy)]
pub struct TaskView<'a> {
    shard: &'a Shard,
    row: RowIdx,
    instance: &'a str,
    id: IdText<'a>,
}

impl std::fmt::Debug for TaskView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskView")
            .field("task_id", &self.task_id())
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

impl<'a> TaskView<'a> {
    fn new(shard: &'a Shard, row: RowIdx, instance: &'a str) -> TaskView<'a> {
        TaskView {
            shard,
            row,
            instance,
            id: shard.row_id(row),
        }
    }

    fn variant(&self) -> &'a crate::store::Variant {
        self.shard.row_variant(self.row)
    }

    /// `taskId`: borrowed from the store, or from the view when the store keeps the id as a
    /// number (the platform's ids are decimal numbers, which rows keep in place).
    pub fn task_id(&self) -> &str {
        self.id.as_str()
    }
    /// `jobId`
    pub fn job_id(&self) -> &'a str {
        self.shard.dict.get(self.variant().job)
    }
    /// `firmwareId`
    pub fn firmware_id(&self) -> &'a str {
        self.shard.dict.get(self.variant().firmware)
    }
    /// `iotId`
    pub fn iot_id(&self) -> &'a str {
        self.shard.device_iot(self.shard.row_device(self.row))
    }
    /// `productKey`
    pub fn product_key(&self) -> &'a str {
        self.shard
            .device_product_key(self.shard.row_device(self.row))
    }
    /// `productName`
    pub fn product_name(&self) -> &'a str {
        self.shard.dict.get(self.variant().product_name)
    }
    /// `deviceName`
    pub fn device_name(&self) -> &'a str {
        self.shard.device_name(self.shard.row_device(self.row))
    }
    /// `moduleName`, in the stored spelling.
    pub fn module_name(&self) -> &'a str {
        self.shard.dict.get(self.variant().module)
    }
    /// `srcVersion`
    pub fn src_version(&self) -> &'a str {
        self.shard.dict.get(self.variant().src)
    }
    /// `destVersion`
    pub fn dest_version(&self) -> &'a str {
        self.shard.dict.get(self.variant().dest)
    }
    /// `taskStatus`
    pub fn status(&self) -> TaskStatus {
        self.shard.row_status(self.row)
    }
    /// `utcCreate`
    pub fn utc_create(&self) -> Timestamp {
        self.shard.row_created(self.row)
    }
    /// `utcModified`
    pub fn utc_modified(&self) -> Timestamp {
        self.shard.row_modified(self.row)
    }
    /// The instance (`""` for the default one).
    pub fn iot_instance_id(&self) -> &'a str {
        self.instance
    }
}

impl TaskFields for TaskView<'_> {
    fn task_id(&self) -> &str {
        TaskView::task_id(self)
    }
    fn job_id(&self) -> &str {
        TaskView::job_id(self)
    }
    fn firmware_id(&self) -> &str {
        TaskView::firmware_id(self)
    }
    fn iot_id(&self) -> &str {
        TaskView::iot_id(self)
    }
    fn product_key(&self) -> &str {
        TaskView::product_key(self)
    }
    fn product_name(&self) -> &str {
        TaskView::product_name(self)
    }
    fn device_name(&self) -> &str {
        TaskView::device_name(self)
    }
    fn module_name(&self) -> &str {
        TaskView::module_name(self)
    }
    fn src_version(&self) -> &str {
        TaskView::src_version(self)
    }
    fn dest_version(&self) -> &str {
        TaskView::dest_version(self)
    }
    fn status(&self) -> TaskStatus {
        TaskView::status(self)
    }
    fn utc_create(&self) -> Timestamp {
        TaskView::utc_create(self)
    }
    fn utc_modified(&self) -> Timestamp {
        TaskView::utc_modified(self)
    }
    fn iot_instance_id(&self) -> &str {
        TaskView::iot_instance_id(self)
    }
    /// Plainness comes from each stored string's header (set when it was stored).
    fn json_strings(&self) -> [(&str, bool); 10] {
        self.shard.row_json_strings(self.row, &self.id)
    }
    /// From each stored string's header, as `json_strings`; the row is read once.
    fn plain_json(&self) -> Option<PlainTask<'_>> {
        self.shard.row_plain_json(self.row, &self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The row named by the hint of the pair (`pk`, `dn`) of the default instance.
    fn hinted_row(engine: &Engine, pk: &str, dn: &str) -> u32 {
        hint_of(engine, pk, dn) as u32
    }

    /// The whole hint: the row in the low half, the name's bytes in the high half.
    fn hint_of(engine: &Engine, pk: &str, dn: &str) -> u64 {
        let hash = engine.pair_hash(InstanceId(0), pk, dn);
        let pairs = engine.inner.pairs[engine.pair_shard(hash)].0.read();
        pairs.hint(hash).expect("slots").load(Ordering::Relaxed)
    }

    /// Four shards holding 40 devices' tasks, all queued (so every one is unfinished).
    fn four_shards_of_queued_tasks() -> (Engine, Vec<TaskRecord>) {
        let engine = Engine::with_shards(4);
        let fleet = crate::fleet::Fleet::new(40);
        let mut tasks: Vec<TaskRecord> = (0..40).flat_map(|d| fleet.device_tasks(d)).collect();
        for t in &mut tasks {
            t.status = TaskStatus::Queued;
            engine.upsert(t).unwrap();
        }
        (engine, tasks)
    }

    /// A task moving to a device of another shard is written under both shards' locks,
    /// but the writer never waits for one while holding the other: here it must wait for an
    /// answer held on the task's old shard (the higher), and a query of the new shard (the
    /// lower, which a writer taking locks in index order would take first and hold) must
    /// pass it meanwhile, or the answer's holder, the writer and the query wait for one
    /// another.
    #[test]
    fn a_move_between_shards_never_holds_one_while_waiting_for_the_other() {
        use std::sync::mpsc;
        use std::time::Duration;
        let (engine, tasks) = four_shards_of_queued_tasks();
        let shard = |t: &TaskRecord| engine.shard_index(&t.iot_id);
        let highest = tasks.iter().map(shard).max().expect("tasks");
        let moving = tasks.iter().find(|t| shard(t) == highest).unwrap().clone();
        let to = tasks.iter().find(|t| shard(t) < highest).unwrap().clone();
        let held = engine
            .unfinished(&Query::by_iot_id(&moving.iot_id))
            .unwrap();
        let writer = {
            let (engine, moved) = (
                engine.clone(),
                TaskRecord {
                    iot_id: to.iot_id.clone(),
                    product_key: to.product_key.clone(),
                    device_name: to.device_name.clone(),
                    utc_modified: Timestamp::from_millis(moving.utc_modified.as_millis() + 1),
                    ..moving.clone()
                },
            );
            std::thread::spawn(move || engine.upsert(&moved))
        };
        std::thread::sleep(Duration::from_millis(200));
        assert!(!writer.is_finished(), "the writer passed a held answer");
        let (tx, rx) = mpsc::channel();
        let reader = {
            let (engine, iot) = (engine.clone(), to.iot_id.clone());
            std::thread::spawn(move || {
                let n = engine.unfinished(&Query::by_iot_id(&iot)).unwrap().len();
                tx.send(n).unwrap();
            })
        };
        let answered = rx.recv_timeout(Duration::from_secs(30));
        drop(held);
        assert!(
            answered.is_ok(),
            "a query of the new shard waited for a writer holding it"
        );
        reader.join().unwrap();
        assert_eq!(writer.join().unwrap(), Ok(UpsertOutcome::Replaced));
        let ids = |iot: &str| -> Vec<String> {
            let answer = engine.unfinished(&Query::by_iot_id(iot)).unwrap();
            answer.iter().map(|v| v.task_id().to_owned()).collect()
        };
        assert!(ids(&to.iot_id).contains(&moving.task_id));
        assert!(!ids(&moving.iot_id).contains(&moving.task_id));
        engine.internal_validate().unwrap();
    }

    /// A batch of status events writes the shards no reader holds while one is held, and
    /// waits only for the held one: a writer that took its records in order (or its shards in
    /// order) would wait at the first, held, shard with every other shard's record unwritten.
    #[test]
    fn a_batch_writes_free_shards_while_one_is_held() {
        use std::time::{Duration, Instant};
        let (engine, tasks) = four_shards_of_queued_tasks();
        let shard = |t: &TaskRecord| engine.shard_index(&t.iot_id);
        // The held shard comes first by input and by index alike.
        let lowest = tasks.iter().map(shard).min().expect("tasks");
        let pick = |first: bool| {
            let t = tasks.iter().find(|t| (shard(t) == lowest) == first);
            t.expect("40 devices over 4 shards, not all in one").clone()
        };
        let (held, free) = (pick(true), pick(false));
        let answer = engine.unfinished(&Query::by_iot_id(&held.iot_id)).unwrap();
        // The held shard's record first.
        let events: Vec<TaskRecord> = [&held, &free]
            .map(|t| TaskRecord {
                status: TaskStatus::Succeeded,
                utc_modified: Timestamp::from_millis(t.utc_modified.as_millis() + 1),
                ..t.clone()
            })
            .into();
        let writer = {
            let engine = engine.clone();
            std::thread::spawn(move || {
                let refs: Vec<_> = events.iter().map(TaskRecord::as_ref).collect();
                engine.write_batch(&refs)
            })
        };
        let unfinished = |t: &TaskRecord| {
            let query = Query::by_iot_id(&t.iot_id);
            let answer = engine.unfinished(&query).unwrap();
            let found = answer.iter().any(|v| v.task_id() == t.task_id);
            found
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while unfinished(&free) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        let free_written = !unfinished(&free);
        let held_unwritten = unfinished(&held) && !writer.is_finished();
        drop(answer);
        let summary = writer.join().expect("writer");
        assert!(
            free_written,
            "the free shard's record waited for the held shard"
        );
        assert!(held_unwritten, "the writer passed a held answer");
        assert_eq!(
            summary,
            Ok(WriteSummary {
                replaced: 2,
                ..WriteSummary::default()
            })
        );
        assert!(
            !unfinished(&held),
            "the held shard's record went in once let go"
        );
        engine.internal_validate().unwrap();
    }

    /// A batch with more than a run (256) of events for a held shard, and events for the
    /// others: the others go in first, the held shard's runs once it is let go, each
    /// shard's events in input order (a task's later events win); the store is the one
    /// upserting the events one by one leaves.
    #[test]
    fn a_batch_writes_a_held_shard_in_runs_once_let_go() {
        use std::time::{Duration, Instant};
        let [engine, one_by_one] = [0; 2].map(|_| Engine::with_shards(2));
        let fleet = crate::fleet::Fleet::new(300);
        let mut tasks: Vec<TaskRecord> = (0..300).flat_map(|d| fleet.device_tasks(d)).collect();
        for t in &mut tasks {
            t.status = TaskStatus::Queued;
        }
        for t in &tasks {
            engine.upsert(t).unwrap();
            one_by_one.upsert(t).unwrap();
        }
        let shard = |t: &TaskRecord| engine.shard_index(&t.iot_id);
        let held = shard(&tasks[0]);
        let (mine, other): (Vec<&TaskRecord>, Vec<&TaskRecord>) =
            tasks.iter().partition(|t| shard(t) == held);
        assert!(mine.len() > 2 * BY_SHARD_RUN / 3 && !other.is_empty());
        // Every task of the held shard three times (queued, in progress, then a replayed
        // older event), then one event of the other shard.
        let mut events = Vec::new();
        for (k, status) in [
            (1, TaskStatus::Queued),
            (2, TaskStatus::InProgress),
            (0, TaskStatus::Succeeded),
        ] {
            for t in &mine {
                events.push(TaskRecord {
                    status,
                    utc_modified: Timestamp::from_millis(t.utc_modified.as_millis() + k),
                    ..(*t).clone()
                });
            }
        }
        assert!(events.len() > BY_SHARD_RUN);
        let free = TaskRecord {
            status: TaskStatus::Succeeded,
            utc_modified: Timestamp::from_millis(other[0].utc_modified.as_millis() + 1),
            ..other[0].clone()
        };
        events.push(free.clone());
        let answer = engine
            .unfinished(&Query::by_iot_id(&tasks[0].iot_id))
            .unwrap();
        let writer = {
            let (engine, events) = (engine.clone(), events.clone());
            std::thread::spawn(move || {
                let refs: Vec<_> = events.iter().map(TaskRecord::as_ref).collect();
                engine.write_batch(&refs)
            })
        };
        // By a query: `get` takes the writer lock, which the waiting writer holds.
        let written = || {
            let answer = engine.unfinished(&Query::by_iot_id(&free.iot_id)).unwrap();
            let found = !answer.iter().any(|v| v.task_id() == free.task_id);
            found
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !written() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        let free_first = written();
        drop(answer);
        let summary = writer
            .join()
            .expect("writer")
            .expect("events of stored tasks");
        assert!(
            free_first,
            "the free shard's event waited for the held shard"
        );
        let mut want = WriteSummary::default();
        for e in &events {
            want.count(one_by_one.upsert(e).unwrap());
        }
        assert_eq!(summary, want);
        assert_eq!(want.stale, mine.len());
        let sorted = |e: &Engine| {
            let mut t = e.tasks();
            t.sort_by(|a, b| a.task_id.cmp(&b.task_id));
            t
        };
        assert_eq!(sorted(&engine), sorted(&one_by_one));
        engine.internal_validate().unwrap();
    }

    /// A query by name leaves the device's first unfinished row in its pair's entry, and
    /// corrects an entry a write made stale; the hint's steps read it and change nothing.
    #[test]
    fn queries_by_name_keep_the_row_entry() {
        let engine = Engine::with_shards(4);
        let fleet = crate::fleet::Fleet::new(50);
        let mut tasks = fleet.device_tasks(7);
        for (i, t) in tasks.iter_mut().enumerate() {
            t.status = TaskStatus::Queued;
            t.utc_create = Timestamp::from_millis(10_000 + i as i64);
            engine.upsert(t).unwrap();
        }
        let (pk, dn) = (tasks[0].product_key.clone(), tasks[0].device_name.clone());
        let iot = tasks[0].iot_id.clone();
        // Found by `iotId`, which leaves the pair's entry alone.
        let first_row = || {
            let (guard, d) = engine
                .locate(InstanceId(0), DeviceRef::IotId(&iot), None)
                .unwrap();
            guard.first_unfinished(d).unwrap().0
        };
        assert_eq!(hint_of(&engine, &pk, &dn), PairShard::NO_HINT);
        let query = Query::by_name(&pk, &dn);
        assert_eq!(engine.unfinished(&query).unwrap().len(), tasks.len());
        let first = first_row();
        assert_eq!(hinted_row(&engine, &pk, &dn), first);
        let name = {
            let (guard, d) = engine
                .locate(InstanceId(0), DeviceRef::IotId(&iot), None)
                .unwrap();
            guard.device(d).name.0
        };
        assert_eq!(hint_of(&engine, &pk, &dn) >> 32, u64::from(name));
        // A task created earlier than the others becomes the device's first row.
        let mut earlier = tasks[0].clone();
        earlier.task_id = "earlier".into();
        earlier.utc_create = Timestamp::from_millis(1_000);
        engine.upsert(&earlier).unwrap();
        assert_ne!(first_row(), first, "a new first row");
        assert_eq!(
            hinted_row(&engine, &pk, &dn),
            first,
            "stale until a query by name"
        );
        let hint = engine.prefetch_device(
            "",
            DeviceRef::Name {
                product_key: &pk,
                device_name: &dn,
            },
        );
        engine.prefetch_device_record(hint.expect("no writer holds the lock"));
        let answer = engine.unfinished(&query).unwrap();
        assert_eq!(answer.iter().next().unwrap().task_id(), "earlier");
        drop(answer);
        assert_eq!(hinted_row(&engine, &pk, &dn), first_row());
        engine.internal_validate().unwrap();
    }

    /// Four shards a CPU, a power of two from 4 to 64, and what `Engine::new` uses.
    #[test]
    fn default_shards_follow_the_cpus() {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let n = default_shards();
        assert!(n.is_power_of_two() && (4..=64).contains(&n), "{n}");
        assert!(
            n >= (4 * cpus).min(64) && (n == 4 || n / 2 < 4 * cpus),
            "{n} for {cpus}"
        );
        assert_eq!(Engine::new().shards(), n);
    }

    /// A one-shard engine over 30,000 devices moves its rows (3 MB) into a huge-page mapping of
    /// its own when shrunk after the load; sixteen shards keep every column with the
    /// allocator. Both answer every request of the mix with the same bytes, loaded, shrunk,
    /// grown past the mapping by upserts, and shrunk again.
    #[test]
    fn mapped_columns_answer_as_allocated_ones() {
        use crate::rpc::{HttpRequest, Service};
        let fleet = crate::fleet::Fleet::new(30_000);
        let (mapped, allocated) = (Engine::with_shards(1), Engine::with_shards(16));
        let jsonl = fleet.to_jsonl();
        for engine in [&mapped, &allocated] {
            engine.load_jsonl(&jsonl).unwrap();
        }
        let columns = |e: &Engine| -> usize {
            e.inner
                .shards
                .iter()
                .map(|s| s.0.read().mapped_columns())
                .sum()
        };
        let queries = fleet.queries(4_000);
        let compare = |when: &str| {
            let (a, b) = (
                Service::new(mapped.clone()),
                Service::new(allocated.clone()),
            );
            let (mut x, mut y) = (Vec::new(), Vec::new());
            for q in &queries {
                let request = HttpRequest {
                    request_id: Some("mapped"),
                    ..HttpRequest::get(q)
                };
                x.clear();
                y.clear();
                assert_eq!(a.answer(&request, &mut x), b.answer(&request, &mut y));
                assert_eq!(x, y, "{when}: {q}");
            }
            mapped.internal_validate().unwrap();
        };
        assert_eq!(
            columns(&mapped),
            0,
            "a load grows columns with the allocator"
        );
        compare("loaded");
        for engine in [&mapped, &allocated] {
            engine.shrink_to_fit();
        }
        assert!(columns(&mapped) >= 1, "the rows are mapped");
        assert_eq!(columns(&allocated), 0);
        compare("shrunk");
        // New tasks for every 10th device: the rows grow past their mapping's capacity.
        let rows_before = mapped.memory_usage().rows;
        for d in (0..fleet.device_count()).step_by(10) {
            for mut t in fleet.device_tasks(d) {
                t.task_id = format!("{}-more", t.task_id);
                t.status = TaskStatus::InProgress;
                mapped.upsert(&t).unwrap();
                allocated.upsert(&t).unwrap();
            }
        }
        assert!(mapped.memory_usage().rows > rows_before);
        assert!(
            columns(&mapped) >= 1,
            "a mapped column grows into a mapping"
        );
        compare("grown");
        for engine in [&mapped, &allocated] {
            engine.shrink_to_fit();
        }
        compare("shrunk again");
    }
}
