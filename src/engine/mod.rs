//! The shared, concurrent engine: the sharding, the directories, the read path, the write
//! path and batches.
//!
//! # Concurrency model
//!
//! Devices are spread over `N` shards ([`default_shards`] by default) by a hash of their
//! `iotId`; a shard holds its devices, their tasks' rows, its dictionaries and its bitmaps,
//! behind its own reader-writer lock. A device query touches exactly one shard (plus one
//! small pair directory shard when the device is named by product key and device name), under
//! a read lock, so readers never wait for each other.
//!
//! **Readers write no memory in common.** The lock is the crate's own (`sync::slotlock`): a
//! reader counts itself in on a cache line of its own thread's, then reads a flag that only
//! writers write, so readers on different cores (up to 64 reading at once; past that, threads
//! share lines) never pass a cache line between them. With a plain reader-writer lock every
//! reader writes the lock's one word: on a 16-core machine 16 readers answered 11.5–14.4
//! times what one does with `parking_lot::RwLock`, where the lock-free naive store reached
//! 14.9. A writer pays instead: it sets the flag and reads every thread's line.
//!
//! **Readers pass a waiting writer.** A writer keeps the flag set only while it checks the
//! readers' lines and, when they are all clear, while it writes; it never waits for one shard
//! while holding another. So a thread holding an answer may query again, on any shard, while
//! a writer waits ([`Engine::unfinished`], the counts, [`Engine::tasks`], …). Two reads are
//! the exception: [`Engine::get`] and [`Engine::memory_usage`] read the task directory, which
//! the writers' mutex owns; a thread holding an answer must not call them (nor write), or the
//! writer would wait for the answer and the call for the writer. Where threads outnumber
//! cores, a writer often waits for a reader it has itself preempted: with readers queued
//! behind a waiting writer, two readers beside the benches' 100,000-a-second writer on two
//! CPUs answered 0.83–0.89 of their speed alone, against 0.91–0.95 when they pass it. The
//! price: a writer waits until its shard has no reader at all (a hot device read without a
//! pause can keep it out). A waiting writer parks until a reader of its shard lets go; a
//! reader waiting for a write spins, yields, then naps 20 µs at a time.
//!
//! **Writers are serialized** by one mutex that also owns the task directory (task id →
//! row). A write takes the write lock of the one shard it changes (two when a task moves to a
//! device of another shard) for the microsecond it needs, so a reader sees each task wholly
//! before or wholly after a write. A batch ([`Engine::write_batch`], a bulk load) checks every
//! record first, then applies them shard by shard, up to 256 records under one shard lock,
//! when they are all new tasks or all the usual event (a stored task with every string
//! unchanged: a status change), and record by record otherwise. Readers wait for at most one
//! such run, and may see a batch half applied (each task whole). A batch of usual events
//! leaves a shard some reader holds for later while another shard has records waiting, so a
//! stream consumer that applies what arrived since its last wakeup as one batch waits for
//! readers about once a batch: beside two readers that keep both CPUs busy, a writer
//! upserting one by one made 86,000–98,600 of its 100,000 events a second, one applying them
//! in batches all of them.
//!
//! Chosen over a snapshot swap (a second copy of the store doubles memory, the first cost of
//! this crate) and over one global lock (its lock word alone caps read scaling).

mod answer;
mod batch;
mod directory;
mod error;
mod memory;
mod read;
mod remove;
mod retention;
mod write;
mod writes;

#[cfg(test)]
mod tests;

use std::hash::BuildHasher;
use std::sync::atomic::AtomicI64;
use std::sync::Arc;
use std::time::Duration;

use hashbrown::{DefaultHashBuilder, HashMap};
use parking_lot::{Mutex, RwLock};

use crate::query::QueryError;
use crate::store::{instance_hash, InstanceId, Shard};
use crate::sync::slotlock::SlotLock;
use crate::table::tagtable::MAX_ADDR;
use directory::{Directory, Instances, PairShard};

