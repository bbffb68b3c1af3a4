//! Bulk load from JSON Lines (contract section 2), parsed with simd-json, all or nothing.
//!
//! Each line is parsed into simd-json's tape (buffers reused across lines); its string fields
//! are copied into one staging buffer and the line becomes a fixed-size `Staged` record.
//! Once every line has parsed and passed the field rules, the batch goes to
//! [`Engine::write_batch`]'s path, which checks identities against the store and the batch
//! itself before applying anything. Any error leaves the store as it was.

use std::fmt;
use std::path::Path;

use simd_json::{Buffers, Node, Tape};

use crate::engine::{Engine, WriteError, WriteSummary};
use crate::model::{Field, FieldError, RecordRef, TaskStatus, Timestamp, Violation, STRING_FIELDS};

/// Longest line accepted, in bytes. A record's own fields take at most about 1.5 KiB; the
/// rest leaves room for the unknown keys of `ListOTATaskByJob` records (`taskDesc`, …).
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// Largest input one load accepts (offsets in the staging buffer are 32-bit).
pub const MAX_LOAD_BYTES: usize = u32::MAX as usize;

/// A bulk load that was refused, and where. The store is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {kind}")]
pub struct LoadError {
    /// 1-based line number of the fault (0 for faults of the whole input).
    pub line: usize,
    /// What was wrong.
    pub kind: LoadErrorKind,
}

impl LoadError {
    /// The field at fault, where the error is about one.
    pub fn field(&self) -> Option<Field> {
        match &self.kind {
            LoadErrorKind::InvalidField(e) => Some(e.field),
            LoadErrorKind::Write(e) => e.field(),
            _ => None,
        }
    }
}

/// What was wrong with a line.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoadErrorKind {
    /// The line is not valid JSON.
    Json(String),
    /// The line is JSON, but not an object.
    NotAnObject,
    /// A field is missing, given twice, not a string, or breaks its rule.
    InvalidField(FieldError),
    /// The line is longer than [`MAX_LINE_BYTES`].
    LineTooLong {
        /// The line's length in bytes.
        bytes: usize,
    },
    /// The input is larger than [`MAX_LOAD_BYTES`].
    InputTooLarge {
        /// The input's length in bytes.
        bytes: usize,
    },
    /// The line is valid but cannot be applied (identity conflict, capacity).
    Write(WriteError),
    /// The file could not be read.
    Io(String),
}

impl fmt::Display for LoadErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadErrorKind::Json(e) => write!(f, "malformed JSON: {e}"),
            LoadErrorKind::NotAnObject => f.write_str("a task record must be a JSON object"),
            LoadErrorKind::InvalidField(e) => write!(f, "{e}"),
            LoadErrorKind::LineTooLong { bytes } => {
                write!(
                    f,
                    "line is {bytes} bytes, longer than the {MAX_LINE_BYTES}-byte limit"
                )
            }
            LoadErrorKind::InputTooLarge { bytes } => {
                write!(
                    f,
                    "input is {bytes} bytes, larger than the {MAX_LOAD_BYTES}-byte limit"
                )
            }
            LoadErrorKind::Write(e) => write!(f, "{e}"),
            LoadErrorKind::Io(e) => write!(f, "cannot read: {e}"),
        }
    }
}

/// What a bulk load did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Non-blank lines read.
    pub records: usize,
    /// New tasks added, replaced tasks, records dropped as stale.
    pub summary: WriteSummary,
}

/// A span of the staging buffer.
#[derive(Clone, Copy, Default)]
struct Span {
    start: u32,
    len: u32,
}

/// One parsed line, its strings in the staging buffer.
struct Staged {
    strings: [Span; 11],
    status: TaskStatus,
    created: Timestamp,
    modified: Timestamp,
    line: u32,
}

/// Parses JSON Lines into staged records; shared by [`Engine::load_jsonl`] and the fuzz
/// targets.
struct Stager {
    bytes: String,
    records: Vec<Staged>,
    buffers: Buffers,
    scratch: Vec<u8>,
    tape: Option<Tape<'static>>,
}

