//! What a write did, and why one was refused.

use crate::model::{Field, FieldError, RecordRef, Timestamp};

/// What an upsert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpsertOutcome {
    /// A new task id: the task was added.
    Inserted,
    /// A known task id: the stored task was replaced by the greater record.
    Replaced,
    /// The record equals the stored task: nothing changed.
    Unchanged,
    /// The stored task is greater ([`Record::cmp_version`](crate::Record::cmp_version)):
    /// the record was dropped (its device binding is made all the same).
    Stale {
        /// The stored task's `utcModified`.
        stored: Timestamp,
    },
}

/// A device binding that a record contradicts (reference section 1).
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
    /// A field breaks its rule (reference section 1).
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
    /// Records equal to the stored task: no-ops.
    pub unchanged: usize,
    /// Records dropped as lesser than the stored task (or covered by a removal).
    pub stale: usize,
    /// Removals applied.
    pub removals: usize,
    /// Tasks deleted by removals.
    pub removed: usize,
}

impl WriteSummary {
    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: WriteSummary) {
        self.inserted += other.inserted;
        self.replaced += other.replaced;
        self.unchanged += other.unchanged;
        self.stale += other.stale;
        self.removals += other.removals;
        self.removed += other.removed;
    }

    pub(super) fn count(&mut self, outcome: UpsertOutcome) {
        match outcome {
            UpsertOutcome::Inserted => self.inserted += 1,
            UpsertOutcome::Replaced => self.replaced += 1,
            UpsertOutcome::Unchanged => self.unchanged += 1,
            UpsertOutcome::Stale { .. } => self.stale += 1,
        }
    }
}

pub(super) fn conflict(rec: &RecordRef<'_>, bound: Binding) -> WriteError {
    WriteError::IdentityConflict {
        iot_id: rec.iot_id.to_owned(),
        product_key: rec.product_key.to_owned(),
        device_name: rec.device_name.to_owned(),
        bound,
    }
}
