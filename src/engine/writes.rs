//! Mixed batches: records and removals, as a stream delivers them.

use super::{Engine, WriteError, WriteSummary};
use crate::model::{RecordRef, Timestamp};

/// One write of a stream or a load (reference section 2): a task record, or a removal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write<'a> {
    /// A task record: added, or replacing the lesser stored version of its task.
    Record(RecordRef<'a>),
    /// The removal of a task as of an instant ([`Engine::remove_task`]).
    RemoveTask {
        /// The instance (`""`: the default one).
        instance: &'a str,
        /// The task.
        task_id: &'a str,
        /// When it was removed.
        utc_modified: Timestamp,
    },
    /// The removal of a device as of an instant ([`Engine::remove_device`]).
    RemoveDevice {
        /// The instance (`""`: the default one).
        instance: &'a str,
        /// The device.
        iot_id: &'a str,
        /// The (productKey, deviceName) the tombstone covers when the store does not bind
        /// the device (a dump's removal line carries it).
        pair: Option<(&'a str, &'a str)>,
        /// When it was removed.
        utc_modified: Timestamp,
    },
}

impl Engine {
    /// Applies records and removals in order: the records between two removals as one
    /// [`Engine::write_batch`] (checked whole, then applied, or refused whole), each removal
    /// between them. The outcome is that of writing them one by one. On a refusal, the index
    /// of the write at fault and its error; the writes before the run it belongs to stay
    /// applied (a removal changes the bindings the records after it are checked against,
    /// so runs are checked one after the other). A batch without removals is all or
    /// nothing, as `write_batch`.
    ///
    /// ```
    /// use ota_index::{fleet::Fleet, Engine, Timestamp, Write};
    ///
    /// let engine = Engine::new();
    /// let tasks = Fleet::new(2).tasks().collect::<Vec<_>>();
    /// let removed_at = Timestamp::from_millis(tasks[0].utc_modified.as_millis() + 1);
    /// let mut writes: Vec<Write<'_>> = tasks.iter().map(|t| Write::Record(t.as_ref())).collect();
    /// writes.push(Write::RemoveTask { instance: "", task_id: &tasks[0].task_id, utc_modified: removed_at });
    /// let summary = engine.apply_writes(&writes).unwrap();
    /// assert_eq!((summary.inserted, summary.removed), (tasks.len(), 1));
    /// assert_eq!(engine.len(), tasks.len() - 1);
    /// ```
    pub fn apply_writes(&self, writes: &[Write<'_>]) -> Result<WriteSummary, (usize, WriteError)> {
        let mut summary = WriteSummary::default();
        let mut at = 0;
        while at < writes.len() {
            let records: Vec<RecordRef<'_>> = writes[at..]
                .iter()
                .map_while(|w| match w {
                    Write::Record(r) => Some(*r),
                    _ => None,
                })
                .collect();
            if !records.is_empty() {
                let done = self.write_batch(&records).map_err(|(i, e)| (at + i, e))?;
                summary.add(done);
                at += records.len();
                continue;
            }
            let removal = match writes[at] {
                Write::RemoveTask {
                    instance,
                    task_id,
                    utc_modified,
                } => self.remove_task(instance, task_id, utc_modified),
                Write::RemoveDevice {
                    instance,
                    iot_id,
                    pair,
                    utc_modified,
                } => self.remove_device_named(instance, iot_id, pair, utc_modified),
                // Written above, with the records after it.
                Write::Record(_) => continue,
            };
            summary.removed += removal.map_err(|e| (at, e))?.tasks;
            summary.removals += 1;
            at += 1;
        }
        Ok(summary)
    }
}