impl Stager {
    fn new(input_len: usize) -> Stager {
        Stager {
            // Field bytes are about two thirds of a record line.
            bytes: String::with_capacity(input_len / 3 * 2),
            records: Vec::with_capacity(input_len / 256),
            buffers: Buffers::new(1024),
            scratch: Vec::with_capacity(1024),
            tape: Some(Tape::null().reset()),
        }
    }

    fn get(&self, i: usize) -> RecordRef<'_> {
        let r = &self.records[i];
        let s = |k: usize| {
            let span = r.strings[k];
            &self.bytes[span.start as usize..(span.start + span.len) as usize]
        };
        RecordRef {
            task_id: s(0),
            job_id: s(1),
            firmware_id: s(2),
            iot_id: s(3),
            product_key: s(4),
            product_name: s(5),
            device_name: s(6),
            module_name: s(7),
            src_version: s(8),
            dest_version: s(9),
            iot_instance_id: s(10),
            status: r.status,
            utc_create: r.created,
            utc_modified: r.modified,
        }
    }

    fn stage_all(&mut self, input: &[u8]) -> Result<(), LoadError> {
        if input.len() > MAX_LOAD_BYTES {
            return Err(LoadError {
                line: 0,
                kind: LoadErrorKind::InputTooLarge { bytes: input.len() },
            });
        }
        // A UTF-8 byte-order mark before the first line is not part of it.
        let mut start = if input.starts_with(b"\xEF\xBB\xBF") {
            3
        } else {
            0
        };
        let mut number = 0;
        while start <= input.len() {
            let end = memchr::memchr(b'\n', &input[start..]).map_or(input.len(), |i| start + i);
            let line = &input[start..end];
            start = end + 1;
            number += 1;
            if line.iter().all(|b| b.is_ascii_whitespace()) {
                continue;
            }
            if line.len() > MAX_LINE_BYTES {
                return Err(LoadError {
                    line: number,
                    kind: LoadErrorKind::LineTooLong { bytes: line.len() },
                });
            }
            self.stage_line(line, number)
                .map_err(|kind| LoadError { line: number, kind })?;
        }
        Ok(())
    }

    fn stage_line(&mut self, line: &[u8], number: usize) -> Result<(), LoadErrorKind> {
        self.scratch.clear();
        self.scratch.extend_from_slice(line);
        let mut tape = self
            .tape
            .take()
            .unwrap_or_else(|| Tape::null().reset())
            .reset();
        let result = match simd_json::fill_tape(&mut self.scratch, &mut self.buffers, &mut tape) {
            Ok(()) => stage_tape(&tape.0, &mut self.bytes, number),
            Err(e) => Err(LoadErrorKind::Json(e.to_string())),
        };
        self.tape = Some(tape.reset());
        self.records.push(result?);
        Ok(())
    }
}

