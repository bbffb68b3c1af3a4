//! # ota-index
//!
//! An in-memory index of IoT firmware-upgrade (OTA) tasks that answers one question at very
//! high volume: *which upgrade tasks of this device are still unfinished?* It is the
//! `ListOTAUnfinishedTaskByDevice` call of the Alibaba Cloud and Tuya IoT platforms, served
//! from memory with the platform's exact answers, for platform services that embed it. Every
//! rule it follows, and every choice it makes where the platform's documentation is silent,
//! is in the [reference](mod@reference).
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
//! // Typed queries return borrowed views, in answer order; finished tasks never appear.
//! let answer = engine.unfinished(&Query::by_name("pk1", "lamp-01").module("BLE")).unwrap();
//! let ids: Vec<String> = answer.iter().map(|t| t.task_id().to_owned()).collect();
//! assert_eq!(ids, ["t1"]);
//! drop(answer); // an answer holds its shard's read lock: serialize it and let it go
//!
//! let queued = Query::by_iot_id("dev-1").statuses(StatusSet::only(TaskStatus::Queued));
//! assert_eq!(engine.count_unfinished(&queued), Ok(1));
//! ```
//!
//! ## The RPC face (feature `rpc`, on by default)
//!
//! [`rpc::Service`] takes a request as the platform receives it (query string, form body,
//! headers) to the platform's response bytes, in camelCase (the default) or PascalCase:
//!
//! ```
//! # #[cfg(feature = "rpc")] {
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
//! # }
//! ```
//!
//! Signed requests (RPC v1 HMAC-SHA1 and V3 `ACS3-HMAC-SHA256`) are checked when the service
//! is built [`with_verifier`](rpc::Service::with_verifier). The `query` and `serve` examples
//! are the command-line and HTTP faces (README.md). Without the feature
//! (`--no-default-features`) the crate is the engine alone, without the wire layer's crates.
//!
//! ## Feeding the store
//!
//! [`Engine::upsert`] adds or replaces one task by id; the records of a task are ordered
//! totally ([`Record::cmp_version`]: `utcModified`, status rank, the other fields), a lesser
//! one is dropped as [`UpsertOutcome::Stale`] and an equal one is a no-op, so an
//! at-least-once stream's replays and reorderings end in the same store.
//! [`Engine::write_batch`] applies a stream's events a batch at a time, all or nothing, with
//! the outcome of upserting them one by one; [`Engine::load_jsonl_reader`] streams JSON Lines
//! of any size (records and removals); [`Engine::remove_task`] and [`Engine::remove_device`]
//! remove as of an instant, leaving tombstones; [`Engine::dump_jsonl`] writes the store back
//! out. [`EngineBuilder::retention`] sets a horizon past which finished tasks and tombstones
//! are forgotten, their memory reused. Every refused write names the field at fault (and the
//! line) and changes nothing. Once a service's initial load is in,
//! [`Engine::shrink_to_fit`] gives back its growth slack and moves the large columns onto
//! 2 MiB pages (Linux; [`mapped_bytes`] counts them).
//!
//! ## Layout
//!
//! | module | owns |
//! |---|---|
//! | [`model`] | statuses, timestamps, the field list and its rules, the task records: a leaf |
//! | [`query`] | the typed device query |
//! | `raw`, `sync` | columns and their memory mappings, prefetch, byte tests; the shard lock: the only `unsafe` |
//! | `table` | the tag table and the string stores, which know nothing of tasks |
//! | `store` | one shard: ids, rows, devices and posting lists, variants, bitmaps, the planner, its validator |
//! | [`engine`] | the shared, concurrent handle: directories, reads and answers, writes, batches |
//! | [`ingest`] | JSON Lines in |
//! | `rpc` | parameters, the request rules, responses, signatures, the service |
//! | [`routing`] | [`shard_of`], for fleets spread over service instances |
//! | [`fleet`] | the synthetic fleet of the tests, benches and demo |
//!
//! Arrows point down the table only: nothing under `store`, `table`, `raw`, `sync` or
//! `model` imports `engine`, and `rpc` uses only the engine's public API.
//!
//! ## Design
//!
//! - **Interned, packed rows.** A task is a 32-byte row of small typed ids and timestamps in
//!   one of the engine's shards; each repeated string is stored once per shard, and the six
//!   strings a task shares with its job (job, firmware, product name, module, versions) cost
//!   one id. A task id that is a decimal number (the platform's are 19 digits) is kept in the
//!   row as the number. Device-level fields live with the device. Freed rows and ids are
//!   reused.
//! - **Indexes.** Per device (by `iotId`, and by product key and device name), a posting list
//!   of its unfinished rows kept in answer order; the `iotId` index and the task directory
//!   are tag tables (4-byte entries carrying bits of the key's hash beside its address). Per
//!   status, module and job, roaring bitmaps ([`Engine::count_tasks`]). A device query walks
//!   the posting list; the planner uses the module bitmap when it is much smaller than a
//!   device's list.
//! - **Concurrency.** Devices are spread over shards ([`default_shards`]: four a CPU), each
//!   behind its own reader-writer lock, which queries enter even past a waiting writer and
//!   take by writing only their own thread's cache line; writers are serialized. See
//!   [`engine`] for the model and why.
//! - **Scale-out.** [`shard_of`] is a frozen function from `iotId` to one of `n` service
//!   instances: route each device's events and queries by it.
//!
//! ## Limitations
//!
//! - One process's memory: outgrow it by sharding devices over service instances
//!   ([`shard_of`]); the crate builds no cluster and persists nothing (rebuild from the
//!   platform's event stream or a JSON Lines dump, [`Engine::dump_jsonl`]).
//! - A bulk load becomes visible piece by piece while it applies (each task whole), not as
//!   one atomic snapshot; a refused load (or streamed piece) applies nothing.
//! - Queries by product key and device name route through a pair directory; a fleet
//!   sharded by `iotId` needs the platform's device registry to route them (or asks every
//!   instance).
//! - Bounded sizes: JSON Lines lines of [`MAX_LINE_BYTES`], in-memory loads of
//!   [`MAX_LOAD_BYTES`] (a streamed load is all or nothing for each [`LOAD_CHUNK_BYTES`]),
//!   requests of `rpc::MAX_REQUEST_BYTES` (SECURITY.md lists every limit).
// Two folders hold `unsafe`: `raw` (a cache prefetch hint, which Rust offers only as
// `unsafe`; the large columns' own memory mappings) and `sync` (the shard lock: its data
// behind an `UnsafeCell`, parking through `parking_lot_core`).
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

#[doc = include_str!("../docs/reference.md")]
pub mod reference {}

pub use engine::{
    default_shards, Binding, DeviceHint, Engine, EngineBuilder, HeldDevice, MemoryUsage, Removal,
    TaskFilter, TaskView, Unfinished, UpsertOutcome, Write, WriteError, WriteSummary,
};
pub use ingest::{
    DumpReport, LoadError, LoadErrorKind, LoadProgress, LoadReport, LOAD_CHUNK_BYTES,
    MAX_LINE_BYTES, MAX_LOAD_BYTES,
};
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
