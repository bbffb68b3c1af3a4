//! ota-index (manual written below once the engine lands).
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod engine;
pub mod fleet;
pub(crate) mod index;
pub mod ingest;
pub(crate) mod intern;
pub mod model;
pub mod query;
pub mod rpc;
pub mod shard;
pub(crate) mod store;
pub mod view;

pub use engine::{
    Binding, Engine, MemoryUsage, TaskFilter, TaskView, Unfinished, UpsertOutcome, WriteError,
    WriteSummary, DEFAULT_SHARDS,
};
pub use ingest::{LoadError, LoadErrorKind, LoadReport, MAX_LINE_BYTES, MAX_LOAD_BYTES};
pub use model::{Field, FieldError, RecordRef, StatusSet, TaskRecord, TaskStatus, Timestamp, Violation};
pub use shard::shard_of;
pub use query::{DeviceRef, Query, QueryError};
pub use view::TaskFields;