/// Reads one record object from a tape, copying its known string fields to `bytes`.
fn stage_tape(
    nodes: &[Node<'_>],
    bytes: &mut String,
    number: usize,
) -> Result<Staged, LoadErrorKind> {
    let invalid = |field, violation| LoadErrorKind::InvalidField(FieldError::new(field, violation));
    let Some(&Node::Object { len, .. }) = nodes.first() else {
        return Err(LoadErrorKind::NotAnObject);
    };
    let mut strings: [Option<&str>; Field::ALL.len()] = [None; Field::ALL.len()];
    let mut i = 1;
    for _ in 0..len {
        let key = match nodes.get(i) {
            Some(Node::String(k)) => *k,
            _ => return Err(LoadErrorKind::Json("object key expected".into())),
        };
        let (value, width) = match nodes.get(i + 1) {
            Some(Node::String(v)) => (Some(*v), 1),
            Some(Node::Static(_)) => (None, 1),
            Some(Node::Object { count, .. } | Node::Array { count, .. }) => (None, count + 1),
            None => return Err(LoadErrorKind::Json("object value expected".into())),
        };
        i += 1 + width;
        let Some(field) = Field::from_key(key) else {
            continue; // unknown keys are ignored (contract section 2)
        };
        let slot = &mut strings[field_slot(field)];
        if slot.is_some() {
            return Err(invalid(field, Violation::Duplicate));
        }
        match value {
            Some(v) => *slot = Some(v),
            None => return Err(invalid(field, Violation::NotAString)),
        }
    }
    let get = |field: Field| -> Result<&str, LoadErrorKind> {
        match strings[field_slot(field)] {
            Some(v) => Ok(v),
            None if field == Field::IotInstanceId => Ok(""),
            None => Err(invalid(field, Violation::Missing)),
        }
    };
    // Missing fields first (in response order), then each field's rule.
    for field in crate::model::Field::ALL {
        get(field)?;
    }
    let mut spans = [Span::default(); 11];
    for (k, field) in STRING_FIELDS.into_iter().enumerate() {
        let value = get(field)?;
        field.check(value).map_err(|v| invalid(field, v))?;
        spans[k] = Span {
            start: bytes.len() as u32,
            len: value.len() as u32,
        };
        bytes.push_str(value);
    }
    let status = TaskStatus::parse(get(Field::TaskStatus)?)
        .ok_or_else(|| invalid(Field::TaskStatus, Violation::UnknownStatus))?;
    let created = Timestamp::parse(get(Field::UtcCreate)?)
        .ok_or_else(|| invalid(Field::UtcCreate, Violation::BadTimestamp))?;
    let modified = Timestamp::parse(get(Field::UtcModified)?)
        .ok_or_else(|| invalid(Field::UtcModified, Violation::BadTimestamp))?;
    if bytes.len() > MAX_LOAD_BYTES {
        return Err(LoadErrorKind::InputTooLarge { bytes: bytes.len() });
    }
    Ok(Staged {
        strings: spans,
        status,
        created,
        modified,
        line: number as u32,
    })
}

/// A field's slot in a record's value table: its declaration index (`Field` is a fieldless
/// enum of 14 variants).
fn field_slot(field: Field) -> usize {
    field as usize
}

impl Engine {
    /// Loads JSON Lines (contract section 2): one task record per line, camelCase or
    /// PascalCase keys, blank lines skipped, unknown keys ignored. All or nothing: on error the
    /// store is as it was, and the error names the line and the field.
    ///
    /// ```
    /// use ota_index::{Engine, Field};
    /// let engine = Engine::new();
    /// let err = engine.load_jsonl(b"\n{\"taskId\":\"t1\"}\n").unwrap_err();
    /// assert_eq!(err.line, 2);
    /// assert_eq!(err.field(), Some(Field::DestVersion)); // the first missing field
    /// assert!(engine.is_empty());
    /// ```
    pub fn load_jsonl(&self, input: &[u8]) -> Result<LoadReport, LoadError> {
        let mut stager = Stager::new(input.len());
        let write_error = |stager: &Stager, (i, e): (usize, WriteError)| LoadError {
            line: stager.records.get(i).map_or(0, |r| r.line as usize),
            kind: match e {
                WriteError::InvalidField(f) => LoadErrorKind::InvalidField(f),
                other => LoadErrorKind::Write(other),
            },
        };
        if let Err(parse_error) = stager.stage_all(input) {
            // Report the first bad line: an earlier line may contradict a binding.
            let n = stager.records.len();
            return Err(match self.first_identity_conflict(n, |i| stager.get(i)) {
                Some(conflict) => write_error(&stager, conflict),
                None => parse_error,
            });
        }
        let n = stager.records.len();
        let summary = self
            .write_batch_by(n, true, |i| stager.get(i))
            .map_err(|e| write_error(&stager, e))?;
        Ok(LoadReport {
            records: n,
            summary,
        })
    }

    /// Reads a JSON Lines file and loads it with [`Engine::load_jsonl`].
    pub fn load_jsonl_file(&self, path: impl AsRef<Path>) -> Result<LoadReport, LoadError> {
        let path = path.as_ref();
        let io = |e: std::io::Error| LoadError {
            line: 0,
            kind: LoadErrorKind::Io(format!("{}: {e}", path.display())),
        };
        let len = std::fs::metadata(path).map_err(io)?.len();
        if len > MAX_LOAD_BYTES as u64 {
            return Err(LoadError {
                line: 0,
                kind: LoadErrorKind::InputTooLarge {
                    bytes: usize::try_from(len).unwrap_or(usize::MAX),
                },
            });
        }
        let input = std::fs::read(path).map_err(io)?;
        self.load_jsonl(&input)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = r#"{"destVersion":"3.9.0","deviceName":"device_actived","firmwareId":"123","iotId":"OZs5tjTkzRRTZSCekmbRk1****","jobId":"183371207742901****","moduleName":"ble","productKey":"k1h9drZ****","productName":"testProduct1","srcVersion":"1.8","taskId":"183371207782747****","taskStatus":"NOTIFIED","utcCreate":"2024-09-11T03:40:02.734Z","utcModified":"2024-09-11T06:27:24.649Z"}"#;

    fn stage(line: &str) -> Result<TaskRecordOwned, LoadErrorKind> {
        let mut s = Stager::new(line.len());
        s.stage_line(line.as_bytes(), 1)?;
        Ok(s.get(0).to_owned())
    }
    type TaskRecordOwned = crate::TaskRecord;

    #[test]
    fn stages_both_key_styles_and_ignores_unknown_keys() {
        let camel = stage(SEED).unwrap();
        assert_eq!(camel.task_id, "183371207782747****");
        assert_eq!(camel.status, TaskStatus::Notified);
        assert_eq!(camel.iot_instance_id, "");
        let pascal = SEED
            .replace("\"destVersion\"", "\"DestVersion\"")
            .replace("\"taskId\"", "\"TaskId\"")
            .replace("\"iotId\"", "\"IotId\"")
            .replace(
                '}',
                r#","progress":"0.5","timeout":{"a":[1,2]},"IotInstanceId":"iot-1"}"#,
            );
        let p = stage(&pascal).unwrap();
        assert_eq!(p.dest_version, "3.9.0");
        assert_eq!(p.iot_instance_id, "iot-1");
        assert_eq!(p.task_id, camel.task_id);
    }

    #[test]
    fn escapes_are_decoded() {
        let line = SEED.replace(r#""3.9.0""#, r#""2.0 \"beta\" \u00e9""#);
        assert_eq!(stage(&line).unwrap().dest_version, "2.0 \"beta\" é");
    }

    #[test]
    fn field_faults_name_the_field() {
        let field_of = |line: &str| match stage(line) {
            Err(LoadErrorKind::InvalidField(e)) => (e.field, e.violation),
            other => panic!("{line}: {other:?}"),
        };
        assert_eq!(
            field_of(&SEED.replace(r#""taskId":"183371207782747****","#, "")),
            (Field::TaskId, Violation::Missing)
        );
        assert_eq!(
            field_of(&SEED.replace(r#""jobId":"183371207742901****""#, r#""jobId":7"#)),
            (Field::JobId, Violation::NotAString)
        );
        assert_eq!(
            field_of(&SEED.replace(r#""jobId":"183371207742901****""#, r#""jobId":null"#)),
            (Field::JobId, Violation::NotAString)
        );
        assert_eq!(
            field_of(&SEED.replace('}', r#","TaskId":"x"}"#)),
            (Field::TaskId, Violation::Duplicate)
        );
        assert_eq!(
            field_of(&SEED.replace("NOTIFIED", "notified")),
            (Field::TaskStatus, Violation::UnknownStatus)
        );
        assert_eq!(
            field_of(&SEED.replace("2024-09-11T06:27:24.649Z", "2024-09-11 06:27:24Z")),
            (Field::UtcModified, Violation::BadTimestamp)
        );
        assert!(matches!(
            field_of(&SEED.replace("device_actived", "dev")),
            (Field::DeviceName, Violation::Length { .. })
        ));
    }

    #[test]
    fn malformed_lines_are_json_errors() {
        assert!(matches!(stage("{\"taskId\":"), Err(LoadErrorKind::Json(_))));
        assert!(matches!(stage("[1,2]"), Err(LoadErrorKind::NotAnObject)));
        assert!(matches!(stage("\"x\""), Err(LoadErrorKind::NotAnObject)));
        assert!(matches!(
            stage(&format!("{SEED} x")),
            Err(LoadErrorKind::Json(_))
        ));
    }
}
