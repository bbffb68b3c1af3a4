//! Any other line, read by serde_json: every valid JSON value, and errors that say where.

use std::fmt;

use super::error::LoadErrorKind;
use super::staged::{field_values, is_op_key, stage_decoded, Staged};
use crate::model::Field;

/// The first `\u` escape of `line` that is half of a surrogate pair without its other half:
/// its byte offset and code unit. Such an escape is no character, and serde_json lets one
/// pass in the values it reads raw (an ignored key's); every lone half is malformed JSON here,
/// wherever it is. On a line a parser accepted, backslashes occur only in strings; on any
/// other, a misreading changes at most which fault is reported.
pub(super) fn lone_surrogate(line: &[u8]) -> Option<(usize, u16)> {
    let hex = |at: usize| {
        let digits = line.get(at..at + 4)?;
        if !digits.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        u16::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
    };
    let mut at = memchr::memchr(b'\\', line)?;
    while at + 1 < line.len() {
        if line[at] != b'\\' {
            at += 1;
            continue;
        }
        if line[at + 1] != b'u' {
            at += 2; // `\\`, `\"`, `\n`, …: the escaped byte is not an escape's start
            continue;
        }
        let unit = hex(at + 2)?;
        let pair_low = (0xD800..0xDC00).contains(&unit)
            && line.get(at + 6..at + 8) == Some(b"\\u")
            && hex(at + 8).is_some_and(|low| (0xDC00..0xE000).contains(&low));
        if pair_low {
            at += 12;
        } else if (0xD800..0xE000).contains(&unit) {
            return Some((at, unit));
        } else {
            at += 6;
        }
    }
    None
}

/// The error for a lone surrogate escape at byte `at` of `line`.
pub(super) fn lone_surrogate_error(line: &[u8], (at, unit): (usize, u16)) -> LoadErrorKind {
    LoadErrorKind::Json(format!(
        "lone surrogate \\u{unit:04x} at column {}: half of a UTF-16 pair, not a character",
        column_of(line, at)
    ))
}

/// The 1-based column (in characters) of byte `at` of `line`.
pub(super) fn column_of(line: &[u8], at: usize) -> usize {
    String::from_utf8_lossy(&line[..at.min(line.len())])
        .chars()
        .count()
        + 1
}

/// Reads a line the flat scanner left with serde_json: the record, when the line is valid
/// JSON, else an error saying what is wrong and at which column. Every value is read raw (its
/// syntax checked, a number's range not), then a known field's, if a string, decoded; so a
/// number of any size is fine under an ignored key and is a field that is not a string under
/// a known one.
pub(super) fn stage_serde(
    line: &[u8],
    bytes: &mut String,
    number: usize,
) -> Result<Staged, LoadErrorKind> {
    use serde::de::{Deserializer as _, MapAccess, Visitor};
    use serde_json::value::RawValue;

    /// An object's known fields' (key, raw value) pairs, in order.
    struct Pairs<'t>(Vec<(String, &'t str)>);

    struct Object;
    impl<'de> Visitor<'de> for Object {
        type Value = Pairs<'de>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Pairs<'de>, A::Error> {
            let mut pairs = Vec::new();
            while let Some(key) = map.next_key::<String>()? {
                let raw = map.next_value::<&'de RawValue>()?.get();
                if Field::from_key(&key).is_some() || is_op_key(&key) {
                    pairs.push((key, raw));
                }
            }
            Ok(Pairs(pairs))
        }
    }

    // serde_json checks UTF-8 only in the strings it decodes, not in those it skips.
    let text = match simdutf8::compat::from_utf8(line) {
        Ok(text) => text,
        Err(e) => {
            let column = column_of(line, e.valid_up_to());
            return Err(LoadErrorKind::Json(format!(
                "invalid UTF-8 at column {column}"
            )));
        }
    };
    let json_error = |e: serde_json::Error| LoadErrorKind::Json(describe_serde(line, &e));
    let surrogate = lone_surrogate(line);
    let read = if text.trim_start().starts_with('{') {
        let mut de = serde_json::Deserializer::from_str(text);
        de.deserialize_map(Object)
            .and_then(|pairs| de.end().map(|()| Some(pairs)))
    } else {
        serde_json::from_str::<&RawValue>(text).map(|_| None)
    };
    // A lone surrogate is reported where it comes first: serde_json skips one in the values
    // it reads raw (and words one as "lone leading surrogate" whichever half it is).
    let pairs = match (read, surrogate) {
        (Err(e), Some(s)) if s.0 < e.column() => return Err(lone_surrogate_error(line, s)),
        (Err(e), _) => return Err(json_error(e)),
        (Ok(_), Some(s)) => return Err(lone_surrogate_error(line, s)),
        (Ok(None), None) => return Err(LoadErrorKind::NotAnObject),
        (Ok(Some(Pairs(pairs))), None) => pairs,
    };
    // A known field's raw value decoded: a string, or `None` for any other JSON value.
    let mut decoded = Vec::with_capacity(pairs.len());
    for (key, raw) in &pairs {
        let value = if raw.starts_with('"') {
            Some(serde_json::from_str::<String>(raw).map_err(json_error)?)
        } else {
            None
        };
        decoded.push((key.as_str(), value));
    }
    let values = field_values(decoded.iter().map(|(k, v)| (*k, v.as_deref())))?;
    stage_decoded(&values, bytes, number)
}

/// serde_json's message without its position (`… at line 1 column 12`), and the column in
/// characters of the line rather than bytes.
pub(super) fn describe_serde(line: &[u8], e: &serde_json::Error) -> String {
    let text = e.to_string();
    let what = match text.find(" at line ") {
        Some(at) => &text[..at],
        None => &text,
    };
    let mut at = match e.column() {
        0 => return what.to_owned(),
        column => column - 1,
    };
    if what.starts_with("control character") {
        // serde_json places this fault at the control byte in a string it decodes, and one
        // byte before it in a string it skips: the byte itself, either way.
        let from = at.saturating_sub(1).min(line.len());
        if let Some(p) = line[from..].iter().position(|&b| b < 0x20) {
            at = from + p;
        }
    }
    format!("{what} at column {}", column_of(line, at))
}
