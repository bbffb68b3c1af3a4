//! ota-index (manual written below once the engine lands).
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod model;
pub mod query;
pub mod rpc;
pub mod view;

pub use model::{Field, FieldError, RecordRef, StatusSet, TaskRecord, TaskStatus, Timestamp, Violation};
pub use query::{DeviceRef, Query, QueryError};
pub use view::TaskFields;
