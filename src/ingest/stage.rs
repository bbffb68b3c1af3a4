//! Staging: each line's fields checked and kept as a fixed-size record whose strings point
//! into the input or the staging buffer, until the whole input has been read.

use super::error::{LoadError, LoadErrorKind};
use super::flat::scan_flat;
use super::json::stage_serde;
use super::{MAX_LINE_BYTES, MAX_LOAD_BYTES};
use crate::model::{Field, FieldError, RecordRef, TaskStatus, Timestamp, Violation};
use crate::raw::prefetch::{prefetch, prefetch_bytes};

/// Where one staged string is: from [`Staged::base`], in the input or the staging buffer
/// (see [`Staged::decoded`]). A record's strings lie within its line, or for a decoded line
/// within as many bytes (decoding never lengthens a string), and a line is at most
/// [`MAX_LINE_BYTES`] = 64 KiB: 16 bits each.
#[derive(Clone, Copy, Default)]
pub(super) struct Span {
    pub(super) start: u16,
    pub(super) len: u16,
}

const _: () = assert!(MAX_LINE_BYTES <= 1 << 16);

/// One parsed line, its strings in the input or the staging buffer. 72 bytes (against 112
/// with 32-bit spans: 128 MB less to write and read for the million-device fleet), laid
/// out in this order so that [`Stager::prefetch`] knows which fields start and end it.
#[repr(C)]
pub(super) struct Staged {
    /// Where the line starts in the input, or its strings in the staging buffer.
    pub(super) base: u32,
    pub(super) strings: [Span; Field::STRINGS.len()],
    pub(super) created: Timestamp,
    pub(super) modified: Timestamp,
    pub(super) line: u32,
    pub(super) status: TaskStatus,
    /// The strings are in the staging buffer (the line was decoded by serde_json), not in the
    /// input (a line the flat scanner read, the usual case): one test a record, not one a
    /// string, each time [`Stager::get`] makes it.
    pub(super) decoded: bool,
}

const _: () = assert!(std::mem::size_of::<Staged>() == 72);

/// A line's value of each field (by [`field_slot`]), as read from the line.
pub(super) type Values<'v> = [Option<&'v str>; Field::ALL.len()];

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

    pub(super) fn get(&self, i: usize) -> RecordRef<'_> {
        let r = &self.records[i];
        let text = if r.decoded { &self.bytes } else { self.input };
        let base = r.base as usize;
        let s = |k: usize| {
            let span = r.strings[k];
            let start = base + usize::from(span.start);
            &text[start..start + usize::from(span.len)]
        };
        RecordRef::from_strings(std::array::from_fn(s), r.status, r.created, r.modified)
    }

    pub(super) fn stage_all(&mut self, input: &[u8]) -> Result<(), LoadError> {
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

/// Stages a record whose values were decoded (escapes, a parser's own buffers): they are
/// copied to the staging buffer `bytes`.
pub(super) fn stage_decoded(
    values: &Values<'_>,
    bytes: &mut String,
    number: usize,
) -> Result<Staged, LoadErrorKind> {
    let base = bytes.len();
    let staged = finish(values, number, base as u32, true, |value| {
        let span = Span {
            start: (bytes.len() - base) as u16,
            len: value.len() as u16,
        };
        bytes.push_str(value);
        span
    })?;
    if bytes.len() > MAX_LOAD_BYTES {
        return Err(LoadErrorKind::InputTooLarge { bytes: bytes.len() });
    }
    Ok(staged)
}

/// A record's field table from its (key, value) pairs in order: `None` values are not strings.
/// Unknown keys are ignored (reference section 2); a known key given twice, or with a value
/// that is not a string, is refused.
pub(super) fn field_values<'v>(
    pairs: impl Iterator<Item = (&'v str, Option<&'v str>)>,
) -> Result<Values<'v>, LoadErrorKind> {
    let mut table = FieldTable::new();
    for (key, value) in pairs {
        table.put(key, value);
    }
    table.finish()
}

/// [`field_values`] a pair at a time, for the flat scanner (no list of pairs in between).
pub(super) struct FieldTable<'v> {
    pub(super) values: Values<'v>,
    /// The first pair refused; later pairs change nothing.
    pub(super) fault: Option<LoadErrorKind>,
}

impl<'v> FieldTable<'v> {
    pub(super) fn new() -> FieldTable<'v> {
        FieldTable {
            values: [None; Field::ALL.len()],
            fault: None,
        }
    }

    pub(super) fn put(&mut self, key: &'v str, value: Option<&'v str>) {
        if self.fault.is_some() {
            return;
        }
        let Some(field) = Field::from_key(key) else {
            return;
        };
        let invalid = |violation| {
            Some(LoadErrorKind::InvalidField(FieldError::new(
                field, violation,
            )))
        };
        let slot = &mut self.values[field_slot(field)];
        if slot.is_some() {
            self.fault = invalid(Violation::Duplicate);
            return;
        }
        match value {
            Some(v) => *slot = Some(v),
            None => self.fault = invalid(Violation::NotAString),
        }
    }

    pub(super) fn finish(self) -> Result<Values<'v>, LoadErrorKind> {
        match self.fault {
            Some(fault) => Err(fault),
            None => Ok(self.values),
        }
    }
}

/// Checks a line's field table (missing fields first, in response order, then each field's
/// rule) and stages it, `keep` placing each string value.
pub(super) fn finish<'v>(
    values: &Values<'v>,
    number: usize,
    base: u32,
    decoded: bool,
    mut keep: impl FnMut(&'v str) -> Span,
) -> Result<Staged, LoadErrorKind> {
    let invalid = |field, violation| LoadErrorKind::InvalidField(FieldError::new(field, violation));
    let get = |field: Field| -> Result<&'v str, LoadErrorKind> {
        match values[field_slot(field)] {
            Some(v) => Ok(v),
            None if field == Field::IotInstanceId => Ok(""),
            None => Err(invalid(field, Violation::Missing)),
        }
    };
    for field in crate::model::Field::ALL {
        get(field)?;
    }
    let mut spans = [Span::default(); Field::STRINGS.len()];
    for (k, field) in Field::STRINGS.into_iter().enumerate() {
        let value = get(field)?;
        field.check(value).map_err(|v| invalid(field, v))?;
        spans[k] = keep(value);
    }
    let status = TaskStatus::parse(get(Field::TaskStatus)?)
        .ok_or_else(|| invalid(Field::TaskStatus, Violation::UnknownStatus))?;
    let created = Timestamp::parse(get(Field::UtcCreate)?)
        .ok_or_else(|| invalid(Field::UtcCreate, Violation::BadTimestamp))?;
    let modified = Timestamp::parse(get(Field::UtcModified)?)
        .ok_or_else(|| invalid(Field::UtcModified, Violation::BadTimestamp))?;
    Ok(Staged {
        base,
        strings: spans,
        decoded,
        status,
        created,
        modified,
        line: number as u32,
    })
}

/// A field's slot in a record's value table: its declaration index (`Field` is a fieldless
/// enum of 14 variants).
pub(super) fn field_slot(field: Field) -> usize {
    field as usize
}