pub use answer::{DeviceHint, HeldDevice, TaskView, Unfinished};
pub use error::{Binding, UpsertOutcome, WriteError, WriteSummary};
pub use memory::MemoryUsage;
pub(crate) use read::TaskCursor;
pub use read::TaskFilter;
pub use remove::Removal;
pub use writes::Write;

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
/// rounds in turn): one reader 800 ns a query with 4 shards, 939 with 8, 963
/// with 16; upserts 515, 570 and 641 ns; but two readers beside the benchmarks' 100,000-a-
/// second writer answered 0.89 of their speed alone with 4 shards against 0.96 with 8 or
/// 16 (the writer, waking on a busy CPU, preempts a reader that holds its shard's read lock,
/// and with fewer shards its next upserts more often need that shard). Four a CPU is
/// `dashmap`'s rule too. [`Engine::with_shards`] sets any other count.
pub fn default_shards() -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    cpus.saturating_mul(4).next_power_of_two().clamp(4, 64)
}

/// Keeps each lock on its own cache lines so that a writer of one shard does not invalidate
/// the lines readers of its neighbours read.
#[repr(align(128))]
struct Padded<T>(T);

struct Inner {
    hasher: DefaultHashBuilder,
    shard_bits: u32,
    shards: Box<[Padded<SlotLock<Shard>>]>,
    pairs: Box<[Padded<SlotLock<PairShard>>]>,
    instances: RwLock<Instances>,
    writer: Mutex<Directory>,
    /// The retention horizon in milliseconds; `None`: keep everything.
    horizon: Option<i64>,
    /// Clock − horizon in milliseconds, for readers (`i64::MIN` while there is none):
    /// finished tasks modified before it are forgotten.
    cutoff: AtomicI64,
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

/// Settings of an [`Engine`] ([`Engine::builder`]).
///
/// ```
/// use std::time::Duration;
/// use ota_index::Engine;
///
/// let engine = Engine::builder()
///     .shards(8)
///     .retention(Duration::from_secs(30 * 86_400))
///     .build();
/// assert_eq!(engine.shards(), 8);
/// assert_eq!(engine.retention(), Some(Duration::from_secs(30 * 86_400)));
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct EngineBuilder {
    shards: Option<usize>,
    retention: Option<Duration>,
}

impl EngineBuilder {
    /// The shard count (at least 1, at most 4096; default [`default_shards`]).
    pub fn shards(mut self, shards: usize) -> EngineBuilder {
        self.shards = Some(shards);
        self
    }

    /// A retention horizon (reference section 2; default none, keep everything): once the
    /// store's clock ([`Engine::clock`], the newest `utcModified` accepted) is past a
    /// finished task's or a tombstone's `utcModified` by more than `horizon`, the task or
    /// tombstone is forgotten and its memory reused, and a record older than clock −
    /// `horizon` is stale on arrival. Milliseconds count; finer parts are dropped.
    pub fn retention(mut self, horizon: Duration) -> EngineBuilder {
        self.retention = Some(horizon);
        self
    }

    /// The engine.
    pub fn build(&self) -> Engine {
        Engine::from_builder(self)
    }
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

impl Engine {
    /// An empty engine with [`default_shards`] shards (four a CPU).
    pub fn new() -> Engine {
        Engine::with_shards(default_shards())
    }

    /// An empty engine with `shards` shards (at least 1, at most 4096).
    pub fn with_shards(shards: usize) -> Engine {
        Engine::builder().shards(shards).build()
    }

    /// An [`EngineBuilder`], for a shard count or a retention horizon.
    pub fn builder() -> EngineBuilder {
        EngineBuilder::default()
    }

    fn from_builder(b: &EngineBuilder) -> Engine {
        let shards = b.shards.unwrap_or_else(default_shards).clamp(1, 4096);
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
                horizon: b.retention.map(retention::horizon_millis),
                cutoff: AtomicI64::new(i64::MIN),
            }),
        }
    }

    /// The number of shards.
    pub fn shards(&self) -> usize {
        self.inner.shards.len()
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
}
