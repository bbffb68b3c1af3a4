//! Answers: the rows of one device query, read-locked while they live, and each task as a
//! borrowed view of the columns.

use smallvec::SmallVec;

use crate::model::{PlainTask, TaskFields, TaskStatus, Timestamp};
use crate::store::taskkey::IdText;
use crate::store::{DeviceIdx, RowIdx, Shard};
use crate::sync::slotlock::SlotReadGuard;

/// How many tasks of an answer [`Engine::unfinished`] starts loading before returning: past a
/// few, serializing one task overlaps the next one's misses by itself, and loading a long
/// answer ahead would only evict its start.
pub(super) const PREFETCH_TASKS: usize = 8;

/// The answer to a device query: the matching rows of one shard, read-locked while it lives.
pub struct Unfinished<'a> {
    pub(super) guard: Option<SlotReadGuard<'a, Shard>>,
    pub(super) rows: SmallVec<[RowIdx; 8]>,
    pub(super) instance: &'a str,
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

    /// The tasks, in answer order.
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

/// Where [`Engine::prefetch_device`](crate::Engine::prefetch_device) found a device's bucket, for
/// [`Engine::prefetch_device_record`](crate::Engine::prefetch_device_record).
#[derive(Debug, Clone, Copy)]
pub struct DeviceHint(pub(super) Hint);

/// A device's shard, read-locked ahead of the device's query, its bucket on the way
/// ([`Engine::hold_device`](crate::Engine::hold_device)). Holding it delays the shard's
/// writers: pass it to [`Engine::unfinished_held`](crate::Engine::unfinished_held) soon.
pub struct HeldDevice<'a> {
    pub(super) shard: usize,
    pub(super) hash: u64,
    pub(super) guard: SlotReadGuard<'a, Shard>,
}

impl std::fmt::Debug for HeldDevice<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeldDevice")
            .field("shard", &self.shard)
            .finish_non_exhaustive()
    }
}

impl HeldDevice<'_> {
    /// The hint's second step
    /// ([`Engine::prefetch_device_record`](crate::Engine::prefetch_device_record)) under the
    /// held lock: starts loading the device, its first rows and its `iotId` bytes.
    pub fn prefetch_record(&self) {
        self.guard.prefetch_device(self.hash);
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Hint {
    /// A device named by `iotId`: its shard and its hash in the shard's `iotId` table.
    Iot { shard: usize, hash: u64 },
    /// A device named by product key and name: its pair directory shard and its hash there.
    Pair { dir: usize, hash: u64 },
}

/// What [`Engine::prefetch_device_record`] loads in a shard.
pub(super) enum FirstCandidate {
    Iot(u64),
    /// A device named by its pair, and its hint.
    Device(DeviceIdx, u64),
}

/// One task, read straight from the columns: every accessor borrows, nothing is copied
/// (a task id the store keeps as a number is written out, once, when the view is made).
#[derive(Clone, Copy)]
pub struct TaskView<'a> {
    pub(super) shard: &'a Shard,
    pub(super) row: RowIdx,
    pub(super) instance: &'a str,
    pub(super) id: IdText<'a>,
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
    pub(super) fn new(shard: &'a Shard, row: RowIdx, instance: &'a str) -> TaskView<'a> {
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
    /// `progress`, if known.
    pub fn progress(&self) -> Option<&'a str> {
        self.shard.row_progress(self.row)
    }
    /// `taskDesc`, if known.
    pub fn task_desc(&self) -> Option<&'a str> {
        self.shard.row_task_desc(self.row)
    }
    /// `timeout`, if known.
    pub fn timeout(&self) -> Option<&'a str> {
        self.shard.row_timeout(self.row)
    }
}

macro_rules! delegate_task_fields {
    (
        strings: [$($s:ident $sv:ident $sc:literal $sp:literal $sd:literal;)*]
        status: [$($t:ident $tv:ident $tc:literal $tp:literal $td:literal;)*]
        times: [$($m:ident $mv:ident $mc:literal $mp:literal $md:literal;)*]
        optional: [$($o:ident $ov:ident $oc:literal $op:literal $od:literal;)*]
    ) => {
        impl TaskFields for TaskView<'_> {
            $(fn $s(&self) -> &str { TaskView::$s(self) })*
            $(fn $t(&self) -> TaskStatus { TaskView::$t(self) })*
            $(fn $m(&self) -> Timestamp { TaskView::$m(self) })*
            $(fn $o(&self) -> Option<&str> { TaskView::$o(self) })*
            /// Plainness comes from each stored string's header (set when it was stored).
            fn json_strings(&self) -> [(&str, bool); 10] {
                self.shard.row_json_strings(self.row, &self.id)
            }
            /// From each stored string's header, as `json_strings`; the row is read once.
            fn plain_json(&self) -> Option<PlainTask<'_>> {
                self.shard.row_plain_json(self.row, &self.id)
            }
        }
    };
}

crate::model::task_fields!(delegate_task_fields);
