//! A staged record: one line's fields checked and kept in a fixed size, its strings pointing
//! into the input or the staging buffer, until the whole input has been read.

use super::error::LoadErrorKind;
use super::{MAX_LINE_BYTES, MAX_LOAD_BYTES};
use crate::model::{Field, FieldError, TaskStatus, Timestamp, Violation};

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

/// The strings a staged record places: the record's strings, then its optional ones.
pub(super) const STAGED_STRINGS: usize = Field::STRINGS.len() + Field::OPTIONAL.len();

/// One parsed line, its strings in the input or the staging buffer. 88 bytes (against 144
/// with 32-bit spans), laid out in this order so that the stager's prefetch knows which
/// fields start and end it.
#[repr(C)]
pub(super) struct Staged {
    /// Where the line starts in the input, or its strings in the staging buffer.
    pub(super) base: u32,
    /// The record's strings ([`Field::STRINGS`]), then its optional ones
    /// ([`Field::OPTIONAL`], an empty span for an unknown one).
    pub(super) strings: [Span; STAGED_STRINGS],
    pub(super) created: Timestamp,
    pub(super) modified: Timestamp,
    pub(super) line: u32,
    pub(super) status: TaskStatus,
    /// A record, or which removal.
    pub(super) kind: LineKind,
    /// The strings are in the staging buffer (the line was decoded by serde_json), not in the
    /// input (a line the flat scanner read, the usual case): one test a record, not one a
    /// string, each time [`Stager::get`] makes it.
    pub(super) decoded: bool,
}

const _: () = assert!(std::mem::size_of::<Staged>() == 88);

/// What a staged line is: a task record or a removal (reference section 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum LineKind {
    Record,
    RemoveTask,
    RemoveDevice,
}

/// A line's value of each field (by [`field_slot`]) and its `op`, as read from the line.
#[derive(Clone, Copy)]
pub(super) struct Values<'v> {
    pub(super) fields: [Option<&'v str>; Field::ALL.len()],
    pub(super) op: Option<&'v str>,
}

/// The `op` key, in either spelling.
pub(super) fn is_op_key(key: &str) -> bool {
    matches!(key.as_bytes(), [b'o' | b'O', b'p'])
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
            values: Values {
                fields: [None; Field::ALL.len()],
                op: None,
            },
            fault: None,
        }
    }

    pub(super) fn put(&mut self, key: &'v str, value: Option<&'v str>) {
        if self.fault.is_some() {
            return;
        }
        let Some(field) = Field::from_key(key) else {
            if is_op_key(key) {
                self.fault = match (self.values.op, value) {
                    (Some(_), _) => Some(LoadErrorKind::InvalidOp("is given twice".into())),
                    (None, None) => Some(LoadErrorKind::InvalidOp("must be a JSON string".into())),
                    (None, Some(op)) => {
                        self.values.op = Some(op);
                        None
                    }
                };
            }
            return;
        };
        let invalid = |violation| {
            Some(LoadErrorKind::InvalidField(FieldError::new(
                field, violation,
            )))
        };
        let slot = &mut self.values.fields[field_slot(field)];
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
    if let Some(op) = values.op {
        return finish_removal(values, op, number, base, decoded, keep);
    }
    let get = |field: Field| -> Result<&'v str, LoadErrorKind> {
        match values.fields[field_slot(field)] {
            Some(v) => Ok(v),
            None if field == Field::IotInstanceId || field.is_optional() => Ok(""),
            None => Err(invalid(field, Violation::Missing)),
        }
    };
    for field in crate::model::Field::ALL {
        get(field)?;
    }
    let mut spans = [Span::default(); STAGED_STRINGS];
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
    for (k, field) in Field::OPTIONAL.into_iter().enumerate() {
        let value = get(field)?;
        if !value.is_empty() {
            field.check(value).map_err(|v| invalid(field, v))?;
            spans[Field::STRINGS.len() + k] = keep(value);
        }
    }
    Ok(Staged {
        base,
        strings: spans,
        decoded,
        status,
        created,
        modified,
        kind: LineKind::Record,
        line: number as u32,
    })
}

/// [`finish`] for a removal line (`op`): `removeTask` needs `taskId` and `utcModified`,
/// `removeDevice` needs `iotId` and `utcModified` (and takes the pair it covers from
/// `productKey` and `deviceName` when both are given); every other known key given follows
/// its field's rule, in table order.
fn finish_removal<'v>(
    values: &Values<'v>,
    op: &'v str,
    number: usize,
    base: u32,
    decoded: bool,
    mut keep: impl FnMut(&'v str) -> Span,
) -> Result<Staged, LoadErrorKind> {
    let invalid = |field, violation| LoadErrorKind::InvalidField(FieldError::new(field, violation));
    let (kind, key) = match op {
        "removeTask" => (LineKind::RemoveTask, Field::TaskId),
        "removeDevice" => (LineKind::RemoveDevice, Field::IotId),
        other => {
            let shown: String = other.chars().take(64).collect();
            return Err(LoadErrorKind::InvalidOp(format!(
                "must be \"removeTask\" or \"removeDevice\", not {shown:?}"
            )));
        }
    };
    for field in [key, Field::UtcModified] {
        if values.fields[field_slot(field)].is_none_or(str::is_empty) {
            return Err(invalid(field, Violation::Missing));
        }
    }
    let mut spans = [Span::default(); STAGED_STRINGS];
    let mut status = TaskStatus::Confirm;
    let (mut created, mut modified) = (Timestamp::from_millis(0), Timestamp::from_millis(0));
    for field in Field::TABLE {
        let Some(value) = values.fields[field_slot(field)] else {
            continue;
        };
        match field {
            Field::TaskStatus => {
                status = TaskStatus::parse(value)
                    .ok_or_else(|| invalid(field, Violation::UnknownStatus))?;
            }
            Field::UtcCreate | Field::UtcModified => {
                let time = Timestamp::parse(value)
                    .ok_or_else(|| invalid(field, Violation::BadTimestamp))?;
                if field == Field::UtcCreate {
                    created = time;
                } else {
                    modified = time;
                }
            }
            _ => {
                field.check(value).map_err(|v| invalid(field, v))?;
                let at = Field::STRINGS
                    .iter()
                    .chain(&Field::OPTIONAL)
                    .position(|&f| f == field);
                if let Some(at) = at.filter(|_| !value.is_empty()) {
                    spans[at] = keep(value);
                }
            }
        }
    }
    Ok(Staged {
        base,
        strings: spans,
        decoded,
        status,
        created,
        modified,
        kind,
        line: number as u32,
    })
}

/// A field's slot in a record's value table: its declaration index (`Field` is a fieldless
/// enum).
pub(super) fn field_slot(field: Field) -> usize {
    field as usize
}
