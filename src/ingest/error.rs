//! Why a bulk load was refused, and where.

use std::fmt;

use super::{MAX_LINE_BYTES, MAX_LOAD_BYTES};
use crate::engine::WriteError;
use crate::model::{Field, FieldError};

/// A bulk load that was refused, and where. The store is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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

/// `line N: what`, or just `what` for a fault of the whole input.
impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "line {}: ", self.line)?;
        }
        write!(f, "{}", self.kind)
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
        /// The line's length in bytes, without its line ending.
        bytes: usize,
    },
    /// The input is larger than [`MAX_LOAD_BYTES`].
    InputTooLarge {
        /// The input's length in bytes.
        bytes: usize,
    },
    /// The line's `op` (`Op`) key is not a removal's: given twice, not a string, or another
    /// value than `removeTask` and `removeDevice`.
    InvalidOp(String),
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
            LoadErrorKind::InvalidOp(why) => write!(f, "field `op` {why}"),
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
