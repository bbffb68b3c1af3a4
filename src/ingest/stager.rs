//! The whole input, line by line: each line to the flat scanner or to serde_json, and the
//! staged records made back into records for the batch.

use super::error::{LoadError, LoadErrorKind};
use super::flat::scan_flat;
use super::json::stage_serde;
use super::staged::{finish, FieldTable, LineKind, Span, Staged};
use super::{MAX_LINE_BYTES, MAX_LOAD_BYTES};
use crate::engine::Write;
use crate::model::{Field, RecordRef};
use crate::raw::prefetch::{prefetch, prefetch_bytes};

/// Parses JSON Lines into staged records; shared by [`Engine::load_jsonl`] and the fuzz
/// targets.
///
/// Two readers, one result. A line that is a flat object of string keys and string values
/// with no escapes (what the platform's exports and the fleet generator write) is read by
/// [`scan_flat`], and its values stay where they are in the input. Any other line (escapes,
/// numbers, nested values, malformed JSON) goes to [`stage_serde`], and its values are
/// decoded into the staging buffer. Both feed the same field table and the same checks.
pub(super) struct Stager<'a> {
    /// The input's longest valid UTF-8 prefix (the whole input, unless it is malformed):
    /// [`scan_flat`] reads only lines inside it.
    pub(super) input: &'a str,
    pub(super) bytes: String,
    pub(super) records: Vec<Staged>,
}

impl<'a> Stager<'a> {
    pub(super) fn new(input: &'a [u8]) -> Stager<'a> {
        let input = match simdutf8::compat::from_utf8(input) {
            Ok(text) => text,
            // Lines from the first invalid byte on are left to serde_json, which reports them.
            Err(e) => std::str::from_utf8(&input[..e.valid_up_to()]).unwrap_or(""),
        };
        Stager {
            input,
            bytes: String::new(),
            records: Vec::with_capacity(input.len() / 256),
        }
    }

    /// Starts loading record `i` (`line == false`) or, once that has arrived, the bytes of its
    /// values (from the first to the end of the last: within its line, or for a decoded
    /// record, the staging buffer).
    pub(super) fn prefetch(&self, i: usize, line: bool) {
        let Some(r) = self.records.get(i) else {
            return;
        };
        if !line {
            // Its first and last bytes: the two cache lines it spans (records start at
            // multiples of 8).
            prefetch(r);
            prefetch(&r.decoded);
            return;
        }
        let (mut lo, mut hi) = (usize::MAX, 0);
        for span in &r.strings {
            if span.len > 0 {
                lo = lo.min(usize::from(span.start));
                hi = hi.max(usize::from(span.start) + usize::from(span.len));
            }
        }
        let text = if r.decoded { &self.bytes } else { self.input };
        if lo < hi {
            prefetch_bytes(text.as_bytes(), r.base as usize + lo, hi - lo);
        }
    }

    /// How many staged lines from `from` on are records, up to the next removal.
    pub(super) fn records_in_a_run(&self, from: usize) -> usize {
        self.records[from.min(self.records.len())..]
            .iter()
            .take_while(|r| r.kind == LineKind::Record)
            .count()
    }

    /// Staged line `i` as a write.
    pub(super) fn removal(&self, i: usize) -> Write<'_> {
        let r = &self.records[i];
        let record = self.get(i);
        let known = |s: &str| (!s.is_empty()).then_some(());
        match r.kind {
            LineKind::RemoveDevice => Write::RemoveDevice {
                instance: record.iot_instance_id,
                iot_id: record.iot_id,
                pair: known(record.product_key)
                    .and(known(record.device_name))
                    .map(|()| (record.product_key, record.device_name)),
                utc_modified: record.utc_modified,
            },
            LineKind::RemoveTask => Write::RemoveTask {
                instance: record.iot_instance_id,
                task_id: record.task_id,
                utc_modified: record.utc_modified,
            },
            LineKind::Record => Write::Record(record),
        }
    }

    pub(super) fn get(&self, i: usize) -> RecordRef<'_> {
        let r = &self.records[i];
        let text = if r.decoded { &self.bytes } else { self.input };
        let base = r.base as usize;
        let s = |k: usize| {
            let span = r.strings[k];
            let start = base + usize::from(span.start);
            &text[start..start + usize::from(span.len)]
        };
        let optional = |k: usize| {
            let k = Field::STRINGS.len() + k;
            (r.strings[k].len > 0).then(|| s(k))
        };
        RecordRef::from_strings(
            std::array::from_fn(s),
            r.status,
            r.created,
            r.modified,
            std::array::from_fn(optional),
        )
    }

    /// Stages every line of `input`, numbering them from `first_line + 1` (a byte-order mark
    /// is skipped only before the input's first line, `first_line` 0).
    pub(super) fn stage_all(&mut self, input: &[u8], first_line: usize) -> Result<(), LoadError> {
        if input.len() > MAX_LOAD_BYTES {
            return Err(LoadError {
                line: 0,
                kind: LoadErrorKind::InputTooLarge { bytes: input.len() },
            });
        }
        // A UTF-8 byte-order mark before the first line is not part of it.
        let mut start = if first_line == 0 && input.starts_with(b"\xEF\xBB\xBF") {
            3
        } else {
            0
        };
        let mut number = first_line;
        while start <= input.len() {
            let end = memchr::memchr(b'\n', &input[start..]).map_or(input.len(), |i| start + i);
            let line = &input[start..end];
            let line_start = start;
            start = end + 1;
            number += 1;
            if line.iter().all(|b| b.is_ascii_whitespace()) {
                continue;
            }
            // A CRLF line's CR is not counted (it is whitespace, ending the line's JSON).
            let text = line.strip_suffix(b"\r").unwrap_or(line);
            if text.len() > MAX_LINE_BYTES {
                return Err(LoadError {
                    line: number,
                    kind: LoadErrorKind::LineTooLong { bytes: text.len() },
                });
            }
            // Without its CR, a CRLF line is as flat as an LF one.
            let staged = match self.input.get(line_start..line_start + text.len()) {
                Some(text) => self.stage_flat(text, line_start, number),
                None => None,
            };
            match staged {
                Some(result) => self
                    .records
                    .push(result.map_err(|kind| LoadError { line: number, kind })?),
                None => self
                    .stage_line(line, number)
                    .map_err(|kind| LoadError { line: number, kind })?,
            }
        }
        Ok(())
    }

    /// Stages a line of the valid input at `offset` with [`scan_flat`]; `None` when the line
    /// is not a flat object of plain strings (serde_json decides it).
    pub(super) fn stage_flat(
        &self,
        line: &'a str,
        offset: usize,
        number: usize,
    ) -> Option<Result<Staged, LoadErrorKind>> {
        let mut table = FieldTable::new();
        if !scan_flat(line, |key, value| table.put(key, Some(value))) {
            return None;
        }
        let values = match table.finish() {
            Ok(values) => values,
            Err(e) => return Some(Err(e)),
        };
        // Every value read is a slice of `line`: its place is from the line's start. (An
        // absent `iotInstanceId` is the empty string, which needs no place.)
        let base = line.as_ptr() as usize;
        Some(finish(
            &values,
            number,
            offset as u32,
            false,
            |value| match value.len() {
                0 => Span::default(),
                len => Span {
                    start: (value.as_ptr() as usize - base) as u16,
                    len: len as u16,
                },
            },
        ))
    }

    pub(super) fn stage_line(&mut self, line: &[u8], number: usize) -> Result<(), LoadErrorKind> {
        let staged = stage_serde(line, &mut self.bytes, number)?;
        self.records.push(staged);
        Ok(())
    }
}
