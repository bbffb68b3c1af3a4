//! # ota-index
//!
//! An in-memory index of IoT firmware-upgrade (OTA) tasks that answers one question at very
//! high volume: *which upgrade tasks of this device are still unfinished?* It is the
//! `ListOTAUnfinishedTaskByDevice` call of the Alibaba Cloud and Tuya IoT platforms, served
//! from memory with the platform's exact answers, for platform services that embed it.
//!
//! ## Quick start
//!
//! ```
//! use ota_index::{Engine, Query, StatusSet, TaskFields, TaskStatus};
//!
//! let engine = Engine::new();
//! engine.load_jsonl(br#"{"taskId":"t1","jobId":"j1","firmwareId":"f1","iotId":"dev-1","productKey":"pk1","productName":"Lamp","deviceName":"lamp-01","moduleName":"ble","srcVersion":"1.0","destVersion":"1.1","taskStatus":"QUEUED","utcCreate":"2024-01-01T00:00:00Z","utcModified":"2024-01-01T00:00:00Z"}
//! {"TaskId":"t2","JobId":"j2","FirmwareId":"f2","IotId":"dev-1","ProductKey":"pk1","ProductName":"Lamp","DeviceName":"lamp-01","ModuleName":"default","SrcVersion":"","DestVersion":"2.0","TaskStatus":"SUCCEEDED","UtcCreate":"2024-01-02T00:00:00Z","UtcModified":"2024-01-03T00:00:00Z"}"#).unwrap();
//!
//! // Typed queries return borrowed views, in the contract's order; finished tasks never appear.
//! let answer = engine.unfinished(&Query::by_name("pk1", "lamp-01").module("BLE")).unwrap();
//! let ids: Vec<String> = answer.iter().map(|t| t.task_id().to_owned()).collect();
//! assert_eq!(ids, ["t1"]);
//! drop(answer); // an answer holds its shard's read lock: serialize it and let it go
//!
//! let queued = Query::by_iot_id("dev-1").statuses(StatusSet::only(TaskStatus::Queued));
//! assert_eq!(engine.count_unfinished(&queued), Ok(1));
//! ```
//!
//! ## The RPC face
//!
//! [`rpc::Service`] takes a request as the platform receives it (query string, form body,
//! headers) to the platform's response bytes, in camelCase (the default) or PascalCase:
//!
//! ```
//! use ota_index::rpc::{HttpRequest, KeyCase, Service};
//! use ota_index::Engine;
//!
//! let service = Service::new(Engine::new()).with_case(KeyCase::Pascal);
//! let mut body = Vec::new();
//! let status = service.answer(
//!     &HttpRequest { request_id: Some("r1"), ..HttpRequest::get("Action=ListOTAUnfinishedTaskByDevice&ProductKey=pk1") },
//!     &mut body,
//! );
//! assert_eq!(status, 400);
//! assert!(body.starts_with(br#"{"Code":"MissingParameter","Message":""#));
//! ```
//!
//! Signed requests (RPC v1 HMAC-SHA1 and V3 `ACS3-HMAC-SHA256`) are checked when the service
//! is built [`with_verifier`](rpc::Service::with_verifier). The `query` and `serve` examples
//! are the command-line and HTTP faces (see README.md).
//!
//! ## Feeding the store
//!
//! [`Engine::upsert`] adds or replaces one task by id; a record older (`utcModified`) than the
//! stored task is dropped and reported as [`UpsertOutcome::Stale`], so an at-least-once event
//! stream can replay and reorder freely; [`Engine::write_batch`] applies a stream's events a
//! batch at a time, all or nothing, with the outcome of upserting them one by one (status
//! changes of stored tasks go in shard by shard, without waiting for readers while another
//! shard has work). [`Engine::load_jsonl`] loads JSON Lines all or nothing.
//! [`Engine::remove`] deletes a task. Every refused write names the field at fault (and the
//! line) and changes nothing. Once a service's initial load is in,
//! [`Engine::shrink_to_fit`] gives back its growth slack and moves the large columns onto
//! 2 MiB pages (Linux; a few percent faster queries on a large fleet; [`mapped_bytes`]
//! counts them).
//!
//! ## Design
//!
//! - **Interned, packed rows.** A task is a 32-byte row of small typed ids and timestamps in
//!   one of the engine's shards; each repeated string is stored once per shard, and the six
//!   strings a task shares with its job (job, firmware, product name, module, versions) cost
//!   one id. A task id that is a decimal number (the platform's are 19 digits) is kept in the
//!   row as the number; any other id's bytes go to a slab. Device-level fields live with the
//!   device. Freed rows and ids are reused.
//! - **Indexes.** Per device (by `iotId`, and by product key and device name), a posting list
//!   of its unfinished rows kept in answer order. The `iotId` index and the task directory
//!   are tag tables: 4-byte entries carrying bits of the key's hash beside its address, so a
//!   probe reads one array and compares a stored key only on a tag match. Per status, module
//!   and job, roaring bitmaps ([`Engine::count_tasks`]). A device query walks the posting
//!   list; the bitmaps serve fleet-wide sets, and the planner uses the module bitmap when it
//!   is much smaller than a device's list (see `benches/planner.rs`).
//! - **Concurrency.** Devices are spread over shards ([`default_shards`]: four a CPU), each
//!   behind its own reader-writer lock, which queries enter even past a waiting writer and
//!   take by writing only their own thread's cache line; writers are serialized. See
//!   [`engine`] for the model and why.
//! - **Scale-out.** [`shard_of`] is a frozen function from `iotId` to one of `n` service
//!   instances: route each device's events and queries by it.
//!
//! ## The contract's choices
//!
//! Where the platform's documentation is silent, this crate chose (contract `CONTRACT.md`):
//!
//! - **(choice)** The statuses asked for are the union of `TaskStatus` and every
//!   `TaskStatusList.N`; when neither is given, all four unfinished statuses.
//! - **(choice)** `ModuleName` is matched ignoring ASCII case; the answer echoes the stored
//!   spelling.
//! - **(choice)** Answers are ordered by `utcCreate` ascending, then `taskId` ascending in
//!   byte order.
//! - **(choice)** A device the store has never seen, or one with no unfinished task, gives an
//!   empty list, not an error.
//!
//! And where the contract is silent too:
//!
//! - Timestamps take one to three fractional digits (`.5Z` is `.500Z`); more are refused
//!   rather than silently truncated, since `utcModified` decides which write wins.
//! - `iotInstanceId` is 0–64 visible ASCII characters; empty is the default instance.
//! - Finished tasks are kept (and indexed by status) so that a replayed older event cannot
//!   resurrect them; [`Engine::remove`] reclaims a task's memory for reuse.
//! - A record dropped as stale makes no device binding, in a bulk load as in single upserts;
//!   a refused bulk load reports its first bad line.
//! - The typed [`Query`] checks the same field rules as the wire (`iotId`, `productKey`,
//!   `deviceName`, `moduleName`); a finished status in its [`StatusSet`] is an error.
//! - A typed record's times must lie in years 0000 to 9999 ([`Timestamp::MIN`] to
//!   [`Timestamp::MAX`]), the instants the format can write back; others are refused as a
//!   bad timestamp, as unparsable text is.
//! - Module names are stored as written. The contract takes a product's modules to be unique
//!   ignoring case, and the store does not police it: given both `ble` and `BLE`,
//!   `ModuleName=ble` answers the tasks of both.
//! - In a bulk load, an ignored key's value may be any JSON (numbers of any size included);
//!   a `\u` escape that is half of a surrogate pair, alone, is malformed JSON wherever it
//!   is. A malformed line's message gives the column (in characters) where it goes wrong.
//!
//! ## Limitations
//!
//! - One process's memory: outgrow it by sharding devices over service instances
//!   ([`shard_of`]); the crate builds no cluster and persists nothing (rebuild from the
//!   platform's event stream or a JSON Lines dump, [`Engine::tasks`]).
//! - A bulk load becomes visible piece by piece while it applies (each task whole), not as
//!   one atomic snapshot; a refused load applies nothing.
//! - Queries by product key and device name route through a pair directory; a fleet
//!   sharded by `iotId` needs the platform's device registry to route them (or asks every
//!   instance).
//! - Read scaling is not linear: 16 readers on 16 cores answered 11.5–14.4 times what one
//!   does with `parking_lot`'s lock (the lock-free naive store 14.9 times, the pre-rendered
//!   floor 18.5); the crate's own lock, which replaced it, is not yet measured there.
//! - Bounded sizes: JSON Lines lines of [`MAX_LINE_BYTES`], loads of [`MAX_LOAD_BYTES`],
//!   requests of [`rpc::MAX_REQUEST_BYTES`] (SECURITY.md lists every limit).
// Three exceptions: `prefetch.rs`, a cache prefetch hint, which Rust offers only as `unsafe`,
// `column.rs`, the large columns' own memory mappings (huge pages), and `slotlock.rs`, the
// shards' reader-writer lock (its data behind an `UnsafeCell`, parking through
// `parking_lot_core`).
#![deny(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod engine;
pub mod fleet;
pub mod ingest;
pub mod model;
pub mod query;
mod raw;
pub mod routing;
#[cfg(feature = "rpc")]
#[cfg_attr(docsrs, doc(cfg(feature = "rpc")))]
pub mod rpc;
pub(crate) mod store;
mod sync;
mod table;

pub use engine::{
    default_shards, Binding, DeviceHint, Engine, HeldDevice, MemoryUsage, TaskFilter, TaskView,
    Unfinished, UpsertOutcome, WriteError, WriteSummary,
};
pub use ingest::{LoadError, LoadErrorKind, LoadReport, MAX_LINE_BYTES, MAX_LOAD_BYTES};
pub use model::{
    Field, FieldError, FieldValue, PlainTask, Record, RecordRef, StatusSet, TaskFields, TaskRecord,
    TaskStatus, Timestamp, Violation, JSON_STRING_ORDER,
};
pub use query::{DeviceRef, Query, QueryError};
pub use raw::column::mapped_bytes;
pub use routing::shard_of;

/// The README's Rust examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
