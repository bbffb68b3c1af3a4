//! Bulk load from JSON Lines (reference section 2), all or nothing.
//!
//! Two readers, one result. A line that is a flat object of plain strings (no escapes: what
//! exports and the fleet generator write) is read in place by a small scanner (`flat`), and
//! its values stay in the input. Any other line is read by serde_json (`json`), which
//! takes every valid JSON value under an ignored key and says at which column a malformed
//! line goes wrong; its values are decoded into one staging buffer. Either way the line
//! becomes a fixed-size staged record once its fields pass their rules (`staged`). Once every
//! line has, the batch goes to [`Engine::write_batch`]'s path, which checks identities
//! against the store and the batch itself before applying anything. Any error leaves the
//! store as it was.
//!
//! A third reader, simd-json's tape, read the escaped lines about three times as fast as
//! serde_json does (640,000 lines, each with one `\u` escape: 0.33 s against 1.1 s over the
//! flat lines' load), but it refuses valid JSON (numbers past `f64`) and says little of what
//! is wrong, so serde_json had to read those lines again anyway; escaped lines are rare in
//! the platform's exports, and two readers are one less to keep in agreement.

mod dump;
mod error;
mod flat;
mod json;
mod staged;
mod stager;

#[cfg(test)]
mod tests;

use std::path::Path;

use crate::engine::{Engine, WriteError, WriteSummary};
use stager::Stager;

pub use dump::{write_jsonl_record, DumpReport};
pub use error::{LoadError, LoadErrorKind};

/// Longest line accepted, in bytes, not counting its line ending (`\n` or `\r\n`). A
/// record's own fields take at most about 1.5 KiB; the rest leaves room for the unknown keys
/// of `ListOTATaskByJob` records (`taskDesc`, …).
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// Largest input one load accepts (offsets in the staging buffer are 32-bit).
pub const MAX_LOAD_BYTES: usize = u32::MAX as usize;

/// What a bulk load did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Non-blank lines read.
    pub records: usize,
    /// New tasks added, replaced tasks, records dropped as stale.
    pub summary: WriteSummary,
}

impl Engine {
    /// Loads JSON Lines (reference section 2): one task record per line, camelCase or
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
        let mut stager = Stager::new(input);
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
            .write_batch_by(n, true, |i| stager.get(i), |i, l| stager.prefetch(i, l))
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
