//! JSON Lines out: one record a line, the format a load reads.

use std::io::{self, Write};

use crate::engine::{Engine, TaskCursor};
use crate::model::{Field, FieldValue, TaskFields};
use crate::raw::json::write_json_string;

/// Tasks serialized under one shard read lock before the lock is let go and the bytes are
/// written out: readers and writers of that shard wait for at most this many.
const DUMP_RUN: usize = 4096;

/// What a dump wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DumpReport {
    /// Task records written (one line each).
    pub records: usize,
    /// Lines written for the tombstones: removals, and the versions deleted with their
    /// device before them.
    pub removals: usize,
    /// Bytes written.
    pub bytes: usize,
}

/// Writes `task` as one compact camelCase JSON object, the line format of a load: keys in
/// response order, the instance only when it is not the default one, an optional field only
/// when it is known.
pub fn write_jsonl_record(out: &mut Vec<u8>, task: &impl TaskFields) {
    let mut first = true;
    for field in Field::ALL {
        let value = task.value(field);
        let default_instance =
            field == Field::IotInstanceId && matches!(value, FieldValue::Str(""));
        if default_instance || matches!(value, FieldValue::Absent) {
            continue;
        }
        out.extend_from_slice(if first { b"{\"" } else { b",\"" });
        first = false;
        out.extend_from_slice(field.camel().as_bytes());
        out.extend_from_slice(b"\":");
        match value {
            FieldValue::Str(text) => write_json_string(out, text),
            FieldValue::Status(status) => write_json_string(out, status.as_str()),
            FieldValue::Time(time) => {
                out.push(b'"');
                out.extend_from_slice(&time.format());
                out.push(b'"');
            }
            FieldValue::Absent => {}
        }
    }
    out.push(b'}');
}

/// Writes one write as a JSON Lines line: a record, or a removal
/// (`{"op":"removeTask",…}`, `{"op":"removeDevice",…}`, the instance only when it is not the
/// default one).
pub fn write_jsonl_write(out: &mut Vec<u8>, write: &crate::engine::Write<'_>) {
    use crate::engine::Write as W;
    let (op, key, id, instance, at) = match *write {
        W::Record(record) => return write_jsonl_record(out, &record),
        W::RemoveTask {
            instance,
            task_id,
            utc_modified,
        } => ("removeTask", "taskId", task_id, instance, utc_modified),
        W::RemoveDevice {
            instance,
            iot_id,
            utc_modified,
            ..
        } => ("removeDevice", "iotId", iot_id, instance, utc_modified),
    };
    out.extend_from_slice(b"{\"op\":\"");
    out.extend_from_slice(op.as_bytes());
    out.extend_from_slice(b"\",\"");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
    write_json_string(out, id);
    if let W::RemoveDevice {
        pair: Some((product_key, device_name)),
        ..
    } = *write
    {
        out.extend_from_slice(b",\"productKey\":");
        write_json_string(out, product_key);
        out.extend_from_slice(b",\"deviceName\":");
        write_json_string(out, device_name);
    }
    out.extend_from_slice(b",\"utcModified\":\"");
    out.extend_from_slice(&at.format());
    out.push(b'"');
    if !instance.is_empty() {
        out.extend_from_slice(b",\"iotInstanceId\":");
        write_json_string(out, instance);
    }
    out.push(b'}');
}

impl Engine {
    /// Writes every stored task to `out` as JSON Lines (reference section 2), without
    /// copying the store: a few thousand tasks are serialized under one shard read lock, then
    /// written out with the lock let go. Loading the dump into an empty engine gives a store
    /// whose every answer is the same.
    ///
    /// Not a snapshot: writes during a dump may or may not be in it (each task whole), which
    /// a replay of the same writes after it makes good (writes converge, section 2).
    ///
    /// ```
    /// use ota_index::{fleet::Fleet, Engine};
    ///
    /// let engine = Engine::new();
    /// engine.load_jsonl(&Fleet::new(50).to_jsonl()).unwrap();
    /// let mut dump = Vec::new();
    /// let report = engine.dump_jsonl(&mut dump).unwrap();
    /// assert_eq!(report.records, engine.len());
    /// let copy = Engine::new();
    /// copy.load_jsonl(&dump).unwrap();
    /// assert_eq!(copy.len(), engine.len());
    /// ```
    pub fn dump_jsonl(&self, mut out: impl Write) -> io::Result<DumpReport> {
        let mut report = DumpReport::default();
        let mut buf = Vec::with_capacity(DUMP_RUN * 512);
        // The tombstones first, as the writes that make them (a record that a later line
        // removes comes before that line); the live tasks after them.
        self.visit_tombstones(|write| {
            write_jsonl_write(&mut buf, &write);
            buf.push(b'\n');
            report.removals += 1;
        });
        out.write_all(&buf)?;
        report.bytes += buf.len();
        let mut cursor = TaskCursor::default();
        loop {
            buf.clear();
            let more = self.visit_tasks(&mut cursor, DUMP_RUN, |task| {
                write_jsonl_record(&mut buf, task);
                buf.push(b'\n');
                report.records += 1;
            });
            out.write_all(&buf)?;
            report.bytes += buf.len();
            if !more {
                break;
            }
        }
        out.flush()?;
        Ok(report)
    }
}
